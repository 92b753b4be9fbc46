"""A server killed with SIGKILL mid-burst keeps every change it acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.server.process import ServerProcess
from tests.wire import WireClient, befriend, new_call_id

pytestmark = pytest.mark.slow

AUDIO = {"audio": True, "video": False}


async def burst(url: str, worker: int, acked: dict, stop: asyncio.Event) -> None:
    """Register users one per connection, each asking earlier users to be contacts."""
    rng = random.Random(worker)
    n = 0
    while not stop.is_set():
        name = f"w{worker}u{n}"
        n += 1
        try:
            client = await WireClient.open(url)
            reply = await client.request("register", username=name, password="burst-password")
            acked["users"][name] = reply["token"]
            earlier = [u for u in acked["users"] if u != name]
            for peer in rng.sample(earlier, min(3, len(earlier))):
                reply = await client.call("contacts.request", username=peer)
                if reply["type"] == "ok":
                    acked["requests"].append((name, peer, reply["contact"]["status"]))
            await client.close()
        except Exception:  # the server died under us: what was acknowledged is recorded
            return


async def killed_and_started_again(
    server: ServerProcess,
    db: str,
    enough: Callable[[], bool],
    workers: list[asyncio.Task[None]],
    stop: asyncio.Event,
) -> ServerProcess:
    """SIGKILL ``server`` once ``enough()`` holds (within 60 s), let the workers see it, and
    start a new server on the same database (its ``url`` set)."""
    async with asyncio.timeout(60):
        while not enough():
            await asyncio.sleep(0.01)
    server.proc.kill()
    await asyncio.to_thread(server.proc.wait)
    stop.set()
    for task in workers:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
    again = ServerProcess("--port", "0", "--db", db, "--log-level", "warning")
    await asyncio.to_thread(again.wait_ready)
    return again


async def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = str(tmp_path / "parley.db")
    server = ServerProcess("--port", "0", "--db", db, "--log-level", "warning")
    url = await asyncio.to_thread(server.wait_ready)
    acked: dict = {"users": {}, "requests": []}
    stop = asyncio.Event()
    workers = [asyncio.create_task(burst(url, w, acked, stop)) for w in range(6)]

    # Kill it mid-burst, once a good number of changes were acknowledged.
    def enough() -> bool:
        return len(acked["users"]) >= 40 and len(acked["requests"]) >= 40

    again = await killed_and_started_again(server, db, enough, workers, stop)
    try:
        url = again.url
        expected: dict[str, dict[str, set[str]]] = {}
        for a, b, status in acked["requests"]:
            expected.setdefault(a, {})[b] = (
                {"outgoing", "accepted"} if status == "outgoing" else {"accepted"}
            )
            expected.setdefault(b, {})[a] = (
                {"incoming", "accepted"} if status == "outgoing" else {"accepted"}
            )
        checked = 0
        for name, token in acked["users"].items():
            client = await WireClient.open(url)
            reply = await client.request("login", token=token)
            assert reply["user"]["username"] == name
            contacts = {
                c["username"]: c["status"]
                for c in (await client.request("contacts.list"))["contacts"]
            }
            for peer, allowed in expected.get(name, {}).items():
                assert contacts.get(peer) in allowed, (name, peer, contacts.get(peer))
                checked += 1
            await client.close()
        assert checked >= 80
    finally:
        again.kill()


async def calls_until_stopped(caller: WireClient, callee: str, acked: dict, stop: asyncio.Event):
    """Invite ``callee`` and cancel, again and again: each acknowledged step is recorded."""
    while not stop.is_set():
        call_id = new_call_id()
        try:
            reply = await caller.call("call.invite", to=callee, call_id=call_id, media=AUDIO)
            if reply["type"] != "ok":
                await asyncio.sleep(0.05)  # rate limited, or the callee still busy: try again
                continue
            acked["invited"].add(call_id)
            reply = await caller.call("call.cancel", call_id=call_id)
            if reply["type"] == "ok":
                acked["cancelled"].add(call_id)
        except Exception:  # the server died under us: what was acknowledged is recorded
            return


async def test_sigkill_keeps_every_call_it_acknowledged(tmp_path: Path) -> None:
    """The calls' history rows commit without a sync of their own (docs/architecture.md, "The
    store"): still, every call whose invite or cancel a killed server acknowledged is in the
    history after the restart, the cancelled ones as cancelled."""
    db = str(tmp_path / "parley.db")
    server = ServerProcess("--port", "0", "--db", db, "--log-level", "warning")
    url = await asyncio.to_thread(server.wait_ready)
    names = [f"pair{i}" for i in range(12)]
    clients = [c for pair in range(6) for c in await befriend(url, *names[2 * pair : 2 * pair + 2])]
    acked: dict[str, set[str]] = {"invited": set(), "cancelled": set()}
    stop = asyncio.Event()
    workers = [
        asyncio.create_task(calls_until_stopped(clients[i], names[i + 1], acked, stop))
        for i in range(0, 12, 2)
    ]

    def enough() -> bool:
        return len(acked["cancelled"]) >= 120

    again = await killed_and_started_again(server, db, enough, workers, stop)
    try:
        url = again.url
        history: dict[str, str | None] = {}
        for name in names[::2]:
            client = await WireClient.open(url)
            await client.login(name)
            reply = await client.request("history.list", limit=200)
            history |= {c["call_id"]: c.get("reason") for c in reply["calls"]}
            await client.close()
        assert acked["invited"] <= set(history), acked["invited"] - set(history)
        assert all(history[c] == "cancelled" for c in acked["cancelled"])
    finally:
        again.kill()
