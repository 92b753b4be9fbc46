"""gui/core/ice.py's changes to aioice, piece by piece (the calls they make work are
tests/net/test_paths.py): which pairs a relayed candidate forms, every TURN URL kept, the
path read from a connected peer connection."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import aiortc.rtcicetransport
from aioice import Candidate
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from gui.core import ice
from gui.core.quality import MediaPath


def _candidate(kind: str, host: str, port: int = 5000) -> Candidate:
    return Candidate("f" + kind, 1, "udp", 100, host, port, kind)


def _pairs(local: list[Candidate], remote: Candidate) -> list[tuple[str, str]]:
    connection = ice.ParleyConnection(ice_controlling=True)
    connection._protocols = [SimpleNamespace(local_candidate=c) for c in local]  # type: ignore[misc]
    remote._network_host = remote.host  # type: ignore[attr-defined]
    connection._pair_remote_candidate(remote)
    return [(p.local_candidate.type, p.remote_candidate.host) for p in connection._check_list]


def test_a_public_relay_is_not_paired_with_private_addresses() -> None:
    local = [_candidate("host", "192.168.1.2"), _candidate("relay", "198.18.0.1")]
    assert _pairs(local, _candidate("host", "192.168.2.2")) == [("host", "192.168.2.2")]
    assert _pairs(local, _candidate("host", "10.1.2.3")) == [("host", "10.1.2.3")]
    assert _pairs(local, _candidate("srflx", "100.64.3.4")) == [("host", "100.64.3.4")]
    public = _candidate("srflx", "203.0.113.9")
    assert _pairs(local, public) == [("host", "203.0.113.9"), ("relay", "203.0.113.9")]


def test_a_relay_on_the_lan_may_reach_the_lan() -> None:
    local = [_candidate("relay", "192.168.1.10")]
    assert _pairs(local, _candidate("host", "192.168.1.20")) == [("relay", "192.168.1.20")]


def test_private_ranges() -> None:
    for address in ("10.0.0.1", "172.20.1.1", "192.168.0.1", "100.100.1.1", "127.0.0.1",
                    "169.254.1.1", "fd00::1", "fe80::1", "::1"):  # fmt: skip
        assert ice._private(address), address
    for address in ("192.0.2.1", "8.8.8.8", "172.32.0.1", "2001:db8::1", "host.local"):
        assert not ice._private(address), address


def test_every_turn_url_is_kept() -> None:
    servers = [
        RTCIceServer(["stun:s.example:3478", "stun:second.example"]),
        RTCIceServer(
            [
                "turn:t.example?transport=udp",
                "turn:t.example:3478?transport=tcp",
                "turns:t.example",
            ],
            username="1:u",
            credential="c",
        ),
    ]
    kwargs = ice._connection_kwargs(servers)
    assert kwargs["stun_server"] == ("s.example", 3478)
    kinds = [(t.kind, t.host, t.port) for t in kwargs["turn_servers"]]
    assert kinds == [
        ("udp", "t.example", 3478),
        ("tcp", "t.example", 3478),
        ("tls", "t.example", 5349),
    ]
    assert all(t.username == "1:u" and t.password == "c" for t in kwargs["turn_servers"])


def test_install_is_idempotent_and_peer_connections_use_it() -> None:
    ice.install()
    ice.install()
    assert aiortc.rtcicetransport.Connection is ice.ParleyConnection

    async def connect() -> tuple[MediaPath | None, MediaPath | None]:
        config = RTCConfiguration(iceServers=[])
        a, b = RTCPeerConnection(config), RTCPeerConnection(config)
        try:
            a.createDataChannel("x")
            before = ice.selected_path(a)
            await a.setLocalDescription(await a.createOffer())
            await b.setRemoteDescription(a.localDescription)
            await b.setLocalDescription(await b.createAnswer())
            await a.setRemoteDescription(b.localDescription)
            for _ in range(200):
                if a.connectionState == "connected":
                    break
                await asyncio.sleep(0.05)
            assert isinstance(a.sctp.transport.transport._connection, ice.ParleyConnection)
            return before, ice.selected_path(a)
        finally:
            await a.close()
            await b.close()

    before, after = asyncio.run(connect())
    assert before is None
    assert after == MediaPath(False, "udp", "host", "host")
    assert after.label == "Direct (UDP)"
    assert after.to_json()["label"] == "Direct (UDP)"
