"""Stopping the test's own child processes: SIGTERM, and SIGKILL for one that lingers."""

from __future__ import annotations

import subprocess
from types import TracebackType
from typing import Any, Self


def terminate(process: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM ``process`` if it still runs and reap it; SIGKILL it if it is still there
    after ``grace`` seconds (then reap it, waiting as long again at the most)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace)


class StopsOnExit:
    """``with Thing(...) as thing:`` calls ``thing.stop()`` on leaving."""

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
