"""A child process for ``test_collector``: Qt garbage, and another thread that allocates.

A ``QObject`` with a running timer is left in a reference cycle (garbage only the cyclic
collector frees); then a second thread allocates enough to start an automatic collection.
Without :class:`~gui.app.collector.MainThreadCollector` that collection, and the object's C++
destructor, run on the second thread, and Qt says "Timers cannot be stopped from another
thread". With it (``--collector``) automatic collection is off and the Qt thread collects.
Prints on which thread the object was destroyed; exits 0 if the Qt thread survives.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QCoreApplication, QObject, QTimer

from gui.app.collector import MainThreadCollector

destroyed_on: list[str] = []


class Ticking(QObject):
    """A QObject with a timer of its own, in a cycle with itself."""

    def __init__(self) -> None:
        super().__init__()
        self.itself = self
        self.startTimer(20)

    def __del__(self) -> None:
        destroyed_on.append(threading.current_thread().name)


#: What the thread keeps: enough new objects that a collection is due.
kept: list[list[list[int]]] = []


def allocate() -> None:
    """What an aiortc decoder thread does, as far as the collector can tell."""
    for _ in range(50):
        _ = [[] for _ in range(2000)]
    kept.append([[] for _ in range(2000)])


def main() -> int:
    app = QCoreApplication([])
    collector = MainThreadCollector(interval_ms=50) if "--collector" in sys.argv else None
    if collector is not None:
        collector.start()
    gc.collect()  # counts at zero: no collection on this thread before the worker's
    Ticking()  # garbage from now on
    worker = threading.Thread(target=allocate, name="worker")
    worker.start()
    worker.join()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not destroyed_on:
        app.processEvents()
        time.sleep(0.01)
    for _ in range(20):  # the timer's next events, if it outlived its object
        app.processEvents()
        time.sleep(0.03)
    QTimer.singleShot(0, app.quit)
    app.exec()
    print(f"destroyed on {destroyed_on[0] if destroyed_on else 'no thread'}", flush=True)
    if collector is not None:
        collector.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
