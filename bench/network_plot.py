"""The impaired-network calls over time, as an SVG: received video frames/s, Parley beside Chromium.

One call per case and stack, made exactly as ``bench/network_impaired.py`` makes them (the same
lab, servers, media and impairments, its ``CASES``), recording the callee's per-second ``stats``
lines (home b receiving from home a, where the impairment is) from a few seconds before the
impairment to ten seconds after it ends. The plot has one panel per case, one line per stack,
and the impairment shaded; it is drawn by hand (no plotting library), as ``bench/meetings.py``
draws its figure.

``python -m bench.network_plot [--cases loss,cap,black-hole] [--stacks parley,chromium]
[--svg docs/performance-network.svg] [--json FILE]``, or ``--from-json FILE`` to redraw saved
series. Each call is printed with the load average beside it. Needs root and coturn, like the
lab.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.net.impaired import camera_fps, lab_unavailable
from tests.net.lab import Home

Json = dict[str, Any]
#: What the plot shows by default: the cases whose media change over time.
PLOTTED = ("loss", "cap", "black-hole")
COLOURS = {"parley": "#1f77b4", "chromium": "#d62728"}
TITLES = {
    "loss": "5% random loss on home a's uplink",
    "cap": "1 Mbit/s cap on home a's uplink (Parley sends 1280x720), then lifted",
    "black-hole": "10 s black hole on home a, then the path is back",
    "new-address": "home a's computer changes its address",
}
#: Seconds of the call kept before the impairment starts and after it ends.
BEFORE_S, AFTER_S = 5.0, 10.0
_IMPAIRING = ("set_loss", "set_cap", "set_black_hole")


@contextlib.contextmanager
def impairments() -> Iterator[list[tuple[float, str, bool]]]:
    """Record when each impairment goes on and off (monotonic time, name, on) while inside."""
    seen: list[tuple[float, str, bool]] = []
    originals = {name: getattr(Home, name) for name in _IMPAIRING}

    def wrap(name: str, original: Callable[..., None]) -> Callable[..., None]:
        def recorded(home: Home, value: Any, *args: Any) -> None:
            original(home, value, *args)
            seen.append((time.monotonic(), name, bool(value)))

        return recorded

    for name, original in originals.items():
        setattr(Home, name, wrap(name, original))
    try:
        yield seen
    finally:
        for name, original in originals.items():
            setattr(Home, name, original)


def one_call(case: str, stack: str) -> Json:
    """One impaired call; the callee's frames/s over time (0 = the impairment starts) and the
    impairment's span, as JSON."""
    from bench.network_impaired import CASES, chromium_call
    from tests.net.impaired import lab_call

    impair, caller_args = CASES[case]
    call = chromium_call() if stack == "chromium" else lab_call(caller_args)
    with call as connected, impairments() as seen:
        began = time.monotonic()
        impair(connected)
        time.sleep(AFTER_S)
        ended = time.monotonic()
        on = [at for at, _, state in seen if state]
        off = [at for at, _, state in seen if not state]
        start = on[0] if on else began
        stop = max(off) if off else start
        with connected.callee.cond:
            lines = [
                (at, m)
                for at, m in connected.callee.events
                if m["event"] == "stats" and start - BEFORE_S <= at <= ended
            ]
    return {
        "case": case,
        "stack": stack,
        "load": os.getloadavg()[0],
        "impaired": [0.0, round(stop - start, 2)],
        "series": [[round(at - start, 2), camera_fps(m)] for at, m in lines],
    }


