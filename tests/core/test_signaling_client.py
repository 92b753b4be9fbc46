"""The client's request/reply matching, backoff, and reconnection against a real server."""

from __future__ import annotations

import asyncio

import pytest

from gui.core.backoff import Backoff
from gui.core.signaling_client import (
    LinkState,
    NotConnected,
    RequestError,
    RequestTracker,
    SignalingClient,
    parse_server_message,
)
from tests.tcp_proxy import TcpProxy
from tests.waiting import until


def test_backoff_grows_to_the_cap_with_full_jitter() -> None:
    backoff = Backoff(initial=0.5, factor=2, maximum=4, minimum=0.1, rand=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    low = Backoff(rand=lambda: 0.0)
    assert low.next_delay() == low.minimum


async def test_tracker_pairs_replies_and_fails_the_rest() -> None:
    tracker = RequestTracker()
    rid, future, message = tracker.new("contacts.list", {})
    assert message == {"type": "contacts.list", "id": rid}
    assert not tracker.reply({"type": "ok", "re": "unknown"})
    assert not tracker.reply({"type": "presence"})
    assert tracker.reply({"type": "ok", "re": rid})
    assert (await future)["re"] == rid
    _, other, _ = tracker.new("logout", {})
    tracker.fail_all(NotConnected("gone"))
    with pytest.raises(NotConnected):
        await other


def test_bad_server_messages_are_skipped() -> None:
    assert parse_server_message(b"\x00") is None
    assert parse_server_message("nope") is None
    assert parse_server_message("[1]") is None
    assert parse_server_message('{"type": 3}') is None
    assert parse_server_message('{"type": "presence"}') == {"type": "presence"}


async def test_register_request_and_events(server) -> None:
    alice = SignalingClient(server.url)
    bob = SignalingClient(server.url)
    states: list[LinkState] = []
    alice.on_state(states.append)
    await alice.connect()
    await alice.register("alice", "correct horse")
    await bob.connect()
    await bob.register("bob", "correct horse", display_name="Bob")
    events: asyncio.Queue = asyncio.Queue()
    bob.on_event(events.put_nowait)
    reply = await alice.request("contacts.request", username="bob")
    assert reply["contact"]["status"] == "outgoing"
    event = await asyncio.wait_for(events.get(), 5)
    assert event["type"] == "contact" and event["contact"]["username"] == "alice"
    with pytest.raises(RequestError) as info:
        await alice.request("contacts.accept", username="nobody")
    assert info.value.code == "not_found"
    assert states == [LinkState.CONNECTING, LinkState.CONNECTED, LinkState.ONLINE]
    await alice.close()
    await bob.close()
    assert alice.state is LinkState.OFFLINE


async def test_unreachable_server_is_a_clear_error() -> None:
    client = SignalingClient("ws://127.0.0.1:9/ws", connect_timeout=2)
    with pytest.raises(NotConnected, match="cannot reach the server"):
        await client.connect()
    assert client.state is LinkState.OFFLINE
    with pytest.raises(NotConnected, match="not a ws"):
        await SignalingClient("http://example.invalid/").connect()


async def test_reconnects_by_itself_and_logs_in_with_its_token(server) -> None:
    proxy = TcpProxy(server.port)
    await proxy.start()
    client = SignalingClient(proxy.url(), backoff=Backoff(initial=0.05, maximum=0.2))
    states: list[LinkState] = []
    client.on_state(states.append)
    events: asyncio.Queue = asyncio.Queue()
    client.on_event(events.put_nowait)
    await client.connect()
    await client.register("carol", "correct horse")
    proxy.accepting = False
    proxy.cut()
    # The cut noticed (on a loaded machine, not always within half a second), then a few
    # failed attempts while the "network" is down.
    await until(lambda: client.state is LinkState.RECONNECTING, 10, "reconnecting")
    await asyncio.sleep(0.5)
    assert client.state is LinkState.RECONNECTING
    proxy.accepting = True
    # A request made while reconnecting waits for the connection and goes through.
    reply = await client.request("contacts.list")
    assert reply["contacts"][0]["username"] == "echo"
    assert (await asyncio.wait_for(events.get(), 5))["type"] == "client.reconnected"
    assert states[-2:] == [LinkState.RECONNECTING, LinkState.ONLINE]
    await client.close()
    await proxy.stop()


async def test_a_revoked_token_signs_out_instead_of_retrying(server) -> None:
    proxy = TcpProxy(server.port)
    await proxy.start()
    client = SignalingClient(proxy.url(), backoff=Backoff(initial=0.05, maximum=0.1))
    events: asyncio.Queue = asyncio.Queue()
    client.on_event(events.put_nowait)
    await client.connect()
    await client.register("dave", "correct horse")
    other = SignalingClient(server.url)
    await other.connect()
    await other.login(token=client.token)
    await other.logout()  # revokes the shared token
    proxy.cut()
    event = await asyncio.wait_for(events.get(), 5)
    assert event["type"] == "client.signed_out"
    assert client.state is LinkState.OFFLINE and client.token is None
    await client.close()
    await other.close()
    await proxy.stop()
