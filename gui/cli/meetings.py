"""A meeting from start to this end's part's end: its events as JSON lines and what came
from each participant."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from typing import Any

from gui.cli.connection import FirstEvent
from gui.cli.output import MEETING_NORMAL_ENDINGS, emit, nothing_received
from gui.core.call_session import CallOptions, LocalMedia
from gui.core.meeting_machine import MeetingState, ParticipantsChanged
from gui.core.meeting_session import MeetingSession
from gui.core.peer_channel import ChatUnavailable
from gui.core.signaling_client import SignalingClient
from gui.media.analysis import AudioReceiver, FrameTimeline, VideoReceiver


async def _meeting_chat_when_heard(session: MeetingSession, text: str) -> None:
    """Send ``text`` to the meeting as soon as someone can receive it (within 60 s)."""
    async with asyncio.timeout(60):
        while not session.machine.ended:
            try:
                message = session.send_chat(text)
            except ChatUnavailable:
                await asyncio.sleep(0.2)
                continue
            emit("chat_sent", id=message.id, text=message.text)
            return


def _video_rate(video: VideoReceiver) -> dict[str, float | None]:
    """Frames per second from the first frame to the newest one."""
    if video.first_frame_at is None or video.latest_at is None or video.frames < 2:
        return {"fps": None}
    span = video.latest_at - video.first_frame_at
    return {"fps": round((video.frames - 1) / span, 2) if span > 0 else None}


class MeetingReporter:
    """Prints a meeting's events as JSON lines and sums up what came from each participant."""

    def __init__(self, session: MeetingSession) -> None:
        self.session = session
        self.joined = asyncio.Event()
        #: When this end began to join (monotonic): first frames are counted from here.
        self.started = time.monotonic()
        #: The picture shown of each participant since a call moved into this meeting.
        self.timelines: dict[str, FrameTimeline] = {}
        session.on("state", self.state)
        session.on("participants", self.participants)
        session.on(
            "participant_left",
            lambda username, reason: emit("participant_left", username=username, reason=reason),
        )
        # Through a media server: connecting, connected, reconnecting (it moved).
        session.on("sfu", lambda state: emit("media_server", state=state))
        session.on("videos", lambda usernames: emit("videos", usernames=list(usernames)))
        # A call that moved into it: its connection switched to the media server, then closed.
        session.on(
            "handover", lambda username, state: emit("handover", username=username, state=state)
        )
        session.on(
            "chat",
            lambda username, message: emit(
                "chat", username=username, id=message.id, text=message.text
            ),
        )
        # Sent before this end joined (or while it was away): once each, marked.
        session.on(
            "chat_history",
            lambda username, message: emit(
                "chat", username=username, id=message.id, text=message.text, history=True
            ),
        )
        session.on(
            "request_failed",
            lambda kind, code, message: emit(
                "request_failed", request=kind, code=code, message=message
            ),
        )

    def state(self, state: MeetingState, reason: str | None) -> None:
        """Print a state change; note when this end is in."""
        machine = self.session.machine
        fields: dict[str, Any] = {"state": state.value, "meeting_id": machine.meeting_id}
        if state is MeetingState.INVITED and machine.inviter is not None:
            fields.update(inviter=machine.inviter, title=machine.title)
        if state is MeetingState.JOINED:
            fields.update(host=machine.host, title=machine.title, topology=machine.topology)
            self.joined.set()
        if reason is not None:
            fields["reason"] = reason
        emit("state", **fields)

    def follow_pictures(self) -> None:
        """Measure from now the picture of each participant linked already (the call's other
        party) as a window shows it: whichever receiver the session names last."""
        for username, links in self.session.history.items():
            video = links[-1].receivers.get("camera")
            if isinstance(video, VideoReceiver):
                self.timelines[username] = FrameTimeline(video)

        def shown(username: str, slot: str, receiver: object) -> None:
            timeline = self.timelines.get(username)
            if slot == "camera" and timeline is not None and isinstance(receiver, VideoReceiver):
                timeline.follow(receiver)

        self.session.on("remote_track", shown)

    @staticmethod
    def participants(change: ParticipantsChanged) -> None:
        """Print who is in, what they send, and how this end's link to each stands."""
        emit(
            "participants",
            host=change.host,
            invited=list(change.invited),
            participants=[
                {
                    "username": p.username,
                    "display_name": p.display_name,
                    "audio": p.audio,
                    "video": p.video,
                    "screen": p.screen,
                    "link": p.link.value,
                    **({"problem": p.problem} if p.problem else {}),
                }
                for p in change.participants
            ],
        )

    def summary(self) -> dict[str, Any]:
        """What came from each participant this end was ever linked to, over all its links."""
        figures: dict[str, Any] = {}
        for username, links in self.session.history.items():
            out: dict[str, Any] = {
                **nothing_received(),
                "links": len(links),
                "connected": any(link.connected_at is not None for link in links),
            }
            for link in links:  # oldest first: the newest link's figures win
                video = link.receivers.get("camera")
                audio = link.receivers.get("audio")
                if isinstance(video, VideoReceiver) and video.frames:
                    out["frames_received"] += video.frames
                    out.update(width=video.width, height=video.height, **_video_rate(video))
                    first = video.first_frame_at
                    if out.get("first_frame_ms") is None and first and first >= self.started:
                        out["first_frame_ms"] = round(1000 * (first - self.started))
                        # On the machine's monotonic clock, which every process shares.
                        out["first_frame_at"] = round(first, 4)
                if isinstance(audio, AudioReceiver) and audio.frames:
                    out["audio_ms_received"] += round(audio.received_ms)
                    peak = audio.peak_hz(1.0)
                    if peak is not None:
                        out["audio_peak_hz"] = round(peak, 1)
            timeline = self.timelines.get(username)
            if timeline is not None:
                out.update(timeline.figures())
            figures[username] = out
        return {
            "meeting_id": self.session.meeting_id,
            "joining_at": round(self.started, 4),
            "reason": self.session.machine.reason,
            "participants": figures,
        }


