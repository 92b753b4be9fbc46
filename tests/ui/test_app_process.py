"""The app as a process: start, call, quit. Exit status 0, no fatal error, nothing left running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def app_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a child app whose files all live under ``tmp_path``."""
    (tmp_path / "run").mkdir(mode=0o700)
    return {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "PYTHONFAULTHANDLER": "1",
    }


def run_app(env: dict[str, str], driver: str = "call") -> subprocess.CompletedProcess[str]:
    """Run the real app in a child process, driven by ``tests.ui.drive_app``."""
    return subprocess.run(
        [sys.executable, "-m", "tests.ui.drive_app", driver],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_start_call_quit_exits_0(tmp_path: Path) -> None:
    result = run_app(app_env(tmp_path))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "call ended: hangup" in result.stdout, output
    fatal = ("Fatal Python error", "Traceback", "Segmentation fault", "shared QObject", "Task was")
    for marker in fatal:  # "Task was destroyed but it is pending": a loop closed under a task
        assert marker not in output, output
    # Everything the app started is gone with it: no server, no advertisement left behind.
    assert not (tmp_path / "run" / "parley" / "embedded-server.json").exists()


def test_without_a_sound_server_it_says_so_once_and_nothing_else(tmp_path: Path) -> None:
    """No sound server, no XDG_RUNTIME_DIR (a bare session): one line in Parley's words."""
    env = app_env(tmp_path)
    del env["XDG_RUNTIME_DIR"]
    env["PULSE_SERVER"] = f"unix:{tmp_path / 'no-such-socket'}"
    (tmp_path / "tmp").mkdir()
    env["TMPDIR"] = str(tmp_path / "tmp")  # platformdirs' runtime fallback, kept private here
    result = run_app(env, "start")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "started" in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "WARNING parley.app: no sound output found: calls and the ringtone will be silent here"
    ], result.stderr
