"""Screen sharing tests: a real X server (Xvfb), Qt's real capture, real calls.

The session starts its own ``Xvfb`` on a free display (``-displayfd``: the server picks
the number), 1280x720x24, and points ``DISPLAY`` at it with ``QT_QPA_PLATFORM=xcb`` and
``XDG_SESSION_TYPE=x11`` (what an X11 desktop session sets; Qt then uses its
shared-memory X11 capture). Async tests run on a qasync loop over the ``QApplication``, so
Qt signals and asyncio share one thread as in the app. At the end Qt is torn down before
the X server goes.

The process's ``QApplication`` decides its platform once. When other Qt tests run in the
same pytest session (their folders use ``offscreen``), these tests cannot share that
application: the whole folder then runs as one item, in a child ``pytest`` process of its
own, and its report is shown if it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.own_process import delegate_folder
from tests.xvfb import Xvfb, XvfbError

HERE = Path(__file__).resolve().parent
#: Set in the child process that runs this folder on its own.
CHILD_FLAG = "PARLEY_SCREEN_TESTS_CHILD"
SCREEN_SIZE = (1280, 720)
#: Set when this folder's tests were handed to a child process (nothing to start here then).
_delegated = False


# One folder, one QApplication --------------------------------------------------------


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Run this folder in a child process when other selected tests use Qt."""
    global _delegated
    _delegated = delegate_folder(HERE, CHILD_FLAG, items)


# The X server ------------------------------------------------------------------------


_ENV = ("DISPLAY", "QT_QPA_PLATFORM", "XDG_SESSION_TYPE", "WAYLAND_DISPLAY")


def _fixed_mmap_threshold() -> None:
    """Make glibc serve every block of 1 MiB or more with mmap and give it back at free.

    By default glibc raises its mmap threshold after the first large free, and the frame
    buffers of a capture (3.5 MB each at 720p) then come from the heap, whose high-water
    mark RSS keeps: the first twenty or so shares of a process add 60-80 MB that stay, then
    RSS is flat. That is the allocator, not a leak, but it hides one. With a fixed
    threshold RSS follows what is really held, and the start/stop test can compare it.
    """
    import ctypes

    m_mmap_threshold = -3
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(m_mmap_threshold, 1 << 20)


@pytest.fixture(scope="session", autouse=True)
def xvfb() -> Iterator[Xvfb | None]:
    """The session's X server, with the environment pointing at it; Qt goes first at the end."""
    if _delegated:
        yield None
        return
    saved = {name: os.environ.get(name) for name in _ENV}
    _fixed_mmap_threshold()
    try:
        server = Xvfb(*SCREEN_SIZE)
    except XvfbError as exc:
        pytest.fail(f"screen tests: {exc}")
    os.environ.update(DISPLAY=server.display, QT_QPA_PLATFORM="xcb", XDG_SESSION_TYPE="x11")
    os.environ.pop("WAYLAND_DISPLAY", None)
    try:
        yield server
    finally:
        _destroy_qt()
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _destroy_qt() -> None:
    """Delete the QApplication (and every Qt object) while its X server still runs."""
    if "PySide6.QtWidgets" not in sys.modules:
        return
    from PySide6.QtWidgets import QApplication

    from gui.app.main import destroy_qt

    app = QApplication.instance()
    if isinstance(app, QApplication):
        destroy_qt(app)


# Qt and the loop -----------------------------------------------------------------------


def _qapp() -> object:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication([])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)  # closing a test's window must not stop the loop
    assert app.platformName() == "xcb", f"the QApplication runs on {app.platformName()!r}"
    return app


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict:
    """Async tests in this folder run on a qasync loop (Qt and asyncio in one thread)."""
    from gui.qt_loop import QtEventLoop

    factory: Callable[[], asyncio.AbstractEventLoop] = lambda: QtEventLoop(_qapp())  # noqa: E731
    return {"qasync": factory}


@pytest.fixture
def qt_app() -> object:
    """The process's QApplication, on the X server."""
    return _qapp()


# What the tests set up ---------------------------------------------------------------------


@pytest.fixture
async def pattern(qt_app: object) -> AsyncIterator[object]:
    """A :class:`~tests.screen.helpers.PatternWindow` at its place on the X server, painted."""
    from tests.screen.helpers import PatternWindow, shown

    window = PatternWindow()
    await shown(window)
    yield window
    window.close()
    window.deleteLater()
