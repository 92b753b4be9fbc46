"""Fixtures of the server tests: the store's second backend on the root ``postgres`` fixture.

``PARLEY_TEST_DB=postgres pytest tests/server`` runs the server's functional tests with their
servers on PostgreSQL (a fresh database per test) instead of a SQLite file; tests that read
the SQLite file themselves are marked ``sqlite_only`` and skipped then.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from signaling.server import SignalingServer
from tests.conftest import ServerFactory
from tests.pg import PostgresServer

ON_POSTGRES = os.environ.get("PARLEY_TEST_DB") == "postgres"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: reads or damages the SQLite file itself")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if ON_POSTGRES:
        skip = pytest.mark.skip(reason="reads the SQLite file (PARLEY_TEST_DB=postgres)")
        for item in items:
            if item.get_closest_marker("sqlite_only"):
                item.add_marker(skip)


@pytest.fixture
def make_server(make_server: ServerFactory, request: pytest.FixtureRequest) -> ServerFactory:
    """The root ``make_server``; with ``PARLEY_TEST_DB=postgres`` its servers share one fresh
    PostgreSQL database per test (as they share one SQLite file otherwise)."""
    if not ON_POSTGRES:
        return make_server
    postgres: PostgresServer = request.getfixturevalue("postgres")
    url = postgres.new_database()

    async def make(echo_bot: bool = True, **overrides: Any) -> SignalingServer:
        overrides.setdefault("db_path", url)
        return await make_server(echo_bot, **overrides)

    return make
