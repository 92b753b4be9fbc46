"""A server killed with SIGKILL mid-burst keeps every change it acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import pytest

from tests.server.process import ServerProcess
from tests.wire import WireClient

pytestmark = pytest.mark.slow


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


async def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = str(tmp_path / "parley.db")
    server = ServerProcess("--port", "0", "--db", db, "--log-level", "warning")
    url = await asyncio.to_thread(server.wait_ready)
    acked: dict = {"users": {}, "requests": []}
    stop = asyncio.Event()
    workers = [asyncio.create_task(burst(url, w, acked, stop)) for w in range(6)]
    # Kill it mid-burst, once a good number of changes were acknowledged.
    async with asyncio.timeout(60):
        while len(acked["users"]) < 40 or len(acked["requests"]) < 40:
            await asyncio.sleep(0.01)
    server.proc.kill()
    await asyncio.to_thread(server.proc.wait)
    stop.set()
    for task in workers:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)

    again = ServerProcess("--port", "0", "--db", db, "--log-level", "warning")
    try:
        url = await asyncio.to_thread(again.wait_ready)
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
