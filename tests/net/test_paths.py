"""Calls between two homes through real NATs, with the STUN and TURN servers parley-server
hands out (protocol v1.1): which path each call takes, as both ends' stats say.

1. ordinary NATs: a direct path through both (server-reflexive or peer-reflexive);
2. both NATs port-randomising: hole punching cannot work, the call goes through TURN;
3. UDP blocked in home a: a's media goes to coturn over TCP; with TCP to 3478 blocked too,
   over TLS (``turns:``, port 5349).

One lab and one pair of users for the module; each test changes the homes and puts them back.
Needs root (network namespaces) and coturn; CI runs as root.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.net.relay import TurnLab, path_of, turn_lab_unavailable

pytestmark = [
    pytest.mark.skipif(bool(turn_lab_unavailable()), reason=turn_lab_unavailable() or ""),
    pytest.mark.timeout(600),
]


@pytest.fixture
def turn(lab: TurnLab) -> Iterator[TurnLab]:
    """The module's lab, with both homes back to ordinary NATs and open firewalls after."""
    try:
        yield lab
    finally:
        for home in lab.lab.homes.values():
            home.set_random_nat(False)
            home.firewall()


def _media_flowed(*sides: object) -> None:
    for side in sides:
        summary = side.summary  # type: ignore[attr-defined]
        assert summary["frames_received"] >= 10, summary
        assert summary["audio_ms_received"] >= 1000, summary


def test_ordinary_nats_go_direct(turn: TurnLab) -> None:
    caller, callee = turn.call()
    _media_flowed(caller, callee)
    for side in (caller, callee):
        path = path_of(side)
        assert path["relayed"] is False and path["transport"] == "udp", path
        assert path["label"] == "Direct (UDP)"
        # The homes' private addresses cannot reach each other: a reflexive address is used.
        assert path["remote"] in ("srflx", "prflx"), path
        stats = [m for m in side.named("stats") if m.get("path")]
        assert stats and stats[-1]["path"]["relayed"] is False


def test_port_randomising_nats_relay(turn: TurnLab) -> None:
    for home in turn.lab.homes.values():
        home.set_random_nat(True)
    caller, callee = turn.call()
    _media_flowed(caller, callee)
    for side in (caller, callee):
        path = path_of(side)
        assert path["relayed"] is True and path["transport"] == "udp", path
        assert path["label"] == "Relayed (UDP)"


def test_udp_blocked_relays_over_tcp(turn: TurnLab) -> None:
    turn.lab.a.block_udp()
    caller, callee = turn.call()
    _media_flowed(caller, callee)
    assert path_of(caller)["label"] == "Relayed (TCP)", path_of(caller)
    assert path_of(caller)["local"] == "relay"
    assert path_of(callee)["relayed"] is True


def test_only_tls_relays_over_tls(turn: TurnLab) -> None:
    turn.lab.a.firewall("-p udp", "-p tcp --dport 3478")
    caller, callee = turn.call()
    _media_flowed(caller, callee)
    assert path_of(caller)["label"] == "Relayed (TLS)", path_of(caller)
    assert path_of(callee)["relayed"] is True
