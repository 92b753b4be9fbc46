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
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import queue
import threading
from typing import Any

import av
import numpy as np

log = logging.getLogger("parley.media")

#: RFC 6465 Appendix A's bounds, as aiortc has them.
MAX_SAMPLE_VALUE = 32767
MIN_AUDIO_LEVEL = -127
MAX_AUDIO_LEVEL = 0

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
    input_q: queue.Queue[Any],
    output_q: asyncio.Queue[Any],
    decode_error: threading.Event,
) -> None:
    """aiortc 1.16's ``rtcrtpreceiver.decoder_worker``, handing frames back with
    ``call_soon_threadsafe`` instead of a coroutine and a task per frame."""
    from aiortc import rtcrtpreceiver

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
            rtcrtpreceiver.logger.warning(
                "RTCRtpReceiver(%s) failed to decode %s frame: %s",
                codec.mimeType.split("/")[0],
                codec.name,
                exc,
            )
            decode_error.set()
            continue
        for frame in frames:
            loop.call_soon_threadsafe(output_q.put_nowait, frame)


def install() -> None:
    """Use :func:`audio_level_dbov` and :func:`decoder_worker` in aiortc from now on
    (idempotent; each only where aiortc's own has the expected shape)."""
    global _installed
    if _installed:
        return
    _installed = True
    from aiortc import rtcrtpreceiver, rtp

    original_level = getattr(rtp, "compute_audio_level_dbov", None)
    if original_level is not None and list(inspect.signature(original_level).parameters) == [
        "frame"
    ]:
        rtp.compute_audio_level_dbov = audio_level_dbov
    else:
        log.info("aiortc's audio level function is not the expected one: left as it is")
    original_worker = getattr(rtcrtpreceiver, "decoder_worker", None)
    expected = ["loop", "input_q", "output_q", "decode_error"]
    if (
        original_worker is not None
        and list(inspect.signature(original_worker).parameters) == expected
        and hasattr(rtcrtpreceiver, "logger")
    ):
        rtcrtpreceiver.decoder_worker = decoder_worker
    else:
        log.info("aiortc's decoder worker is not the expected one: left as it is")


__all__ = ["audio_level_dbov", "decoder_worker", "install"]
