"""``call.invite`` → ``call.incoming`` latency under two workloads, Parley beside a bare relay.

Both workloads send 500 invites/s, each followed by a ``call.cancel``, and time
each invite from its send to the callee's ``call.incoming`` (and to the
invite's own ``ok``):

* **pairs**: 250 pairs of accepted contacts; each call is cancelled once its
  ``call.incoming`` arrived, and the pair is used again when the cancel is done.
* **idle**: first 5,000 logged-in idle connections (50 users with 100
  connections each, logged in by token), then 100 caller/callee pairs, each
  inviting every 200 ms and sending ``call.cancel`` 5 ms after the invite's
  ``ok`` without waiting for ``call.incoming``.

Each workload runs against ``parley-server`` (``bench.serverproc``) and against
a bare websockets relay (``bench.relay``: the same library and connection
settings, no store, no state), in its own process each time, interleaved
(relay, Parley, relay, Parley...) so that whatever else loads the shared machine
weighs on both alike. Every figure is printed as min / median / max over the
rounds, and the ratio of Parley's p99 to the relay's is taken round by round.

A third server in each round is Parley with its database in memory (a tmpfs,
``/dev/shm``), where a commit's sync costs nothing: the relay stores nothing, and
on a disk whose syncs now and then take 100-300 ms (this test machine's), many of the
slowest invites come right after such a sync (docs/performance.md). That
figure tells what the server itself adds from what the disk does; the goal is
judged on the database on disk, as a server runs.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import Figure, Goal, percentile
from bench.client import BenchClient, Message
from bench.relay import RelayProcess
from bench.server import BENCH, Opened, abort_all, open_logged_in, seed
from bench.serverproc import ServerProcess

INVITE_P99_GOAL_MS = 20.0
RELAY_RATIO_GOAL = 2.0
#: Where the third server of each round keeps its database: memory, if this machine has it.
MEMORY_DIR = Path("/dev/shm")


def _progress(text: str) -> None:
    print(f"[invites] {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Workload:
    """One of the two shapes of load, sized."""

    name: str
    pairs: int
    rate: float
    duration: float
    idle_users: int = 0
    idle_per_user: int = 0
    #: ``None``: cancel once ``call.incoming`` arrived (pairs); else seconds after the ``ok``.
    cancel_after_ok: float | None = None

    @property
    def idle(self) -> int:
        """Idle connections held during the run."""
        return self.idle_users * self.idle_per_user


@dataclass(slots=True)
class Sample:
    """What one run of a workload measured."""

    incoming_ms: list[float] = field(default_factory=list)
    ok_ms: list[float] = field(default_factory=list)
    sent: int = 0
    errors: list[str] = field(default_factory=list)
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    wall: float = 0.0
    #: CPU seconds of the measured part, per watched process (the servers' and ``watch``'s).
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    #: How long the connections took to open and log in, and the CPU seconds each watched
    #: process spent meanwhile (set by ``bench.cluster``; empty elsewhere).
    logins_wall: float = 0.0
    login_cpu_by_pid: dict[int, float] = field(default_factory=dict)
    #: CPU seconds per second each watched process spends with every connection open and
    #: nothing asked (keepalives, heartbeats; set by ``bench.cluster``).
    idle_cpu_by_pid: dict[int, float] = field(default_factory=dict)
    #: ``time.perf_counter()`` when the measured part began (for tracing the server).
    started: float = 0.0


class Driver:
    """The calls of one run: who waits for which ``call.incoming``."""

    def __init__(self, callers: list[BenchClient], callees: list[BenchClient]) -> None:
        self.callers, self.callees = callers, callees
        self.incoming: dict[str, asyncio.Future[float]] = {}
        self.sample = Sample()
        self.recording = False

    def on_event(self, client: BenchClient, message: Message, received: float) -> None:
        """Resolve the waiting invite when its ``call.incoming`` arrives."""
        if message.get("type") == "call.incoming":
            future = self.incoming.get(str(message.get("call_id")))
            if future is not None and not future.done():
                future.set_result(received)

    async def call(self, pair: int, cancel_after_ok: float | None) -> None:
        """One invite and its cancel, recording the latencies."""
        caller, callee = self.callers[pair], self.callees[pair]
        call_id = str(uuid.uuid4())
        arrived: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.incoming[call_id] = arrived
        recording = self.recording
        try:
            sent = time.perf_counter()
            await caller.request(
                "call.invite", to=callee.username, call_id=call_id,
                media={"audio": True, "video": True},
            )  # fmt: skip
            answered = time.perf_counter()
            if cancel_after_ok is not None:
                await asyncio.sleep(cancel_after_ok)
                await caller.request("call.cancel", call_id=call_id)
            received = await asyncio.wait_for(arrived, 10)
            if cancel_after_ok is None:
                await caller.request("call.cancel", call_id=call_id)
            if recording:
                self.sample.sent += 1
                self.sample.ok_ms.append((answered - sent) * 1000)
                self.sample.incoming_ms.append((received - sent) * 1000)
        except Exception as exc:
            self.sample.errors.append(repr(exc))
        finally:
            self.incoming.pop(call_id, None)

    async def pairs_at_rate(self, count: int, rate: float, free: asyncio.Queue[int]) -> None:
        """The *pairs* workload: ``count`` calls at ``rate``/s, each on a free pair."""
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter() + 0.01
        for k in range(count):
            delay = start + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                pair = await asyncio.wait_for(free.get(), 5)
            except TimeoutError:
                self.sample.errors.append("no free pair of users within 5 s")
                break

            async def one(pair: int) -> None:
                await self.call(pair, None)
                free.put_nowait(pair)

            tasks.add(asyncio.create_task(one(pair)))
        if tasks:
            await asyncio.wait(tasks, timeout=30)

    async def pair_loop(self, pair: int, period: float, offset: float, until: float,
                        cancel_after_ok: float) -> None:  # fmt: skip
        """The *idle* workload's one pair: invite every ``period`` s, from ``offset``."""
        tick = time.perf_counter() + offset
        while tick < until:
            delay = tick - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await self.call(pair, cancel_after_ok)
            tick += period
            while tick < time.perf_counter():  # a late call skips the ticks it overran
                tick += period


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True, slots=True)
class Users:
    """The usernames a workload logs in."""

    callers: list[str]
    callees: list[str]
    idle: list[str]

    @classmethod
    def of(cls, workload: Workload) -> Users:
        """``caller0000``…, ``callee0000``…, ``idle000``…"""
        return cls(
            [f"caller{i:04d}" for i in range(workload.pairs)],
            [f"callee{i:04d}" for i in range(workload.pairs)],
            [f"idle{i:03d}" for i in range(workload.idle_users)],
        )

    @property
    def names(self) -> list[str]:
        """Every username."""
        return self.callers + self.callees + self.idle

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """(caller, callee): accepted contacts."""
        return list(zip(self.callers, self.callees, strict=True))


