"""Fixtures: a real signaling server on loopback with a real SQLite file, and clients for it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gui.bots import echo_test
from signaling.server import RateLimits, ServerConfig, SignalingServer
from signaling.server.credentials import HashParameters
from tests.pg import PostgresServer
from tests.pg import available as pg_available
from tests.wire import WireClient, befriend

#: Qt objects do not outlive their test; garbage is collected on the Qt thread (see there).
pytest_plugins = ["tests.qt_hygiene"]

#: Argon2id still, with a tiny cost: tests register hundreds of users.
FAST_HASH = HashParameters(time_cost=1, memory_kib=1024, parallelism=1)
#: Limits far above anything the functional tests do; rate limits have their own tests.
LOOSE_LIMITS = RateLimits(
    requests_per_s=10_000,
    request_burst=10_000,
    login_failures_per_user=1000,
    login_failures_per_address=1000,
)


def make_config(tmp_path: Path, **overrides: Any) -> ServerConfig:
    base = ServerConfig(
        host="127.0.0.1",
        port=0,
        db_path=tmp_path / "parley.db",
        hash_parameters=FAST_HASH,
        rate_limits=LOOSE_LIMITS,
    )
    return dataclasses.replace(base, **overrides)


ServerFactory = Callable[..., Awaitable[SignalingServer]]
ClientFactory = Callable[..., Awaitable[WireClient]]


@pytest.fixture
async def make_server(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    started: list[SignalingServer] = []

    async def make(echo_bot: bool = True, **overrides: Any) -> SignalingServer:
        """A started server, with the Echo Test plugged in as ``parley-server`` does."""
        bots = [echo_test()] if echo_bot else []
        server = SignalingServer(make_config(tmp_path, **overrides), bots=bots)
        await server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        if server.hub is not None:
            await server.stop()


@pytest.fixture
async def server(make_server: ServerFactory) -> SignalingServer:
    return await make_server()


@pytest.fixture
async def connect(server: SignalingServer) -> AsyncIterator[ClientFactory]:
    clients: list[WireClient] = []

    async def open_client(url: str | None = None) -> WireClient:
        client = await WireClient.open(url or server.url)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


@pytest.fixture
async def user(connect: ClientFactory) -> Callable[[str], Awaitable[WireClient]]:
    """Register a user on a new connection."""

    async def make(name: str, **extra: Any) -> WireClient:
        client = await connect()
        await client.register(name, **extra)
        return client

    return make


@pytest.fixture
async def friends(
    server: SignalingServer,
) -> AsyncIterator[Callable[..., Awaitable[list[WireClient]]]]:
    """Register users and make each pair accepted contacts."""
    made: list[WireClient] = []

    async def make(*names: str) -> list[WireClient]:
        clients = await befriend(server.url, *names)
        made.extend(clients)
        return clients

    yield make
    for client in made:
        await client.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL 15 cluster for the whole run (each test takes a database of its own)."""
    if not pg_available():
        pytest.skip("PostgreSQL 15 is not installed (installer/bootstrap installs it)")
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Profiles, settings and the embedded server's advertisement under a temporary folder."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir(mode=0o700)
    return tmp_path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Destroy Qt objects while the QApplication exists, as ``parley`` does when it quits."""
    import sys

    if "PySide6.QtWidgets" not in sys.modules:
        return
    from PySide6.QtWidgets import QApplication

    from gui.app.main import destroy_qt

    app = QApplication.instance()
    if isinstance(app, QApplication):
        destroy_qt(app)
