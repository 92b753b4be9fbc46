"""Consent freshness (RFC 7675) on a loaded machine: ``gui/core/ice.ParleyConnection`` keeps a
connection whose peer answers consent checks late, and still ends one whose peer stopped
answering.

Two real aioice connections over UDP on this host. The answering side holds back its STUN
answers, as a loaded process does whose socket is read one datagram per loop pass behind a
second of video (at load 12, aioice's own consent closed every link of a three-person meeting:
``tests/core/test_meeting_chat_history.py`` then waited for a chat message on a new link). The
pace of the checks is scaled down (aioice's ``CONSENT_INTERVAL`` 5 s to 0.2 s, Parley's
``CONSENT_TIMEOUT_S`` 30 s to 1.2 s); the STUN retransmission timer (0.5 s, doubling) is
aioice's own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aioice
import aioice.ice
import pytest
from aioice import stun

from gui.core import ice

pytestmark = pytest.mark.slow

Send = Callable[[stun.Message, tuple[str, int]], None]
#: How late the answering side sends its answers (aioice gives a consent check 0.5 s).
LATE_S = 1.0


@pytest.fixture(autouse=True)
def _quick_consent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.2)
    monkeypatch.setattr(ice, "CONSENT_TIMEOUT_S", 1.2)


async def _connected(checker: aioice.Connection) -> aioice.Connection:
    """Connect ``checker`` (controlling) to a plain aioice peer, returned."""
    peer = aioice.Connection(ice_controlling=False, use_ipv6=False)
    await asyncio.gather(checker.gather_candidates(), peer.gather_candidates())
    for one, other in ((checker, peer), (peer, checker)):
        for candidate in other.local_candidates:
            await one.add_remote_candidate(candidate)
        await one.add_remote_candidate(None)
        one.remote_username, one.remote_password = other.local_username, other.local_password
    await asyncio.wait_for(asyncio.gather(checker.connect(), peer.connect()), 10)
    return peer


def _answer(peer: aioice.Connection, late_s: float | None) -> None:
    """From now on ``peer`` sends its STUN answers ``late_s`` late (``None``: never)."""
    loop = asyncio.get_running_loop()
    for protocol in peer._protocols:
        send = protocol.send_stun

        def held(message: stun.Message, addr: tuple[str, int], send: Send = send) -> None:
            if message.message_class == stun.Class.REQUEST:
                send(message, addr)
            elif late_s is not None:
                loop.call_later(late_s, send, message, addr)

        protocol.send_stun = held  # type: ignore[method-assign]


async def _closed_within(connection: aioice.Connection, seconds: float) -> bool:
    """Whether ``connection`` closes within ``seconds`` (nothing is sent on it)."""
    try:
        await asyncio.wait_for(connection.recv(), seconds)
    except ConnectionError:
        return True
    except TimeoutError:
        return False
    raise AssertionError("data came on a connection nobody sends on")


async def test_late_answers_end_a_plain_aioice_connection() -> None:
    """The condition is real: aioice alone gives up on a peer that answers 1 s late."""
    checker = aioice.Connection(ice_controlling=True, use_ipv6=False)
    peer = await _connected(checker)
    try:
        _answer(peer, LATE_S)
        assert await _closed_within(checker, 20.0)
    finally:
        await asyncio.gather(checker.close(), peer.close())


async def test_late_answers_keep_consent() -> None:
    checker = ice.ParleyConnection(ice_controlling=True, use_ipv6=False)
    peer = await _connected(checker)
    try:
        _answer(peer, LATE_S)
        # 30 checks' time, five times the scaled timeout, every check answered late.
        assert not await _closed_within(checker, 6.0)
        assert checker.consent_unanswered < aioice.ice.CONSENT_FAILURES
    finally:
        await asyncio.gather(checker.close(), peer.close())


async def test_a_peer_that_stopped_answering_loses_consent() -> None:
    checker = ice.ParleyConnection(ice_controlling=True, use_ipv6=False)
    peer = await _connected(checker)
    try:
        _answer(peer, None)
        # Six checks given up (each after 7.5 s of retransmissions) and the timeout: about 9 s.
        assert await _closed_within(checker, 30.0)
        assert checker.consent_unanswered >= aioice.ice.CONSENT_FAILURES
    finally:
        await asyncio.gather(checker.close(), peer.close())
