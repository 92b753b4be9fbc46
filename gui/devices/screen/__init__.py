"""Screen sharing: a screen or a window, through Qt Multimedia, as an aiortc video track.

``QScreenCapture`` (a whole screen) or ``QWindowCapture`` (one window) →
``QMediaCaptureSession`` → ``QVideoSink`` → :class:`ScreenTrack`, a
:class:`~gui.devices.camera.VideoSinkTrack` tuned for what is on a screen:

* **Frame rate**: about 15 frames/s (:data:`SHARE_FPS`), favouring sharp text over motion.
  The capture itself is asked for no more (``setMaximumFrameRate``, Qt 6.12), and
  :meth:`ScreenTrack.recv` takes a frame no sooner than 0.9 / fps after the previous one and
  keeps only the newest, so a source that delivers faster is thinned out rather than
  queued, and a frame is never held back waiting for a slot of a schedule.
* **Size**: full resolution up to 1920x1080 (:data:`MAX_SIZE`); a larger screen is scaled down
  to fit, keeping its aspect (swscale's area filter, which keeps thin lines of text from
  aliasing). Output is yuv420p, stamped at 90 kHz from ``time.monotonic()`` (one origin for
  every screen track, so the timestamps on the call's screen slot keep increasing from one
  share to the next).
* **Cursor**: Qt's X11 capture (``XShmGetImage``) and its fallback (``QScreen.grabWindow``)
  leave the mouse pointer out of the picture, so the track draws a small arrow (black outline,
  white fill, in the luma plane, neutral chroma) where ``QCursor.pos()`` is. Set
  ``draw_cursor=False`` for a capture backend that draws it itself.
* **Cost**: capture runs on Qt's own grabbing thread; the copy out of the mapped frame is done
  on the Qt thread (under a millisecond at 1080p), the colour conversion and scaling in the
  event loop's default executor, beside aiortc's encoder jobs, so the window stays responsive.

Where capture cannot work, nothing black is ever sent: :func:`capture_supported` says so
plainly, before anything starts (a Wayland session without PipeWire or the desktop portal, an
app without a display), and a :class:`ScreenTrack` in that situation, or whose capture fails
later (the shared window closed, the screen unplugged), emits the pyee event ``"lost"``
(reason) once and sets :attr:`ScreenTrack.lost_reason`, like
:class:`~gui.devices.camera.CameraTrack`: its owner then calls ``CallSession.stop_screen()``.

On Wayland, Qt captures through the desktop portal (PipeWire) and the system shows its own
picker: the screen chosen in the app is then only a hint. Qt's X11 backend is used when
``XDG_SESSION_TYPE`` is ``x11`` (any X11 desktop session); on an X server without a session
type (Xvfb, a bare ``startx``) :func:`prefer_x11_capture` sets it, since the fallback
(``grabWindow`` on a thread) costs several times more CPU.

Sources for a picker: :func:`list_sources` (screens, then windows where the platform can
list them) as plain :class:`ScreenSource` / :class:`WindowSource` values;
:func:`make_thumbnail` and :func:`capture_thumbnail` give their pictures, :func:`probe` tries
a real capture. Everything here lives on the Qt main thread (the asyncio loop under qasync).

The package: :mod:`.sources` (what can be shared, thumbnails), :mod:`.support` (whether
and why not), :mod:`.convert` (frames to yuv420p, the pointer), :mod:`.track` (the track),
:mod:`.probe` (one real frame).
"""

from gui.devices.screen.convert import MAX_SIZE, ScreenConverter, draw_pointer, fit_within
from gui.devices.screen.probe import capture_thumbnail, probe
from gui.devices.screen.sources import (
    CaptureSource,
    ScreenSource,
    WindowSource,
    list_screens,
    list_sources,
    list_windows,
    make_thumbnail,
    window_source,
)
from gui.devices.screen.support import CaptureSupport, capture_supported, prefer_x11_capture
from gui.devices.screen.track import SHARE_FPS, ScreenTrack, active_captures

__all__ = [
    "MAX_SIZE",
    "SHARE_FPS",
    "CaptureSource",
    "CaptureSupport",
    "ScreenConverter",
    "ScreenSource",
    "ScreenTrack",
    "WindowSource",
    "active_captures",
    "capture_supported",
    "capture_thumbnail",
    "draw_pointer",
    "fit_within",
    "list_screens",
    "list_sources",
    "list_windows",
    "make_thumbnail",
    "prefer_x11_capture",
    "probe",
    "window_source",
]
