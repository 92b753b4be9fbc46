"""The store's own latency on both backends: ``python -m bench.store [--rounds N]``.

What a request waits for in the store, without the server around it: one committed write
(``insert_call``, as ``call.invite`` does) and one read (``user_for_token``, as a login by token
does), each timed alone (one at a time) and under 20 concurrent callers. SQLite is a file in a
temporary directory; PostgreSQL is ``--postgres URL`` or, by default, a PostgreSQL 15 started here
in a temporary directory (``tests/pg.py``, as the tests do; its data is not synced to disk by
``initdb --no-sync`` but commits are, ``fsync`` on). Each round uses a fresh database; the
figures are p50 and p99 per round, printed as min / median / max over the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import percentile
from signaling.protocol.messages import Media
from signaling.server.store import CallRecord, SQLiteStore, Store

SAMPLES = 400
CONCURRENCY = 20


async def _timed(
    op: Callable[[], Awaitable[object]], samples: int, concurrency: int
) -> list[float]:
    latencies: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            await op()
            latencies.append((time.perf_counter() - started) * 1000)

    share = samples // concurrency
    await asyncio.gather(*(worker(share) for _ in range(concurrency)))
    return latencies


async def one_round(store: Store) -> dict[str, list[float]]:
    await store.open()
    try:
        await store.create_user("ada", "Ada", "h")
        await store.create_user("bob", "Bob", "h")
        await store.add_token("tok", "ada", time.time() + 3600)

        async def write() -> None:
            record = CallRecord(str(uuid.uuid4()), "ada", "bob", Media(True, True), time.time())
            await store.insert_call(record)

        async def read() -> None:
            await store.user_for_token("tok", time.time())

        return {
            "write alone": await _timed(write, SAMPLES // 4, 1),
            f"write x{CONCURRENCY}": await _timed(write, SAMPLES, CONCURRENCY),
            "read alone": await _timed(read, SAMPLES // 4, 1),
            f"read x{CONCURRENCY}": await _timed(read, SAMPLES, CONCURRENCY),
        }
    finally:
        await store.close()


def spread(values: list[float]) -> str:
    return f"{min(values):6.2f} / {statistics.median(values):6.2f} / {max(values):6.2f}"


async def measure(rounds: int, postgres_url: str | None) -> None:
    from signaling.server.store.postgres import PostgresStore
    from tests.pg import PostgresServer

    cluster: PostgresServer | None = None
    if postgres_url is None:
        cluster = PostgresServer()
        await asyncio.to_thread(cluster.start)
    try:
        results: dict[tuple[str, str], dict[str, list[float]]] = {}
        for number in range(rounds):
            with tempfile.TemporaryDirectory() as folder:
                url = postgres_url
                if cluster is not None:
                    url = await asyncio.to_thread(cluster.new_database)
                assert url is not None
                # Interleaved, so that the machine's load falls on both alike.
                for name, store in (
                    ("sqlite", SQLiteStore(Path(folder) / "parley.db")),
                    ("postgres", PostgresStore(url)),
                ):
                    for op, latencies in (await one_round(store)).items():
                        entry = results.setdefault((name, op), {"p50": [], "p99": []})
                        entry["p50"].append(percentile(latencies, 50))
                        entry["p99"].append(percentile(latencies, 99))
            print(f"round {number + 1}/{rounds} done", flush=True)
    finally:
        if cluster is not None:
            await asyncio.to_thread(cluster.remove)
    header = ("backend", "operation", "p50 ms min/median/max", "p99 ms min/median/max")
    print(f"\n{header[0]:9} {header[1]:11} {header[2]:>24} {header[3]:>24}")
    for (name, op), entry in results.items():
        print(f"{name:9} {op:11} {spread(entry['p50']):>24} {spread(entry['p99']):>24}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="fresh databases measured (5)")
    parser.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database to use")
    args = parser.parse_args(argv)
    asyncio.run(measure(args.rounds, args.postgres))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
