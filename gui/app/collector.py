"""Python's cyclic garbage collector, run on the Qt thread only.

CPython starts an automatic collection in whichever thread happens to allocate past the
collector's threshold. In Parley that may be an aiortc decoder thread, a bot's thread or
the loop's executor. When the garbage then holds Qt objects (a window whose signals are
connected to lambdas that capture it, a finished qasync loop's timer object), their C++
destructors run on that thread: Qt prints "QObject::~QObject: Timers cannot be stopped from
another thread", the objects' timers stay registered with the Qt thread's event dispatcher,
and the next time one fires the Qt thread delivers its event to freed memory (SIGSEGV).
The test suite crashed that way once in pytest-qt's ``processEvents`` (tests/ui's objects,
collected by a bot's thread while the parent waited for the Wayland folder's child run), and
a ``gc.collect()`` on another thread after ``tests/ui/test_app_states.py`` reproduces it.

:class:`MainThreadCollector` turns automatic collection off and runs it from a ``QTimer``
instead, with the collector's own thresholds, so every collection (and every Qt destructor it
triggers) happens on the Qt thread. This is the usual remedy for Qt applications in Python.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

#: How often the Qt thread looks at the collector's counts.
CHECK_INTERVAL_MS = 500


def due_generation(counts: tuple[int, int, int], thresholds: tuple[int, int, int]) -> int | None:
    """The generation CPython would collect now for ``gc.get_count()``, or None.

    Generation 0 when more objects were allocated than freed since its last collection
    (beyond its threshold); an older one when enough collections of the younger one happened.
    """
    if thresholds[0] <= 0 or counts[0] <= thresholds[0]:
        return None
    if counts[1] > thresholds[1]:
        return 2 if counts[2] > thresholds[2] else 1
    return 0


class MainThreadCollector(QObject):
    """Collects garbage from a timer on the thread it lives on (the Qt thread).

    :meth:`start` disables automatic collection, :meth:`stop` gives it back as it was.
    """

    def __init__(self, interval_ms: int = CHECK_INTERVAL_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_if_due)
        self._was_enabled = gc.isenabled()
        self.collections = 0

    def start(self) -> None:
        """Collect from the timer from now on, never automatically on another thread."""
        if not self._timer.isActive():
            self._was_enabled = gc.isenabled()
            gc.disable()
            self._timer.start()

    def stop(self) -> None:
        """Give automatic collection back (if it was on before :meth:`start`)."""
        if self._timer.isActive():
            self._timer.stop()
            if self._was_enabled:
                gc.enable()

    @property
    def running(self) -> bool:
        """Whether the timer collects (and automatic collection is off)."""
        return self._timer.isActive()

    def collect_if_due(self) -> None:
        """Collect the generation CPython would have collected by now, if any."""
        generation = due_generation(gc.get_count(), gc.get_threshold())
        if generation is not None:
            gc.collect(generation)
            self.collections += 1
