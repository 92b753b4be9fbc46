"""Recording from a PulseAudio source on a thread of its own, with a server buffer we choose.

Qt 6.12's PulseAudio input sets the stream's server-side buffer (``maxlength``) to one period
(1024 frames, 21 ms, by default): when the thread that empties it is not scheduled for longer
than that (a loaded machine), the server drops audio. Measured on a 2-core machine at load
11-14 (bench/microphone_loss.py): up to 4% of the audio lost, in gaps, with 1024 or 512-frame
periods alike, 33% with 256. This reader asks for small fragments (``fragment_frames``, 10 ms
by default: the audio processing's chunk, any size, not only powers of two) and a large
``maxlength`` (``buffer_ms``), so a late reader gets the audio late instead of never.

It uses ``libpulse-simple`` (part of every PulseAudio or PipeWire-Pulse desktop) through
ctypes: :meth:`PulseCapture.open` returns None when the library or the server is missing, and
the caller falls back to Qt. ``pa_simple_read`` blocks in C without the GIL; ``on_data`` runs
on the reader thread (it must be quick and thread-safe), ``on_error`` once if reading fails.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

_PA_STREAM_RECORD = 2
_PA_SAMPLE_S16LE = 3


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [
        ("maxlength", ctypes.c_uint32),
        ("tlength", ctypes.c_uint32),
        ("prebuf", ctypes.c_uint32),
        ("minreq", ctypes.c_uint32),
        ("fragsize", ctypes.c_uint32),
    ]


_library: ctypes.CDLL | None = None
_library_tried = False


def _pulse_simple() -> ctypes.CDLL | None:
    """``libpulse-simple`` with its prototypes set, or None when it is not installed."""
    global _library, _library_tried
    if _library_tried:
        return _library
    _library_tried = True
    name = ctypes.util.find_library("pulse-simple") or "libpulse-simple.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.pa_simple_new.restype = ctypes.c_void_p
    lib.pa_simple_new.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.POINTER(_SampleSpec),
        ctypes.c_void_p,
        ctypes.POINTER(_BufferAttr),
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.pa_simple_read.restype = ctypes.c_int
    lib.pa_simple_read.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.pa_simple_free.restype = None
    lib.pa_simple_free.argtypes = [ctypes.c_void_p]
    _library = lib
    return lib


class PulseCapture:
    """A running recording of ``source`` (a PulseAudio source name; None: the default) as s16
    interleaved ``channels`` at ``rate``, handed to ``on_data`` in ``fragment_frames`` blocks."""

    def __init__(
        self,
        lib: ctypes.CDLL,
        handle: int,
        fragment_bytes: int,
        fragment_frames: int,
        on_data: Callable[[bytes], None],
        on_error: Callable[[str], None],
    ) -> None:
        self._lib = lib
        self._handle = handle
        self._fragment_bytes = fragment_bytes
        #: Frames per block handed to ``on_data``, and frames read so far.
        self.fragment_frames = fragment_frames
        self.frames_read = 0
        self._on_data = on_data
        self._on_error = on_error
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="microphone-reader", daemon=True)
        self._thread.start()

    @classmethod
    def open(
        cls,
        source: str | None,
        on_data: Callable[[bytes], None],
        on_error: Callable[[str], None],
        *,
        rate: int = 48000,
        channels: int = 2,
        fragment_frames: int = 480,
        buffer_ms: float = 500.0,
        name: str = "Parley",
    ) -> PulseCapture | None:
        """Start recording; None (logged) when libpulse-simple or the server is not there."""
        lib = _pulse_simple()
        if lib is None:
            return None
        frame_bytes = 2 * channels
        spec = _SampleSpec(_PA_SAMPLE_S16LE, rate, channels)
        fragment = fragment_frames * frame_bytes
        maxlength = max(fragment, round(rate * buffer_ms / 1000) * frame_bytes)
        unset = 0xFFFFFFFF
        attr = _BufferAttr(maxlength, unset, unset, unset, fragment)
        error = ctypes.c_int(0)
        handle = lib.pa_simple_new(
            None,
            name.encode(),
            _PA_STREAM_RECORD,
            source.encode() if source else None,
            b"microphone",
            ctypes.byref(spec),
            None,
            ctypes.byref(attr),
            ctypes.byref(error),
        )
        if not handle:
            logger.info("PulseAudio recording unavailable (error %d); using Qt", error.value)
            return None
        return cls(lib, handle, fragment, fragment_frames, on_data, on_error)

    def _run(self) -> None:
        buffer = ctypes.create_string_buffer(self._fragment_bytes)
        error = ctypes.c_int(0)
        try:
            while not self._stopping.is_set():
                if self._lib.pa_simple_read(
                    self._handle, buffer, self._fragment_bytes, ctypes.byref(error)
                ):
                    if not self._stopping.is_set():
                        self._on_error(f"microphone stopped: PulseAudio error {error.value}")
                    return
                if self._stopping.is_set():
                    return
                self.frames_read += self.fragment_frames
                self._on_data(buffer.raw)
        finally:
            self._lib.pa_simple_free(self._handle)

    def stop(self) -> None:
        """Stop reading (idempotent); returns once the stream is closed (one fragment at most)."""
        self._stopping.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