async def run_meeting(
    client: SignalingClient,
    args: argparse.Namespace,
    media: LocalMedia,
    options: CallOptions,
    first: FirstEvent | None = None,
) -> int:
    """Create, join or answer a meeting and follow it to this end's part's end."""
    assert client.user is not None
    me = str(client.user["username"])
    if args.meet_command == "create":
        session = MeetingSession.create(
            client, me, media, invite=args.invite, title=args.title, options=options
        )
    elif args.meet_command == "join":
        session = MeetingSession.join(client, me, args.meeting_id, media, options)
    else:
        assert first is not None
        event = await first.wait(args.wait)
        session = MeetingSession.invited(client, me, event, media, options)
    answer = None
    if args.meet_command == "answer":
        answer = session.decline if args.decline else session.accept
    return await follow_meeting(session, args, args.duration, answer=answer)


async def follow_meeting(
    session: MeetingSession,
    args: argparse.Namespace,
    duration: float | None,
    *,
    answer: Callable[[], None] | None = None,
    moved: bool = False,
) -> int:
    """Follow ``session`` to this end's part's end (leaving ``duration`` s after joining);
    ``answer`` accepts or declines an invitation first. ``moved``: the meeting continues this
    end's call, whose picture from the other party is measured from now (``longest_gap_ms``,
    ``largest_frame_skip`` in the summary)."""
    reporter = MeetingReporter(session)
    if getattr(args, "stats", False):
        session.on(
            "link_stats",
            lambda username, sample: emit("link_stats", username=username, **sample.to_json()),
        )
    if moved:
        emit("moved", meeting_id=session.meeting_id)
        reporter.follow_pictures()
    loop = asyncio.get_running_loop()
    finish = session.end if getattr(args, "end", False) else session.leave
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, finish)
    if answer is not None:
        answer()

    async def leave_after(seconds: float) -> None:
        await reporter.joined.wait()
        await asyncio.sleep(seconds)
        finish()

    helpers = [loop.create_task(leave_after(duration))] if duration is not None else []
    if getattr(args, "chat", None) and not moved:  # (a call's --chat went to the call)
        helpers.append(loop.create_task(_meeting_chat_when_heard(session, args.chat)))
    try:
        await session.wait_ended()
    finally:
        for helper in helpers:
            helper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await helper
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    summary = reporter.summary()
    emit("summary", **summary)
    return 0 if summary["reason"] in MEETING_NORMAL_ENDINGS else 1
