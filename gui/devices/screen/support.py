"""Whether screen sharing can work in this session, and if not, why (in words for the user)."""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from dataclasses import dataclass
from typing import Literal

from PySide6.QtGui import QGuiApplication

logger = logging.getLogger(__name__)

_PORTAL = "org.freedesktop.portal.Desktop"
_PORTAL_PATH = "/org/freedesktop/portal/desktop"
_SCREENCAST = "org.freedesktop.portal.ScreenCast"
#: How long the portal may take to start and answer.
_PORTAL_TIMEOUT_MS = 5000


# Can capture work here? ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaptureSupport:
    """Whether screen sharing can work here, and if not, why, in words for the user.

    ``backend`` names Qt's capture path: ``x11`` (shared memory), ``grabwindow`` (Qt's
    fallback: works on any X server, slower), ``pipewire`` (Wayland, through the desktop
    portal), ``windows``/``macos``, or what is missing. ``windows`` tells whether single
    windows can be listed; ``system_picker`` that the system asks the user which screen or
    window to share (the portal), whatever the app chose. ``reason`` is empty when supported.
    """

    supported: bool
    backend: str
    reason: str = ""
    windows: bool = False
    system_picker: bool = False
    #: The size of the frame :func:`probe` captured (None from :func:`capture_supported`).
    frame_size: tuple[int, int] | None = None


def prefer_x11_capture() -> bool:
    """On an X server with no session type set, set ``XDG_SESSION_TYPE=x11``; True if it did.

    Qt picks its shared-memory X11 capture only when ``XDG_SESSION_TYPE`` is ``x11``, which
    every X11 desktop session sets; without it (Xvfb, ``startx``, ssh -X) Qt falls back to
    ``grabWindow`` on a thread, which costs about four times the CPU. Nothing is changed
    under Wayland or when the variable is set already. Must run before the capture is made.
    """
    session = os.environ.get("XDG_SESSION_TYPE", "").lower()
    on_x = bool(os.environ.get("DISPLAY")) and not os.environ.get("WAYLAND_DISPLAY")
    if on_x and session in ("", "tty", "unspecified"):
        os.environ["XDG_SESSION_TYPE"] = "x11"
        return True
    return False


def _pipewire_available() -> bool:
    """Whether libpipewire-0.3, which Qt loads at run time for Wayland capture, can be loaded."""
    try:
        ctypes.CDLL("libpipewire-0.3.so.0")
    except OSError:
        return False
    return True


def _pipewire_running() -> bool:
    """Whether a PipeWire daemon listens where this session's clients look for it."""
    remote = os.environ.get("PIPEWIRE_REMOTE", "pipewire-0")
    if os.path.isabs(remote):
        return os.path.exists(remote)
    folder = os.environ.get("PIPEWIRE_RUNTIME_DIR") or os.environ.get("XDG_RUNTIME_DIR")
    if not folder:
        return False
    return os.path.exists(os.path.join(folder, remote))


def _portal_screencast() -> Literal["ok", "no-portal", "no-screencast"]:
    """Whether the session bus has (or can start) the desktop portal, and whether that portal
    offers screen casts (it does only with a backend for this desktop: GNOME's, KDE's, wlroots')."""
    try:
        from PySide6.QtDBus import QDBusConnection, QDBusMessage
    except ImportError:  # pragma: no cover - QtDBus is part of PySide6-Essentials
        return "no-portal"
    name = "parley-portal-check"
    # By address when the session says where its bus is (libdbus reads that variable once
    # per process); else the default session bus.
    address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    bus = QDBusConnection.connectToBus(
        address if address else QDBusConnection.BusType.SessionBus, name
    )
    try:
        if not bus.isConnected():
            return "no-portal"
        present = False
        for method in ("NameHasOwner", "ListActivatableNames"):
            message = QDBusMessage.createMethodCall(
                "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", method
            )
            if method == "NameHasOwner":
                message.setArguments([_PORTAL])
            reply = bus.call(message, timeout=2000)
            if reply.type() != QDBusMessage.MessageType.ReplyMessage or not reply.arguments():
                continue
            answer = reply.arguments()[0]
            if answer is True or (isinstance(answer, list) and _PORTAL in answer):
                present = True
                break
        if not present:
            return "no-portal"
        # Asking for the screen-cast interface's property starts the portal if it is not
        # running yet (a few seconds at most).
        message = QDBusMessage.createMethodCall(
            _PORTAL, _PORTAL_PATH, "org.freedesktop.DBus.Properties", "Get"
        )
        message.setArguments([_SCREENCAST, "AvailableSourceTypes"])
        reply = bus.call(message, timeout=_PORTAL_TIMEOUT_MS)
        if reply.type() != QDBusMessage.MessageType.ReplyMessage:
            logger.info("the desktop portal has no screen casts: %s", reply.errorMessage())
            return "no-screencast"
        return "ok"
    finally:
        QDBusConnection.disconnectFromBus(name)


