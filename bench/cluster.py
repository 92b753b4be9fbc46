"""Several instances, one service: invite → ``call.incoming`` across instances, beside one.

The load is the second workload of :mod:`bench.invites`, made bigger: 15,000 logged-in
connections in all (146 idle users with 100 connections each, logged in by token, and 200
caller/callee pairs of accepted contacts), each pair inviting every 200 ms and sending
``call.cancel`` 5 ms after the invite's ``ok`` (1,000 invites/s). Each invite is timed from
its send to the callee's ``call.incoming`` (and to its own ``ok``).

The same load runs against three set-ups, in turn within each round so that whatever else
loads the shared machine weighs on all alike:

* **1 instance, SQLite**: ``parley-server`` as it runs by default (in-process routing);
* **1 instance, PostgreSQL + Redis**: one ``parley-server --db postgresql://… --bus redis://…``;
* **3 instances, PostgreSQL + Redis**: three of them on the same database and Redis, the
  connections spread over them in turn, every caller on one instance and its callee on the
  next, so that every invite crosses from one instance to another.

PostgreSQL 15 (``initdb`` in a temporary directory) and ``redis-server`` are real, started
here and removed at the end; the users and their tokens are written to each database once,
before the first round. Every figure is min / median / max over the rounds; the load average
is printed beside them, since the load generator, the instances, PostgreSQL and Redis share
the machine (2 cores on the reference one). Measurements, not assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import Figure, Goal, PartialFailure, percentile
from bench.invites import (
    Driver,
    Sample,
    Users,
    Workload,
    cpu_seconds,
    measure,
    open_workload,
    spread,
)
from bench.server import abort_all, seed
from bench.serverproc import ServerProcess, raise_open_files_limit

BENCH = "cluster"
#: How long the servers' idle CPU is measured, every connection open, before the invites.
IDLE_S = 3.0
INVITE_P99_GOAL_MS = 20.0

#: 200 pairs (400 connections) + 146 users x 100 idle connections = 15,000.
LOAD = Workload(
    "15,000 connections, 1,000 invites/s", pairs=200, rate=1000.0, duration=10.0,
    idle_users=146, idle_per_user=100, cancel_after_ok=0.005,
)  # fmt: skip
#: The same shape, small: for the smoke test and ``--quick``.
QUICK = Workload(
    "1,100 connections, 250 invites/s", pairs=50, rate=250.0, duration=3.0,
    idle_users=10, idle_per_user=100, cancel_after_ok=0.005,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Setup:
    """How the service is run: how many instances, and whether over PostgreSQL and Redis."""

    name: str
    instances: int
    shared: bool


SETUPS = (
    Setup("1 instance, SQLite", 1, False),
    Setup("1 instance, PostgreSQL + Redis", 1, True),
    Setup("3 instances, PostgreSQL + Redis", 3, True),
)


def _progress(text: str) -> None:
    print(f"[cluster] {text}", file=sys.stderr, flush=True)


class Backing:
    """The real PostgreSQL and Redis of the run, and a SQLite file, each seeded once."""

    def __init__(self, workdir: Path) -> None:
        from tests.cluster.redis_server import RedisServer
        from tests.pg import PostgresServer

        self.workdir = workdir
        self.postgres = PostgresServer()
        self.redis = RedisServer()
        self.sqlite = workdir / "service.db"
        self.database = ""
        #: Each user's token, in SQLite (False) and in PostgreSQL (True).
        self.tokens: dict[bool, dict[str, str]] = {}

    async def start(self, workload: Workload) -> None:
        """Start PostgreSQL and Redis, and write the users and tokens to both databases."""
        await asyncio.to_thread(self.postgres.start)
        self.database = await asyncio.to_thread(self.postgres.new_database)
        await asyncio.to_thread(self.redis.start)
        users = Users.of(workload)
        _progress(f"seeding {len(users.names)} users in SQLite and PostgreSQL")
        self.tokens[False] = await seed(self.sqlite, users.names, users.pairs)
        self.tokens[True] = await seed(self.database, users.names, users.pairs, concurrency=16)

    def flush_redis(self) -> None:
        """Nothing left from the previous run (leases, lists, mirrors)."""
        done = subprocess.run(
            ["redis-cli", "-p", str(self.redis.port), "FLUSHALL"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli FLUSHALL failed: {done.stderr.strip()}")

    def remove(self) -> None:
        """Stop both and remove their directories."""
        self.redis.remove()
        self.postgres.remove()


async def run_once(
    setup: Setup, workload: Workload, backing: Backing, workdir: Path, profile: Path | None = None
) -> tuple[Sample, float]:
    """One run of ``workload`` against fresh instances; the sample and the load average."""
    if setup.shared:
        await asyncio.to_thread(backing.flush_redis)
    servers: list[ServerProcess] = []
    try:
        for number in range(setup.instances):
            # One at a time: the first takes the coordinator's lease, the others join it.
            server = ServerProcess(
                backing.database if setup.shared else backing.sqlite,
                workdir / f"instance{number + 1}.log",
                bus=backing.redis.url if setup.shared else None,
            )
            servers.append(server)
            await server.start(timeout=60)
        driver = Driver([], [])
        redis_pid = backing.redis.proc.pid if setup.shared and backing.redis.proc else None
        watched = [s.pid for s in servers] + ([redis_pid] if redis_pid is not None else [])
        before = {pid: cpu_seconds(pid) for pid in watched}
        opening = time.perf_counter()
        clients = await open_workload(
            [s.url for s in servers], backing.tokens[setup.shared], workload, driver, retries=5
        )
        logins_wall = time.perf_counter() - opening
        login_cpu = {pid: cpu_seconds(pid) - cpu for pid, cpu in before.items()}
        idle = await _idle_cpu(watched)
        profilers = _profile(servers, workload, profile) if profile is not None else []
        try:
            sample = await measure(
                driver, workload, watched[: len(servers)], watched[len(servers) :]
            )
            sample.logins_wall, sample.login_cpu_by_pid = logins_wall, login_cpu
            sample.idle_cpu_by_pid = idle
            return sample, os.getloadavg()[0]
        finally:
            abort_all(clients)
            for profiler in profilers:
                await asyncio.to_thread(profiler.wait, 60)
    finally:
        for server in servers:
            await server.stop()


def _profile(
    servers: list[ServerProcess], workload: Workload, where: Path
) -> list[subprocess.Popen[bytes]]:
    """``py-spy record`` of each instance over the warm-up and the measured part (collapsed
    stacks, ``instanceN.txt`` in ``where``; the first instance is the coordinator)."""
    where.mkdir(parents=True, exist_ok=True)
    seconds = int(workload.duration + 3)
    return [
        subprocess.Popen(
            [
                _py_spy(),
                "record",
                "--pid",
                str(server.pid),
                "--rate",
                "200",
                "--nonblocking",
                "--duration",
                str(seconds),
                "--format",
                "raw",
                "--output",
                str(where / f"instance{n + 1}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n, server in enumerate(servers)
    ]


def _py_spy() -> str:
    """py-spy beside this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else "py-spy"


