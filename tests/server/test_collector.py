"""The server's garbage collector policy (signaling/server/collector.py): what survives a full
collection is frozen; frozen cycles wait for a reclaim, which frees them; memory growth makes
a reclaim due; and a real server's closed connections are among what a reclaim frees."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Iterator

import pytest

from signaling.server.collector import LongLivedCollector, long_lived_heap, resident_bytes
from tests.conftest import ServerFactory
from tests.wire import WireClient


class Node:
    """Something a weak reference can watch, which may point at another."""

    other: Node | None = None


@pytest.fixture
def collector() -> Iterator[LongLivedCollector]:
    thresholds = gc.get_threshold()
    started = LongLivedCollector(floor=0)
    started.start()
    assert gc.get_threshold()[2] > 1_000_000, "full collections are the collector's"
    try:
        yield started
    finally:
        started.stop()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds


def _dead_cycle() -> weakref.ref[Node]:
    """Two nodes pointing at each other, frozen by a full collection, then let go of."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    watch = weakref.ref(a)
    gc.collect()  # a full collection: its survivors are frozen
    del a, b
    return watch


def test_survivors_are_frozen_and_still_die_by_reference_counting(
    collector: LongLivedCollector,
) -> None:
    node = Node()
    before = gc.get_freeze_count()
    gc.collect()
    assert gc.get_freeze_count() > before
    watch = weakref.ref(node)
    del node
    assert watch() is None


def test_a_cycle_that_dies_frozen_waits_for_the_reclaim(collector: LongLivedCollector) -> None:
    watch = _dead_cycle()
    gc.collect()
    assert watch() is not None, "a full collection does not look at frozen objects"
    assert collector.reclaim() >= 2
    assert watch() is None
    assert collector.reclaims == 1
    assert gc.get_freeze_count() > 0, "the survivors of the reclaim are frozen again"


def test_a_reclaim_is_due_once_the_memory_doubled_or_grew_by_half_a_while_ago(
    collector: LongLivedCollector,
) -> None:
    now = resident_bytes()
    assert now is not None, "Linux's /proc/self/statm"
    collector.kept = now
    assert not collector.due()
    collector.kept = now * 2 // 3  # grown by half, just after the last reclaim: not yet
    assert not collector.due()
    collector.kept_at -= collector.after_s
    assert collector.due()
    collector.kept_at = time.monotonic()
    collector.kept = now // 2 - 1  # doubled: after a minute
    assert not collector.due()
    collector.kept_at -= 60
    assert collector.due()
    collector.floor = now  # a small server: growth under the floor is not enough
    assert not collector.due()


async def test_each_turn_collects_what_is_new_and_reclaims_when_due() -> None:
    async with long_lived_heap(every_s=0.01) as collector:
        collector.floor = 0
        watch = _dead_cycle()
        fresh = Node()
        fresh.other = Node()
        await asyncio.sleep(0.05)  # a few turns, none due: only what is new is collected
        assert watch() is not None
        assert collector.reclaims == 0
        collector.kept = 1  # as if the memory had doubled since a reclaim a minute ago
        collector.kept_at -= 60
        for _ in range(200):
            if watch() is None:
                break
            await asyncio.sleep(0.01)
        assert watch() is None
        assert collector.reclaims >= 1
    assert gc.get_freeze_count() == 0
    assert collector._collected not in gc.callbacks


async def test_the_closed_connections_of_a_real_server_are_freed_by_a_reclaim(
    make_server: ServerFactory,
) -> None:
    server = await make_server(echo_bot=False)
    ada = await WireClient.open(server.url)
    await ada.register("ada")
    async with long_lived_heap(every_s=3600) as collector:
        clients = [await WireClient.open(server.url) for _ in range(20)]
        for client in clients:
            await client.request("login", token=ada.token)
        assert server.hub is not None
        peers = [weakref.ref(s.peer) for s in server.hub.sessions.values() if s.peer is not None]
        assert len(peers) == 21
        gc.collect()  # the connections have lived through a full collection: frozen
        for client in clients:
            await client.close()
        for _ in range(100):
            if len(server.hub.sessions) == 1:
                break
            await asyncio.sleep(0.05)
        assert len(server.hub.sessions) == 1
        gc.collect()
        alive = sum(1 for peer in peers if peer() is not None)
        assert alive == 21, "each closed connection is a cycle, frozen"
        assert collector.reclaim() > 20 * 20
        assert sum(1 for peer in peers if peer() is not None) == 1  # ada's own, still open
    await ada.close()
