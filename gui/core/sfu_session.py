"""A meeting through a media server (topology ``"sfu"``), carried out at this end.

One *publisher* peer connection sends this end's camera, audio and screen slots to the
media server (``sfu.publish``: this end offers, the server answers), and one *subscriber*
per other participant receives theirs (``sfu.subscribe``: the server offers, this end
answers with ``sfu.answer``). Each is a :class:`~gui.core.peer_link.PeerLink`, so the
same checks of what comes in, the same receivers and the same figures as in a mesh;
subscribers go into the session's ``history``, which is what ``parley-cli``'s summary
reads. The signaling server relays everything: the media server is not reachable for
signalling.

aiortc has no simulcast, so the publisher's size follows the room (:func:`height_cap`:
720p for two, 480p up to four, 360p beyond), and at most :func:`video_limit` videos are
received at once (:class:`VideoChooser`: the most recent speakers; audio from everyone),
the others paused at the server with ``sfu.video``: every other participant's up to four
participants, then fewer as the meeting grows (Jitsi Meet's "Last-N" by meeting size; the
reasons and the figures are in docs/architecture.md).

When the meeting moves to another media server (``sfu.reconnect``), or this end joins
again after losing its signaling connection, everything is closed and published and
subscribed anew; the session says ``reconnecting`` meanwhile. Work is done one step at a
time on one task, in order.

Events, through the owner's emitter: ``sfu`` (``"connecting"``, ``"connected"``,
``"reconnecting"``), ``remote_track`` (username, slot, receiver), ``link_stats``
(username, QualitySample), ``videos`` (the sorted usernames whose video is received now,
on each change).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from gui.core.peer_link import CAMERA, CallOptions, PeerLink, RemoteUnusable, SignalingLink
from gui.core.signaling_client import NotConnected, RequestError
from gui.media.analysis import AudioReceiver

log = logging.getLogger("parley.meeting")

Json = dict[str, Any]

#: Videos received at once, at most (a 3x3 grid), whatever the meeting's size.
MAX_VIDEOS = 9
#: Videos received at once by meeting size (this end included), as Jitsi Meet's
#: ``lastNLimits``: from this many participants on, at most that many videos. Every
#: received 640x360 stream costs a decoder and its packets' handling in this process; at
#: eight, all seven would take more than this 2-core class of machine has
#: (docs/architecture.md, "How many videos a meeting through Janus receives").
LAST_N_BY_SIZE: tuple[tuple[int, int], ...] = ((5, 4), (7, 3))
#: A participant whose audio is above this RMS (full scale 1) is speaking.
SPEAKING_RMS = 0.02
#: Between two looks at who is speaking.
SPEAKER_CHECK_S = 0.5
#: A publication that fails is tried again after this long.
RETRY_S = 2.0
#: A subscription that fails (the publisher left, or is moving) is tried again after this long.
SUBSCRIBE_RETRY_S = 1.0


def height_cap(participants: int) -> int:
    """The tallest video this end publishes in a room of ``participants`` (itself included)."""
    if participants <= 2:
        return 720
    if participants <= 4:
        return 480
    return 360


def video_limit(participants: int, most: int | None = None) -> int:
    """How many others' videos this end receives at once in a meeting of ``participants``
    (itself included): :data:`LAST_N_BY_SIZE`, or ``most`` when given (``--max-videos``)."""
    if most is not None:
        return max(0, most)
    limit = MAX_VIDEOS
    for size, videos in LAST_N_BY_SIZE:
        if participants >= size:
            limit = videos
    return limit


class CappedVideoTrack(MediaStreamTrack):
    """A video track scaled down to at most ``cap()`` lines (never up); timing kept."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack, cap: Callable[[], int]) -> None:
        super().__init__()
        self.source = source
        self.cap = cap

    async def recv(self) -> av.VideoFrame:
        """The source's next frame, scaled down if taller than the cap."""
        frame = await self.source.recv()
        if not isinstance(frame, av.VideoFrame):
            raise MediaStreamError("not a video frame")
        cap = self.cap()
        if frame.height <= cap:
            return frame
        width = max(2, round(frame.width * cap / frame.height / 2) * 2)
        scaled = frame.reformat(width=width, height=cap)
        scaled.pts, scaled.time_base = frame.pts, frame.time_base or Fraction(1, 90000)
        return scaled

    def stop(self) -> None:
        """Stop this track and its source."""
        super().stop()
        self.source.stop()


