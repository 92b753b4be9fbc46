"""Fixtures: one real redis-server for the folder (PostgreSQL is the root ``postgres``
fixture), and a service of several real ``parley-server`` processes
(``--db postgresql://… --bus redis://…``) per test."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.cluster.redis_server import RedisServer
from tests.cluster.redis_server import available as redis_available
from tests.pg import PostgresServer
from tests.stopping import terminate

ROOT = Path(__file__).resolve().parents[2]
URL_RE = re.compile(r"listening on (ws\S+)")


class Instance:
    """One ``parley-server`` child process of the service; its log goes to a file."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log_path = log
        self.args = args
        self.url = ""
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gui.server", *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
        )

    def wait_ready(self, timeout: float = 60.0) -> str:
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
        self.kill()
        raise AssertionError(f"instance did not start: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL: the instance dies as a crashed host would."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=20)
        self._log.close()

    def stop(self) -> None:
        terminate(self.proc, 15.0)
        self._log.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the folder, emptied before each test."""
    if not redis_available():
        pytest.skip("redis-server is not installed (installer/bootstrap installs it)")
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


Service = Callable[..., Awaitable[list[Instance]]]


@pytest.fixture
async def service(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[Service]:
    """``await service(3)``: three instances on one fresh database and an emptied Redis; the
    first one started is the coordinator. ``service.add()`` starts one more on the same pair."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    with redis.Redis(host="127.0.0.1", port=redis_server.port) as client:
        client.flushall()
    database = postgres.new_database()
    started: list[Instance] = []

    async def start(count: int, *extra: str) -> list[Instance]:
        new: list[Instance] = []
        for _ in range(count):
            n = len(started) + 1
            instance = Instance(
                tmp_path / f"instance{n}.log",
                "--port",
                "0",
                "--db",
                database,
                "--bus",
                redis_server.url,
                *extra,
            )
            started.append(instance)
            # One at a time: the first takes the coordinator's lease, the others join it.
            await asyncio.to_thread(instance.wait_ready)
            new.append(instance)
        return new

    yield start
    for instance in started:
        if instance.proc.poll() is None:
            await asyncio.to_thread(instance.stop)
