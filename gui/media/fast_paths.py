"""Two of aiortc's per-frame paths done with less work, with the same results.

Profiling a ``parley-cli`` in a meeting through Janus (``py-spy --gil`` and ``perf`` on one
participant of 4 and of 8; docs/performance.md, meetings) found two costs that grow with
every frame sent or received and buy nothing:

* **The audio level of each sent audio frame** (RFC 6464's header extension): aiortc's
  ``rtp.compute_audio_level_dbov`` sums the squares of the samples in a Python loop, 1,920
  iterations per 20 ms stereo frame, on the event loop: about an eighth of a participant's
  CPU in a meeting of four. :func:`audio_level_dbov` gives the same integer with numpy.
* **Handing each decoded frame back to the event loop**: aiortc's decoder threads call
  ``asyncio.run_coroutine_threadsafe(queue.put(frame))`` for every frame, which makes a
  coroutine, a task and a concurrent future each time (50 times a second per remote audio
  track, 15 per video one). :func:`decoder_worker` puts the frame into the same unbounded
  queue with ``call_soon_threadsafe(queue.put_nowait, ...)``: the same frames, in the same
  order, followed by the same ``None`` at the end.

:func:`install` replaces both in aiortc's modules (aiortc has no hook for either), once,
for every peer connection the process makes afterwards; :class:`~gui.core.peer_link.
PeerLink` calls it. Each replacement is installed only when what it replaces has the shape
this module was written against (aiortc 1.16); otherwise aiortc's own stays.

A second profile (one participant of eight through Janus, ``py-spy --gil``) found the thread
hand-offs of audio, 20 ms packets, to be the next cost that buys nothing:

* **Each received audio frame went to a decoder thread and back**: ``queue.put``, a thread
  wake-up, an Opus decode of about 65 µs, and a wake-up of the loop, 50 times a second per
  voice heard (seven voices at eight: 350 round trips a second). :class:`InlineAudioDecoding`
  takes the decoder queue's place in every audio receiver and decodes on the loop, into the
  same track queue, in the same order; the receiver's thread finds it and ends at once.
* **Each sent audio frame went to the executor and back**: aiortc encodes every frame with
  ``run_in_executor`` (a future, a thread wake-up, a loop wake-up), which is right for a
  video frame (milliseconds of VP8) but not for 20 ms of Opus (about 0.2 ms).
  :func:`next_encoded_frame` encodes audio on the loop; video still goes to the executor.

``PARLEY_FAST_PATHS_OFF`` (a comma-separated list of :data:`NAMES`, or ``all``) leaves the
named ones out, for measuring them side by side (``bench/meetings.py --ab``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import os
import queue
import threading
from typing import Any

import av
import numpy as np
from av import AudioFrame
from av.frame import Frame

log = logging.getLogger("parley.media")

#: RFC 6465 Appendix A's bounds, as aiortc has them.
MAX_SAMPLE_VALUE = 32767
MIN_AUDIO_LEVEL = -127
MAX_AUDIO_LEVEL = 0

#: The replacements, by the name ``PARLEY_FAST_PATHS_OFF`` knows them by.
NAMES = ("audio_level", "frame_handover", "audio_decode", "audio_encode")

#: What :func:`install` replaced, aiortc's own, by name (for tests comparing the two).
AIORTC: dict[str, Any] = {}

_installed = False


def audio_level_dbov(frame: av.AudioFrame) -> int:
    """The frame's level in dBov (-127..0), exactly as ``aiortc.rtp.compute_audio_level_dbov``
    computes it: every signed 16-bit value of the first plane, squared and summed, divided
    by the number of samples (per channel) times full scale squared."""
    samples = np.frombuffer(frame.planes[0], dtype="<i2").astype(np.int64)  # one copy, widened
    # Integer sum: exact, where aiortc's float additions are exact too (each square and
    # every partial sum stays far below 2**53).
    total = float(np.dot(samples, samples))
    rms = math.sqrt(total / (frame.samples * MAX_SAMPLE_VALUE * MAX_SAMPLE_VALUE))
    if rms <= 0:
        return MIN_AUDIO_LEVEL
    db = min(max(20 * math.log10(rms), MIN_AUDIO_LEVEL), MAX_AUDIO_LEVEL)
    return round(db)


def decoder_worker(
    loop: asyncio.AbstractEventLoop,
    input_q: queue.Queue[Any] | InlineAudioDecoding,
    output_q: asyncio.Queue[Any],
    decode_error: threading.Event,
) -> None:
    """aiortc 1.16's ``rtcrtpreceiver.decoder_worker``, handing frames back with
    ``call_soon_threadsafe`` instead of a coroutine and a task per frame. An audio
    receiver that decodes inline (:class:`InlineAudioDecoding`) needs no thread: it returns."""
    from aiortc import rtcrtpreceiver

    if isinstance(input_q, InlineAudioDecoding):
        return
    codec_name = None
    decoder: Any = None
    while True:
        task = input_q.get()
        if task is None:
            # tell the track it has ended
            loop.call_soon_threadsafe(output_q.put_nowait, None)
            break
        codec, encoded_frame = task
        if codec.name != codec_name:
            decoder = rtcrtpreceiver.get_decoder(codec)  # the module's: guarded, if installed
            codec_name = codec.name
        try:
            frames = decoder.decode(encoded_frame)
        except av.FFmpegError as exc:
            # Keep the decoder's state: a reset would fail every frame until a key frame.
            _warn_decode_failed(codec, exc)
            decode_error.set()
            continue
        for frame in frames:
            loop.call_soon_threadsafe(output_q.put_nowait, frame)


def _warn_decode_failed(codec: Any, exc: av.FFmpegError) -> None:
    """aiortc's own warning for a frame its decoder refused, on aiortc's logger."""
    from aiortc import rtcrtpreceiver

    rtcrtpreceiver.logger.warning(
        "RTCRtpReceiver(%s) failed to decode %s frame: %s",
        codec.mimeType.split("/")[0],
        codec.name,
        exc,
    )


class InlineAudioDecoding:
    """An audio receiver's decoder queue that decodes on the loop instead of a thread.

    aiortc's receiver calls :meth:`put` with ``(codec, encoded frame)`` from its packet
    handler, on the loop, and with ``None`` when it stops: the decoded frames, or the
    ``None`` that ends the track, go straight into the track's queue, as
    :func:`decoder_worker` would hand them over from its thread. A decode error is logged
    and flagged to the receiver as aiortc's worker does.
    """

    def __init__(self, receiver: Any) -> None:
        from aiortc import rtcrtpreceiver

        self._receiver = receiver
        #: aiortc's receiver module, imported once here rather than on every frame (its
        #: ``get_decoder`` is still read when the codec changes: it may be the guarded one).
        self._aiortc = rtcrtpreceiver
        self._codec_name: str | None = None
        self._decoder: Any = None

    def put(self, task: Any) -> None:
        """Decode one encoded frame (or end the track on ``None``), now."""
        output_q = self._receiver._track._queue
        if task is None:
            output_q.put_nowait(None)
            self._decoder = None
            return
        codec, encoded_frame = task
        if codec.name != self._codec_name:
            self._decoder = self._aiortc.get_decoder(codec)
            self._codec_name = codec.name
        try:
            frames = self._decoder.decode(encoded_frame)
        except av.FFmpegError as exc:
            _warn_decode_failed(codec, exc)
            self._receiver._RTCRtpReceiver__decoder_error.set()
            return
        except Exception:
            # On the loop, anything else would end the whole connection's receiving (in
            # aiortc's thread it ended that track's decoding): drop the frame instead.
            log.exception("decoding a %s frame failed", codec.name)
            self._receiver._RTCRtpReceiver__decoder_error.set()
            return
        for frame in frames:
            output_q.put_nowait(frame)


async def next_encoded_frame(self: Any, codec: Any) -> Any:
    """aiortc 1.16's ``RTCRtpSender._next_encoded_frame``, encoding an audio frame on the
    loop (about 0.2 ms of Opus) instead of through the executor; video as before."""
    from aiortc import rtcrtpsender, rtp

    data = await self._RTCRtpSender__track.recv()
    # A disabled sender reads its track (no frames pile up) and drops the frame.
    if not self._enabled:
        return None
    audio_level = None
    if self._RTCRtpSender__encoder is None:
        self._RTCRtpSender__encoder = rtcrtpsender.get_encoder(codec)
    encoder = self._RTCRtpSender__encoder
    if isinstance(data, Frame):
        force_keyframe = self._RTCRtpSender__force_keyframe
        self._RTCRtpSender__force_keyframe = False
        if isinstance(data, AudioFrame):
            audio_level = rtp.compute_audio_level_dbov(data)
            payloads, timestamp = encoder.encode(data, force_keyframe)
        else:
            payloads, timestamp = await self._RTCRtpSender__loop.run_in_executor(
                None, encoder.encode, data, force_keyframe
            )
    else:
        payloads, timestamp = encoder.pack(data)
    # No payloads: the encoder is still filling a frame (resampling).
    if not payloads:
        return None
    # aiortc annotates audio_level as int and passes None for video itself.
    return rtcrtpsender.RTCEncodedFrame(payloads, timestamp, audio_level)  # type: ignore[arg-type]


def _left_out() -> set[str]:
    """The replacements ``PARLEY_FAST_PATHS_OFF`` names (``all``: every one)."""
    named = {n.strip() for n in os.environ.get("PARLEY_FAST_PATHS_OFF", "").split(",") if n}
    return set(NAMES) if "all" in named else named


def install() -> None:
    """Use this module's replacements in aiortc from now on (idempotent; each only where
    aiortc's own has the expected shape, and not when ``PARLEY_FAST_PATHS_OFF`` names it)."""
    global _installed
    if _installed:
        return
    _installed = True
    from aiortc import rtcrtpreceiver, rtcrtpsender, rtp

    off = _left_out()
    AIORTC["decoder_worker"] = getattr(rtcrtpreceiver, "decoder_worker", None)
    AIORTC["next_encoded_frame"] = getattr(rtcrtpsender.RTCRtpSender, "_next_encoded_frame", None)
    original_level = getattr(rtp, "compute_audio_level_dbov", None)
    if "audio_level" in off:
        pass
    elif original_level is not None and list(inspect.signature(original_level).parameters) == [
        "frame"
    ]:
        rtp.compute_audio_level_dbov = audio_level_dbov
    else:
        log.info("aiortc's audio level function is not the expected one: left as it is")
    original_worker = getattr(rtcrtpreceiver, "decoder_worker", None)
    expected = ["loop", "input_q", "output_q", "decode_error"]
    worker_shape = (
        original_worker is not None
        and list(inspect.signature(original_worker).parameters) == expected
        and hasattr(rtcrtpreceiver, "logger")
    )
    if "frame_handover" in off and "audio_decode" in off:
        pass
    elif worker_shape:
        rtcrtpreceiver.decoder_worker = decoder_worker
        if "frame_handover" in off:
            rtcrtpreceiver.decoder_worker = _handover_as_aiortc(original_worker)
        if "audio_decode" not in off:
            _decode_audio_inline(rtcrtpreceiver.RTCRtpReceiver)
    else:
        log.info("aiortc's decoder worker is not the expected one: left as it is")
    if "audio_encode" not in off:
        _encode_audio_inline(rtcrtpsender)


