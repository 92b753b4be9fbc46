"""Fixtures of the server tests: a real PostgreSQL for the store's second backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import PostgresServer, available


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL 15 cluster for the whole run (each test takes a database of its own)."""
    if not available():
        pytest.skip("PostgreSQL 15 is not installed (installer/bootstrap installs it)")
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()
