"""The Echo Test: a built-in contact that answers every call and sends the caller back to itself.

Video (camera and screen) comes straight back; audio comes back 1.5 s late,
so a new user hears their own voice after they stop talking; chat messages
are echoed too. It is a client of the protocol like any other, built on the
client's call engine (``CallSession``), and answers any number of calls at
once. The composition roots plug it into a server (``parley-server``, the app's
built-in server), which hands it a link logged in as ``echo``; it runs on its
own thread (:class:`gui.bots.thread.BotThread`) there. Each call costs a share
of a core (decoding and re-encoding); ``parley-server --no-echo`` leaves it out.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import logging
import time
from collections.abc import Callable
from typing import Any

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from gui.core.call_session import AUDIO, CallOptions, CallSession, LocalMedia, SignalingLink
from gui.core.peer_channel import ChatMessage, ChatUnavailable
from gui.media.analysis import AudioReceiver, TrackConsumer, VideoReceiver
from gui.media.pacing import RealtimePacer
from signaling.protocol.constants import ECHO_USERNAME

log = logging.getLogger("parley.echo")

AUDIO_DELAY_S = 1.5
VIDEO_CLOCK = 90000


class EchoVideoTrack(MediaStreamTrack):
    """Sends back the newest frame received; older ones are dropped, never queued."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self._frame: av.VideoFrame | None = None
        self._fresh = asyncio.Event()
        self._start = time.monotonic()

    def stop(self) -> None:
        """Stop, waking a ``recv`` that waits for a frame."""
        super().stop()
        self._fresh.set()

    def feed(self, frame: av.frame.Frame) -> None:
        """A frame arrived from the caller."""
        assert isinstance(frame, av.VideoFrame)
        self._frame = frame
        self._fresh.set()

    async def recv(self) -> av.VideoFrame:
        """The next frame to send (waits for one to arrive)."""
        if self.readyState != "live":
            raise MediaStreamError
        await self._fresh.wait()
        self._fresh.clear()
        frame = self._frame
        if frame is None or self.readyState != "live":
            raise MediaStreamError
        frame.pts = int((time.monotonic() - self._start) * VIDEO_CLOCK)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        return frame


class DelayedAudioTrack(MediaStreamTrack):
    """Plays back what it is fed ``delay`` seconds later, in paced 20 ms frames.

    Silence fills the gaps, so the sender's clock never stalls.
    """

    kind = "audio"

    def __init__(self, delay: float = AUDIO_DELAY_S, sample_rate: int = 48000) -> None:
        super().__init__()
        self.delay = delay
        self.sample_rate = sample_rate
        self.samples_per_frame = sample_rate // 50
        self._buffer: collections.deque[tuple[float, av.AudioFrame]] = collections.deque(
            maxlen=int((delay + 1.0) * 50)
        )
        self._pacer = RealtimePacer(self.samples_per_frame / sample_rate)
        self._pts = 0

    def feed(self, frame: av.frame.Frame) -> None:
        """A frame arrived from the caller."""
        assert isinstance(frame, av.AudioFrame)
        self._buffer.append((time.monotonic(), frame))

    def _silence(self) -> av.AudioFrame:
        frame = av.AudioFrame(format="s16", layout="stereo", samples=self.samples_per_frame)
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        frame.sample_rate = self.sample_rate
        return frame

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms to send."""
        if self.readyState != "live":
            raise MediaStreamError
        await self._pacer.wait()
        due = time.monotonic() - self.delay
        frame: av.AudioFrame | None = None
        if self._buffer and self._buffer[0][0] <= due:
            frame = self._buffer.popleft()[1]
        if frame is None or frame.sample_rate != self.sample_rate:
            frame = self._silence()
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.sample_rate)
        self._pts += frame.samples
        return frame


class EchoBot:
    """Answers calls to ``echo`` from :meth:`start` to :meth:`close` (a server's ``Bot``)."""

    username = ECHO_USERNAME

    def __init__(self, options: CallOptions | None = None) -> None:
        self.options = options or CallOptions()
        self.sessions: dict[str, CallSession] = {}
        self._link: SignalingLink | None = None
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self, link: SignalingLink) -> None:
        """Answer the calls that come in on ``link`` (logged in as ``echo``)."""
        self._link = link
        self._unsubscribe = link.on_event(self._on_event)

    def _on_event(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind not in ("call.incoming", "call.accepted"):
            return
        call_id = message["call_id"]
        if call_id in self.sessions or self._link is None:
            return  # a replay, or closed
        media = LocalMedia(
            audio=DelayedAudioTrack(), camera=EchoVideoTrack(), screen=EchoVideoTrack()
        )
        if kind == "call.accepted":
            # A call answered by the Echo Test of another instance of the service, which died
            # with its media (signaling/server/bus/redis.py): carried on here by a restart.
            session = CallSession.taken_over(self._link, message, media, self.options)
            log.info("echo taking over call %s from %s", call_id, session.machine.peer)
        else:
            session = CallSession.incoming(self._link, message, media, self.options)
        self.sessions[call_id] = session
        session.on("remote_track", lambda slot, receiver: self._loop_back(media, slot, receiver))
        session.on("chat", lambda chat: self._echo_chat(session, chat))
        # Mirror what the caller says it sends: the caller's window shows the returned
        # screen large only while its peer (here, the echo) says that it shares one.
        session.on("peer_media", lambda state: session.channel.send_state(state))
        session.on("ended", lambda reason: self.sessions.pop(call_id, None))
        if kind == "call.incoming":
            log.info("echo answering call %s from %s", call_id, session.machine.peer)
            session.accept()

    @staticmethod
    def _loop_back(media: LocalMedia, slot: str, receiver: TrackConsumer) -> None:
        target = {AUDIO: media.audio, "camera": media.camera, "screen": media.screen}.get(slot)
        if isinstance(receiver, AudioReceiver | VideoReceiver) and target is not None:
            receiver.listeners.append(target.feed)  # type: ignore[attr-defined]

    @staticmethod
    def _echo_chat(session: CallSession, chat: ChatMessage) -> None:
        with contextlib.suppress(ChatUnavailable, ValueError):
            session.send_chat(chat.text)

    async def close(self) -> None:
        """Hang up every call and stop listening (the server closes the link)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = self._link = None
        sessions = list(self.sessions.values())
        for session in sessions:
            session.hang_up()
        for session in sessions:
            try:
                await asyncio.wait_for(session.wait_ended(), 5)
            except TimeoutError:
                log.warning("echo call %s did not end in time", session.call_id)