async def _idle_cpu(pids: list[int]) -> dict[int, float]:
    """Each process's CPU seconds per second over :data:`IDLE_S` with nothing asked."""
    await asyncio.sleep(1.0)  # the logins' last presence work
    before = {pid: cpu_seconds(pid) for pid in pids}
    started = time.perf_counter()
    await asyncio.sleep(IDLE_S)
    wall = time.perf_counter() - started
    return {pid: (cpu_seconds(pid) - cpu) / wall for pid, cpu in before.items()}


def cpu_per_invite(setup: Setup, sample: Sample, above_idle: bool = False) -> dict[str, float]:
    """CPU milliseconds per invite made: the coordinator (the first instance), each edge on
    average, and Redis, from the measured part of one run (``above_idle``: less what each
    process spends idle over as long, so that a run that made fewer invites is comparable)."""
    cpu = [
        used - (sample.idle_cpu_by_pid.get(pid, 0.0) * sample.wall if above_idle else 0.0)
        for pid, used in sample.cpu_by_pid.items()
    ]
    return _per_role(setup, cpu, sample.sent)


def cpu_per_login(setup: Setup, sample: Sample, workload: Workload) -> dict[str, float]:
    """CPU milliseconds per connection opened and logged in (by token), by role."""
    return _per_role(setup, list(sample.login_cpu_by_pid.values()), _connections(workload))


def _connections(workload: Workload) -> int:
    return 2 * workload.pairs + workload.idle


