"""``SignalingClient`` given several servers of one service: real in-process servers that
share one database (one SQLite file, as instances share one PostgreSQL), so that an account
and its token are good on each.

The one that answers is used; a server whose certificate is refused is said and skipped
without blocking the others; a dropped connection comes back through another server by
itself, with the same token; when none answers, each one's reason is given.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gui.core.backoff import Backoff
from gui.core.pinning import KnownServers
from gui.core.signaling_client import LinkState, NotConnected, SignalingClient, TlsRefused
from tests.conftest import ServerFactory
from tests.pg import free_port
from tests.tls import make_server_files
from tests.waiting import until

FAST = Backoff(initial=0.05, maximum=0.2)


def closed_url() -> str:
    """An address nothing listens on."""
    return f"ws://127.0.0.1:{free_port()}/ws"


async def test_the_first_server_that_answers_is_used(make_server: ServerFactory) -> None:
    server = await make_server()
    dead = closed_url()
    client = SignalingClient([dead, server.url], connect_timeout=5)
    try:
        await client.connect()
        await client.register("several-a", "correct horse")
        assert client.url == server.url and client.state is LinkState.ONLINE
        assert client.servers.order() == [server.url, dead]  # the good one first next time
    finally:
        await client.close()


async def test_none_answers_and_each_reason_is_given() -> None:
    first, second = closed_url(), closed_url()
    client = SignalingClient([first, second], connect_timeout=5)
    with pytest.raises(NotConnected) as info:
        await client.connect()
    assert not isinstance(info.value, TlsRefused)
    text = str(info.value)
    assert text.startswith("no server could be reached: ")
    assert f"cannot reach the server at {first}" in text
    assert f"cannot reach the server at {second}" in text
    assert client.state is LinkState.OFFLINE


async def test_a_refused_certificate_is_said_and_the_next_server_used(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    files = make_server_files(tmp_path)
    untrusted = await make_server(tls_cert=files.cert, tls_key=files.key)  # an unknown authority
    plain = await make_server()
    client = SignalingClient([untrusted.url, plain.url], connect_timeout=5)
    events: list[dict[str, Any]] = []
    client.on_event(events.append)
    try:
        await client.connect()
        await client.register("several-tls", "correct horse")
        assert client.url == plain.url
        (refused,) = [e for e in events if e["type"] == "client.server_refused"]
        assert refused["url"] == untrusted.url
        assert isinstance(refused["error"], TlsRefused) and refused["error"].untrusted
        assert "not trusted" in str(refused["error"])
    finally:
        await client.close()
    # Refused everywhere: one TlsRefused naming each server.
    alone = SignalingClient([untrusted.url, untrusted.url.replace("/ws", "/ws/")])
    with pytest.raises(TlsRefused, match=r"^every server was refused: wss://"):
        await alone.connect()


async def test_a_pin_mismatch_on_one_server_does_not_block_the_other(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    files = make_server_files(tmp_path)
    pinned = await make_server(tls_cert=files.cert, tls_key=files.key)
    plain = await make_server()
    known = KnownServers(tmp_path / "known_servers.json")
    address = pinned.url.removeprefix("wss://").removesuffix("/ws")
    known.path.write_text(json.dumps({address: "00" * 32}))  # pinned: another certificate
    client = SignalingClient([pinned.url, plain.url], known_servers=known, connect_timeout=5)
    events: list[dict[str, Any]] = []
    client.on_event(events.append)
    try:
        await client.connect()
        await client.register("several-pin", "correct horse")
        assert client.url == plain.url
        (refused,) = [e for e in events if e["type"] == "client.server_refused"]
        assert refused["url"] == pinned.url and not refused["error"].untrusted
        assert f"the certificate of the server at {address} has changed" in str(refused["error"])
    finally:
        await client.close()


async def test_a_dropped_connection_comes_back_through_another_server(
    make_server: ServerFactory,
) -> None:
    first = await make_server()
    second = await make_server()
    client = SignalingClient([first.url, second.url], backoff=FAST, connect_timeout=5)
    events: list[dict[str, Any]] = []
    client.on_event(events.append)
    try:
        await client.connect()
        user = await client.register("several-drop", "correct horse")
        assert client.url == first.url
        await first.stop()
        await until(lambda: client.state is LinkState.ONLINE and client.url == second.url, 20)
        assert {"type": "client.reconnected", "url": second.url} in events
        assert client.user == user  # logged in again with the same token, on the other server
        reply = await asyncio.wait_for(client.request("contacts.list"), 10)
        assert [c["username"] for c in reply["contacts"]] == ["echo"]
        assert client.servers.order()[0] == second.url
    finally:
        await client.close()
