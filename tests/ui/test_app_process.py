"""The app as a process: start, call, quit. Exit status 0, no fatal error, nothing left running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_start_call_quit_exits_0(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir(mode=0o700)
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "PYTHONFAULTHANDLER": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.ui.drive_app"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "call ended: hangup" in result.stdout, output
    for fatal in ("Fatal Python error", "Traceback", "Segmentation fault", "shared QObject"):
        assert fatal not in output, output
    # Everything the app started is gone with it: no server, no advertisement left behind.
    assert not (tmp_path / "run" / "parley" / "embedded-server.json").exists()
