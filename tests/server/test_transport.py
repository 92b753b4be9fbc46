"""The WebSocket and HTTP surface: subprotocol, frame limits, probes, shutdown."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.wire import WireClient


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_healthz_metrics_and_unknown_paths(server, friends) -> None:
    alice, _bob = await friends("alice", "bob")
    await alice.call("nonsense.type")
    status, body = await http_get(server.port, "/healthz")
    assert (status, body) == (200, "ok\n")
    status, body = await http_get(server.port, "/metrics")
    assert status == 200
    assert "parley_connections 2" in body
    assert "parley_logged_in_users 2" in body
    assert 'parley_messages_in_total{type="register"} 2' in body
    assert 'parley_errors_total{code="unknown_type"} 1' in body
    assert 'parley_messages_out_total{type="ok"}' in body
    assert (await http_get(server.port, "/nope"))[0] == 404


async def test_subprotocol_is_negotiated(server) -> None:
    async with connect(server.url, subprotocols=["parley.v1"]) as ws:
        assert ws.subprotocol == "parley.v1"
    async with connect(server.url) as ws:  # lenient: a client that asks for none is served
        assert ws.subprotocol is None
    with pytest.raises(InvalidStatus):
        async with connect(server.url, subprotocols=["chat"]):
            pass


async def test_oversized_frame_closes_with_1009(server) -> None:
    client = await WireClient.open(server.url, max_size=None)
    await client.send('{"type":"login","token":"' + "x" * (64 * 1024) + '"}')
    await client.ws.wait_closed()
    assert client.ws.close_code == 1009


async def test_invalid_utf8_closes_with_1007(server) -> None:
    client = await WireClient.open(server.url)
    # Send a text frame with bytes that are not UTF-8, below the library's checks.
    from websockets.frames import Frame, Opcode

    client.ws.protocol.send_frame(Frame(Opcode.TEXT, b'{"type":"\xff"}'))
    client.ws.send_data()
    await client.ws.wait_closed()
    assert client.ws.close_code == 1007


async def test_binary_frames_get_bad_message_and_the_connection_goes_on(server) -> None:
    client = await WireClient.open(server.url)
    await client.send(b'{"type":"login"}')
    reply = await client.next_event("error")
    assert reply["code"] == "bad_message" and "re" not in reply
    await client.register("alice")
    await client.close()


async def test_stop_closes_every_connection_with_1001(make_server) -> None:
    server = await make_server()
    clients = [await WireClient.open(server.url) for _ in range(3)]
    await clients[0].register("alice")
    await server.stop()
    for client in clients:
        await client.ws.wait_closed()
        assert client.ws.close_code == 1001
    with pytest.raises((OSError, ConnectionClosed)):
        await WireClient.open(server.url)


async def test_keepalive_pings_are_answered(make_server) -> None:
    server = await make_server()
    client = await WireClient.open(server.url, ping_interval=None)
    latency = await asyncio.wait_for(await client.ws.ping(), 5)
    assert latency is not None
    await client.close()
