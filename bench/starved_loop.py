"""How late is audio heard on a loop that makes few passes? Every waiting datagram read per
pass (:mod:`gui.core.udp_reading`, what Parley does) against asyncio's one per pass.

Two real aiortc peers on loopback carry a tone (:mod:`tests.core.starved_loop`); a callback
sleeps ``--pass-ms`` on every pass of the loop for ``--starve`` seconds (a loaded machine, a
busy window), then the tone starts: the figure is the time from the tone's first loud frame
to its onset at the receiver (not heard within 20 s: counted as 20 s). The two ways run
interleaved, round after round, so that the machine's load hits them alike. Prints min /
median / max over the rounds, with the loop's passes a second and the load average.

``python -m bench.starved_loop [--rounds N] [--starve S] [--pass-ms MS]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys

from gui.core import udp_reading
from tests.core.starved_loop import one_datagram_per_pass, onset_delay_after_starving

WAYS = ("every waiting", "one per pass")


def _line(name: str, values: list[float], unit: str) -> str:
    return (
        f"{name:<28} min {min(values):7.2f} / median {statistics.median(values):7.2f}"
        f" / max {max(values):7.2f} {unit}"
    )


async def run(rounds: int, starve_s: float, pass_s: float) -> None:
    udp_reading.install()
    delays: dict[str, list[float]] = {way: [] for way in WAYS}
    passes: dict[str, list[float]] = {way: [] for way in WAYS}
    loads: list[float] = []
    for index in range(rounds):
        for way in WAYS if index % 2 == 0 else reversed(WAYS):
            loads.append(os.getloadavg()[0])
            context = one_datagram_per_pass() if way == "one per pass" else contextlib.nullcontext()
            with context:
                delay, per_s = await onset_delay_after_starving(starve_s, pass_s)
            delays[way].append(delay)
            passes[way].append(per_s)
            print(
                f"round {index + 1}/{rounds} {way}: heard {delay:.2f} s late,"
                f" {per_s:.1f} passes/s, load {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
            )
    print(f"tone heard after {starve_s:g} s of a loop sleeping {pass_s * 1000:g} ms a pass:")
    for way in WAYS:
        print(_line(f"  {way}: delay", delays[way], "s"))
        print(_line(f"  {way}: loop passes", passes[way], "/s"))
    print(_line("load average (1 min)", loads, ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--starve", type=float, default=10.0, help="seconds starved first")
    parser.add_argument("--pass-ms", type=float, default=50.0, help="sleep on every pass")
    args = parser.parse_args(argv)
    asyncio.run(run(args.rounds, args.starve, args.pass_ms / 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
