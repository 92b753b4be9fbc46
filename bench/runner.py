"""``python -m bench``: run the registered benchmarks, print a table, optionally write JSON.

The exit status is 0 when every selected benchmark ran to the end, whether or
not its goals were met (these are measurements on noisy machines, not tests),
and 1 when one of them failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from bench import BENCHMARKS, Benchmark, Figure, PartialFailure, format_value

COLUMNS = ("bench", "figure", "value", "unit", "goal", "met")


def _row(figure: Figure) -> tuple[str, ...]:
    met = figure.met
    return (
        figure.bench,
        figure.figure,
        format_value(figure.value),
        figure.unit,
        "" if figure.goal is None else str(figure.goal),
        "" if met is None else ("yes" if met else "NO"),
    )


def format_table(figures: Sequence[Figure]) -> str:
    """The figures as an aligned text table, one per line, with a header."""
    rows = [COLUMNS, *(_row(f) for f in figures)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    numeric = {COLUMNS.index("value")}
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if i in numeric else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def figures_to_json(figures: Sequence[Figure]) -> str:
    """The figures as a JSON list of objects (bench, figure, value, unit, goal, met)."""
    return json.dumps([f.to_json() for f in figures], indent=2) + "\n"


def run_benchmarks(benchmarks: Sequence[Benchmark], quick: bool) -> tuple[list[Figure], bool]:
    """Run each benchmark in turn; returns every figure measured and whether all succeeded.

    A benchmark that raises is reported on stderr and the others still run.
    """
    figures: list[Figure] = []
    ok = True
    for benchmark in benchmarks:
        print(f"[bench] {benchmark.name}: {benchmark.summary}", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            figures += benchmark.load()(quick)
        except PartialFailure as exc:
            figures += exc.figures
            ok = False
            for error in exc.errors:
                print(f"[bench] {benchmark.name} FAILED in part: {error}", file=sys.stderr)
        except Exception:
            ok = False
            print(f"[bench] {benchmark.name} FAILED:", file=sys.stderr)
            traceback.print_exc()
        elapsed = time.monotonic() - started
        print(f"[bench] {benchmark.name}: done in {elapsed:.1f} s", file=sys.stderr, flush=True)
    return figures, ok


def build_parser() -> argparse.ArgumentParser:
    """The runner's command line."""
    names = [b.name for b in BENCHMARKS]
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run Parley's benchmarks and print their figures against their goals.",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        action="extend",
        choices=names,
        metavar="NAME",
        help=f"run only these benchmarks (known: {', '.join(names)})",
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the figures to FILE as JSON"
    )
    parser.add_argument(
        "--quick", action="store_true", help="shorter runs with smaller loads (a smoke run)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected benchmarks; returns the exit status."""
    args = build_parser().parse_args(argv)
    selected = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    figures, ok = run_benchmarks(selected, args.quick)
    print(format_table(figures), flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(figures_to_json(figures), encoding="utf-8")
    return 0 if ok else 1
