"""Qt tests: widgets offscreen, on the same qasync loop the app runs on.

pytest-asyncio asks this hook for the event loop of every async test in this
folder, so the tests await the controller while Qt paints and delivers
signals, as in the app.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Callable

from PySide6.QtWidgets import QApplication

from gui.qt_loop import QtEventLoop


def _qapp() -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication([])
    assert isinstance(app, QApplication)
    return app


def pytest_asyncio_loop_factories(config, item) -> dict[str, Callable[[], object]]:
    return {"qasync": lambda: QtEventLoop(_qapp())}
