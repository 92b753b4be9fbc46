"""Smoke tests of the benchmark package: the runner, and small server and call measurements."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

import bench.runner
from bench import Benchmark, Figure, Goal, format_value, percentile
from bench.calls import baseline_setup_once
from bench.runner import figures_to_json, format_table
from bench.server import presence_fanout

FAKE = [
    Figure("fake", "connections held", 5000, "connections", Goal.at_least(5000)),
    Figure("fake", "p99", 25.456, "ms", Goal.below(20)),
    Figure("fake", "memory", 140.4, "MiB"),
    Figure("fake", "broken", math.nan, "ms", Goal.below(1)),
]


def fake_run(quick: bool) -> list[Figure]:
    return [Figure("fake", "quick" if quick else "full", 1.5, "s", Goal.at_most(2))]


def test_goals_and_formatting():
    assert Goal.at_least(5000).met_by(5000)
    assert not Goal.below(20).met_by(20)
    assert not Goal.below(20).met_by(math.nan)
    assert str(Goal.below(20)) == "< 20"
    assert format_value(5000.0) == "5000"
    assert format_value(25.456) == "25.46"
    assert format_value(12345.6) == "12346"
    assert format_value(math.nan) == "n/a"
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 99) == 1.99
    assert math.isnan(percentile([], 50))


def test_table_lists_each_figure_with_its_goal():
    lines = format_table(FAKE).splitlines()
    assert lines[0].split() == ["bench", "figure", "value", "unit", "goal", "met"]
    assert set(lines[1]) <= {"-", " "}
    assert len(lines) == 2 + len(FAKE)
    held, p99, memory, broken = lines[2:]
    assert "5000" in held and ">= 5000" in held and held.endswith("yes")
    assert "25.46" in p99 and "< 20" in p99 and p99.endswith("NO")
    assert memory.endswith("MiB")
    assert "n/a" in broken and broken.endswith("NO")
    # Columns line up: every value ends at the same column.
    pairs = zip(lines[2:4], ["5000", "25.46"], strict=True)
    ends = {line.index(value) + len(value) for line, value in pairs}
    assert len(ends) == 1


def test_json_has_one_object_per_figure():
    data = json.loads(figures_to_json(FAKE))
    assert data[0] == {
        "bench": "fake",
        "figure": "connections held",
        "value": 5000,
        "unit": "connections",
        "goal": ">= 5000",
        "met": True,
    }
    assert data[2]["goal"] is None and data[2]["met"] is None
    assert data[3]["value"] is None and data[3]["met"] is False


def test_runner_runs_a_registered_benchmark(monkeypatch, tmp_path, capsys):
    fake = Benchmark("fake", f"{__name__}:fake_run", "a fake benchmark")
    monkeypatch.setattr(bench.runner, "BENCHMARKS", [fake])
    out = tmp_path / "figures.json"
    assert bench.runner.main(["--only", "fake", "--quick", "--json", str(out)]) == 0
    assert "quick" in capsys.readouterr().out
    assert json.loads(out.read_text())[0]["figure"] == "quick"


def test_registry_names_the_server_benchmark():
    assert "server" in [b.name for b in bench.BENCHMARKS]
    assert callable(next(b for b in bench.BENCHMARKS if b.name == "server").load())


async def test_presence_fanout_small(tmp_path):
    figures = await presence_fanout(tmp_path, contacts=5, repeats=3)
    by_name = {f.figure: f for f in figures}
    complete = by_name["presence fan-out to 5 contacts rounds complete"]
    assert complete.value == 3 and complete.met
    p50 = by_name["presence fan-out to 5 contacts p50"].value
    assert 0 < p50 < 5000


async def test_invites_beside_the_relay_small(tmp_path):
    """Both invite workloads, tiny, against Parley (its database on disk, and in memory) and
    the bare relay: calls measured, none lost."""
    from bench.invites import Workload, compare, targets

    tiny = [
        Workload("tiny pairs", pairs=3, rate=20.0, duration=1.0),
        Workload(
            "tiny idle", pairs=3, rate=20.0, duration=1.0,
            idle_users=2, idle_per_user=3, cancel_after_ok=0.005,
        ),
    ]  # fmt: skip
    for number, workload in enumerate(tiny):
        workdir = tmp_path / str(number)
        workdir.mkdir()
        figures = await compare(workload, workdir, rounds=1)
        measured = [f for f in figures if f.figure.endswith("calls measured / failed")]
        # How many fit in the second depends on the machine's load; none may fail.
        assert len(measured) == len(targets()), figures
        assert all(f.value > 0 and f.unit.endswith("/ 0 failed") for f in measured), measured
        ratio = next(f for f in figures if "relay p99" in f.figure)
        assert ratio.value > 0


async def test_cluster_beside_one_instance_small(tmp_path):
    """The three set-ups (real PostgreSQL and Redis, three instances), tiny: calls measured."""
    from bench.cluster import compare
    from bench.invites import Workload
    from tests.cluster.redis_server import available as redis_available
    from tests.pg import available as pg_available

    if not (pg_available() and redis_available()):
        pytest.skip("PostgreSQL 15 and redis-server are needed (installer/bootstrap)")
    tiny = Workload(
        "tiny", pairs=3, rate=15.0, duration=1.0,
        idle_users=2, idle_per_user=3, cancel_after_ok=0.005,
    )  # fmt: skip
    figures = await compare(tiny, tmp_path, rounds=1)
    measured = [f for f in figures if f.figure.endswith("calls measured / failed")]
    # How many fit in the second depends on the machine's load; none may fail.
    assert len(measured) == 3, figures
    assert all(f.value > 0 and f.unit.endswith("/ 0 failed") for f in measured), measured


async def test_baseline_call_setup_small():
    """The bare aiortc call of the calls benchmark, once at 320x240, everything stopped after."""
    tasks_before = asyncio.all_tasks()
    seconds = await baseline_setup_once((320, 240))
    assert 0 < seconds < 10
    await asyncio.sleep(0.1)
    assert asyncio.all_tasks() - tasks_before == set()


async def test_app_launch_and_render_small(tmp_path):
    """The app benchmark's child processes: the real app launched once, three frames rendered."""
    from bench.app import launch_figures, launches, render, render_figures

    runs = await launches(tmp_path, 1)
    assert 0 < runs[0].to_module < runs[0].to_main < runs[0].to_shown < runs[0].to_server < 30
    assert 0 <= runs[0].exit_s < 15
    first = launch_figures(runs)[0]
    assert first.figure.startswith("launch to main window shown, first run")
    assert first.value == runs[0].to_shown
    costs = await render(tmp_path, 3)
    assert set(costs) == {"1280x720", "1920x1080"}
    figures = render_figures(costs)
    assert len(figures) == 2 * 16
    assert all(0 < f.value < 1000 for f in figures), figures
    # Nothing the app started is left running: its built-in server stopped advertising itself.
    assert not (tmp_path / "launch" / "run" / "parley" / "embedded-server.json").exists()
