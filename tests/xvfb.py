"""One way to start a private X server (``Xvfb``): for the tests, the benchmarks, the screenshots.

The server picks a free display number itself (``-displayfd``) and writes it to a pipe, so two
runs at once never race for the same number and nothing scans ``/tmp/.X*-lock``. It listens on
its Unix socket only. ``bench/`` and ``docs/make_screenshots.py`` import this module too (they
run from the repository root, where ``tests`` is a package): a failure is a :class:`XvfbError`
with one line that says what to do, which each caller turns into its own kind of failure.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from pathlib import Path

from tests.stopping import StopsOnExit, terminate

#: How long the server may take to report its display number.
START_TIMEOUT_S = 15.0


class XvfbError(RuntimeError):
    """Xvfb is missing or did not start; the message says which."""


class Xvfb(StopsOnExit):
    """An ``Xvfb`` of ``width`` x ``height`` x ``depth`` on a display number it chose itself.

    Use it as a context manager, or call :meth:`stop`. :attr:`display` is ``":N"``.
    """

    def __init__(self, width: int, height: int, depth: int = 24) -> None:
        if shutil.which("Xvfb") is None:
            raise XvfbError("an X server is needed: apt-get install xvfb")
        read_end, write_end = os.pipe()
        self.process = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x{depth}",
             "-nolisten", "tcp", "-br", "-noreset"],
            pass_fds=(write_end,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(write_end)
        number = b""
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while not number.endswith(b"\n"):
                left = deadline - time.monotonic()
                ready, _, _ = select.select([read_end], [], [], max(0.0, left))
                chunk = os.read(read_end, 16) if ready else b""
                if not chunk:
                    self.stop()
                    raise XvfbError(
                        f"Xvfb did not start (no display number within {START_TIMEOUT_S:g} s)"
                    )
                number += chunk
        finally:
            os.close(read_end)
        self.display = f":{int(number)}"

    def cpu_seconds(self) -> float:
        """The X server's CPU time so far (what capturing costs it)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Terminate the server and reap it (idempotent)."""
        terminate(self.process, 10)
