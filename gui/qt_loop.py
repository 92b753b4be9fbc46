"""The asyncio event loop on Qt's: qasync's, with one fault of its run mended.

qasync 0.28's ``run_until_complete`` processes Qt's events once more after ``run_forever``
has returned, when asyncio no longer counts the loop as running. A task step that was ready
at that moment (a WebSocket handler closing its connection as the app quits, for example)
then runs with no running loop, and fails inside asyncio (``RuntimeError: no running event
loop`` from ``asyncio.timeout`` or ``current_task``), logged as "Task exception was never
retrieved". Seen once at the app's exit after a call (tests/ui/test_app_process.py).

:class:`QtEventLoop` leaves what is ready for the loop's next run, as asyncio's own loops
do: ``asyncio.run`` runs the loop again to cancel the tasks left and to shut down, and steps
still pending when the loop closes are dropped with it (Qt's timers that carried them stop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import qasync

T = TypeVar("T")


class QtEventLoop(qasync.QEventLoop):
    """qasync's loop, whose ``run_until_complete`` runs nothing after it has stopped."""

    def run_until_complete(self, future: Awaitable[T]) -> T:
        """Run until ``future`` is done; what is ready then waits for the next run."""
        if self.is_running():
            raise RuntimeError("Event loop already running")
        task = asyncio.ensure_future(future, loop=self)

        def stop(_: Any) -> None:
            self.stop()

        task.add_done_callback(stop)
        try:
            self.run_forever()
        finally:
            task.remove_done_callback(stop)
        if not task.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return task.result()
