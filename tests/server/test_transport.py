"""The WebSocket and HTTP surface: subprotocol, frame limits, probes, shutdown."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from signaling.protocol.messages import Json
from signaling.server import SignalingServer
from signaling.server.app import WebSocketPeer
from tests.waiting import until
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


async def _connected(server: SignalingServer) -> tuple[ClientConnection, WebSocketPeer]:
    """A client connected to ``server`` (the only one), and the server's side of it."""
    ws = await connect(server.url, subprotocols=[Subprotocol("parley.v1")])
    await until(lambda: len(server._peers) == 1, 5, "the server's side of the connection")
    (peer,) = server._peers.values()
    return ws, peer


async def _slow_reader(server: SignalingServer) -> tuple[ClientConnection, WebSocketPeer]:
    """A client that reads only when told, and the server's side of its connection, whose
    socket sends little at a time: what the client leaves unread (beyond its kernel's receive
    buffer) soon stops the server's writes."""
    ws, peer = await _connected(server)
    _send_buffer(peer, 4096)
    return ws, peer


def _send_buffer(peer: WebSocketPeer, size: int) -> None:
    peer.ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def _message(n: int) -> Json:
    return {"type": "test.event", "n": n, "pad": "x" * 1000}


async def test_a_client_that_reads_late_gets_every_message_in_order(make_server) -> None:
    """Messages sent while the socket is full wait in the connection's queue; those sent
    after it drains must not overtake them (they are written straight to the socket only
    when nothing waits)."""
    server = await make_server(max_send_queue=10_000)
    ws, peer = await _slow_reader(server)
    sent = 0
    for _ in range(100):  # 1 MB, far more than the sockets and the client's queue hold
        for _ in range(10):
            peer.send(_message(sent))
            sent += 1
        await asyncio.sleep(0)
    assert peer._queue.qsize() > 0  # the condition under test: writes had to wait
    _send_buffer(peer, 1 << 20)  # then read at loopback's pace, not 4 kB per round trip
    received: list[int] = []

    async def read(count: int) -> None:
        while len(received) < count:
            received.append(json.loads(await asyncio.wait_for(ws.recv(), 10))["n"])

    reading = asyncio.create_task(read(2 * sent))
    for _ in range(sent):  # more while the queue drains, and after
        peer.send(_message(sent))
        sent += 1
        await asyncio.sleep(0)
    await reading
    assert received == list(range(sent))
    await ws.close()


async def test_a_client_that_stops_reading_is_closed_with_1008(make_server) -> None:
    server = await make_server(max_send_queue=50)
    ws, peer = await _slow_reader(server)
    for n in range(1000):
        peer.send(_message(n))
        if n % 10 == 0:
            await asyncio.sleep(0)
    received = 0
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 10)
            received += 1
    assert ws.close_code == 1008
    assert 0 < received < 1000  # what was written before the queue overflowed


async def test_the_messages_of_one_turn_go_out_in_one_write(make_server) -> None:
    server = await make_server()
    ws, peer = await _connected(server)
    transport = peer.ws.transport
    writes: list[bytes] = []
    real_write = transport.write

    def write(data: bytes) -> None:
        writes.append(data)
        real_write(data)

    transport.write = write
    for n in range(3):
        peer.send(_message(n))
    received = [json.loads(await asyncio.wait_for(ws.recv(), 10))["n"] for _ in range(3)]
    assert received == [0, 1, 2]
    assert len(writes) == 1
    await ws.close()


async def test_a_message_sent_with_no_loop_running_is_delivered(make_server) -> None:
    """In the app, Qt steps the embedded server's pending callbacks outside the loop while it
    shuts down: a send then finds no running loop, and must still go out (it once failed the
    request with ``internal``)."""
    server = await make_server()
    ws, peer = await _connected(server)
    running = asyncio.events._get_running_loop()
    asyncio.events._set_running_loop(None)
    try:
        peer.send(_message(7))
    finally:
        asyncio.events._set_running_loop(running)
    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["n"] == 7
    await ws.close()
