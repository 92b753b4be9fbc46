"""A call from start to end: its events as JSON lines, its summary, and what --chat,
--share-screen and --add do once it connects."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

from gui.cli.media import SpeakerOutput
from gui.cli.meetings import follow_meeting
from gui.cli.output import NORMAL_ENDINGS, emit, nothing_received
from gui.core.call_machine import CallState
from gui.core.call_session import CallSession, ScreenShareUnavailable
from gui.core.escalation import continue_in_meeting
from gui.core.peer_channel import ChatMessage, ChatUnavailable, PeerMediaState
from gui.core.quality import MediaPath, QualitySample
from gui.core.receive_repair import repair_counts
from gui.media.analysis import AudioReceiver, VideoReceiver
from gui.media.processing import ProcessedAudioTrack


class CallReporter:
    """Prints a call's events as JSON lines and remembers what the summary needs."""

    def __init__(
        self,
        session: CallSession,
        args: argparse.Namespace,
        speaker: SpeakerOutput | None = None,
    ) -> None:
        self.session = session
        self.args = args
        self.speaker = speaker
        self.started = time.monotonic()
        self.connected = asyncio.Event()
        #: The screen track shared with --share-screen, once sharing started.
        self.shared: Any = None
        #: The media's path as last seen (direct or relayed, and how).
        self.path: MediaPath | None = None
        session.on("state", self.state)
        session.on("sas", lambda words: emit("sas", words=words))
        session.on("chat", self.chat)
        session.on("delivered", lambda msg_id: emit("chat_delivered", id=msg_id))
        session.on("peer_media", self.peer_media)
        session.on("stats", self.stats)
        session.on("restarted", lambda token: emit("restarted", restart=token))
        session.on(
            "request_failed",
            lambda kind, code, message: emit(
                "request_failed", request=kind, code=code, message=message
            ),
        )

    def state(self, state: CallState, reason: str | None) -> None:
        """Print a state change; note when the call connects."""
        fields: dict[str, Any] = {"state": state.value, "call_id": self.session.call_id}
        if reason is not None:
            fields["reason"] = reason
        if state is CallState.ENDED and self.session.failure_detail is not None:
            fields["detail"] = self.session.failure_detail
        emit("state", **fields)
        if state is CallState.CONNECTED:
            self.connected.set()

    @staticmethod
    def chat(message: ChatMessage) -> None:
        """Print a received chat message."""
        emit("chat", id=message.id, text=message.text, sent_at=message.sent_at)

    @staticmethod
    def peer_media(state: PeerMediaState) -> None:
        """Print what the peer sends."""
        emit("peer_media", audio=state.audio, video=state.video, screen=state.screen)

    def stats(self, sample: QualitySample) -> None:
        """Print the second's figures (``reconnecting`` while a lost path is being recovered)."""
        reconnecting = self.session.state is CallState.RECONNECTING
        if sample.path is not None:
            self.path = sample.path
        camera = self.session.receivers.get("camera")
        frames = freeze = None
        if isinstance(camera, VideoReceiver):  # counted from this link's first frame
            frames, freeze = camera.frames, round(camera.freeze_s * 1000)
        emit(
            "stats",
            **sample.to_json(),
            grade=sample.grade,
            reconnecting=reconnecting,
            camera_frames=frames,
            camera_freeze_ms=freeze,
        )

    def summary(self) -> dict[str, Any]:
        """What arrived during the call."""
        video = self.session.receivers.get("camera")
        audio = self.session.receivers.get("audio")
        out = nothing_received()
        if isinstance(video, VideoReceiver):
            out.update(
                frames_received=video.frames,
                width=video.width,
                height=video.height,
                frames_numbered=video.numbered,
                frame_numbers_decreased=video.decreases,
            )
        if isinstance(audio, AudioReceiver):
            peak = audio.peak_hz(1.0)
            level = audio.rms(1.0)
            out.update(
                audio_ms_received=round(audio.received_ms),
                audio_peak_hz=round(peak, 1) if peak is not None else None,
                # The last second's level, dBFS (-120 for silence).
                audio_level_db=round(20 * math.log10(max(level, 1e-6)), 1),
            )
        sent = self.session.media.audio
        if isinstance(sent, ProcessedAudioTrack):
            out["audio_processing"] = sent.processor.describe()
            out["echo_reference_ms"] = 10 * sent.processor.render_chunks
            tones = sent.processor.tones
            out["echo_tones_hz"] = [round(f, 1) for f in tones.active] if tones else []
        if self.speaker is not None:
            out.update(self.speaker.summary())
        screen = self.session.receivers.get("screen")
        out["screen_frames_received"] = screen.frames if isinstance(screen, VideoReceiver) else 0
        # Lost packets asked for again, given up, key frames asked (gui/core/receive_repair.py).
        out["video_repair"] = repair_counts(self.session.pc.getTransceivers())
        if self.shared is not None:
            out["screen_frames_sent"] = self.shared.frames_delivered
        session = self.session
        if session.connected_at is not None and session.answered_at is not None:
            out["setup_ms"] = round((session.connected_at - session.answered_at) * 1000)
            first = video.first_frame_at if isinstance(video, VideoReceiver) else None
            if first is not None and first >= session.answered_at:
                # From the answer to the first remote video frame decoded.
                out["first_frame_ms"] = round((first - session.answered_at) * 1000)
        out["reason"] = self.session.machine.reason
        out["path"] = self.path.to_json() if self.path is not None else None
        # Paths lost and recovered inside the call (restarts that connected).
        out["recoveries"] = self.session.machine.recoveries
        # Working paths moved onto fresh TURN allocations before their credentials expired.
        out["renewals"] = self.session.machine.renewals
        if session.failure_detail is not None:
            # Why it failed: a sentence for people, and the engine's technical reason.
            out.update(detail=session.failure_detail, problem=session.machine.problem)
        return out


