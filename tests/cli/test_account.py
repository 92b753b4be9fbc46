"""``parley-cli account …`` against a real ``parley-server``: each action, and bad input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.procs import CliProcess, Launcher, ServerProcess, password_of, serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(tmp_path_factory.mktemp("cli-account"), "--no-echo") as process:
        yield process


def done(child: CliProcess, event: str, expect: int = 0) -> dict:
    """The one line ``event`` of a command that exits with ``expect``."""
    assert child.finish(timeout=60, expect=expect) == expect, child.describe()
    _, message = child.wait_event(event, timeout=1)
    return message


def test_block_unblock_and_list(launch: Launcher) -> None:
    launch.befriend(("ann", "ben"))
    blocked = done(launch.cli("ann", "account", "block", "Ben"), "blocked")
    assert blocked["user"]["username"] == "ben"
    listed = done(launch.cli("ann", "account", "blocked"), "blocked_users")
    assert [u["username"] for u in listed["users"]] == ["ben"]
    refused = launch.cli("ben", "add", "ann")
    assert refused.finish(timeout=60, expect=1) == 1
    assert "does not accept requests from you" in refused.stderr
    done(launch.cli("ann", "account", "unblock", "ben"), "unblocked")
    assert done(launch.cli("ann", "account", "blocked"), "blocked_users")["users"] == []
    assert done(launch.cli("ben", "add", "ann"), "contact")["contact"]["status"] == "outgoing"


def test_password_change_then_sign_out_others(launch: Launcher) -> None:
    launch.register("cleo")
    changed = done(
        launch.cli("cleo", "account", "password", "--new", "a brand new one"), "password_changed"
    )
    assert changed["signed_out"] >= 1  # the registering run's session
    old = launch.cli("cleo", "contacts")
    assert old.finish(timeout=60, expect=1) == 1
    assert "bad_credentials" in old.stderr
    again = launch.cli("cleo", "account", "sign-out-others", password="a brand new one")
    assert done(again, "signed_out_others")["signed_out"] >= 1  # the password change's run
    short = launch.cli("cleo", "account", "password", "--new", "short", password="a brand new one")
    assert short.finish(timeout=60, expect=2) == 2
    assert "--new: The new password needs 8" in short.stderr


def test_delete_needs_yes_and_then_deletes(launch: Launcher) -> None:
    launch.befriend(("dora", "eli"))
    refused = launch.cli("dora", "account", "delete")
    assert refused.finish(timeout=60, expect=2) == 2
    assert "add --yes" in refused.stderr
    wrong = launch.cli("dora", "account", "delete", "--yes", password="not the password")
    assert wrong.finish(timeout=60, expect=1) == 1
    assert "bad_credentials" in wrong.stderr
    assert done(launch.cli("dora", "account", "delete", "--yes"), "account_deleted")[
        "username"
    ] == ("dora")
    contacts = done(launch.cli("eli", "contacts"), "contacts")["contacts"]
    assert [c["username"] for c in contacts] == ["echo"]  # dora is gone
    gone = launch.cli("dora", "contacts", password=password_of("dora"))
    assert gone.finish(timeout=60, expect=1) == 1
    taken = launch.cli("dora", "contacts", register=True, password="someone else's")
    assert taken.finish(timeout=60, expect=1) == 1
