"""Two aiortc peer connections in this process, offer and answer handed over directly.

The smallest real call: no signaling, no Qt. The device tests (:mod:`tests.devices.measure`,
which plays the audio on a speaker) and ``bench/processing.py`` (which compares a processed
microphone with a bare one) use it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from gui.media.analysis import AudioReceiver, VideoReceiver

Receiver = AudioReceiver | VideoReceiver


@dataclass
class Loopback:
    """What arrives on the answering side of :func:`loopback`."""

    receivers: list[Receiver] = field(default_factory=list)

    @property
    def audio(self) -> AudioReceiver | None:
        """The receiver of the audio track, once it came."""
        return next((r for r in self.receivers if isinstance(r, AudioReceiver)), None)

    @property
    def video(self) -> VideoReceiver | None:
        """The receiver of the (first) video track, once it came."""
        return next((r for r in self.receivers if isinstance(r, VideoReceiver)), None)


@contextlib.asynccontextmanager
async def loopback(
    *tracks: MediaStreamTrack,
    into: Loopback | None = None,
    on_receiver: Callable[[Receiver], None] | None = None,
) -> AsyncIterator[Loopback]:
    """``tracks`` go from one peer to the other, which drains each (into ``into``'s receivers,
    a new :class:`Loopback` by default), telling ``on_receiver`` of each. Closes both peers
    and the receivers at the end; the tracks stay the caller's."""
    config = RTCConfiguration(iceServers=[])
    caller, callee = RTCPeerConnection(config), RTCPeerConnection(config)
    call = into if into is not None else Loopback()

    @callee.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        receiver = AudioReceiver(track) if track.kind == "audio" else VideoReceiver(track)
        if on_receiver is not None:
            on_receiver(receiver)
        call.receivers.append(receiver)
        receiver.start()

    for track in tracks:
        caller.addTrack(track)
    try:
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        yield call
    finally:
        await caller.close()
        await callee.close()
        for receiver in call.receivers:
            await receiver.stop()
