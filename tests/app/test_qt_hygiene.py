"""The suite's Qt hygiene (``tests/qt_hygiene.py``) fails a test that leaves Qt objects acting.

Run on a small test file of its own in a child ``pytest``: one test leaves a timer running,
one a window open, one a window hidden but alive, one tidies up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LEAKY = """
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import gc

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QWidget

app = QApplication.instance() or QApplication([])
kept = []


def test_leaves_a_timer_running():
    timer = QTimer()
    timer.start(1234)
    kept.append(timer)


def test_leaves_a_window_open():
    window = QWidget()
    window.setWindowTitle("left open")
    window.show()
    kept.append(window)


def test_leaves_a_hidden_window_alive():
    window = QWidget()
    window.show()
    window.hide()
    kept.append(window)


def test_the_hidden_window_is_gone_and_collection_is_off_during_qt_tests():
    assert QApplication.topLevelWidgets() == []
    assert not gc.isenabled()
"""


def test_leftover_timers_and_open_windows_fail_their_test(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["tests.qt_hygiene"]\n')
    (tmp_path / "test_leaky.py").write_text(textwrap.dedent(LEAKY))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rE", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout
    assert "4 passed, 2 errors" in out, out[-4000:]
    assert "ERROR test_leaky.py::test_leaves_a_timer_running" in out
    assert "running timers (1234 ms) of PySide6.QtCore.QTimer" in out
    assert "ERROR test_leaky.py::test_leaves_a_window_open" in out
    assert "an open window: PySide6.QtWidgets.QWidget 'left open'" in out
