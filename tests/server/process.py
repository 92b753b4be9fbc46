"""Run ``parley-server`` as a real child process (``python -m gui.server``) for the tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

URL_RE = re.compile(r"listening on (ws\S+)")


class ServerProcess:
    """A server child process; ``url`` is known once it has printed it."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gui.server", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
        )
        self.url = ""

    def wait_ready(self, timeout: float = 20.0) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            match = URL_RE.search(line)
            if match:
                self.url = match.group(1)
                return self.url
        raise AssertionError(f"server did not start: {self.finish()}")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def finish(self, timeout: float = 20.0) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=20)


def run_server(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (for arguments that make it exit at once)."""
    return subprocess.run(
        [sys.executable, "-m", "gui.server", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[2],
    )
