"""A mesh meeting of three homes recovering from a dead path (issue 10), over several runs.

Each run is one meeting across the lab (``tests/net/meeting.py``: homes a, b and c behind
ordinary NATs, coturn for STUN and parley-server in the internet, one ``parley-cli`` each),
then one impairment of home c:

- ``black-hole``: everything home c sends and receives dropped for 10 s;
- ``new-address``: home c's computer changes its address (its links and signaling are dead).

Figure per case: the seconds from the path's return (or the address change) until video flows
again on every link of home c, both ways (a←c, c←a, b←c, c←b: the slowest of the four), as
min/median/max over the runs, with the load average beside each run.

``python -m bench.network_meeting [--runs N] [--cases black-hole,new-address]``. Needs root
and coturn, like the lab.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

from tests.net.impaired import lab_unavailable
from tests.net.meeting import LabMeeting, lab_meeting, readdress

LINKS = (("a", "c"), ("c", "a"), ("b", "c"), ("c", "b"))


def _black_hole(meeting: LabMeeting) -> float:
    marks = {home: side.mark() for home, side in meeting.ends.items()}
    meeting.lab.c.set_black_hole(True)
    cut = time.monotonic()
    time.sleep(10)
    meeting.lab.c.set_black_hole(False)
    restored = time.monotonic()
    back = [meeting.wait_video_again(h, o, marks[h], cut, timeout=90) for h, o in LINKS]
    return max(back) - restored


def _new_address(meeting: LabMeeting) -> float:
    marks = {home: side.mark() for home, side in meeting.ends.items()}
    readdress(meeting.lab.c)
    changed = time.monotonic()
    back = [meeting.wait_video_again(h, o, marks[h], changed, timeout=120) for h, o in LINKS]
    return max(back) - changed


CASES: dict[str, Callable[[LabMeeting], float]] = {
    "black-hole": _black_hole,
    "new-address": _new_address,
}


def main() -> int:
    """Each case ``--runs`` times, a fresh lab and meeting each time; every run, then the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    if args.runs < 1 or not cases or any(c not in CASES for c in cases):
        parser.error(f"cases are {', '.join(CASES)}; runs 1 or more")
    if (why := lab_unavailable()) is not None:
        print(f"the network lab cannot run here: {why}", file=sys.stderr)
        return 2
    results: dict[str, list[float]] = {case: [] for case in cases}
    for case in cases:
        for run in range(args.runs):
            try:
                with lab_meeting() as meeting:
                    seconds = CASES[case](meeting)
            except AssertionError as exc:
                print(f"{case} run {run + 1}: failed: {str(exc).splitlines()[0]}", file=sys.stderr)
                continue
            results[case].append(seconds)
            load = os.getloadavg()[0]
            print(f"{case} run {run + 1}: {seconds:.1f} s (load {load:.1f})", flush=True)
    print("case          video again on every link of c, s: min / median / max   runs")
    for case, values in results.items():
        spread = (
            f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"
            if values
            else "-"
        )
        print(f"{case:<13} {spread:<52} {len(values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
