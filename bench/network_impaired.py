"""Calls on an impaired network (issue 10, cases 4 to 6): loss, a cap lifted, a black hole.

Each run is one call between the lab's two homes (``tests/net/impaired.py``: ordinary NATs,
coturn for STUN and parley-server in the "internet", two ``parley-cli`` sending the 640x480
test pattern at 30 frames/s, or 1280x720 for the cap), impaired on home a's router:

- ``loss``: 5% of the packets home a sends dropped at random, 30 s measured;
- ``cap``: home a's uplink capped at 1 Mbit/s for 20 s, then lifted;
- ``black-hole``: everything home a sends and receives dropped for 10 s;
- ``new-address``: home a's computer changes its address mid-call.

Figures per case, min/median/max over the runs: the video frames/s the callee received and its
freeze time (the sum of the waits between frames over 500 ms, per minute) during the
impairment; for the cap, what the caller sent while capped and the seconds after the lift
until it sends at its rate from before the cap again; for the black hole, the seconds from the
path's return (or the address change) to video at 3 frames/s or more on both sides.

``python -m bench.network_impaired [--runs N] [--cases loss,cap,black-hole]
[--stacks parley,parley-unrepaired,chromium]`` prints each run and the table (``parley-unrepaired``:
Parley with its video receivers' repair only watching, for a comparison); ``python -m bench
--only network-impaired`` gives the figures. Needs root (namespaces) and coturn.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench import Figure, Goal
from tests.cli.procs import Child, CliProcess
from tests.net.impaired import (
    STUN,
    LabCall,
    camera_fps,
    hang_up,
    lab_call,
    lab_unavailable,
    start_services,
    stats_between,
    wait_video,
)
from tests.net.lab import network_lab

BENCH = "network-impaired"
STACKS = ("parley", "chromium")
#: Stacks measured only when asked for (``--stacks``): Parley whose video receivers only watch
#: (``PARLEY_RECEIVE_REPAIR=observe``: aiortc's own NACKs and jitter buffer, as before the
#: repair), for a comparison in the same run.
EXTRA_STACKS = ("parley-unrepaired",)
CAP_KBIT = 1000


@dataclass
class Run:
    """One impaired call's figures (names as in the table; None: not measured)."""

    stack: str
    case: str
    values: dict[str, float | None] = field(default_factory=dict)


@contextlib.contextmanager
def chromium_call(seconds: float = 100.0) -> Iterator[LabCall]:
    """Two headless Chromium ends (``bench/network_media_peer.py``) in homes a and b, with the
    same STUN server, connected and receiving video; shaped like :func:`lab_call`'s."""
    children: list[Child] = []
    servers = json.dumps([{"urls": STUN}])
    with tempfile.TemporaryDirectory(prefix="parley-chromium-") as tmp, network_lab() as lab:
        try:
            start_services(lab, Path(tmp), children)
            ends = []
            for role, home in (("answer", lab.b), ("offer", lab.a)):
                argv = [sys.executable, "-m", "bench.network_media_peer", role, tmp, servers]
                end = CliProcess(f"chromium-{role}", home.argv([*argv, str(seconds)]))
                children.append(end)
                ends.append(end)
            callee, caller = ends
            for side in (caller, callee):
                side.wait_state("connected", 60)
                wait_video(side, 30)
            yield LabCall(lab, caller, callee, children)
        finally:
            for process in reversed(children):
                process.kill()


def _received(side: CliProcess, start: float, end: float) -> tuple[float, float]:
    """Frames/s and freeze ms per minute the side received between two times."""
    lines = stats_between(side, start, end)
    frames = [m["camera_frames"] for m in lines if m.get("camera_frames") is not None]
    freezes = [m["camera_freeze_ms"] for m in lines if m.get("camera_freeze_ms") is not None]
    span = max(1e-3, end - start)
    if len(frames) < 2 or frames[-1] < frames[0]:  # a new receiver (a restart) meanwhile
        fps = statistics.mean(camera_fps(m) for m in lines) if lines else 0.0
        return fps, float("nan")
    return (frames[-1] - frames[0]) / span, (freezes[-1] - freezes[0]) / span * 60


