"""Garbage holding Qt objects is collected on the Qt thread (``gui.app.collector``).

The crash it prevents, reproduced in a child process (``tests/app/gc_scenario.py``): a
QObject with a running timer, in a reference cycle, collected by an automatic collection on
another thread; Qt cannot stop the timer from there and the Qt thread later delivers its
event to freed memory.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import gc
import subprocess
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from gui.app.collector import MainThreadCollector, due_generation

ROOT = Path(__file__).resolve().parents[2]
THRESHOLDS = (700, 10, 10)


def scenario(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.app.gc_scenario", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONFAULTHANDLER": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_generation_due_follows_cpythons_thresholds() -> None:
    assert due_generation((10, 0, 0), THRESHOLDS) is None
    assert due_generation((700, 5, 5), THRESHOLDS) is None  # "more than" the threshold
    assert due_generation((701, 3, 3), THRESHOLDS) == 0
    assert due_generation((701, 11, 3), THRESHOLDS) == 1
    assert due_generation((701, 11, 11), THRESHOLDS) == 2
    assert due_generation((5000, 11, 11), (0, 10, 10)) is None  # gc.set_threshold(0): off


def test_without_it_another_threads_collection_destroys_qt_objects_there() -> None:
    """The control: the scenario does reach the bug (then often a segmentation fault)."""
    done = scenario()
    assert "Timers cannot be stopped from another thread" in done.stderr or done.returncode < 0
    assert "destroyed on MainThread" not in done.stdout


def test_with_it_the_qt_thread_collects_and_lives() -> None:
    done = scenario("--collector")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "destroyed on MainThread" in done.stdout
    assert "another thread" not in done.stderr


def test_start_turns_automatic_collection_off_and_stop_gives_it_back(qapp: QApplication) -> None:
    was_enabled = gc.isenabled()
    gc.enable()
    collector = MainThreadCollector(interval_ms=10)
    try:
        collector.start()
        assert collector.running and not gc.isenabled()
        collector.stop()
        assert not collector.running and gc.isenabled()
        gc.disable()  # stop restores what start found
        collector.start()
        collector.stop()
        assert not gc.isenabled()
    finally:
        collector.stop()
        collector.deleteLater()
        if was_enabled:
            gc.enable()
        else:
            gc.disable()
