"""Logins on an edge instance: the edge checks the credentials (the store's reads, Argon2) and
the coordinator only binds the session. Real PostgreSQL, Redis and ``parley-server``s."""

from __future__ import annotations

import asyncio

import pytest

from tests.cluster.conftest import Service
from tests.cluster.test_calls import metrics_of
from tests.wire import ServerError, WireClient


async def refused(client: WireClient, kind: str, **fields: object) -> str:
    """The error code of a request that must fail."""
    with pytest.raises(ServerError) as caught:
        await client.request(kind, **fields)
    return caught.value.code


async def test_logins_are_checked_on_their_edge(service: Service) -> None:
    """Password and token logins on an edge: refused there (logged there, not on the
    coordinator), accepted there and bound on the coordinator, which then serves them."""
    coordinator, edge = await service(2)
    first = await WireClient.open(edge.url)
    await first.register("ada")
    await first.close()

    wrong = await WireClient.open(edge.url)
    code = await refused(wrong, "login", username="ada", password="wrong horse")
    assert code == "bad_credentials"
    assert await refused(wrong, "login", token="no-such-token") == "bad_credentials"
    edge.wait_log(r"event=login\.failed conn=\S+ user=ada(\s|$)", 0)
    assert "login.failed" not in coordinator.stderr

    mark = coordinator.log_mark()
    by_password = await WireClient.open(edge.url)
    await by_password.login("ada")
    coordinator.wait_logged_in("ada", mark)
    assert by_password.user is not None and by_password.user["username"] == "ada"
    by_token = await WireClient.open(edge.url)
    reply = await by_token.request("login", token=by_password.token)
    assert reply["user"]["username"] == "ada" and reply["token"] == by_password.token
    # The coordinator has both sessions: they are served, and counted as one user.
    for client in (by_password, by_token):
        contacts = (await client.request("contacts.list"))["contacts"]
        assert [c["username"] for c in contacts] == ["echo"]
    metrics = await asyncio.to_thread(metrics_of, coordinator)
    assert metrics["parley_logged_in_users"] == 1.0
    # A second login on a logged-in connection is the coordinator's to refuse, as before.
    assert await refused(by_token, "login", token=by_password.token) == "bad_message"
    # The token the edge issued is a real one: it logs in on the coordinator too.
    direct = await WireClient.open(coordinator.url)
    await direct.request("login", token=by_password.token)
    await asyncio.gather(*(c.close() for c in (wrong, by_password, by_token, direct)))


async def test_a_malformed_login_on_an_edge_is_answered_as_before(service: Service) -> None:
    """A login the edge cannot read goes on to the coordinator, whose hub answers it."""
    _, edge = await service(2)
    client = await WireClient.open(edge.url)
    assert await refused(client, "login", username="ada") == "bad_message"
    assert await refused(client, "contacts.list") == "unauthenticated"
    await client.close()