def _per_role(setup: Setup, cpu: list[float], count: int) -> dict[str, float]:
    """``cpu`` (seconds: the instances in order, then Redis if shared) per ``count``, in ms."""
    if not count or not cpu:
        return {}
    servers = cpu[: setup.instances]
    out = {"coordinator": 1000 * servers[0] / count}
    if len(servers) > 1:
        out["edge"] = 1000 * statistics.mean(servers[1:]) / count
    if len(cpu) > setup.instances:
        out["redis"] = 1000 * cpu[setup.instances] / count
    return out


def figures(setup: Setup, workload: Workload, runs: list[tuple[Sample, float]]) -> list[Figure]:
    """One set-up's figures over the rounds (latencies over the rounds that made calls)."""
    samples = [s for s, _ in runs if s.incoming_ms] or [s for s, _ in runs]
    rounds = len(samples)
    label = f"invite -> incoming, {setup.name}"
    out: list[Figure] = []
    for q in (50, 99):
        values = [percentile(s.incoming_ms, q) for s in samples]
        goal = Goal.below(INVITE_P99_GOAL_MS) if q == 99 else None
        out.append(
            Figure(BENCH, f"{label}, p{q} (median of {rounds})",
                   statistics.median(values), f"ms ({spread(values)})", goal)
        )  # fmt: skip
    maxima = [max(s.incoming_ms, default=float("nan")) for s in samples]
    oks = [percentile(s.ok_ms, 50) for s in samples]
    cpu = [100 * s.server_cpu / s.wall for s, _ in runs if s.wall]
    loads = [load for _, load in runs]
    per: dict[str, list[float]] = {}
    for sample, _ in runs:
        for role, ms in cpu_per_invite(setup, sample).items():
            per.setdefault(f"CPU per invite, {role}", []).append(ms)
        for role, ms in cpu_per_invite(setup, sample, above_idle=True).items():
            per.setdefault(f"CPU per invite above idle, {role}", []).append(ms)
        for role, ms in cpu_per_login(setup, sample, workload).items():
            per.setdefault(f"CPU per login, {role}", []).append(ms)
    logins = [_connections(workload) / s.logins_wall for s, _ in runs if s.logins_wall]
    if logins:
        per["logins/s (connections opened and logged in by token)"] = logins
    cpu_figures = [
        Figure(BENCH, f"{setup.name}: {what} (median of {len(values)})",
               statistics.median(values), f"{'/s' if 'logins/s' in what else 'ms'} "
               f"({spread(values)})")
        for what, values in per.items()
    ]  # fmt: skip
    errors = sum(len(s.errors) for s, _ in runs)
    sent = sum(s.sent for s, _ in runs)
    #: A pair waits for its call before the next: slow calls skip ticks, and the rate drops.
    rates = [s.sent / s.wall for s, _ in runs if s.wall]
    expected = int(workload.rate * workload.duration * len(runs) * 0.97)
    return [
        *out,
        Figure(BENCH, f"{label}, max (median of {rounds})",
               statistics.median(maxima), f"ms ({spread(maxima)})"),
        Figure(BENCH, f"invite -> ok, {setup.name}, p50 (median of {rounds})",
               statistics.median(oks), f"ms ({spread(oks)})"),
        Figure(BENCH, f"{label}, calls measured / failed", sent,
               f"calls / {errors} failed", Goal.at_least(expected)),
        Figure(BENCH, f"{setup.name}: invites/s made (median of {rounds})",
               statistics.median(rates), f"/s of {workload.rate:g} ({spread(rates)})"),
        Figure(BENCH, f"{setup.name}: servers' CPU, all instances (median of {rounds})",
               statistics.median(cpu) if cpu else float("nan"), f"% of a core ({spread(cpu)})"),
        *cpu_figures,
        Figure(BENCH, f"{setup.name}: load average, 1 min, at the end (median of {rounds})",
               statistics.median(loads), f"({spread(loads)})"),
    ]  # fmt: skip


