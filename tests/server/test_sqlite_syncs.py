"""Which of the SQLite store's commits sync the disk, counted by ``strace``, and its checkpoints.

A child process opens a real :class:`SQLiteStore` under ``strace -f`` and works in phases, each
marked in the trace by a ``mkdir`` that fails. The calls' history rows must commit without a sync
(``synchronous=NORMAL``: a killed server keeps them, tests/server/test_durability.py), a checkpoint
must sync the log they are in, and every account write must still be synced (a power cut cannot
undo it).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from signaling.server.store.sqlite_checkpoints import Checkpointer

CHILD = r"""
import asyncio, os, sqlite3, sys
from signaling.protocol.messages import Media
from signaling.server.store import CallRecord, SQLiteStore
from signaling.server.store.sqlite_checkpoints import Checkpointer

def phase(name):
    try:
        os.mkdir(f"/nonexistent-parley-phase/{name}")
    except OSError:
        pass

async def main(path):
    store = SQLiteStore(path)
    await store.open()
    await store.create_user("ada", "Ada", "h")
    await store.create_user("bob", "Bob", "h")
    store.checkpoints.stop()  # its syncs are counted in a phase of their own
    phase("calls")
    for n in range(50):
        await store.insert_call(CallRecord(f"c{n}", "ada", "bob", Media(True, False), 100.0 + n))
        await store.call_answered(f"c{n}", 101.0 + n)
        await store.call_ended(f"c{n}", 102.0 + n, "hangup")
    phase("checkpoint")
    db = sqlite3.connect(path, isolation_level=None)
    Checkpointer(path).checkpoint(db)
    db.close()
    phase("accounts")
    for n in range(10):
        await store.create_user(f"u{n}", f"User {n}", "h")
    phase("end")
    await store.close()

asyncio.run(main(sys.argv[1]))
"""


def syncs_by_phase(trace: str) -> dict[str, int]:
    """``fsync``/``fdatasync`` calls in the trace, counted per phase."""
    counts: dict[str, int] = {}
    current = "open"
    for line in trace.splitlines():
        marker = re.search(r'mkdir\("/nonexistent-parley-phase/(\w+)"', line)
        if marker:
            current = marker.group(1)
        elif re.search(r"\b(fsync|fdatasync)\(", line):
            counts[current] = counts.get(current, 0) + 1
    return counts


def test_calls_commit_without_a_sync_checkpoints_and_accounts_with_one(tmp_path: Path) -> None:
    strace = shutil.which("strace")
    assert strace, "strace is missing: installer/bootstrap installs it"
    out = tmp_path / "trace"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=fsync,fdatasync,mkdir", "-o", str(out),
         sys.executable, "-c", CHILD, str(tmp_path / "parley.db")],
        check=True, timeout=120, env=env,
    )  # fmt: skip
    counts = syncs_by_phase(out.read_text())
    assert counts.get("calls", 0) == 0, counts  # 150 commits, none synced
    assert counts.get("checkpoint", 0) >= 1, counts  # the log holding them, then the file
    assert counts.get("accounts", 0) >= 10, counts  # one sync per account at least


def test_the_checkpointer_copies_the_log_into_the_file_and_stops(tmp_path: Path) -> None:
    """Rows written with the writer's own checkpoints off reach the database file (not only the
    log) once the checkpointer has run; stop() ends its thread."""
    path = tmp_path / "parley.db"
    db = sqlite3_writer(path)
    db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, body BLOB)")
    db.executemany("INSERT INTO t VALUES (?, ?)", ((n, b"x" * 1024) for n in range(1000)))
    before = path.stat().st_size
    assert before < 100_000 and (tmp_path / "parley.db-wal").stat().st_size > 1_000_000
    checkpoints = Checkpointer(str(path), interval=0.05)
    checkpoints.start()
    try:
        deadline = time.monotonic() + 20
        while path.stat().st_size < 1_000_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size > 1_000_000, (before, path.stat().st_size)
        assert checkpoints.runs >= 1
    finally:
        checkpoints.stop()
        db.close()
    assert not checkpoints.running


def sqlite3_writer(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode that never checkpoints by itself."""
    db = sqlite3.connect(path, isolation_level=None)
    assert db.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    db.execute("PRAGMA wal_autocheckpoint = 0")
    return db