def _handover_as_aiortc(original_worker: Any) -> Any:
    """aiortc's own worker, except for an inline audio receiver's queue (nothing to do)."""

    def worker(
        loop: asyncio.AbstractEventLoop,
        input_q: Any,
        output_q: asyncio.Queue[Any],
        decode_error: threading.Event,
    ) -> None:
        if not isinstance(input_q, InlineAudioDecoding):
            original_worker(loop, input_q, output_q, decode_error)

    return worker


def _decode_audio_inline(receiver_class: Any) -> None:
    """Every audio receiver made from now on gets an :class:`InlineAudioDecoding` queue."""
    original_init = receiver_class.__init__
    if list(inspect.signature(original_init).parameters) != ["self", "kind", "transport"]:
        log.info("aiortc's RTCRtpReceiver is not the expected one: audio decoded in a thread")
        return

    def __init__(self: Any, kind: str, transport: Any) -> None:
        original_init(self, kind, transport)
        if kind == "audio" and type(getattr(self, _DECODER_QUEUE, None)) is queue.Queue:
            setattr(self, _DECODER_QUEUE, InlineAudioDecoding(self))

    receiver_class.__init__ = __init__


def _encode_audio_inline(rtcrtpsender: Any) -> None:
    """Install :func:`next_encoded_frame` where aiortc's has the expected shape."""
    import aiortc

    original = getattr(rtcrtpsender.RTCRtpSender, "_next_encoded_frame", None)
    if (
        original is not None
        and aiortc.__version__.startswith("1.16.")
        and list(inspect.signature(original).parameters) == ["self", "codec"]
        and hasattr(rtcrtpsender, "RTCEncodedFrame")
        and hasattr(rtcrtpsender, "get_encoder")
    ):
        rtcrtpsender.RTCRtpSender._next_encoded_frame = next_encoded_frame
    else:
        log.info("aiortc's sender is not the expected one: audio encoded in the executor")


#: Where aiortc's receiver keeps its decoder queue (a name-mangled attribute).
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"


__all__ = [
    "NAMES",
    "InlineAudioDecoding",
    "audio_level_dbov",
    "decoder_worker",
    "install",
    "next_encoded_frame",
]
