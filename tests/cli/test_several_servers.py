"""``parley-cli --server A --server B``: two real ``parley-server`` processes over one real
PostgreSQL (so an account and its token are good on both). The one serving a waiting client
is SIGKILLed: the client is online again through the other by itself, with the same token,
and a call placed through that one reaches it and connects.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pg
from tests.cli.procs import Launcher, ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def instances(postgres: pg.PostgresServer) -> Iterator[list[ServerProcess]]:
    """Two parley-server processes over one fresh database; any still running is stopped
    at the end, and none may have logged a traceback."""
    database = postgres.new_database()
    started: list[ServerProcess] = []
    try:
        for _ in range(2):  # one after the other: the first one migrates the database
            process = ServerProcess("--port", "0", "--db", database)
            started.append(process)
            process.wait_ready()
        yield started
    finally:
        for process in started:
            if process.running:
                process.stop()
            else:
                process.kill()
    for process in started:
        assert "Traceback" not in process.stderr, process.stderr[-4000:]


@pytest.fixture
def server(instances: list[ServerProcess]) -> ServerProcess:
    """The first instance: where the ``launch`` fixture's clients register."""
    return instances[0]


def test_a_bad_server_address_exits_2_naming_it(launch: Launcher) -> None:
    child = launch.raw_cli(
        "--server", launch.url, "--server", "http://example.org/ws",
        "--user", "x", "--password", "whatever-pw", "contacts",
    )  # fmt: skip
    assert child.finish(30) == 2
    assert "argument --server: 'http://example.org/ws' is not a ws:// or wss:// address" in (
        child.stderr
    )


def test_killed_server_the_client_moves_to_the_other_and_is_called_there(
    launch: Launcher, instances: list[ServerProcess], tmp_path: Path
) -> None:
    first, second = instances
    launch.befriend(("ann-two", "bo-two"))
    mark = first.log_mark()
    callee = launch.cli(
        "bo-two",
        "--server",
        second.url,
        "answer",
        "--wait",
        "120",
        name="parley-cli[bo-two]",
        verbose=True,
    )
    first.wait_logged_in("bo-two", mark)  # the first address given, while both are up
    callee.wait_stderr("signaling online", 30)  # and the client has the login's reply

    mark = second.log_mark()
    first.kill()  # SIGKILL: no goodbye to anyone
    _, moved = callee.wait_event("reconnected", 40)
    assert moved["server"] == second.url
    second.wait_logged_in("bo-two", mark)  # by token: no password sent again

    caller = launch.cli("ann-two", "call", "bo-two", "--duration", "3", server=second.url)
    assert caller.finish(90) == 0, caller.describe()
    assert callee.finish(30) == 0, callee.describe()
    (incoming,) = callee.named("incoming")
    assert incoming["caller"]["username"] == "ann-two"
    for child in (caller, callee):
        assert [m["state"] for m in child.named("state")][-2:] == ["connected", "ended"]
        assert child.summary["reason"] == "hangup"
        child.assert_clean()
