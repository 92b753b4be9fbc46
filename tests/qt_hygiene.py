"""Qt objects do not outlive their test, and garbage is collected on the Qt thread only.

Hooks for the whole suite (imported by ``tests/conftest.py``). In a process with a
``QApplication``, after each test and its fixtures:

* every top-level widget still alive is deleted (``deleteLater``, then the deferred deletions
  are delivered) and garbage is collected, on the Qt thread. The app's windows connect
  their own signals to lambdas that capture them: a reference cycle through C++ that Python's
  collector cannot see, so without this every ``ParleyUi`` a test makes lives on, with the
  closed qasync loop its slots hold and that loop's pending timers;
* the test **fails** if it left a window open, a ``QTimer`` (or any Qt timer of a Python
  object) running, or a ``QThread`` running once that is done: those fire or run into the
  next tests. A finished qasync loop's timer object is not the test's doing: its timers are
  unregistered quietly.

While a Qt test runs (its module or folder mentions PySide6 or qtbot, see
:func:`tests.own_process.makes_qt_objects`), automatic garbage collection is off and a
:class:`~gui.app.collector.MainThreadCollector` collects from a Qt timer instead: an automatic
collection started on another thread (an aiortc decoder, a bot's thread) would run the
destructors of Qt garbage there, and the Qt thread would later deliver their timers' events
to freed memory. That crashed a full run (SIGSEGV in pytest-qt's ``processEvents`` after the
Wayland folder's child run).

At the end of the run, threads that would keep the process from exiting (aiortc's decoder
threads of a peer connection a failed test never closed, for one) are listed, and the run
exits with its status rather than hang.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest

from tests.own_process import makes_qt_objects

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from gui.app.collector import MainThreadCollector

#: How long exiting waits for threads the tests left before it stops waiting.
THREAD_GRACE_S = 10.0


class LeftoverQtObjects(AssertionError):
    """A test left Qt objects that would act during the next tests."""


_collector: MainThreadCollector | None = None
_paused_gc: set[str] = set()
_exit_status = 0


def _application() -> QApplication | None:
    if "PySide6.QtWidgets" not in sys.modules:
        return None
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    return app if isinstance(app, QApplication) else None


def _start_collector() -> None:
    global _collector
    if _application() is None:
        return
    if _collector is None or not _valid(_collector):  # gone with a QApplication shut down
        from gui.app.collector import MainThreadCollector

        _collector = MainThreadCollector()
    _collector.start()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    if makes_qt_objects(item):
        _paused_gc.add(item.nodeid)
        gc.disable()
        _start_collector()
    result = yield
    if item.nodeid in _paused_gc:
        _start_collector()  # the test's fixtures may have made the QApplication
    return result


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    result = yield
    qt_test = item.nodeid in _paused_gc
    _paused_gc.discard(item.nodeid)
    try:
        app = _application()
        if app is not None and (qt_test or app.topLevelWidgets()):
            problems = clean_up_qt(app)
            if problems:
                raise LeftoverQtObjects(
                    "the test left Qt objects behind (they would act during later tests):\n  "
                    + "\n  ".join(problems)
                )
    finally:
        if qt_test:
            if _collector is not None and _valid(_collector):
                _collector.stop()
            gc.enable()
    return result


def clean_up_qt(app: QApplication) -> list[str]:
    """Delete what Qt objects the last test left, on this (the Qt) thread; what it should
    not have left, in words."""
    from PySide6.QtCore import QAbstractEventDispatcher, QCoreApplication, QEvent

    problems = [
        f"an open window: {_name(widget)}" for widget in app.topLevelWidgets() if widget.isVisible()
    ]
    for widget in app.topLevelWidgets():
        widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
    # What is still alive lives on (fixtures, modules): out of later collections, which then
    # only look at what later tests make (a full pass over everything takes 50-300 ms here).
    gc.freeze()
    dispatcher = QAbstractEventDispatcher.instance()
    problems += _running_things(dispatcher)
    return problems


def _running_things(dispatcher: Any) -> list[str]:
    from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer
    from shiboken6 import Shiboken

    found = []
    for wrapper in Shiboken.getAllValidWrappers():
        if not isinstance(wrapper, QObject) or isinstance(wrapper, QCoreApplication):
            continue  # the application's own timers are Qt's (a tooltip's, a double click's)
        if wrapper is _collector:
            continue
        if isinstance(wrapper, QThread) and wrapper.isRunning():
            found.append(f"a running thread: {_name(wrapper)}")
            continue
        if dispatcher is None or (_collector is not None and wrapper.parent() is _collector):
            continue
        timers = dispatcher.registeredTimers(wrapper)
        if not timers:
            continue
        if getattr(wrapper, "_stopped", False) and type(wrapper).__name__ == "_SimpleTimer":
            dispatcher.unregisterTimers(wrapper)  # a closed qasync loop's: harmless, forgotten
            continue
        intervals = ", ".join(f"{timer.interval} ms" for timer in timers)
        found.append(f"running timers ({intervals}) of {_name(wrapper)}")
        if isinstance(wrapper, QTimer):  # said once: they do not fail the next tests too
            wrapper.stop()
        else:
            dispatcher.unregisterTimers(wrapper)
    return found


def _valid(obj: Any) -> bool:
    from shiboken6 import Shiboken

    return bool(Shiboken.isValid(obj))


def _name(obj: Any) -> str:
    kind = type(obj)
    label = f"{kind.__module__}.{kind.__qualname__}"
    title = getattr(obj, "windowTitle", None)
    if callable(title) and title():
        label += f" {title()!r}"
    if obj.objectName():
        label += f" ({obj.objectName()})"
    return label


# Threads that would hold the process at exit ----------------------------------------------


def _holds_exit(thread: threading.Thread) -> bool:
    """A thread Python's exit would wait for forever: not daemon, not the main thread, and not
    an executor's worker (those end at exit when their executor is told to)."""
    if thread is threading.main_thread() or thread.daemon or not thread.is_alive():
        return False
    target = getattr(thread, "_target", None)
    return getattr(target, "__module__", "") != "concurrent.futures.thread"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """List threads the tests left that would keep the interpreter from exiting; exit anyway."""
    left = [t for t in threading.enumerate() if _holds_exit(t)]
    for thread in left:
        thread.join(THREAD_GRACE_S / max(1, len(left)))
    left = [t for t in left if t.is_alive()]
    if not left:
        return
    names = ", ".join(sorted(t.name for t in left))
    print(
        f"\ntests left {len(left)} thread(s) running that would keep Python from exiting "
        f"({names}): a peer connection or player never closed; exiting without them",
        file=sys.stderr,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
