"""``parley`` (and ``python -m gui``): the desktop app.

One ``QApplication`` on one qasync loop (``gui/qt_loop.py``) for the app's whole life.
The windows are created once; the controller does the work. Quitting (menu, Ctrl+Q,
closing the last window when not kept in the tray, SIGINT/SIGTERM) hangs up,
stops every device, closes the built-in server and exits with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from gui.core.servers import server_argument
from signaling import __version__

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from gui.app.ui import ParleyUi


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="parley",
        description="Parley: video calls with your contacts. With no server configured it runs "
        "its own on this computer.",
    )
    parser.add_argument(
        "--server",
        action="append",
        type=server_argument,
        metavar="URL",
        help="signaling server to use, e.g. ws://example.org:8765/ws; repeat it for several "
        "instances of one service (default: the ones in the settings, else the built-in server)",
    )
    parser.add_argument(
        "--trust-cert",
        metavar="FILE",
        help="for a wss:// server, also trust this PEM certificate (the server's own, e.g. "
        "self-signed, or the authority that signed it; default: the one in the settings)",
    )
    parser.add_argument(
        "--profile",
        default="default",
        metavar="NAME",
        help="separate settings and sign-in, so two instances can run side by side "
        "(default: default)",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="without opening a window, place a test call between two built-in clients through "
        "a built-in server, print a report and exit (0: everything works, 1: something failed)",
    )
    parser.add_argument("--version", action="version", version=f"parley {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    return parser


#: Qt messages about things Parley says itself in its own words (no sound output, no camera)
#: or that mean nothing to a user: shown with ``--verbose`` only.
QUIET_QT_CATEGORIES = ("qt.multimedia",)
QUIET_QT_TEXT = ("PulseAudioService:", "This plugin does not support propagateSizeHints")


def route_qt_messages() -> None:
    """Send Qt's own messages through ``logging`` (logger ``parley.qt``), not straight to stderr.

    On a computer without a sound server or a camera Qt Multimedia prints half a dozen lines at
    start-up (missing PipeWire, the FFmpeg version, a failed PulseAudio connection); Parley says
    what matters once, in its words. Other warnings still show; fatal ones still abort.
    """
    from PySide6.QtCore import QMessageLogContext, QtMsgType, qInstallMessageHandler

    qt_log = logging.getLogger("parley.qt")
    levels = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
        QtMsgType.QtCriticalMsg: logging.ERROR,
        QtMsgType.QtFatalMsg: logging.CRITICAL,
    }

    def handle(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
        level = levels.get(kind, logging.WARNING)
        category = context.category or ""
        quiet = category.startswith(QUIET_QT_CATEGORIES) or message.startswith(QUIET_QT_TEXT)
        if quiet and level == logging.WARNING:
            level = logging.INFO
        prefix = f"{category}: " if category and category != "default" else ""
        qt_log.log(level, "%s%s", prefix, message)

    qInstallMessageHandler(handle)


def main(
    argv: Sequence[str] | None = None,
    driver: Callable[[ParleyUi], Coroutine[Any, Any, None]] | None = None,
) -> int:
    """Entry point of ``parley``.

    ``driver`` (for tests and the self-test) runs alongside the app with the
    windows in hand, as a person at the keyboard would; the app still quits
    the normal way.
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.self_test:
        from gui.app.self_test import run_self_test

        return run_self_test()
    from gui.core.profile import PROFILE_NAME_RE

    if not PROFILE_NAME_RE.fullmatch(args.profile):
        print(
            "parley: error: a profile name is 1 to 40 letters, digits, '.', '_' or '-'",
            file=sys.stderr,
        )
        return 2
    if args.trust_cert:
        from gui.core.signaling_client import tls_context

        try:
            tls_context(args.trust_cert)
        except ValueError as exc:
            print(f"parley: error: --trust-cert: {exc}", file=sys.stderr)
            return 2

    route_qt_messages()  # before Qt Multimedia loads: it talks as it loads
    from PySide6.QtWidgets import QApplication

    from gui.app.collector import MainThreadCollector
    from gui.app.ui import ParleyUi
    from gui.qt_loop import QtEventLoop

    app = QApplication(sys.argv[:1])
    app.setApplicationName("Parley")
    app.setApplicationDisplayName("Parley")
    app.setDesktopFileName("parley")
    app.setQuitOnLastWindowClosed(False)
    # Garbage that holds Qt objects must be collected on this thread, never on a decoder's.
    collector = MainThreadCollector(parent=app)
    collector.start()

    async def run() -> int:
        ui = ParleyUi(app, args.profile, args.server, args.trust_cert)
        if driver is not None:
            ui.controller.spawn(driver(ui))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, ui.request_quit)
            except (NotImplementedError, RuntimeError):
                signal.signal(signum, lambda *_: ui.request_quit())
        return await ui.run()

    status = asyncio.run(run(), loop_factory=lambda: QtEventLoop(app))
    collector.stop()
    destroy_qt(app)
    return status


def destroy_qt(app: QApplication) -> None:
    """Destroy every Qt object while the application still exists, then the application.

    Left to Python's garbage collector at interpreter exit, the Qt Multimedia objects a
    call leaves behind are deleted after the application, and the process aborts
    ("shared QObject was deleted directly", then a segmentation fault).
    """
    import gc

    app.closeAllWindows()
    for widget in app.topLevelWidgets():
        widget.deleteLater()
    app.processEvents()
    gc.collect()
    app.shutdown()


if __name__ == "__main__":
    sys.exit(main())
