"""Calls across instances of one service (``--bus redis://``): real PostgreSQL, real Redis,
real ``parley-server`` processes; the users' connections sit on different instances."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed

from tests.cli.procs import ServerProcess
from tests.cluster.conftest import Service
from tests.wire import WireClient, make_contacts, new_call_id

AV = {"audio": True, "video": True}


async def users_on(*places: tuple[str, ServerProcess]) -> list[WireClient]:
    """Register each user on its instance; every pair becomes accepted contacts."""
    clients = []
    for name, instance in places:
        client = await WireClient.open(instance.url)
        await client.register(name)
        clients.append(client)
    await make_contacts(clients)
    for client in clients:  # the notices of befriending: a round trip orders them before it
        await client.request("contacts.list")
        client.drain()
    return clients


async def logged_in(instance: ServerProcess, token: str) -> WireClient:
    """Another connection of a user, on ``instance``, logged in by token."""
    client = await WireClient.open(instance.url)
    reply = await client.request("login", token=token)
    client.user, client.token = reply["user"], token
    return client


async def test_caller_and_callee_on_two_other_instances(service: Service) -> None:
    """The coordinator holds the call; caller and callee each sit on another instance:
    invite, accept, rtc.signal both ways, hang up, and the history read on both."""
    first, second, third = await service(3)
    ada, bob = await users_on(("ada", second), ("bob", third))
    call_id = new_call_id()
    await ada.request("call.invite", to="bob", call_id=call_id, media=AV)
    incoming = await bob.next_event("call.incoming")
    assert incoming["call_id"] == call_id and incoming["from"]["username"] == "ada"
    await ada.next_event("call.ringing")
    await bob.request("call.accept", call_id=call_id)
    await ada.next_event("call.accepted")
    offer = {"type": "offer", "sdp": "v=0 offer"}
    await ada.request("rtc.signal", call_id=call_id, description=offer)
    signal = await bob.next_event("rtc.signal")
    assert signal["from"] == "ada" and signal["description"] == offer
    answer = {"type": "answer", "sdp": "v=0 answer"}
    await bob.request("rtc.signal", call_id=call_id, description=answer)
    assert (await ada.next_event("rtc.signal"))["description"] == answer
    await ada.request("call.hangup", call_id=call_id)
    ended = await bob.next_event("call.ended")
    assert ended["reason"] == "hangup"
    for client in (ada, bob):
        history = await client.request("history.list")
        assert [c["call_id"] for c in history["calls"]] == [call_id]
        assert history["calls"][0]["reason"] == "hangup"
    metrics = [await asyncio.to_thread(metrics_of, i) for i in (first, second, third)]
    assert [m["parley_bus_coordinator"] for m in metrics] == [1.0, 0.0, 0.0]
    assert [m["parley_bus_local_connections"] for m in metrics] == [0.0, 1.0, 1.0]
    assert metrics[0]["parley_logged_in_users"] == 2.0  # the service's, on the coordinator
    await asyncio.gather(ada.close(), bob.close())


def metrics_of(instance: ServerProcess) -> dict[str, float]:
    """An instance's ``/metrics``, the unlabelled values by name."""
    url = instance.url.replace("ws://", "http://").removesuffix("/ws") + "/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.split()
            values[name] = float(value)
    return values


async def patient(client: WireClient, kind: str, timeout: float = 30.0, **fields: object) -> dict:
    """A request answered ``ok`` after as long as a new coordinator takes to come."""
    request_id = f"patient-{new_call_id()}"
    future: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
    client._pending[request_id] = future
    await client.send({"type": kind, "id": request_id, **fields})
    reply = await asyncio.wait_for(future, timeout)
    assert reply["type"] == "ok", reply
    return reply


async def patient_login(instance: ServerProcess, token: str, timeout: float = 30.0) -> WireClient:
    """Log in by token on ``instance``, waiting as long as a coordinator takes to come."""
    client = await WireClient.open(instance.url)
    reply = await patient(client, "login", timeout, token=token)
    client.user, client.token = reply["user"], token
    return client