def _loss(call: LabCall) -> dict[str, float | None]:
    call.home("a").set_loss(0.05)
    start = time.monotonic() + 5
    time.sleep(35)
    fps, freeze = _received(call.callee, start, time.monotonic())
    call.home("a").set_loss(0)
    return {"fps": fps, "freeze_ms_per_min": freeze, **_repair(call)}


def _repair(call: LabCall) -> dict[str, float | None]:
    """Where a Parley callee's freeze came from, after hanging up: its video receivers' repair
    (the summary, for the whole call): packets given up, frames held back by a missing packet,
    and waits of 500 ms or more with no packet at all (sender, path or a starved process).
    Nothing for Chromium."""
    if not call.callee.name.startswith("parley-cli"):  # parley and parley-unrepaired
        return {}
    try:
        hang_up(call)
        repair = call.callee.summary.get("video_repair") or {}
    except AssertionError as exc:  # the other figures stand without these
        print(f"[{BENCH}] no summary: {str(exc).splitlines()[0]}", file=sys.stderr)
        repair = {}
    return {name: repair.get(name) for name in ("given_up", "stalled_ms", "idle_ms")}


def _cap(call: LabCall) -> dict[str, float | None]:
    before = time.monotonic()
    time.sleep(10)
    base = statistics.median(
        m["bitrate_out_kbps"] for m in stats_between(call.caller, before, time.monotonic())
    )
    home = call.home("a")
    home.set_cap(CAP_KBIT)
    capped = time.monotonic()
    time.sleep(20)
    home.set_cap(None)
    lifted = time.monotonic()
    fps, freeze = _received(call.callee, capped + 5, lifted)
    sent = statistics.median(
        m["bitrate_out_kbps"] for m in stats_between(call.caller, capped + 5, lifted)
    )
    target = min(base, CAP_KBIT) * 0.9

    def back() -> float | None:
        for at, message in call.caller.events:
            stats = message["event"] == "stats"
            if at > lifted and stats and message["bitrate_out_kbps"] >= target:
                return at
        return None

    try:
        again = call.caller.wait_for(back, 30, "the rate from before the cap")
        climb: float | None = again - lifted
    except AssertionError:
        climb = None
    return {
        "fps": fps,
        "freeze_ms_per_min": freeze,
        "sent_before_kbps": base,
        "sent_capped_kbps": sent,
        "back_to_rate_s": climb,
        **_repair(call),
    }


def _video_back(call: LabCall, cut: float, since: float) -> dict[str, float | None]:
    """Seconds from ``since`` until both sides see video at 3 frames/s or more again, after
    seeing it stop once the path was cut (at ``cut``)."""
    times = []
    for side in (call.caller, call.callee):

        def video(side: CliProcess = side) -> float | None:
            stopped = False  # a line may still count frames from before the cut: the
            for at, message in side.events:  # outage is seen first, then video again
                if at <= cut or message["event"] != "stats":
                    continue
                if camera_fps(message) < 3:
                    stopped = True
                elif stopped and at > since:
                    return at
            return None

        try:
            times.append(side.wait_for(video, 40, "video again") - since)
        except AssertionError:
            return {"recovery_s": None}
    return {"recovery_s": max(times)}


def _black_hole(call: LabCall) -> dict[str, float | None]:
    call.home("a").set_black_hole(True)
    cut = time.monotonic()
    time.sleep(10)
    call.home("a").set_black_hole(False)
    return _video_back(call, cut, time.monotonic())


def _new_address(call: LabCall) -> dict[str, float | None]:
    home = call.home("a")
    prefix = home.address.rsplit(".", 1)[0]
    home.run("ip", "addr", "del", f"{home.address}/24", "dev", "eth0")
    home.run("ip", "addr", "add", f"{prefix}.7/24", "dev", "eth0")
    home.run("ip", "route", "replace", "default", "via", f"{prefix}.1")
    changed = time.monotonic()
    return _video_back(call, changed, changed)


