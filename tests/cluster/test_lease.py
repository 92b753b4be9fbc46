"""Two coordinators for a moment (issue 12): the coordinator freezes (SIGSTOP) longer than its
lease and an edge takes over; the old one thaws during the take-over or after it, or the
newcomer freezes in turn and the old one thaws while the lease is free.
The service must converge to exactly one coordinator that answers everyone: the one that lost
the lease stops deciding and starts again as a new instance, an edge (its clients are told 1012
and log in again, there or elsewhere), and what the newcomer decided is not undone by the old
one's stale state."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from websockets.exceptions import ConnectionClosed

from tests.cli.procs import ServerProcess
from tests.cluster.conftest import Service
from tests.cluster.redis_server import RedisServer
from tests.cluster.test_calls import (
    accepted_call,
    call_goes_on,
    metrics_of,
    patient,
    patient_login,
    users_on,
)
from tests.wire import WireClient

LEASE = "parley:coordinator"


def instance_id(server: ServerProcess) -> int:
    """The random id the instance last joined the bus with (its lease holds it)."""
    joined = re.findall(r"event=bus\.joined instance=(\d+)", server.stderr)
    assert joined, server.describe()
    return int(joined[-1])


def restarted(server: ServerProcess) -> bool:
    """Whether the instance, having lost the lease, started again as a new one."""
    log = server.stderr
    lost = log.find("bus.coordinator_lost")
    return lost < 0 or re.search(r"event=bus\.joined", log[lost:]) is not None


async def holder(client: aioredis.Redis) -> int | None:
    value = await client.get(LEASE)
    return None if value is None else int(value)


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    """Poll ``check`` every 0.1 s until it returns true."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.1)


async def one_coordinator(instances: list[ServerProcess], client: aioredis.Redis) -> ServerProcess:
    """Wait until the instances still running agree on one coordinator (the lease's holder, the
    only one whose gauge says so) and every instance that logged losing the lease has started
    again as a new instance; the same twice, a second apart. Returns it."""

    async def agreed() -> ServerProcess | None:
        if not all(restarted(server) for server in instances):
            return None
        running = [s for s in instances if s.running]
        lease = await holder(client)
        try:
            gauges = [
                (await asyncio.to_thread(metrics_of, s))["parley_bus_coordinator"] for s in running
            ]
        except OSError:  # one is stopping: not settled yet
            return None
        chosen = [s for s, g in zip(running, gauges, strict=True) if g == 1.0]
        if len(chosen) != 1 or instance_id(chosen[0]) != lease:
            return None
        return chosen[0]

    deadline = time.monotonic() + 40
    while True:
        first = await agreed()
        if first is not None:
            await asyncio.sleep(1.0)
            if await agreed() is first:
                return first
        if time.monotonic() > deadline:
            raise AssertionError("the service did not settle on one coordinator")
        await asyncio.sleep(0.2)


async def told_to_reconnect(client: WireClient) -> None:
    """The client's socket closes with 1012 (log in again) or 1001 (the instance stops)."""
    with contextlib.suppress(ConnectionClosed):
        await asyncio.wait_for(client._reader, 30)
    assert client.ws.close_code in (1012, 1001), client.ws.close_code


@pytest.mark.parametrize("thaw", ["at_takeover", "after_takeover"])
async def test_a_coordinator_frozen_past_its_lease_gives_way(
    service: Service, redis_server: RedisServer, thaw: str
) -> None:
    """The coordinator freezes; an edge takes the lease. The old one thaws as soon as the lease
    changed hands (the newcomer still taking over) or after the newcomer answered: the old one
    starts again as an edge, the newcomer stays the only coordinator, a call between users on
    the edges goes on, and the old one's user logs in on it again and is answered."""
    first, second, third = await service(3)
    ada, bob, cyd = await users_on(("ada", second), ("bob", third), ("cyd", first))
    assert cyd.token is not None
    call_id = await accepted_call(ada, bob)
    client = aioredis.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        old = instance_id(first)
        assert await holder(client) == old
        first.proc.send_signal(signal.SIGSTOP)
        try:
            await until(lambda: _changed(client, old), 30, "an edge takes the lapsed lease")
            if thaw == "after_takeover":
                await patient(ada, "presence.set", timeout=30, status="away")
        finally:
            first.proc.send_signal(signal.SIGCONT)
        await asyncio.to_thread(first.wait_stderr, r"event=server\.restarting", 30)
        assert "bus.coordinator_lost" in first.stderr
        await told_to_reconnect(cyd)
        chosen = await one_coordinator([first, second, third], client)
        assert chosen in (second, third)
        try:
            cyd = await patient_login(first, cyd.token)
            contacts = await patient(cyd, "contacts.list", timeout=30)
            seen = {c["username"]: c["presence"] for c in contacts["contacts"]}
            assert seen["ada"] == seen["bob"] == "in_call", seen
            await call_goes_on(call_id, ada, bob)
        except BaseException:
            print("\n".join(bus_events(first, second, third)))
            raise
    finally:
        await client.aclose()
    await asyncio.gather(ada.close(), bob.close(), cyd.close())


