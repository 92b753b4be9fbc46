"""The app's event loop leaves no task step for after it has stopped (gui/qt_loop.py).

qasync's own loop ran Qt's events once more after each run had ended, so a step ready at
that moment ran with no running loop: at the app's exit, a WebSocket handler of the
built-in server failed inside ``asyncio.timeout`` ("no running event loop").
"""

from __future__ import annotations

import asyncio

from PySide6.QtWidgets import QApplication

from gui.qt_loop import QtEventLoop
from tests.ui.conftest import _qapp


def _run_with_a_step_ready_at_the_end(app: QApplication, loop: type) -> list[str]:
    """``asyncio.run`` a main that returns while another task has a step ready; then Qt's
    events, as the app's ``destroy_qt`` processes them. What the other task saw, in order."""
    seen: list[str] = []

    async def other() -> None:
        try:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            asyncio.get_running_loop()
            seen.append("ran on its loop")
        except RuntimeError as exc:
            seen.append(f"ran without a loop: {exc}")
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> int:
        asyncio.get_running_loop().create_task(other())
        await asyncio.sleep(0)
        return 7

    assert asyncio.run(main(), loop_factory=lambda: loop(app)) == 7
    app.processEvents()
    return seen


def test_a_step_ready_when_the_run_ends_waits_for_the_next_run() -> None:
    app = _qapp()
    # asyncio.run's next run (the cancelling of the tasks left) takes it, as on any asyncio
    # loop. qasync 0.28's own loop gives ["ran without a loop: no running event loop"].
    assert _run_with_a_step_ready_at_the_end(app, QtEventLoop) == ["cancelled"]


def test_a_run_still_gives_its_result_and_its_error() -> None:
    app = _qapp()

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("from the coroutine")

    loop = QtEventLoop(app)
    try:
        assert loop.run_until_complete(asyncio.sleep(0, result="done")) == "done"
        try:
            loop.run_until_complete(fails())
        except ValueError as exc:
            assert str(exc) == "from the coroutine"
        else:
            raise AssertionError("the coroutine's error was not raised")
    finally:
        loop.close()
