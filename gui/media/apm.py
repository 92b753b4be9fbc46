"""LiveKit's binding of WebRTC's audio processing module, called at the cost of its native work.

``livekit.rtc.AudioProcessingModule`` talks to its native library through protobuf messages:
each 10 ms call builds a request, serialises it, crosses ctypes twice (the request, then the
drop of the response's handle) and parses the response, about 60 µs of Python per call beside
the 100 µs or so of processing, 200 calls a second in a call. The request of a call on a frame
whose buffer stays put never changes (the APM's handle, the buffer's address and size, the
rate), so :class:`Apm` serialises it once and sends the same bytes each time; a response that is
not the one a success gives is parsed and its error raised, as the binding does.

Where the binding's internals are not what this module expects (another livekit version), it
falls back to the public calls: same results, the old cost. ``Apm.fast`` tells which.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

log = logging.getLogger(__name__)


class Apm:
    """One APM with the given parts on, processing ``capture`` (the microphone) and
    ``render`` (the far end) in place: two ``rtc.AudioFrame``s of 10 ms whose buffers stay
    put for the life of this object."""

    def __init__(
        self,
        rtc: Any,
        capture: Any,
        render: Any,
        *,
        echo_cancellation: bool,
        noise_suppression: bool,
        high_pass_filter: bool,
        auto_gain_control: bool,
    ) -> None:
        for frame in (capture, render):
            if frame.samples_per_channel * 100 != frame.sample_rate:
                # WebRTC's module aborts the process on anything else.
                raise ValueError(
                    f"the APM takes 10 ms frames: {frame.samples_per_channel} samples "
                    f"at {frame.sample_rate} Hz is not"
                )
        self.module = rtc.AudioProcessingModule(
            echo_cancellation=echo_cancellation,
            noise_suppression=noise_suppression,
            high_pass_filter=high_pass_filter,
            auto_gain_control=auto_gain_control,
        )
        keep_native_threads_out_of_python()
        self._capture, self._render = capture, render
        self._call: _RawCall | None = None
        try:
            self._call = _RawCall(self.module)
            self._process = self._call.prepare("apm_process_stream", capture)
            self._reverse = self._call.prepare("apm_process_reverse_stream", render)
        except (AttributeError, ImportError, TypeError, ValueError) as exc:
            log.info("the APM goes through the binding's public calls: %s", exc)
            self._call = None

    @property
    def fast(self) -> bool:
        """Whether the calls skip the binding's per-call protobuf work."""
        return self._call is not None

    def process_stream(self) -> None:
        """Process the capture frame in place."""
        if self._call is None:
            self.module.process_stream(self._capture)
        else:
            self._call.send(self._process)

    def process_reverse_stream(self) -> None:
        """Hand the render frame (the far end) to the echo canceller."""
        if self._call is None:
            self.module.process_reverse_stream(self._render)
        else:
            self._call.send(self._reverse)

    def set_stream_delay_ms(self, delay_ms: int) -> None:
        """Tell the echo canceller the delay it should expect (rare: the binding's call)."""
        self.module.set_stream_delay_ms(delay_ms)


_native_only = False


def keep_native_threads_out_of_python() -> None:
    """Give LiveKit's native library a callback that never enters Python (once a process).

    Its runtime calls the callback the binding gave it from the library's own threads, with
    its log lines and panics. One such call while Python finalizes ends that thread inside the
    library, which aborts the whole process ("panic in a function that cannot unwind"; once at
    the end of a whole test run, after its last test). Parley uses only the APM, whose calls
    answer synchronously, so nothing is lost but LiveKit's log lines, which its own logger then
    prints to stderr (``RUST_LOG``). The callback is C's ``strnlen``: it only reads the event's
    bytes, which are valid for the call.
    """
    global _native_only
    if _native_only:
        return
    try:
        from livekit.rtc._ffi_client import FfiClient
        from livekit.rtc.version import __version__

        lib = FfiClient.instance._ffi_lib
        reads_only = ctypes.cast(ctypes.CDLL(None).strnlen, ctypes.c_void_p)
        initialize = lib["livekit_ffi_initialize"]  # its own object: the binding's is untouched
        initialize.argtypes = [ctypes.c_void_p, ctypes.c_bool, ctypes.c_char_p, ctypes.c_char_p]
        initialize(reads_only, False, b"python", __version__.encode("ascii"))
    except (AttributeError, ImportError, OSError, TypeError) as exc:
        log.info("LiveKit's library keeps calling into Python: %s", exc)
        return
    _native_only = True


class _Request:
    """One serialised request and the bytes of the response that says it went well (learnt
    from the first success)."""

    def __init__(self, field: str, data: bytes) -> None:
        self.field = field
        self.buffer = (ctypes.c_ubyte * len(data)).from_buffer_copy(data)
        self.size = len(data)
        self.ok = b""


class _RawCall:
    """The native entry points of LiveKit's FFI, and the calls made through them."""

    def __init__(self, module: Any) -> None:
        from livekit.rtc._ffi_client import FfiClient
        from livekit.rtc._proto import ffi_pb2

        self._pb = ffi_pb2
        self._module = module
        self._client = FfiClient.instance
        lib = self._client._ffi_lib
        self._request = lib.livekit_ffi_request
        self._drop = lib.livekit_ffi_drop_handle
        self._response = ctypes.POINTER(ctypes.c_ubyte)()
        self._length = ctypes.c_size_t()
        self._response_ref = ctypes.byref(self._response)
        self._length_ref = ctypes.byref(self._length)

    def prepare(self, field: str, frame: Any) -> _Request:
        """The request of ``field`` (``apm_process_stream`` or ``apm_process_reverse_stream``)
        on ``frame``, serialised once."""
        from livekit.rtc._utils import get_address

        data = frame._data
        if not isinstance(data, bytearray):
            raise TypeError("the frame's buffer must be a bytearray (it is written in place)")
        request = self._pb.FfiRequest()
        body = getattr(request, field)
        body.apm_handle = self._module._ffi_handle.handle
        body.data_ptr = get_address(data)
        body.size = len(data)
        body.sample_rate = frame.sample_rate
        body.num_channels = frame.num_channels
        return _Request(field, request.SerializeToString())

    def send(self, request: _Request) -> None:
        """Make the call; raise RuntimeError with the module's error if it failed."""
        answer = self._raw(request)
        if answer != request.ok:
            self._check(request, answer)
            request.ok = answer  # a success: the next ones answer the same

    def _raw(self, request: _Request) -> bytes:
        handle = self._request(request.buffer, request.size, self._response_ref, self._length_ref)
        if not handle:
            raise RuntimeError("LiveKit's FFI refused the request")
        try:
            return ctypes.string_at(self._response, self._length.value)
        finally:
            self._drop(ctypes.c_uint64(handle))

    def _check(self, request: _Request, answer: bytes) -> None:
        response = self._pb.FfiResponse()
        response.ParseFromString(answer)
        error = getattr(response, request.field).error
        if error:
            raise RuntimeError(error)