async def test_the_newcomer_frozen_too_is_not_overruled_by_the_old_coordinator(
    service: Service, redis_server: RedisServer
) -> None:
    """The scene of issue 12: the coordinator freezes, an edge takes over and decides something
    (a user's presence), then freezes in turn until its lease lapses too; the old coordinator
    thaws while the lease is free. Before the fix it took the lease back ("retaken") with its
    stale state, undoing the newcomer's decision, and the newcomer stopped when it thawed. Now
    the old one sees that a later coordinator took the lease (the epoch) and starts again as a
    new instance on the same port; the service settles on one coordinator that knows what the
    newcomer decided, and the users of an instance that restarted log in on it again and are
    served."""
    first, second, third = await service(3)
    ada, bob, cyd = await users_on(("ada", second), ("bob", third), ("cyd", first))
    users = {"ada": ada, "bob": bob, "cyd": cyd}
    client = aioredis.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        old = instance_id(first)
        first.proc.send_signal(signal.SIGSTOP)
        newcomer: ServerProcess | None = None
        try:
            await until(lambda: _changed(client, old), 30, "an edge takes the lapsed lease")
            taken = await holder(client)
            newcomer = second if instance_id(second) == taken else third
            other = third if newcomer is second else second
            decider = users["ada" if other is second else "bob"]
            await patient(decider, "presence.set", timeout=30, status="dnd")
            newcomer.proc.send_signal(signal.SIGSTOP)
            await until(lambda: _free(client), 30, "the newcomer's lease lapses")
        finally:
            first.proc.send_signal(signal.SIGCONT)
        await asyncio.sleep(1.0)
        newcomer.proc.send_signal(signal.SIGCONT)
        await asyncio.to_thread(first.wait_stderr, r"event=server\.restarting", 30)
        assert "bus.coordinator_lost" in first.stderr
        assert "bus.lease_retaken" not in first.stderr
        await one_coordinator([first, second, third], client)
        # No instance gave up: one that lost the lease (the old one, and the newcomer too when
        # the old one, started again, took the free lease first) serves again, as an edge.
        assert all(s.running for s in (first, second, third))
        try:
            homes = {"ada": second, "bob": third, "cyd": first}
            for name, home in homes.items():
                if "bus.coordinator_lost" in home.stderr:
                    await told_to_reconnect(users[name])
                    token = users[name].token
                    assert token is not None
                    users[name] = await patient_login(home, token)
            decider_name = "ada" if other is second else "bob"
            for name, user in users.items():
                contacts = await patient(user, "contacts.list", timeout=30)
                seen = {c["username"]: c["presence"] for c in contacts["contacts"]}
                if name != decider_name:
                    assert seen[decider_name] == "dnd", (name, seen)
            call_id = await accepted_call(users["ada"], users["bob"])
            await call_goes_on(call_id, users["ada"], users["bob"])
        except BaseException:
            print("\n".join(bus_events(first, second, third)))
            raise
    finally:
        for server in (first, second, third):
            if server.running:
                server.proc.send_signal(signal.SIGCONT)
        await client.aclose()
    await asyncio.gather(*(u.close() for u in users.values()))


def bus_events(*instances: ServerProcess) -> list[str]:
    """What each instance logged of the bus and of presence, to tell what happened."""
    lines = []
    for number, server in enumerate(instances):
        for line in server.stderr.splitlines():
            lines.append(f"{number}: {line}")
    return lines


async def _changed(client: aioredis.Redis, old: int) -> bool:
    lease = await holder(client)
    return lease is not None and lease != old


async def _free(client: aioredis.Redis) -> bool:
    return await holder(client) is None
