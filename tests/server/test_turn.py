"""TURN credentials from the server (protocol v1.1 ``ice_servers``): what a client gets at login
and from ``ice.servers``, coturn's REST scheme, the command line, and the client keeping them
fresh. (That coturn accepts them, and calls relay through it, is tests/net/test_paths.py.)"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gui.core.call_session import CallOptions
from gui.core.ice import IceServer, ServerIce, servers_for_call
from gui.core.signaling_client import SignalingClient
from signaling.protocol.ice import check_ice_url, parse_ice_servers
from signaling.server.turn import IceSettings, ice_servers, turn_credential
from tests.conftest import ServerFactory
from tests.wire import WireClient

SECRET = "a-secret-shared-with-coturn-0123"
TURN = ("turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349")
STUN = ("stun:turn.example.org:3478",)
SETTINGS = IceSettings(TURN, STUN, SECRET, ttl_s=3600)


def test_rest_credential_is_coturns_scheme() -> None:
    name, password = turn_credential(SECRET, "alice", 1_800_000_000)
    assert name == "1800000000:alice"
    expected = hmac.new(SECRET.encode(), name.encode(), hashlib.sha1).digest()
    assert base64.b64decode(password) == expected


def test_reply_fields_and_expiry() -> None:
    now = 1_800_000_000.7
    reply = ice_servers(SETTINGS, "alice", now)
    assert reply["ice_ttl"] == 3600
    stun, turn = reply["ice_servers"]
    assert stun == {"urls": list(STUN)}
    assert turn["urls"] == list(TURN) and turn["username"] == "1800003600:alice"
    assert parse_ice_servers(reply) == (reply["ice_servers"], 3600)


@pytest.mark.parametrize(
    "url",
    [
        "http://x",
        "turn:",
        "turn:host:0",
        "turn:host:70000",
        "turns:host?transport=udp",
        "stun:host?transport=tcp",
        "turn:user@host",
        "turn:host?transport=sctp",
        "turn:host\n",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        check_ice_url(url)


@pytest.mark.parametrize(
    "reply",
    [
        {"ice_servers": "turn:x", "ice_ttl": 600},
        {"ice_servers": [], "ice_ttl": True},
        {"ice_servers": [], "ice_ttl": 5},
        {"ice_servers": [{"urls": []}], "ice_ttl": 600},
        {"ice_servers": [{"urls": ["turn:x"]}], "ice_ttl": 600},  # TURN without credentials
        {"ice_servers": [{"urls": ["turn:x"], "username": 1, "credential": "c"}], "ice_ttl": 600},
        {"ice_servers": [{"urls": ["javascript:x"]}], "ice_ttl": 600},
        {"ice_servers": [{"urls": ["stun:x"]}] * 9, "ice_ttl": 600},
    ],
)
def test_client_refuses_malformed_servers(reply: dict[str, object]) -> None:
    ice = ServerIce()
    good = {"ice_servers": [{"urls": ["stun:x"]}], "ice_ttl": 600}
    assert ice.update(good)
    assert not ice.update(reply)
    assert ice.servers == [IceServer(["stun:x"])]  # what was there stays


def test_settings_check_themselves() -> None:
    with pytest.raises(ValueError, match="secret"):
        IceSettings(TURN, (), "")
    with pytest.raises(ValueError, match="TTL"):
        IceSettings(TURN, (), SECRET, ttl_s=10)
    with pytest.raises(ValueError, match="not a stun"):
        IceSettings(("turn:a b",), (), SECRET)


async def test_login_reply_and_renewal(make_server: ServerFactory) -> None:
    server = await make_server(echo_bot=False, ice=SETTINGS)
    client = await WireClient.open(server.url)
    try:
        reply = await client.register("alice")
        assert "ice" in reply["features"]
        servers, ttl = parse_ice_servers(reply) or ([], 0)
        assert ttl == 3600 and servers[1]["username"].endswith(":alice")
        expiry = int(servers[1]["username"].split(":")[0])
        assert abs(expiry - (time.time() + 3600)) < 5
        assert SECRET not in json.dumps(reply)
        fresh = await client.request("ice.servers")
        assert fresh["type"] == "ok" and fresh["ice_ttl"] == 3600
        assert fresh["ice_servers"][1]["username"].endswith(":alice")
        assert SECRET not in json.dumps(fresh)
    finally:
        await client.close()
    stranger = await WireClient.open(server.url)
    try:
        refused = await stranger.call("ice.servers")
        assert refused["code"] == "unauthenticated"
    finally:
        await stranger.close()


async def test_server_without_ice(make_server: ServerFactory) -> None:
    server = await make_server(echo_bot=False)
    client = await WireClient.open(server.url)
    try:
        reply = await client.register("alice")
        assert "ice_servers" not in reply and "ice" not in reply["features"]
        assert (await client.request("ice.servers"))["ice_servers"] == []
    finally:
        await client.close()


async def test_client_uses_and_renews_them(make_server: ServerFactory) -> None:
    server = await make_server(echo_bot=False, ice=SETTINGS)
    client = SignalingClient(server.url)
    try:
        await client.connect()
        await client.register("alice", "correct horse")
        assert [s.urls for s in client.ice.servers] == [list(STUN), list(TURN)]
        first = client.ice.servers[1]
        # A call's servers: the server's first, then the user's own (no repeats).
        own = [IceServer(["stun:stun.example.net"]), first]
        options = CallOptions(ice_servers=own).with_server_ice(client)
        assert options.ice_servers == [client.ice.servers[0], first, own[0]]
        assert servers_for_call([], own) == own
        # 80% of the TTL later the client asks again, by itself.
        expires = client.ice.expires_at
        assert expires is not None
        client.ice.clock = lambda: time.monotonic() + 0.8 * 3600
        client.ice.keep_fresh(lambda: client.request("ice.servers"))
        for _ in range(100):
            if (client.ice.expires_at or 0) > expires + 1000:
                break
            await asyncio.sleep(0.05)
        assert (client.ice.expires_at or 0) > expires + 1000
        assert client.ice.servers[1].urls == list(TURN)
    finally:
        await client.close()
    assert client.ice.servers == []


def _server(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gui.server", "--db", str(tmp / "x.db"), "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_command_lines(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("too short\n")
    cases = {
        ("--turn", "turn:x"): "--turn needs --turn-secret-file",
        ("--turn-secret-file", str(short)): "--turn-secret-file needs --turn",
        ("--turn", "turn:x", "--turn-secret-file", str(tmp_path / "none")): "cannot read",
        ("--turn", "turn:x", "--turn-secret-file", str(short)): "16 to 256",
        ("--stun", "turn:x"): "is not a stun: URL",
        ("--turn", "turn:x:99999"): "a port is from 1 to 65535",
        ("--turn-ttl", "5"): "from 60 to",
    }
    for args, message in cases.items():
        done = _server(*args, tmp=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert message in lines[-1] and "Traceback" not in done.stderr, (args, done.stderr)
    assert not (tmp_path / "x.db").exists()