@dataclass
class VideoChooser:
    """Whose video to receive: at most ``limit``, the most recent speakers first.

    Pure: told who is there and who spoke when; :meth:`shown` answers. Those who never
    spoke come after, in order of joining, so a quiet meeting shows its first arrivals. A
    participant not shown who speaks takes the place of the shown one heard longest ago,
    unless that one was heard within ``hold_s``: several people talking at once (or a
    machine too busy to hear everyone in every half second) do not swap videos back and
    forth, each swap costing a paused stream and a key frame awaited.
    """

    limit: int = MAX_VIDEOS
    hold_s: float = 2.0
    _order: list[str] = field(default_factory=list)
    _spoke: dict[str, float] = field(default_factory=dict)
    _shown: list[str] = field(default_factory=list)

    def present(self, usernames: Iterable[str]) -> None:
        """The other participants now, in order of joining."""
        names = list(usernames)
        self._order = names
        self._spoke = {u: t for u, t in self._spoke.items() if u in names}
        self._shown = [u for u in self._shown if u in names]

    def spoke(self, username: str, at: float) -> None:
        """``username`` was heard at ``at``."""
        if username not in self._order:
            return
        self._settle()
        self._spoke[username] = at
        if username in self._shown or self.limit <= 0:
            return
        if len(self._shown) < self.limit:
            self._shown.append(username)
            return
        quietest = min(self._shown, key=self._heard)
        if at - self._spoke.get(quietest, -math.inf) >= self.hold_s:
            self._shown[self._shown.index(quietest)] = username

    def shown(self) -> set[str]:
        """Those whose video is received now."""
        self._settle()
        return set(self._shown)

    def _heard(self, username: str) -> tuple[float, int]:
        """Sorts the one heard longest ago first (never heard: the latest arrival first)."""
        return (self._spoke.get(username, -math.inf), -self._order.index(username))

    def _settle(self) -> None:
        """Keep within the limit (the quietest go) and fill free places: the most recent
        speakers first, then the first arrivals."""
        while len(self._shown) > max(0, self.limit):
            self._shown.remove(min(self._shown, key=self._heard))
        waiting = sorted(
            (u for u in self._order if u not in self._shown),
            key=lambda u: (u not in self._spoke, -self._spoke.get(u, 0.0), self._order.index(u)),
        )
        self._shown += waiting[: max(0, self.limit - len(self._shown))]


@dataclass
class _Subscription:
    peer: PeerLink
    publication: int
    video_on: bool = True