async def test_callee_on_two_instances_answers_on_one(service: Service) -> None:
    """Both of the callee's connections ring; the one that answers takes the call and the
    other hears ``answered_elsewhere``, across instances."""
    first, second, third = await service(3)
    ada, bob = await users_on(("ada", first), ("bob", second))
    assert bob.token is not None
    bob_too = await logged_in(third, bob.token)
    call_id = new_call_id()
    await ada.request("call.invite", to="bob", call_id=call_id, media=AV)
    await bob.next_event("call.incoming")
    await bob_too.next_event("call.incoming")
    await bob_too.request("call.accept", call_id=call_id)
    await ada.next_event("call.accepted")
    elsewhere = await bob.next_event("call.ended")
    assert elsewhere["reason"] == "answered_elsewhere"
    description = {"type": "offer", "sdp": "v=0"}
    await ada.request("rtc.signal", call_id=call_id, description=description)
    assert (await bob_too.next_event("rtc.signal"))["description"] == description
    await bob.no_event("rtc.signal")
    await bob_too.request("call.hangup", call_id=call_id)
    assert (await ada.next_event("call.ended"))["reason"] == "hangup"
    await asyncio.gather(ada.close(), bob.close(), bob_too.close())


async def test_presence_is_seen_across_instances(service: Service) -> None:
    first, second, third = await service(3)
    ada, bob = await users_on(("ada", second), ("bob", third))
    await bob.request("presence.set", status="away")
    seen = await ada.next_event("presence")
    assert (seen["username"], seen["presence"]) == ("bob", "away")
    await bob.close()
    seen = await ada.next_event("presence")
    assert (seen["username"], seen["presence"]) == ("bob", "offline")
    assert bob.token is not None
    back = await logged_in(first, bob.token)
    seen = await ada.next_event("presence")
    assert (seen["username"], seen["presence"]) == ("bob", "online")
    contacts = await back.request("contacts.list")
    ada_seen = [c for c in contacts["contacts"] if c["username"] == "ada"]
    assert ada_seen[0]["presence"] == "online"
    await asyncio.gather(ada.close(), back.close())


async def sees(client: WireClient, username: str, presence: str, timeout: float = 20.0) -> None:
    """Wait for a presence event saying ``username`` is ``presence`` (skipping others)."""
    async with asyncio.timeout(timeout):
        while True:
            event = await client.next_event("presence", timeout=timeout)
            if (event["username"], event["presence"]) == (username, presence):
                return


async def accepted_call(caller: WireClient, callee: WireClient) -> str:
    call_id = new_call_id()
    await caller.request(
        "call.invite", to=callee.user["username"] if callee.user else "", call_id=call_id, media=AV
    )
    await callee.next_event("call.incoming")
    await callee.request("call.accept", call_id=call_id)
    await caller.next_event("call.accepted")
    return call_id


async def call_goes_on(call_id: str, ada: WireClient, bob: WireClient) -> None:
    """Signals flow both ways and a hang-up ends the call for both."""
    offer = {"type": "offer", "sdp": "v=0 restart"}
    await ada.request("rtc.signal", call_id=call_id, description=offer)
    assert (await bob.next_event("rtc.signal", timeout=10))["description"] == offer
    answer = {"type": "answer", "sdp": "v=0 restart"}
    await bob.request("rtc.signal", call_id=call_id, description=answer)
    assert (await ada.next_event("rtc.signal", timeout=10))["description"] == answer
    await ada.request("call.hangup", call_id=call_id)
    assert (await bob.next_event("call.ended"))["reason"] == "hangup"


@pytest.mark.parametrize("away", [0.0, 8.0], ids=["at_once", "after_counted_gone"])
async def test_an_instance_killed_mid_call(service: Service, away: float) -> None:
    """bob's instance dies (SIGKILL); bob reconnects to another one at once, before the service
    noticed, or only after it counted his instance's connections as gone (heartbeat lapsed
    after 3 s, counted gone 2 s later) while the call waited in its grace period: the call
    moves to his new connection and goes on; ada never hears it ended."""
    _, second, third = await service(3)
    ada, bob = await users_on(("ada", second), ("bob", third))
    call_id = await accepted_call(ada, bob)
    assert bob.token is not None
    await asyncio.to_thread(third.kill)
    await asyncio.sleep(away)
    bob_again = await logged_in(second, bob.token)
    back = await bob_again.next_event("call.accepted", timeout=15)
    assert back["call_id"] == call_id and back["role"] == "callee" and back["peer"] == "ada"
    await ada.no_event("call.ended")
    await call_goes_on(call_id, ada, bob_again)
    await asyncio.gather(ada.close(), bob_again.close())


