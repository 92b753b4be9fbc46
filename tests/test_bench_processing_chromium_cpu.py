"""The pure helpers of bench/processing_chromium_cpu.py: /proc parsing, process trees, roles."""

from __future__ import annotations

import os

from bench.processing_chromium_cpu import (
    TreeSample,
    cpu_by_role,
    descendants,
    ended,
    got_what_it_asked,
    parse_stat,
    role_of,
)


def test_stat_fields_are_counted_after_the_command_name():
    # A command name with spaces and a parenthesis, as a thread or a renamed process has.
    line = "4242 (Chrome_Child (x) y) S 17 4242 4242 0 -1 4194560 1 0 0 0 250 31 0 0 20 0 9\n"
    assert parse_stat(line) == (17, 281)


def test_stat_of_this_process_parses():
    with open(f"/proc/{os.getpid()}/stat", encoding="ascii", errors="replace") as stat:
        parent, ticks = parse_stat(stat.read())
    assert parent == os.getppid()
    assert ticks >= 0


def test_descendants_walk_the_whole_tree_and_nothing_else():
    parents = {2: 1, 3: 2, 4: 3, 5: 2, 6: 1, 7: 99}
    assert descendants(parents, 2) == {3, 4, 5}
    assert descendants(parents, 1) == {2, 3, 4, 5, 6}
    assert descendants(parents, 4) == set()


def test_roles_from_chromium_command_lines():
    assert role_of(["/usr/lib/chromium/chromium", "--headless", "--no-sandbox"]) == "browser"
    assert role_of(["/usr/lib/chromium/chromium", "--type=renderer", "--lang=en-US"]) == "renderer"
    assert role_of(["chromium", "--type=gpu-process"]) == "gpu-process"
    audio = ["chromium", "--type=utility", "--utility-sub-type=audio.mojom.AudioService"]
    assert role_of(audio) == "utility: audio"
    assert role_of(["chromium", "--type=utility"]) == "utility: other"


def test_cpu_by_role_counts_new_processes_whole_and_ended_ones_apart():
    before = TreeSample({10: 100, 11: 50, 12: 7}, {10: "browser", 11: "renderer", 12: "renderer"})
    after = TreeSample({10: 150, 11: 80, 13: 20}, {10: "browser", 11: "renderer", 13: "renderer"})
    ticks = os.sysconf("SC_CLK_TCK")
    by_role = cpu_by_role(before, after, 10.0)
    assert by_role["browser"] == 100 * 50 / ticks / 10
    assert by_role["renderer"] == 100 * (30 + 20) / ticks / 10
    assert ended(before, after) == 1


def test_settings_must_match_the_constraints():
    on = {"echoCancellation": True, "noiseSuppression": True, "autoGainControl": True}
    assert got_what_it_asked(on, (True, True, True))
    assert not got_what_it_asked(on, (False, False, False))
    assert not got_what_it_asked({"echoCancellation": True}, (True, True, True))