class SfuMedia:
    """The publisher and the subscriptions of one meeting through a media server."""

    def __init__(
        self,
        signaling: SignalingLink,
        meeting_id: str,
        tracks: Callable[[], dict[str, MediaStreamTrack]],
        options: CallOptions,
        history: dict[str, list[PeerLink]],
        emit: Callable[..., Any],
        max_videos: int | None = None,
    ) -> None:
        """``tracks`` gives a fresh proxy per slot for each publisher (stopped with it);
        ``max_videos``: at most that many videos at once (default: ``options.max_videos``,
        else :func:`video_limit`'s choice by the meeting's size)."""
        self.signaling = signaling
        self.meeting_id = meeting_id
        self._tracks = tracks
        self.options = options
        self.history = history
        self._emit = emit
        self.max_videos = max_videos if max_videos is not None else options.max_videos
        self.chooser = VideoChooser(video_limit(1, self.max_videos))
        self._videos: list[str] | None = None
        self.publisher: PeerLink | None = None
        self._published = False
        self._proxies: list[MediaStreamTrack] = []
        #: What the server said each other participant publishes (its publication number).
        self.publishers: dict[str, int] = {}
        self.subscriptions: dict[str, _Subscription] = {}
        self.participants: list[str] = []
        self.state = "connecting"
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._speakers: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self.closed = False

    # Inputs -----------------------------------------------------------------------

    def start(self) -> None:
        """This end is in (or in again): publish, then subscribe to everyone publishing."""
        self._put("restart", None)
        if self._speakers is None:
            self._speakers = asyncio.get_running_loop().create_task(self._watch_speakers())

    def server_event(self, message: Json) -> None:
        """An ``sfu.*`` event of this meeting."""
        kind = message.get("type")
        if kind == "sfu.published":
            username, number = message.get("username"), message.get("publication")
            if isinstance(username, str) and isinstance(number, int):
                self.publishers[username] = number
                self._put("subscribe", username)
        elif kind == "sfu.reconnect":
            log.info("meeting %s: the media server changed; publishing again", self.meeting_id)
            self.publishers.clear()
            self._put("restart", None)

    def set_participants(self, usernames: list[str]) -> None:
        """The other participants now (in order of joining); the departed are dropped."""
        self.participants = list(usernames)
        self.chooser.limit = video_limit(len(usernames) + 1, self.max_videos)
        self.chooser.present(usernames)
        for username in list(self.publishers):
            if username not in usernames:
                del self.publishers[username]
        for username in list(self.subscriptions):
            if username not in usernames:
                self._put("unsubscribe", username)
        self._put("videos", None)

    def _put(self, op: str, arg: Any) -> None:
        if self.closed:
            return
        self._queue.put_nowait((op, arg))
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self._emit("sfu", state)

    # The work, one step at a time -------------------------------------------------

    async def _work(self) -> None:
        while not self.closed:
            op, arg = await self._queue.get()
            try:
                if op == "restart":
                    await self._restart()
                elif op == "subscribe":
                    await self._subscribe(arg)
                elif op == "unsubscribe":
                    await self._unsubscribe(arg)
                elif op == "videos":
                    await self._apply_videos()
            except (RequestError, NotConnected, TimeoutError, RemoteUnusable) as exc:
                log.info("meeting %s: %s %s failed: %s", self.meeting_id, op, arg or "", exc)
                self._failed(op, arg)
            except Exception:
                log.exception("meeting %s: %s failed", self.meeting_id, op)
                self._failed(op, arg)

    def _failed(self, op: str, arg: Any) -> None:
        """A subscription is tried again by itself; anything else publishes anew."""
        if op == "subscribe" and self._published:
            loop = asyncio.get_running_loop()
            loop.call_later(SUBSCRIBE_RETRY_S, self._put, "subscribe", arg)
        elif op != "unsubscribe":
            self._retry_later()

    def _retry_later(self) -> None:
        self._set_state("reconnecting")
        if self._retry is None and not self.closed:

            def again() -> None:
                self._retry = None
                self._put("restart", None)

            self._retry = asyncio.get_running_loop().call_later(RETRY_S, again)

    async def _request(self, kind: str, **fields: Any) -> Json:
        return await self.signaling.request(kind, meeting_id=self.meeting_id, **fields)

    async def _restart(self) -> None:
        """Close everything, publish anew, subscribe to every publisher known."""
        if self.publisher is not None or self.subscriptions:
            self._set_state("reconnecting")
        await self._close_all()
        self._published = False
        peer = PeerLink(self.options, f"meeting {self.meeting_id[:8]} publisher")
        self.publisher = peer
        peer.on("connection", lambda state: self._publisher_state(peer, state))
        peer.offer_sections("sendonly", data_channel=False)
        self._proxies = []
        for slot, track in self._tracks().items():
            sent = CappedVideoTrack(track, self._cap) if slot == CAMERA else track
            self._proxies.append(sent)
            peer.send(slot, sent)
        offer = await peer.make_offer()
        reply = await self._request("sfu.publish", description=offer)
        if peer is not self.publisher:
            return
        await peer.apply_remote(reply.get("description") or {}, "answer")
        self._published = True
        for item in reply.get("publishers") or []:
            if isinstance(item, dict) and isinstance(item.get("username"), str):
                number = item.get("publication")
                if isinstance(number, int):
                    self.publishers[item["username"]] = number
        for username in list(self.publishers):
            self._put("subscribe", username)
        self._check_connected()

    def _publisher_state(self, peer: PeerLink, state: str) -> None:
        if peer is not self.publisher or self.closed:
            return
        if state == "failed":
            log.info("meeting %s: the publisher's connection failed", self.meeting_id)
            self._retry_later()
        self._check_connected()

    def _check_connected(self) -> None:
        peer = self.publisher
        if peer is not None and self._published and peer.pc.connectionState == "connected":
            self._set_state("connected")

    def _cap(self) -> int:
        return height_cap(len(self.participants) + 1)

    async def _subscribe(self, username: str) -> None:
        number = self.publishers.get(username)
        current = self.subscriptions.get(username)
        if number is None or not self._published or username not in self.participants:
            return
        if current is not None and current.publication == number:
            return
        await self._unsubscribe(username)
        reply = await self._request("sfu.subscribe", username=username)
        peer = PeerLink(self.options, f"meeting {self.meeting_id[:8]} {username} via sfu")
        self.subscriptions[username] = _Subscription(peer, int(reply.get("publication") or 0))
        self.history.setdefault(username, []).append(peer)
        peer.on("remote_track", lambda slot, rx: self._emit("remote_track", username, slot, rx))
        peer.on("stats", lambda sample: self._emit("link_stats", username, sample))
        peer.on("connection", lambda state: self._subscriber_state(username, peer, state))
        await peer.apply_remote(reply.get("description") or {}, "offer")
        answer = await peer.make_answer()
        await self._request("sfu.answer", username=username, description=answer)
        await self._apply_videos()

    def _subscriber_state(self, username: str, peer: PeerLink, state: str) -> None:
        """A subscription whose connection failed is made again (the publisher may be fine)."""
        current = self.subscriptions.get(username)
        if state == "failed" and current is not None and current.peer is peer:
            log.info("meeting %s: the subscription to %s failed", self.meeting_id, username)
            current.publication = -1  # not the one published: subscribe again
            self._put("subscribe", username)

    async def _unsubscribe(self, username: str) -> None:
        subscription = self.subscriptions.pop(username, None)
        if subscription is not None:
            await subscription.peer.close()

    async def _apply_videos(self) -> None:
        shown = self.chooser.shown()
        for username, subscription in list(self.subscriptions.items()):
            on = username in shown
            if on != subscription.video_on:
                subscription.video_on = on
                await self._request("sfu.video", username=username, on=on)
        received = sorted(u for u, s in self.subscriptions.items() if s.video_on)
        if received != self._videos:
            self._videos = received
            self._emit("videos", received)

    async def _watch_speakers(self) -> None:
        """Who is heard: new sound since the last look, and loud enough (a receiver keeps
        its last samples when a muted participant sends nothing)."""
        counted: dict[str, tuple[AudioReceiver, int]] = {}
        while not self.closed:
            await asyncio.sleep(SPEAKER_CHECK_S)
            now = time.monotonic()
            before = self.chooser.shown()
            for username, subscription in self.subscriptions.items():
                audio = subscription.peer.receivers.get("audio")
                if not isinstance(audio, AudioReceiver):
                    continue
                last, frames = counted.get(username, (audio, 0))
                fresh = audio.frames > (frames if last is audio else 0)
                counted[username] = (audio, audio.frames)
                if fresh and audio.rms(0.3) > SPEAKING_RMS:
                    self.chooser.spoke(username, now)
            if self.chooser.shown() != before:
                self._put("videos", None)

    # The end ----------------------------------------------------------------------

    async def _close_all(self) -> None:
        for username in list(self.subscriptions):
            await self._unsubscribe(username)
        publisher, self.publisher = self.publisher, None
        for proxy in self._proxies:
            proxy.stop()
        self._proxies = []
        if publisher is not None:
            await publisher.close()

    async def close(self) -> None:
        """Close the publisher and every subscription; nothing more is done."""
        self.closed = True
        if self._retry is not None:
            self._retry.cancel()
        for task in (self._speakers, self._worker):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._close_all()


__all__ = ["CappedVideoTrack", "SfuMedia", "VideoChooser", "height_cap", "video_limit"]
