"""A mesh meeting across the lab: three homes (a, b, c), each behind its own ordinary NAT,
coturn (STUN) and parley-server in the internet, one ``parley-cli`` per home in one meeting
(``meet create`` in a, ``meet answer`` in b and c, each printing ``link_stats`` every second).

Used by ``tests/net/test_meeting_lab.py`` and ``bench/network_meeting.py``.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cli.procs import Child, CliProcess
from tests.net.impaired import _cli, camera_fps, start_services
from tests.net.lab import Home, Lab, network_lab

USERS = {"a": "ann-mesh", "b": "bob-mesh", "c": "cat-mesh"}


@dataclass
class LabMeeting:
    """Three homes in one meeting: the cli of each, by home name."""

    lab: Lab
    ends: dict[str, CliProcess]

    def fps(self, home: str, other: str, since: int = 0) -> list[tuple[float, float]]:
        """(time, camera frames/s) of ``home``'s link to ``other``'s user, from ``since``."""
        side = self.ends[home]
        with side.cond:
            return [
                (at, camera_fps(m))
                for at, m in side.events[since:]
                if m["event"] == "link_stats" and m.get("username") == USERS[other]
            ]

    def wait_video(
        self, home: str, other: str, since: int = 0, timeout: float = 60.0, after: float = 0.0
    ) -> float:
        """When ``home`` first saw ``other``'s video at 3 frames/s or more (from ``since``,
        in a line that came after the monotonic time ``after``)."""
        side = self.ends[home]

        def check() -> float | None:
            for at, message in side.events[since:]:
                if (
                    at > after
                    and message["event"] == "link_stats"
                    and message.get("username") == USERS[other]
                    and camera_fps(message) >= 3
                ):
                    return at
            return None

        return side.wait_for(check, timeout, f"video from {USERS[other]}")

    def wait_video_again(
        self, home: str, other: str, since: int, cut: float, timeout: float = 60.0
    ) -> float:
        """When ``home`` saw ``other``'s video at 3 frames/s or more again after seeing it
        stop once after ``cut`` (a line may still count frames from before the cut)."""
        side = self.ends[home]

        def check() -> float | None:
            stopped = False
            for at, message in side.events[since:]:
                if at <= cut or message["event"] != "link_stats":
                    continue
                if message.get("username") != USERS[other]:
                    continue
                if camera_fps(message) < 3:
                    stopped = True
                elif stopped:
                    return at
            return None

        return side.wait_for(check, timeout, f"video from {USERS[other]} again")

    def leave_all(self) -> dict[str, dict[str, Any]]:
        """Everyone leaves (SIGINT) and exits cleanly; what each summed up of each other
        participant (all three still in), by home."""
        for side in self.ends.values():
            side.send_signal(signal.SIGINT)
        out = {}
        for home, side in self.ends.items():
            side.finish(60, expect=0)
            figures: dict[str, Any] = side.summary["participants"]
            assert set(figures) == {u for h, u in USERS.items() if h != home}, figures
            out[home] = figures
        return out


def readdress(home: Home) -> None:
    """Give the home's computer another address (its old path and sockets are dead)."""
    prefix = home.address.rsplit(".", 1)[0]
    # (Deleting the only address takes the default route with it: both come back.)
    home.run("ip", "addr", "del", f"{home.address}/24", "dev", "eth0")
    home.run("ip", "addr", "add", f"{prefix}.7/24", "dev", "eth0")
    home.run("ip", "route", "replace", "default", "via", f"{prefix}.1")


@contextlib.contextmanager
def lab_meeting() -> Iterator[LabMeeting]:
    """The lab with three homes, the servers, and a meeting whose every link shows video;
    every process killed and the lab torn down at the end."""
    children: list[Child] = []
    with (
        tempfile.TemporaryDirectory(prefix="parley-mesh-") as tmp,
        network_lab(homes=("a", "b", "c")) as lab,
    ):
        try:
            server = start_services(lab, Path(tmp), children)
            url: str = server.url  # type: ignore[attr-defined]
            homes = lab.homes
            first = [_cli(url, homes[h], u, "contacts", register=True) for h, u in USERS.items()]
            children += first
            for child in first:
                child.finish(60, expect=0)
            # Each adds the others; in two waves, so that no two of a pair add each other at
            # once (the second of those requests would race the first).
            order = list(USERS)
            for step in (1, 2):
                adds = [
                    _cli(url, homes[h], USERS[h], "add", USERS[order[(i + step) % 3]])
                    for i, h in enumerate(order)
                ]
                children += adds
                for child in adds:
                    child.finish(90, expect=0)
            ends: dict[str, CliProcess] = {}
            for h in ("b", "c"):
                mark = len(server.err)
                ends[h] = _cli(
                    url, homes[h], USERS[h], "meet", "answer", "--wait", "120", "--stats"
                )
                children.append(ends[h])
                server.wait_stderr(rf"event=login conn=\S+ user={USERS[h]}(\s|$)", 60, mark)
            invite = f"{USERS['b']},{USERS['c']}"
            ends["a"] = _cli(
                url, homes["a"], USERS["a"], "meet", "create", "--invite", invite, "--stats"
            )
            children.append(ends["a"])
            meeting = LabMeeting(lab, ends)
            for home in ends:
                for other in ends:
                    if other != home:
                        meeting.wait_video(home, other, timeout=90)
            yield meeting
        finally:
            for process in reversed(children):
                process.kill()