def svg(calls: Sequence[Json]) -> str:
    """One panel per case (frames/s against seconds), a line per stack, the impairment shaded."""
    cases = list(dict.fromkeys(c["case"] for c in calls))
    width, panel, left, right, top, gap = 640, 150, 56, 110, 50, 50
    height = top + len(cases) * (panel + gap) + 10
    x_lo = -BEFORE_S
    x_hi = max([p[0] for c in calls for p in c["series"]] + [30.0])
    y_max = 35.0

    def x(t: float) -> float:
        return left + (t - x_lo) / (x_hi - x_lo) * (width - left - right)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">Video frames/s '
        "home b received from home a, one call each (bench/network_plot.py)</text>",
    ]
    for row, case in enumerate(cases):
        y0 = top + row * (panel + gap)

        def y(v: float, y0: float = y0) -> float:
            return y0 + panel - min(v, y_max) / y_max * panel

        mine = [c for c in calls if c["case"] == case]
        lo, hi = mine[0]["impaired"]
        parts.append(
            f'<rect x="{x(lo):.1f}" y="{y0}" width="{max(1.0, x(hi) - x(lo)):.1f}" '
            f'height="{panel}" fill="#eee"/>'
        )
        for step in range(0, int(y_max) + 1, 10):
            parts.append(
                f'<line x1="{left}" x2="{width - right}" y1="{y(step):.1f}" y2="{y(step):.1f}" '
                f'stroke="#ddd"/><text x="{left - 6}" y="{y(step) + 4:.1f}" '
                f'text-anchor="end">{step}</text>'
            )
        for t in range(0, int(x_hi) + 1, 10):
            parts.append(
                f'<text x="{x(t):.1f}" y="{y0 + panel + 14}" text-anchor="middle">{t}</text>'
            )
        parts.append(
            f'<text x="{left + 6}" y="{y0 - 6}" font-weight="bold">{TITLES.get(case, case)}</text>'
        )
        for i, c in enumerate(mine):
            colour = COLOURS.get(c["stack"], "#2ca02c")
            points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in c["series"])
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.6"/>'
                f'<text x="{width - right + 8}" y="{y0 + 16 + 15 * i}" fill="{colour}">'
                f"{c['stack']} (load {c['load']:.0f})</text>"
            )
    parts.append(
        f'<text x="14" y="{top + panel / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + panel / 2})">frames/s</text>'
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">'
        "seconds from the start of the impairment (shaded)</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> int:
    """Make the calls (or read saved ones) and write the SVG."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(PLOTTED))
    parser.add_argument("--stacks", default="parley,chromium")
    parser.add_argument("--svg", type=Path, default=Path("docs/performance-network.svg"))
    parser.add_argument("--json", type=Path, help="also save the series here")
    parser.add_argument("--from-json", type=Path, help="redraw series saved with --json")
    args = parser.parse_args()
    if args.from_json is not None:
        try:
            calls = json.loads(args.from_json.read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"cannot read {args.from_json}: {exc}")
    else:
        from bench.network_impaired import CASES, STACKS

        cases = [c for c in args.cases.split(",") if c]
        stacks = [s for s in args.stacks.split(",") if s]
        unknown = [c for c in cases if c not in CASES] + [s for s in stacks if s not in STACKS]
        if unknown or not cases or not stacks:
            parser.error(f"cases are {', '.join(CASES)}; stacks {', '.join(STACKS)}")
        if (why := lab_unavailable()) is not None:
            print(f"the network lab cannot run here: {why}", file=sys.stderr)
            return 2
        calls = []
        for case in cases:
            for stack in stacks:
                try:
                    calls.append(one_call(case, stack))
                except AssertionError as exc:
                    print(f"{stack} {case}: no call: {str(exc).splitlines()[0]}", file=sys.stderr)
                    continue
                fps = [v for _, v in calls[-1]["series"]]
                print(
                    f"{stack} {case}: {len(fps)} s, frames/s min {min(fps, default=0):.0f} "
                    f"max {max(fps, default=0):.0f}, load {calls[-1]['load']:.1f}",
                    file=sys.stderr,
                    flush=True,
                )
        if args.json is not None:
            args.json.write_text(json.dumps(calls))
    args.svg.write_text(svg(calls))
    print(f"wrote {args.svg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
