"""Calls across the network lab, Parley beside Chromium: connected? time from accept to the first
remote frame, and the path taken, in the cases of tests/net/test_paths.py.

Cases (homes a and b of ``tests/net/lab.py``; coturn and parley-server in the "internet"):

- ``ordinary``: both behind ordinary NATs (a direct path should win);
- ``randomising``: both NATs port-randomising (only TURN gets through);
- ``udp-blocked``: home a drops UDP (TURN over TCP for a);
- ``tls-only``: home a drops UDP and TCP to 3478 (TURN over TLS for a).

Parley: two ``parley-cli`` with only the ICE servers the server hands out; the callee's summary
gives ``first_frame_ms`` (its accept to its first decoded remote frame), the caller's (home a,
the impaired one) the ``path``. Chromium:
two headless pages (``bench/network_peer.py``) with the same coturn and credentials, trickle ICE
as browsers do, the answerer's time from receiving the offer to its first decoded frame.
Needs root (namespaces) and coturn. ``python -m bench.network [--runs N]`` prints each run and
min/median/max; ``python -m bench --only network`` gives the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import Figure, Goal
from signaling.server.turn import IceSettings, ice_servers
from tests.cli.procs import Child
from tests.net.relay import STUN, TURN_TCP, TURN_UDP, TURNS, TurnLab, turn_lab, turn_lab_unavailable

BENCH = "network"
Setup = Callable[[TurnLab], None]


def _ordinary(lab: TurnLab) -> None:
    pass


def _randomising(lab: TurnLab) -> None:
    for home in lab.lab.homes.values():
        home.set_random_nat(True)


def _udp_blocked(lab: TurnLab) -> None:
    lab.lab.a.block_udp()


def _tls_only(lab: TurnLab) -> None:
    lab.lab.a.firewall("-p udp", "-p tcp --dport 3478")


CASES: dict[str, Setup] = {
    "ordinary": _ordinary,
    "randomising": _randomising,
    "udp-blocked": _udp_blocked,
    "tls-only": _tls_only,
}


@dataclass(frozen=True, slots=True)
class Run:
    """One call: did it connect, how long from accept to the first frame, which path."""

    stack: str
    case: str
    connected: bool
    first_frame_ms: float | None
    path: str | None


def _reset(lab: TurnLab) -> None:
    for home in lab.lab.homes.values():
        home.set_random_nat(False)
        home.firewall()


def parley_run(lab: TurnLab, case: str) -> Run:
    """One parley-cli call from home a to home b."""
    try:
        caller, callee = lab.call(duration=3.0, timeout=90.0)
    except AssertionError as exc:
        print(f"[network] parley {case}: no call: {str(exc).splitlines()[0]}", file=sys.stderr)
        return Run("parley", case, False, None, None)
    summary = callee.summary
    path = (caller.summary.get("path") or {}).get("label")  # home a's, the impaired one
    return Run("parley", case, summary["frames_received"] > 0, summary.get("first_frame_ms"), path)


def chromium_run(lab: TurnLab, case: str) -> Run:
    """Two headless Chromium pages in the homes, the same coturn and credentials."""
    settings = IceSettings((TURN_UDP, TURN_TCP, TURNS), (STUN,), lab.secret, ttl_s=600)
    servers = json.dumps(ice_servers(settings, "chromium", time.time())["ice_servers"])
    with tempfile.TemporaryDirectory(prefix="parley-chromium-") as folder:
        peers = []
        for role, home in (("answer", lab.lab.b), ("offer", lab.lab.a)):
            argv = [sys.executable, "-m", "bench.network_peer", role, folder, servers, "40"]
            peers.append(Child(f"chromium-{role}", home.argv(argv)))
        results = []
        for peer in peers:
            code = peer.wait_exit(90)
            line = next((ln for _, ln in reversed(peer.out) if ln.startswith("{")), None)
            if code != 0 or line is None:
                print(f"[network] chromium {case}: {peer.describe(8)}", file=sys.stderr)
                return Run("chromium", case, False, None, None)
            results.append(json.loads(line))
    answer, offer = results
    if not answer["connected"]:
        print(f"[network] chromium {case}: not connected: {results}", file=sys.stderr)
    # The answerer's accept to its first frame; the path as home a (the offerer) sees it.
    path = offer["path"] or answer["path"]
    return Run("chromium", case, answer["connected"], answer["first_frame_ms"], path)


def measure(
    runs: int, cases: list[str], stacks: list[str], private_peers: bool = True
) -> list[Run]:
    """Every case, ``runs`` times, for each stack, in one lab."""
    out: list[Run] = []
    with turn_lab(private_peers) as lab:
        for case in cases:
            for _ in range(runs):
                for stack in stacks:
                    CASES[case](lab)
                    try:
                        run = (parley_run if stack == "parley" else chromium_run)(lab, case)
                    finally:
                        _reset(lab)
                    print(f"[network] {run}", file=sys.stderr, flush=True)
                    out.append(run)
    return out


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.0f} / {statistics.median(values):.0f} / {max(values):.0f}"


def report(runs: list[Run]) -> str:
    """A table: per case and stack, connected runs, accept→first frame min/median/max, paths."""
    lines = ["case          stack     connected  first frame ms (min/median/max)  path"]
    for case in CASES:
        for stack in ("parley", "chromium"):
            mine = [r for r in runs if r.case == case and r.stack == stack]
            if not mine:
                continue
            ok = [r for r in mine if r.connected]
            frames = [r.first_frame_ms for r in ok if r.first_frame_ms is not None]
            paths = sorted({r.path or "?" for r in ok})
            lines.append(
                f"{case:<13} {stack:<9} {len(ok)}/{len(mine):<8} {_spread(frames):<32} "
                + ", ".join(paths)
            )
    return "\n".join(lines)


def run(quick: bool) -> list[Figure]:
    """``python -m bench`` entry: figures per case and stack."""
    if reason := turn_lab_unavailable():
        raise RuntimeError(f"the network lab cannot run here: {reason}")
    runs = measure(1 if quick else 3, list(CASES), ["parley", "chromium"])
    print(report(runs), file=sys.stderr)
    figures = []
    for case in CASES:
        for stack in ("parley", "chromium"):
            mine = [r for r in runs if r.case == case and r.stack == stack]
            ok = [r for r in mine if r.connected]
            frames = [r.first_frame_ms for r in ok if r.first_frame_ms is not None]
            figures.append(
                Figure(BENCH, f"{case} {stack} connected", len(ok) / len(mine), "share",
                       Goal.at_least(1.0))
            )  # fmt: skip
            median = statistics.median(frames) if frames else float("nan")
            figures.append(Figure(BENCH, f"{case} {stack} accept to first frame", median, "ms"))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.network", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="calls per case and stack")
    parser.add_argument("--case", action="append", choices=list(CASES), help="only these cases")
    parser.add_argument(
        "--stack", action="append", choices=["parley", "chromium"], help="only these stacks"
    )
    parser.add_argument("--json", type=Path, help="also write every run to this file")
    parser.add_argument(
        "--deny-private-peers",
        action="store_true",
        help="coturn as deploy/coturn configures it (no relaying into private networks); by "
        "default the lab's coturn allows it, the worst case for clients",
    )
    args = parser.parse_args(argv)
    if reason := turn_lab_unavailable():
        print(f"bench.network: {reason}", file=sys.stderr)
        return 2
    stacks = args.stack or ["parley", "chromium"]
    runs = measure(args.runs, args.case or list(CASES), stacks, not args.deny_private_peers)
    print(report(runs))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
