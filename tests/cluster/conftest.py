"""Fixtures: one real redis-server for the folder (PostgreSQL is the root ``postgres``
fixture), and a service of several real ``parley-server`` processes
(``--db postgresql://… --bus redis://…``) per test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.cli.procs import ServerProcess
from tests.cluster.redis_server import RedisServer
from tests.cluster.redis_server import available as redis_available
from tests.pg import PostgresServer
from tests.stopping import terminate


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


Service = Callable[..., Awaitable[list[ServerProcess]]]


@pytest.fixture
async def service(
    postgres: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[Service]:
    """``await service(3)``: three instances on one fresh database and an emptied Redis; the
    first one started is the coordinator. ``await service(1)`` again starts one more on the
    same pair."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    with redis.Redis(host="127.0.0.1", port=redis_server.port) as client:
        client.flushall()
    database = postgres.new_database()
    started: list[ServerProcess] = []

    async def start(count: int, *extra: str) -> list[ServerProcess]:
        new: list[ServerProcess] = []
        for _ in range(count):
            instance = ServerProcess(
                "--port", "0", "--db", database, "--bus", redis_server.url, *extra
            )
            started.append(instance)
            # One at a time: the first takes the coordinator's lease, the others join it.
            await asyncio.to_thread(instance.wait_ready, 60.0)
            new.append(instance)
        return new

    yield start
    for instance in started:
        await asyncio.to_thread(terminate, instance.proc, 15.0)
