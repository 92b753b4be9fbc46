"""The signaling server's CPU work per call counted in instructions, which noise leaves alone.

The invite benchmarks (:mod:`bench.invites`) time the server on a machine it shares: the same
code gave 58 to 76% of a core at 500 invites/s from one run to the next, so a change of a tenth
in the server's work per call does not show there. Here the server (``bench.serverproc``, as
the invite benchmark starts it) runs under ``valgrind --tool=callgrind``, which counts the
instructions the process executes in user space, whatever else the machine does. The load is
sequential: one invite after another, each cancelled once its ``call.incoming`` arrived (the
*pairs* workload's call), over 10 logged-in pairs. Each round starts two fresh servers and
makes ``--calls A,B`` calls on them; (total B - total A) / (B - A) is the work of one call,
start-up and shutdown cancelled out. What runs by the clock (the collector each second,
keepalives) grows with the run's length under valgrind, so the figure moves by a few percent
between rounds: compare two trees in interleaved rounds (``--tree``). System calls are not
instructions: a write saved shows in the bench's CPU time, not here.

``python -m bench.server_instructions [--rounds N] [--calls A,B] [--tree DIR ...]``
(``--tree`` again for each tree to compare, e.g. a ``git worktree`` of an older commit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

from bench.invites import Driver, Users, Workload, abort_all, open_workload, seed
from bench.serverproc import PROJECT_ROOT

CALLS = (50, 450)
LOAD = Workload("sequential", pairs=10, rate=10.0, duration=1.0)


async def instructions(tree: Path, calls: int, workdir: Path) -> int:
    """Instructions the server from ``tree`` executed in all, serving ``calls`` calls."""
    users = Users.of(LOAD)
    db = workdir / "calls.db"
    tokens = await seed(db, users.names, users.pairs)
    out = workdir / "callgrind.out"
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0")
    with open(workdir / "server.log", "wb") as log:
        process = await asyncio.create_subprocess_exec(
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, "-m", "bench.serverproc", "--db", str(db),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
            cwd=tree, env=env,
        )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    try:
        url = ""
        while not url:
            line = (await asyncio.wait_for(process.stdout.readline(), 300)).decode()
            if not line:
                raise RuntimeError(f"the server did not start: see {workdir / 'server.log'}")
            if line.startswith("URL "):
                url = line.split()[1]
        driver = Driver([], [])
        clients = await open_workload([url], tokens, LOAD, driver)
        for number in range(calls):
            await driver.call(number % LOAD.pairs, None)
        abort_all(clients)
        if driver.sample.errors:
            raise RuntimeError(f"calls failed: {driver.sample.errors[:3]}")
    finally:
        process.stdin.close()  # the server stops; callgrind writes its counts
        await asyncio.wait_for(process.wait(), 300)
    found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(errors="replace"), re.M)
    if found is None:
        raise RuntimeError(f"no total in {out}")
    return int(found.group(1))


async def run(trees: list[Path], rounds: int, calls: tuple[int, int]) -> None:
    """Interleaved rounds over ``trees``; prints each round and min / median / max."""
    per_call: dict[Path, list[float]] = {tree: [] for tree in trees}
    low, high = calls
    for number in range(rounds):
        for tree in trees:
            with tempfile.TemporaryDirectory(prefix="instructions-") as tmp:
                counts = []
                for count in calls:
                    workdir = Path(tmp) / str(count)
                    workdir.mkdir()
                    counts.append(await instructions(tree, count, workdir))
            per_call[tree].append((counts[1] - counts[0]) / (high - low))
            print(f"round {number + 1}/{rounds} {tree}: {per_call[tree][-1]:,.0f} per call",
                  flush=True)  # fmt: skip
    for tree, values in per_call.items():
        middle = statistics.median(values)
        spread = " / ".join(f"{v:,.0f}" for v in (min(values), middle, max(values)))
        print(f"{tree}: instructions per call, min / median / max of {rounds}: {spread}")


def main() -> None:
    """Entry point of ``python -m bench.server_instructions``."""
    parser = argparse.ArgumentParser(prog="python -m bench.server_instructions")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", default=",".join(map(str, CALLS)), help="A,B with A < B")
    parser.add_argument("--tree", type=Path, action="append", help="a checkout to measure")
    args = parser.parse_args()
    low, high = (int(n) for n in args.calls.split(","))
    if not 0 <= low < high:
        parser.error("--calls takes A,B with 0 <= A < B")
    trees = [tree.resolve() for tree in args.tree or [PROJECT_ROOT]]
    asyncio.run(run(trees, args.rounds, (low, high)))


if __name__ == "__main__":
    main()
