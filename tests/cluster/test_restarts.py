"""The service's backing servers restart under it: Redis (instances resubscribe, presence is
made right again) and PostgreSQL (``unavailable`` meanwhile, then served; nothing lost)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.cluster.conftest import Service
from tests.cluster.redis_server import RedisServer
from tests.cluster.test_calls import accepted_call, sees, users_on
from tests.pg import PostgresServer
from tests.wire import ServerError, until_served


async def test_redis_restarted(service: Service, redis_server: RedisServer) -> None:
    """Redis goes away and comes back empty. Meanwhile an instance that cannot forward answers
    ``unavailable``; afterwards a user who left meanwhile is seen offline, and presence and calls
    flow across instances again; no instance gave up."""
    instances = await service(3)
    _, second, third = instances
    ada, bob, cyd = await users_on(("ada", second), ("bob", third), ("cyd", third))
    await asyncio.to_thread(redis_server.stop)
    await bob.close()
    await asyncio.sleep(1.5)
    with pytest.raises(ServerError) as refused:  # an answer at once, not a wait
        await ada.request("contacts.list")
    assert refused.value.code == "unavailable"
    await asyncio.to_thread(redis_server.start)
    await sees(ada, "bob", "offline")
    await sees(cyd, "bob", "offline")
    await cyd.request("presence.set", status="dnd")
    await sees(ada, "cyd", "dnd")
    call_id = await accepted_call(ada, cyd)
    await ada.request("call.hangup", call_id=call_id)
    assert (await cyd.next_event("call.ended"))["reason"] == "hangup"
    assert all(i.proc.poll() is None for i in instances)
    await asyncio.gather(ada.close(), cyd.close())


async def test_postgresql_restarted(service: Service, postgres: PostgresServer) -> None:
    """While the database is down, requests through any instance fail with ``unavailable``
    (an answer, not a hang); then they are served again, and everything acknowledged is there."""
    first, second = await service(2)
    ada, bob = await users_on(("ada", second), ("bob", first))
    await ada.request("profile.update", display_name="Ada L.")
    call_id = await accepted_call(ada, bob)
    await ada.request("call.hangup", call_id=call_id)
    await bob.next_event("call.ended")
    await asyncio.to_thread(postgres.stop)
    try:
        started = time.monotonic()
        with pytest.raises(ServerError) as refused:
            await ada.request("contacts.list")
        assert refused.value.code == "unavailable"
        assert "database" in refused.value.reply["message"]
        with pytest.raises(ServerError) as refused:
            await bob.request("history.list")
        assert refused.value.code == "unavailable"
        assert time.monotonic() - started < 15
    finally:
        await asyncio.to_thread(postgres.start)
    contacts = await until_served(bob, "contacts.list", timeout=60)
    ada_seen = [c for c in contacts["contacts"] if c["username"] == "ada"]
    assert ada_seen[0]["display_name"] == "Ada L." and ada_seen[0]["presence"] == "online"
    history = await until_served(ada, "history.list", timeout=60)
    assert [(c["call_id"], c["reason"]) for c in history["calls"]] == [(call_id, "hangup")]
    await ada.request("presence.set", status="away")
    await sees(bob, "ada", "away")
    await asyncio.gather(ada.close(), bob.close())