async def compare(
    workload: Workload,
    workdir: Path,
    rounds: int,
    setups: tuple[Setup, ...] = SETUPS,
    profile: Path | None = None,
) -> list[Figure]:
    """Run ``workload`` ``rounds`` times against every set-up of ``setups``, interleaved
    (``profile``: a folder for py-spy's collapsed stacks of each instance, each run).

    A run that fails is reported and the others go on; the figures of what ran come back in
    a :class:`PartialFailure` then.
    """
    raise_open_files_limit()
    backing = Backing(workdir)
    results: dict[Setup, list[tuple[Sample, float]]] = {setup: [] for setup in setups}
    errors: list[str] = []
    try:
        await backing.start(workload)
        for number in range(rounds):
            for setup in setups:
                _progress(f"{workload.name}: round {number + 1}/{rounds}, {setup.name}")
                rundir = workdir / f"round{number + 1}-{setup.instances}-{int(setup.shared)}"
                rundir.mkdir()
                try:
                    where = None if profile is None else profile / rundir.name
                    sample, load = await run_once(setup, workload, backing, rundir, where)
                except Exception as exc:
                    errors.append(f"round {number + 1}, {setup.name}: {exc!r}")
                    _progress(f"{setup.name} FAILED: {exc!r}")
                    for log in sorted(rundir.glob("*.log")):
                        with contextlib.suppress(OSError):
                            tail = log.read_text(errors="replace").splitlines()[-3:]
                            _progress(f"{log.name}: {' | '.join(tail)}")
                    continue
                results[setup].append((sample, load))
                _progress(
                    f"{setup.name}: incoming p50 {percentile(sample.incoming_ms, 50):.1f} "
                    f"p99 {percentile(sample.incoming_ms, 99):.1f} "
                    f"max {max(sample.incoming_ms, default=float('nan')):.1f} ms, "
                    f"ok p50 {percentile(sample.ok_ms, 50):.1f} ms, {sample.sent} calls, "
                    f"{len(sample.errors)} errors {sample.errors[:1]}, "
                    f"servers' CPU {100 * sample.server_cpu / max(sample.wall, 1e-9):.0f}%, "
                    f"client CPU {100 * sample.client_cpu / max(sample.wall, 1e-9):.0f}%, "
                    f"load {load:.1f}, CPU ms per invite "
                    + ", ".join(f"{r} {ms:.2f}" for r, ms in cpu_per_invite(setup, sample).items())
                    + " (above idle "
                    + ", ".join(
                        f"{r} {ms:.2f}"
                        for r, ms in cpu_per_invite(setup, sample, above_idle=True).items()
                    )
                    + ")"
                    + f"; logins {_connections(workload) / max(sample.logins_wall, 1e-9):.0f}/s,"
                    " CPU ms per login "
                    + ", ".join(
                        f"{r} {ms:.3f}" for r, ms in cpu_per_login(setup, sample, workload).items()
                    )
                )
    finally:
        await asyncio.to_thread(backing.remove)
    measured = [f for s in setups if results[s] for f in figures(s, workload, results[s])]
    if errors:
        raise PartialFailure(measured, errors)
    return measured


def run(
    quick: bool,
    rounds: int | None = None,
    setups: tuple[Setup, ...] = SETUPS,
    profile: Path | None = None,
) -> list[Figure]:
    """The set-ups under 15,000 connections (``quick``: the small load, one round)."""
    rounds = rounds or (1 if quick else 3)
    with tempfile.TemporaryDirectory(prefix="parley-cluster-") as tmp:
        return asyncio.run(compare(QUICK if quick else LOAD, Path(tmp), rounds, setups, profile))


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.cluster [--quick] [--rounds N] [--setups 1,3] [--profile DIR]``."""
    from bench.runner import format_table

    parser = argparse.ArgumentParser(prog="python -m bench.cluster")
    parser.add_argument("--quick", action="store_true", help="the small load, one round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default: 3, quick 1)")
    parser.add_argument(
        "--setups", default="1,2,3",
        help="which set-ups, by number, comma-separated: 1 = 1 instance on SQLite, "
        "2 = 1 instance on PostgreSQL + Redis, 3 = 3 instances (default: all)",
    )  # fmt: skip
    parser.add_argument(
        "--profile", type=Path, default=None,
        help="a folder for py-spy's collapsed stacks of every instance in every run "
        "(py-spy in the venv or on PATH; instance1 is the coordinator)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        chosen = tuple(SETUPS[int(n) - 1] for n in args.setups.split(","))
    except (ValueError, IndexError):
        parser.error(f"--setups takes numbers from 1 to {len(SETUPS)}, not {args.setups!r}")
    try:
        measured = run(args.quick, args.rounds, chosen, args.profile)
    except PartialFailure as failure:
        print(format_table(failure.figures))
        print(f"failed: {failure}", file=sys.stderr)
        return 1
    print(format_table(measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