CASES: dict[str, tuple[Callable[[LabCall], dict[str, float | None]], tuple[str, ...]]] = {
    "loss": (_loss, ()),
    "cap": (_cap, ("--resolution", "1280x720")),
    "black-hole": (_black_hole, ()),
    "new-address": (_new_address, ()),
}


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Environment variables the children started meanwhile inherit."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def measure(runs: int, cases: list[str], stacks: list[str]) -> list[Run]:
    """Each case ``runs`` times for each stack, a fresh lab and call each time."""
    out = []
    for case in cases:
        impair, caller_args = CASES[case]
        for _ in range(runs):
            for stack in stacks:
                call = chromium_call() if stack == "chromium" else lab_call(caller_args)
                mode = "observe" if stack == "parley-unrepaired" else "on"
                try:
                    with _environment(PARLEY_RECEIVE_REPAIR=mode), call as connected:
                        run = Run(stack, case, impair(connected))
                except AssertionError as exc:
                    problem = str(exc).splitlines()[0]
                    print(f"[{BENCH}] {stack} {case}: no call: {problem}", file=sys.stderr)
                    run = Run(stack, case, {})
                print(f"[{BENCH}] {run}", file=sys.stderr, flush=True)
                out.append(run)
    return out


UNITS = {
    "fps": "frames/s",
    "freeze_ms_per_min": "ms/min",
    "sent_before_kbps": "kb/s",
    "sent_capped_kbps": "kb/s",
    "back_to_rate_s": "s",
    "recovery_s": "s",
    "given_up": "packets",
    "stalled_ms": "ms",
    "idle_ms": "ms",
}
GOALS = {"recovery_s": Goal.at_most(5.0), "sent_capped_kbps": Goal.at_most(float(CAP_KBIT))}


def _values(runs: list[Run], stack: str, case: str, name: str) -> list[float]:
    found = [r.values.get(name) for r in runs if (r.stack, r.case) == (stack, case)]
    return [v for v in found if v is not None and v == v]


def _groups(runs: list[Run]) -> list[tuple[str, str, str]]:
    """(stack, case, figure name) in the order they were measured."""
    return list(dict.fromkeys((r.stack, r.case, n) for r in runs for n in r.values))


def figures(runs: list[Run]) -> list[Figure]:
    """min/median/max of every figure of every case and stack."""
    out = []
    for stack, case, name in _groups(runs):
        values = _values(runs, stack, case, name)
        label = f"{stack} {case} {name}"
        if not values:
            out.append(Figure(BENCH, label, float("nan"), UNITS[name]))
            continue
        for what, value in (
            ("min", min(values)),
            ("median", statistics.median(values)),
            ("max", max(values)),
        ):
            goal = GOALS.get(name) if what == "median" and stack == "parley" else None
            out.append(Figure(BENCH, f"{label} {what}", value, UNITS[name], goal))
    return out


def report(runs: list[Run]) -> str:
    """A table: stack, case, figure, min / median / max, runs."""
    lines = ["stack     case         figure               min / median / max          runs"]
    for stack, case, name in _groups(runs):
        values = _values(runs, stack, case, name)
        spread = (
            f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"
            if values
            else "-"
        )
        lines.append(f"{stack:<9} {case:<12} {name:<20} {spread:<27} {len(values)}")
    return "\n".join(lines)


def run(quick: bool) -> list[Figure]:
    """The benchmark runner's entry: 3 runs of each case (1 with ``quick``)."""
    why = lab_unavailable()
    if why is not None:
        raise RuntimeError(f"the network lab cannot run here: {why}")
    return figures(measure(1 if quick else 3, list(CASES), list(STACKS)))


def main() -> int:
    """Print every run, then the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--stacks", default=",".join(STACKS))
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    stacks = [s for s in args.stacks.split(",") if s]
    known = STACKS + EXTRA_STACKS
    unknown = [c for c in cases if c not in CASES] + [s for s in stacks if s not in known]
    if unknown or args.runs < 1:
        parser.error(f"cases are {', '.join(CASES)}; stacks {', '.join(known)}; runs 1 or more")
    why = lab_unavailable()
    if why is not None:
        print(f"the network lab cannot run here: {why}", file=sys.stderr)
        return 2
    print(report(measure(args.runs, cases, stacks)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
