"""Run one test folder in a child ``pytest`` process when other selected tests use Qt.

A process has one ``QApplication``, which picks its platform once (the screen tests need a
real X server, the others ``offscreen``), and Qt Multimedia binds to one sound server once
per process (the device tests bring a private PulseAudio and its virtual devices). A folder
that needs its own such world cannot share the process with other Qt tests: when any are
selected, the folder's tests become one item that runs them in a child process, whose
report is shown if it fails. Run alone, the folder runs in place as usual.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _inside(folder: Path, item: pytest.Item) -> bool:
    return folder in Path(item.path).resolve().parents


def makes_qt_objects(item: pytest.Item) -> bool:
    """Whether a test uses Qt (its module or its folder's conftest mentions it)."""
    path = Path(item.path)
    for candidate in (path, path.parent / "conftest.py"):
        try:
            text = candidate.read_text(encoding="utf-8")
        except OSError:
            continue
        if "PySide6" in text or "qtbot" in text:
            return True
    return False


class ChildRunFailed(Exception):
    """The child pytest run of the folder failed; the message is its report."""


class FolderInChild(pytest.Item):
    """A folder's selected tests, run by a child ``pytest`` with its own QApplication."""

    def __init__(self, *, nodeids: list[str], flag: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.nodeids = nodeids
        self.flag = flag

    def runtest(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", *self.nodeids],
            cwd=ROOT,
            env={**os.environ, self.flag: "1"},
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        print(done.stdout[-3000:])
        if done.returncode not in (0, 5):
            raise ChildRunFailed(
                f"{self.path.name} in a child process exited {done.returncode}:\n"
                + done.stdout[-30000:]
                + ("\n--- stderr ---\n" + done.stderr[-20000:] if done.stderr.strip() else "")
            )

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str:  # type: ignore[override]
        if isinstance(excinfo.value, ChildRunFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"tests/{self.path.name} ({len(self.nodeids)} tests, own process)"


def delegate_folder(folder: Path, flag: str, items: list[pytest.Item]) -> bool:
    """Replace ``folder``'s items by one :class:`FolderInChild` when other Qt tests are selected.

    Returns whether it did (the folder's session fixtures then have nothing to start).
    ``flag`` is the environment variable that marks the child run, which runs in place.
    """
    if os.environ.get(flag):
        return False
    ours = [item for item in items if _inside(folder, item)]
    if not ours or not any(makes_qt_objects(i) for i in items if not _inside(folder, i)):
        return False
    parent = next(node for node in ours[0].listchain() if getattr(node, "path", None) == folder)
    assert isinstance(parent, pytest.Collector)
    runner = FolderInChild.from_parent(
        parent, name="in_own_process", nodeids=[item.nodeid for item in ours], flag=flag
    )
    first = items.index(ours[0])
    items[:] = [item for item in items if not _inside(folder, item)]
    items.insert(first, runner)
    return True