async def _spread_logged_in(
    urls: Sequence[str], tokens: Sequence[str], concurrency: int, **options: Any
) -> tuple[list[BenchClient], Opened]:
    """Connection ``k`` on ``urls[k % len(urls)]``; the clients in the order of ``tokens``,
    and what failed (an ``Opened`` without clients)."""
    n = len(urls)

    async def part(i: int) -> Opened:
        share = tokens[i::n]
        if not share:
            return Opened()
        return await open_logged_in(urls[i], share, concurrency=max(8, concurrency // n), **options)

    parts = await asyncio.gather(*(part(i) for i in range(n)))
    failed = Opened(failures=sum(p.failures for p in parts), retried=sum(p.retried for p in parts))
    failed.first_error = next((p.first_error for p in parts if p.first_error), "")
    clients: list[BenchClient] = []
    if not failed.failures:
        for k in range(len(tokens)):
            clients.append(parts[k % n].clients[k // n])
    else:
        clients = [c for p in parts for c in p.clients]
    return clients, failed


async def open_workload(
    urls: Sequence[str],
    tokens: dict[str, str],
    workload: Workload,
    driver: Driver,
    retries: int = 0,
) -> list[BenchClient]:
    """Log in the workload's connections, spread over ``urls`` (the instances of one service):
    the idle ones in turn, caller ``i`` on ``urls[i % n]`` and its callee on the next one, so
    that with several instances every invite goes from one to another. Gives the driver its
    callers and callees; returns every client (to abort at the end). Raises if any login fails
    (after ``retries`` more tries of one answered ``unavailable``: see ``open_logged_in``).
    """
    users = Users.of(workload)
    callee_urls = [*urls[1:], urls[0]]
    idle_tokens = [tokens[u] for u in users.idle for _ in range(workload.idle_per_user)]
    clients: list[BenchClient] = []
    idle, idle_failed = await _spread_logged_in(
        urls, idle_tokens, 64, time_limit=300, retries=retries
    )
    clients += idle
    callers, caller_failed = await _spread_logged_in(
        urls, [tokens[n] for n in users.callers], 50, retries=retries
    )
    clients += callers
    callees, callee_failed = await _spread_logged_in(
        callee_urls, [tokens[n] for n in users.callees], 50, on_event=driver.on_event,
        retries=retries,
    )  # fmt: skip
    clients += callees
    retried = idle_failed.retried + caller_failed.retried + callee_failed.retried
    if retried:
        _progress(f"{retried} logins answered 'unavailable' were tried again")
    failures = idle_failed.failures + caller_failed.failures + callee_failed.failures
    if failures:
        abort_all(clients)
        first = idle_failed.first_error or caller_failed.first_error or callee_failed.first_error
        raise RuntimeError(f"{failures} connections could not log in: {first}")
    driver.callers, driver.callees = callers, callees
    return clients


async def measure(
    driver: Driver, workload: Workload, pids: Sequence[int], watch: Sequence[int] = ()
) -> Sample:
    """A warm-up, then the measured run; the servers' CPU is summed over ``pids``, and each
    process of ``pids`` and ``watch`` (Redis, say) has its own in ``cpu_by_pid``."""
    await asyncio.sleep(0.5)  # let the logins' presence work pass
    # The load generator's own full collections (its connections' objects: 1 s at 15,000)
    # would count as the server's latency: what is open now is kept out of them.
    gc.collect()
    gc.freeze()
    try:
        return await _measured(driver, workload, pids, watch)
    finally:
        gc.unfreeze()


async def _measured(
    driver: Driver, workload: Workload, pids: Sequence[int], watch: Sequence[int]
) -> Sample:
    await _drive(driver, workload, warmup=True)
    driver.recording = True
    before = {p: cpu_seconds(p) for p in [*pids, *watch]}
    cpu_client = _own_cpu()
    started = time.perf_counter()
    await _drive(driver, workload, warmup=False)
    sample = driver.sample
    sample.wall = time.perf_counter() - started
    sample.started = started
    sample.cpu_by_pid = {p: cpu_seconds(p) - cpu for p, cpu in before.items()}
    sample.server_cpu = sum(sample.cpu_by_pid[p] for p in pids)
    sample.client_cpu = _own_cpu() - cpu_client
    return sample


async def run_once(
    workload: Workload, workdir: Path, relay: bool, db_dir: Path | None = None
) -> Sample:
    """One run of ``workload`` against a fresh Parley server (its database in ``db_dir``,
    else ``workdir``) or a fresh relay."""
    users = Users.of(workload)
    if relay:
        tokens = {name: name for name in users.names}
        server: ServerProcess = RelayProcess(workdir / "relay.log")
    else:
        db = (db_dir or workdir) / "invites.db"
        tokens = await seed(db, users.names, users.pairs)
        server = ServerProcess(db, workdir / "parley.log")
    async with server:
        driver = Driver([], [])
        clients = await open_workload([server.url], tokens, workload, driver)
        try:
            return await measure(driver, workload, [server.pid])
        finally:
            abort_all(clients)


async def _drive(driver: Driver, workload: Workload, warmup: bool) -> None:
    duration = min(1.0, workload.duration) if warmup else workload.duration
    if workload.cancel_after_ok is None:
        free: asyncio.Queue[int] = asyncio.Queue()
        for pair in range(workload.pairs):
            free.put_nowait(pair)
        await driver.pairs_at_rate(int(workload.rate * duration), workload.rate, free)
        return
    period = workload.pairs / workload.rate
    until = time.perf_counter() + duration
    await asyncio.gather(
        *(
            driver.pair_loop(p, period, p * period / workload.pairs, until,
                             workload.cancel_after_ok)
            for p in range(workload.pairs)
        )
    )  # fmt: skip


def spread(values: Sequence[float]) -> str:
    """``min / median / max`` of the rounds' values, to one decimal."""
    if not values:
        return "n/a"
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


@dataclass(frozen=True, slots=True)
class Target:
    """One of the servers each round runs against."""

    who: str
    relay: bool = False
    #: Where Parley's database lives (``None``: the run's directory, on disk).
    db_dir: Path | None = None


RELAY = Target("bare relay", relay=True)
PARLEY = Target("Parley")


def targets(memory_dir: Path = MEMORY_DIR) -> list[Target]:
    """The relay, Parley, and Parley with its database in memory where this machine has one."""
    found = [RELAY, PARLEY]
    if memory_dir.is_dir() and os.access(memory_dir, os.W_OK):
        found.append(Target("Parley, database in memory", db_dir=memory_dir))
    return found


async def compare(workload: Workload, workdir: Path, rounds: int) -> list[Figure]:
    """Run ``workload`` ``rounds`` times against each :func:`targets`, interleaved."""
    each = targets()
    results: dict[Target, list[Sample]] = {target: [] for target in each}
    for number in range(rounds):
        for index, target in enumerate(each):
            _progress(f"{workload.name}: round {number + 1}/{rounds}, {target.who}")
            rundir = workdir / f"{index}-{number}"
            rundir.mkdir()
            if target.db_dir is None:
                sample = await run_once(workload, rundir, target.relay)
            else:
                with tempfile.TemporaryDirectory(prefix="invites-", dir=target.db_dir) as db_dir:
                    sample = await run_once(workload, rundir, target.relay, Path(db_dir))
            results[target].append(sample)
            _progress(
                f"{workload.name} {target.who}: incoming p50 "
                f"{percentile(sample.incoming_ms, 50):.1f} "
                f"p99 {percentile(sample.incoming_ms, 99):.1f} "
                f"max {max(sample.incoming_ms, default=float('nan')):.1f} ms, "
                f"ok p50 {percentile(sample.ok_ms, 50):.1f} ms, {sample.sent} calls, "
                f"{len(sample.errors)} errors {sample.errors[:1]}, "
                f"server CPU {100 * sample.server_cpu / max(sample.wall, 1e-9):.0f}%, "
                f"client CPU {100 * sample.client_cpu / max(sample.wall, 1e-9):.0f}%"
            )
    figures: list[Figure] = []
    label = f"invite -> incoming, {workload.name}"
    for target in [PARLEY, RELAY, *each[2:]]:
        who = target.who
        samples = results[target]
        for q in (50, 99):
            values = [percentile(s.incoming_ms, q) for s in samples]
            goal = Goal.below(INVITE_P99_GOAL_MS) if q == 99 and target is PARLEY else None
            figures.append(
                Figure(BENCH, f"{label}, {who}, p{q} (median of {rounds})",
                       statistics.median(values), f"ms ({spread(values)})", goal)
            )  # fmt: skip
        maxima = [max(s.incoming_ms, default=float("nan")) for s in samples]
        figures.append(
            Figure(BENCH, f"{label}, {who}, max (median of {rounds})",
                   statistics.median(maxima), f"ms ({spread(maxima)})")
        )  # fmt: skip
        oks = [percentile(s.ok_ms, 50) for s in samples]
        figures.append(
            Figure(BENCH, f"invite -> ok, {workload.name}, {who}, p50 (median of {rounds})",
                   statistics.median(oks), f"ms ({spread(oks)})")
        )  # fmt: skip
        errors = sum(len(s.errors) for s in samples)
        figures.append(
            Figure(BENCH, f"{label}, {who}, calls measured / failed",
                   sum(s.sent for s in samples), f"calls / {errors} failed",
                   Goal.at_least(int(workload.rate * workload.duration * rounds * 0.97)))
        )  # fmt: skip
        cpu = [100 * s.server_cpu / s.wall for s in samples if s.wall]
        figures.append(
            Figure(BENCH, f"{workload.name}, {who}: server CPU (median of {rounds})",
                   statistics.median(cpu) if cpu else float("nan"), f"% ({spread(cpu)})")
        )  # fmt: skip
    for target in each:
        if target.relay:
            continue
        ratios = _p99_ratios(results[target], results[RELAY])
        figures.append(
            Figure(BENCH, f"{label}: {target.who} p99 / relay p99 (median of {rounds})",
                   statistics.median(ratios), f"x ({spread(ratios)})",
                   Goal.at_most(RELAY_RATIO_GOAL) if target is PARLEY else None)
        )  # fmt: skip
    return figures


def _p99_ratios(samples: list[Sample], baseline: list[Sample]) -> list[float]:
    """p99 over the baseline's p99, round by round."""
    return [
        percentile(s.incoming_ms, 99) / percentile(b.incoming_ms, 99)
        for s, b in zip(samples, baseline, strict=True)
    ]


PAIRS = Workload("250 pairs", pairs=250, rate=500.0, duration=10.0)
IDLE = Workload(
    "5,000 idle connections", pairs=100, rate=500.0, duration=10.0,
    idle_users=50, idle_per_user=100, cancel_after_ok=0.005,
)  # fmt: skip


def workloads(quick: bool) -> list[Workload]:
    """The two workloads, shortened for a quick run."""
    if not quick:
        return [PAIRS, IDLE]
    return [
        Workload(w.name, w.pairs, w.rate, 3.0, w.idle_users, w.idle_per_user, w.cancel_after_ok)
        for w in (PAIRS, IDLE)
    ]