def wayland_support() -> CaptureSupport:
    """What :func:`capture_supported` says in a Wayland session (the portal and PipeWire)."""
    if not _pipewire_available():
        return CaptureSupport(
            False,
            "pipewire",
            "Screen sharing on Wayland goes through the desktop portal and PipeWire, and this "
            "system lacks the PipeWire library (libpipewire-0.3). Install it (the package "
            "libpipewire-0.3-0), or log in to an X11 session.",
        )
    portal = _portal_screencast()
    if portal == "no-portal":
        return CaptureSupport(
            False,
            "pipewire",
            "Screen sharing on Wayland goes through the desktop portal, and this system lacks "
            "the desktop portal (xdg-desktop-portal). Install it, or log in to an X11 session.",
        )
    if portal == "no-screencast":
        return CaptureSupport(
            False,
            "pipewire",
            "The desktop portal runs, but it cannot share screens on this desktop: it needs "
            "the portal backend for your desktop (xdg-desktop-portal-gnome, -kde or -wlr). "
            "Install it, or log in to an X11 session.",
        )
    if not _pipewire_running():
        return CaptureSupport(
            False,
            "pipewire",
            "Screen sharing on Wayland needs PipeWire, which is not running in this session. "
            "Start it (systemctl --user start pipewire), or log in to an X11 session.",
        )
    return CaptureSupport(True, "pipewire", system_picker=True)


def capture_supported() -> CaptureSupport:
    """Whether screen sharing can work in this session, without starting any capture.

    Checks the Qt platform and the session type: no display (``offscreen``) → no; Wayland →
    only through PipeWire and the desktop portal, both checked (Qt otherwise falls back to
    grabbing the X11 root window, which shows black on Wayland); X11, Windows, macOS → yes.
    Needs a ``QGuiApplication``. Calls :func:`prefer_x11_capture` first, so that what it
    reports is what a capture made afterwards gets.
    """
    prefer_x11_capture()
    if QGuiApplication.instance() is None:
        return CaptureSupport(False, "none", "Screen sharing needs the app to be running.")
    platform = QGuiApplication.platformName()
    session = os.environ.get("XDG_SESSION_TYPE", "").lower()
    if platform in ("offscreen", "minimal", "vnc", "linuxfb"):
        return CaptureSupport(
            False,
            "none",
            f"There is no screen to share: the app runs without a display ({platform}).",
        )
    if session == "wayland" or platform.startswith("wayland"):
        return wayland_support()
    if platform == "xcb":
        if not QGuiApplication.screens():
            return CaptureSupport(False, "x11", "The X server reports no screen to share.")
        backend = "x11" if session == "x11" else "grabwindow"
        return CaptureSupport(True, backend, windows=backend == "x11")
    if platform == "windows":
        return CaptureSupport(True, "windows", windows=True)
    if platform == "cocoa":
        return CaptureSupport(True, "macos", windows=True)
    return CaptureSupport(
        False, platform, f"Screen sharing is not available on this platform ({platform})."
    )


def capture_outlook() -> CaptureSupport:
    """Whether screen sharing would work on this desktop, judged without a window.

    For ``parley --self-test``, which makes no ``QApplication``: the session is read from the
    environment (``WAYLAND_DISPLAY``, ``XDG_SESSION_TYPE``, ``DISPLAY``); on Wayland the same
    checks as :func:`wayland_support` run (QtDBus needs only a ``QCoreApplication``, made if
    there is no application yet).
    """
    if sys.platform.startswith("win"):
        return CaptureSupport(True, "windows", windows=True)
    if sys.platform == "darwin":
        return CaptureSupport(True, "macos", windows=True)
    session = os.environ.get("XDG_SESSION_TYPE", "").lower()
    if os.environ.get("WAYLAND_DISPLAY") or session == "wayland":
        from PySide6.QtCore import QCoreApplication

        if QCoreApplication.instance() is None:
            _keep.append(QCoreApplication([sys.argv[0] if sys.argv else "parley"]))
        return wayland_support()
    if os.environ.get("DISPLAY"):
        return CaptureSupport(True, "x11", windows=session == "x11")
    return CaptureSupport(
        False,
        "none",
        "There is no desktop session here (neither WAYLAND_DISPLAY nor DISPLAY is set): "
        "screen sharing works in the app on a desktop.",
    )


#: The QCoreApplication capture_outlook() made, kept for the rest of the process.
_keep: list[object] = []
