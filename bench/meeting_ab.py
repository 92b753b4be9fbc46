"""CPU per participant with and without some of gui/media/fast_paths.py, side by side in the
same meetings: on a machine shared with other work, only figures taken at the same moment
under the same load compare.

``python -m bench.meeting_ab [--mode sfu] [--size 8] [--runs 3] [--window 20]
[--off audio_decode,audio_encode]``: each run is one meeting of ``--size`` participants
(every one a ``parley-cli`` process, 640x360 at 15 frames/s and a tone, as
``bench/meetings.py``); half of them run with ``PARLEY_FAST_PATHS_OFF=<--off>`` (aiortc's own
paths: "without"), the other half with everything ("with"), alternating by position and
swapping the halves from one run to the next (the host, who also ends the meeting, is in
each half in turn). CPU is each process's user+system time over the window
(``/proc/PID/stat``), in % of one core. Printed: each run's mean of each half, then min /
median / max over the runs of each and of the saving (without - with), with the load
average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.meetings import (
    MODES,
    Participant,
    answer_options,
    cpu_seconds,
    describe,
    make_friends,
    media,
    reap,
    spread,
    wait_until,
)

ENV = "PARLEY_FAST_PATHS_OFF"


async def start_with(person: Participant, url: str, off: str | None) -> None:
    """Start ``person`` with ``PARLEY_FAST_PATHS_OFF=off`` (None: unset)."""
    saved = os.environ.pop(ENV, None)
    try:
        if off is not None:
            os.environ[ENV] = off
        await person.start(url)  # the child's environment is copied now
    finally:
        os.environ.pop(ENV, None)
        if saved is not None:
            os.environ[ENV] = saved


async def one_run(
    mode_name: str, mode: object, url: str, users: Sequence[str], off: str, swap: bool,
    window: float,
) -> tuple[list[float], list[float]]:  # fmt: skip
    """One meeting; the CPU (% of a core) of the "with" half and of the "without" half."""
    guests = [
        Participant(u, ["meet", "answer", "--wait", "60", "--stats", *answer_options(i)])
        for i, u in enumerate(users[1:], start=1)
    ]
    host = Participant(
        users[0], ["meet", "create", "--invite", ",".join(users[1:]), "--end", "--stats",
                   *media(440)],
    )  # fmt: skip
    everyone = [host, *guests]
    without = {p.user for i, p in enumerate(everyone) if (i % 2 == 1) != swap}
    try:
        for p in [*guests, host]:
            await start_with(p, url, off if p.user in without else None)
        ready = mode.ready  # type: ignore[attr-defined]
        await wait_until(
            lambda: all(ready(p, len(everyone) - 1) for p in everyone), 90, "meeting linked"
        )
        await asyncio.sleep(3)  # let bandwidth estimation settle
        before = {p.user: cpu_seconds(p.pid) for p in everyone}
        started = time.monotonic()
        await asyncio.sleep(window)
        elapsed = time.monotonic() - started
        after = {p.user: cpu_seconds(p.pid) for p in everyone}
        host.stop()
        codes = [await p.finish() for p in everyone]
    finally:
        await reap(everyone)
    if any(codes):
        raise RuntimeError(f"a participant failed ({codes}): {describe(everyone)}")
    cpu = {u: 100 * (after[u] - before[u]) / elapsed for u in before}
    return (
        [c for u, c in cpu.items() if u not in without],
        [c for u, c in cpu.items() if u in without],
    )


async def measure(mode_name: str, size: int, runs: int, window: float, off: str) -> int:
    mode = MODES[mode_name]()
    users = [f"bm-{mode_name}-{i}" for i in range(size)]
    withs, withouts, savings, loads = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-meeting-ab-") as tmp:
        url = await mode.start(Path(tmp))
        try:
            await make_friends(url, users)
            for run in range(runs):
                try:
                    got_with, got_without = await one_run(
                        mode_name, mode, url, users, off, run % 2 == 1, window
                    )
                except Exception as exc:  # one broken run must not lose the others
                    print(f"[meeting_ab] run {run + 1} FAILED: {exc}", file=sys.stderr)
                    continue
                w, wo = statistics.fmean(got_with), statistics.fmean(got_without)
                load = os.getloadavg()[0]
                withs.append(w)
                withouts.append(wo)
                savings.append(wo - w)
                loads.append(load)
                print(
                    f"[meeting_ab] run {run + 1}/{runs}: with {w:.1f} % "
                    f"({', '.join(f'{c:.1f}' for c in got_with)}), without {wo:.1f} % "
                    f"({', '.join(f'{c:.1f}' for c in got_without)}), load {load:.1f}",
                    file=sys.stderr,
                )
        finally:
            await mode.stop()
    if not withs:
        print("no run completed")
        return 1
    print(
        f"{mode_name} {size}, {len(withs)} runs, {window:g} s windows, {off} off in half of "
        f"each meeting (min / median / max over runs):\n"
        f"  CPU per participant with {spread(withs)} %, without {spread(withouts)} %, "
        f"saved {spread(savings)} points of a core; load average {spread(loads)}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="sfu")
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window", type=float, default=20.0, help="seconds measured")
    parser.add_argument(
        "--off", default="audio_decode,audio_encode",
        help=f"what the 'without' half leaves out ({ENV}; default: %(default)s)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    return asyncio.run(measure(args.mode, args.size, args.runs, args.window, args.off))


if __name__ == "__main__":
    sys.exit(main())