async def _send_chat_when_open(session: CallSession, text: str) -> None:
    async with asyncio.timeout(15):
        while not session.channel.is_open:
            if session.machine.ended:
                return
            if session.channel.channel is None and session.state is CallState.CONNECTED:
                await asyncio.sleep(1.0)  # the peer may still announce its channel
                if session.channel.channel is None:
                    break
            await asyncio.sleep(0.05)
    try:
        message = session.send_chat(text)
    except ChatUnavailable as exc:
        emit("chat_unavailable", reason=str(exc))
        return
    emit("chat_sent", id=message.id, text=message.text)


async def _share_screen(session: CallSession, index: int, reporter: CallReporter) -> None:
    """Share screen ``index`` on the call's screen slot; print ``screen_share`` (or why not)."""
    from gui.devices.screen import ScreenTrack, list_screens

    # The callee hears of the data channel a moment after connecting: wait for it (up to
    # 3 s), so that the peer is told of the share; messages queue until the channel opens.
    for _ in range(60):
        if session.channel.channel is not None or session.machine.ended:
            break
        await asyncio.sleep(0.05)
    screens = list_screens()
    if session.machine.ended or index >= len(screens):
        return
    source = screens[index]
    track = ScreenTrack(source)
    try:
        session.start_screen(track)
    except ScreenShareUnavailable as exc:
        track.stop()
        emit("screen_unavailable", reason=str(exc))
        return
    reporter.shared = track

    def lost(reason: str) -> None:
        emit("screen_lost", reason=reason)
        session.stop_screen()

    track.on("lost", lost)
    width, height = source.size
    emit("screen_share", screen=index, name=source.name, width=width, height=height)


async def run_call(
    session: CallSession,
    args: argparse.Namespace,
    answer: Callable[[], Coroutine[Any, Any, None]] | None = None,
    speaker: SpeakerOutput | None = None,
) -> int:
    """Follow a call to its end (answering it with ``answer`` first); returns the exit status.

    The reporter and the signal handlers are in place before anything else, so every
    state is printed and Ctrl+C declines a ringing call as it hangs up a connected one.
    ``speaker`` (``--speaker``) plays what the call receives.
    """
    reporter = CallReporter(session, args, speaker)
    if speaker is not None:
        speaker.attach(session)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, session.hang_up)
    helpers: list[asyncio.Task[None]] = []
    if answer is not None:
        helpers.append(loop.create_task(answer()))

    async def after_connect() -> None:
        await reporter.connected.wait()
        if getattr(args, "share_screen", None) is not None:
            helpers.append(loop.create_task(_share_screen(session, args.share_screen, reporter)))
        if args.chat:
            helpers.append(loop.create_task(_send_chat_when_open(session, args.chat)))
        if args.duration is not None:
            await asyncio.sleep(args.duration)
            session.hang_up()

    helpers.append(loop.create_task(after_connect()))
    if getattr(args, "add", None):
        helpers.append(loop.create_task(_add_people(session, args, reporter)))
    try:
        await session.wait_ended()
    finally:
        for task in helpers:
            task.cancel()
        for task in helpers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    summary = reporter.summary()
    if session.machine.moved_to is not None:
        # The call goes on as a meeting: its figures so far, then the meeting's.
        emit("call_summary", **summary)
        left = None
        if args.duration is not None and session.connected_at is not None:
            left = max(0.0, args.duration - (time.monotonic() - session.connected_at))
        return await follow_meeting(continue_in_meeting(session), args, left, moved=True)
    emit("summary", **summary)
    return 0 if summary["reason"] in NORMAL_ENDINGS else 1


async def _add_people(
    session: CallSession, args: argparse.Namespace, reporter: CallReporter
) -> None:
    """``--add``: once connected (and ``--add-after`` later), move the call into a meeting."""
    await reporter.connected.wait()
    await asyncio.sleep(args.add_after)
    if not session.machine.ended:
        meeting_id = session.move_to_meeting(args.add)
        emit("moving", call_id=session.call_id, meeting_id=meeting_id, invite=args.add)