async def test_the_coordinator_killed_mid_call(service: Service) -> None:
    """The instance holding the hub dies with bob on it: another takes over from the mirror,
    bob reconnects elsewhere by token, and the call goes on; ada's connection never dropped."""
    first, second, third = await service(3)
    ada, bob = await users_on(("ada", second), ("bob", first))
    call_id = await accepted_call(ada, bob)
    assert bob.token is not None
    await asyncio.to_thread(first.kill)
    bob_again = await patient_login(third, bob.token)
    back = await bob_again.next_event("call.accepted", timeout=15)
    assert back["call_id"] == call_id and back["role"] == "callee"
    await ada.no_event("call.ended", wait=1.0)
    await call_goes_on(call_id, ada, bob_again)
    history = await ada.request("history.list")
    assert [(c["call_id"], c["reason"]) for c in history["calls"]] == [(call_id, "hangup")]
    await asyncio.gather(ada.close(), bob_again.close())


async def test_a_ringing_call_outlives_the_coordinator(service: Service) -> None:
    """The coordinator dies while bob's phone rings: the next one has the call from the
    mirror, bob answers it, and it goes on."""
    first, second, third = await service(3)
    ada, bob = await users_on(("ada", second), ("bob", third))
    call_id = new_call_id()
    await ada.request("call.invite", to="bob", call_id=call_id, media=AV)
    await bob.next_event("call.incoming")
    await ada.next_event("call.ringing")
    await asyncio.to_thread(first.kill)
    await patient(bob, "call.accept", call_id=call_id)
    await ada.next_event("call.accepted", timeout=10)
    await call_goes_on(call_id, ada, bob)
    await asyncio.gather(ada.close(), bob.close())


async def test_the_ring_timeout_runs_on_after_the_coordinator_died(service: Service) -> None:
    """The ringing timer's deadline is mirrored: the next coordinator ends the unanswered call
    when the first would have (``timeout``), not a full ring later and not never."""
    first, second, third = await service(3, "--ring-timeout", "12")
    ada, bob = await users_on(("ada", second), ("bob", third))
    call_id = new_call_id()
    await ada.request("call.invite", to="bob", call_id=call_id, media=AV)
    invited = time.monotonic()
    await bob.next_event("call.incoming")
    await asyncio.to_thread(first.kill)
    ended = await ada.next_event("call.ended", timeout=30)
    assert ended["reason"] == "timeout"
    assert 11 < time.monotonic() - invited < 24  # 12 s as set; a second ring would be 24+
    assert (await bob.next_event("call.ended"))["reason"] == "timeout"
    await asyncio.gather(ada.close(), bob.close())


async def test_the_coordinator_stopped_hands_over_at_once(service: Service) -> None:
    """SIGTERM on the coordinator (an upgrade): it gives its lease back, the next instance takes
    over without waiting for it to lapse, and a call between users elsewhere never notices."""
    first, second, third = await service(3)
    ada, bob = await users_on(("ada", second), ("bob", third))
    call_id = await accepted_call(ada, bob)
    await asyncio.to_thread(first.stop)
    assert first.proc.returncode == 0
    await patient(ada, "presence.set", timeout=15, status="away")
    await ada.no_event("call.ended")
    await call_goes_on(call_id, ada, bob)
    assert "bus.coordinator" in second.stderr or "bus.coordinator" in third.stderr
    await asyncio.gather(ada.close(), bob.close())


async def test_a_stalled_instance_sends_its_clients_to_log_in_again(service: Service) -> None:
    """An instance frozen (SIGSTOP) long enough is counted gone: its users go offline. When it
    thaws it closes their sockets with 1012, and they log in again, here or elsewhere."""
    _, second, third = await service(3)
    ada, bob = await users_on(("ada", second), ("bob", third))
    third.proc.send_signal(signal.SIGSTOP)
    try:
        await sees(ada, "bob", "offline", timeout=30)
    finally:
        third.proc.send_signal(signal.SIGCONT)
    with contextlib.suppress(ConnectionClosed):
        await asyncio.wait_for(bob._reader, 20)
    assert bob.ws.close_code == 1012
    assert bob.token is not None
    again = await logged_in(third, bob.token)
    await sees(ada, "bob", "online")
    await asyncio.gather(ada.close(), again.close())
