"""``--bus`` given wrong: one line on stderr and exit status 2, as the server's other start-up
errors are; never a traceback, never a password."""

from __future__ import annotations

from tests.pg import PostgresServer, free_port
from tests.server.process import run_server


def test_bus_needs_a_postgresql_database(tmp_path) -> None:
    result = run_server("--port", "0", "--db", str(tmp_path / "p.db"), "--bus", "redis://x:1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "parley-server: error: --bus needs a PostgreSQL --db that every instance shares"
    )


def test_a_bus_url_that_is_not_redis(postgres: PostgresServer) -> None:
    result = run_server("--port", "0", "--db", postgres.url(), "--bus", "http://127.0.0.1:1")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("parley-server: error: --bus takes redis://HOST:PORT")
    assert "Traceback" not in result.stderr


def test_an_unreachable_redis(postgres: PostgresServer) -> None:
    url = f"redis://:secret-pw@127.0.0.1:{free_port()}/0"
    result = run_server("--port", "0", "--db", postgres.new_database(), "--bus", url)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("parley-server: error: cannot reach Redis at redis://:***@127.0.0.1:")
    assert "Traceback" not in result.stderr and "secret-pw" not in result.stderr
