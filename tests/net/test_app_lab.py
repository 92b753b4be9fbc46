"""Issue 10 with the desktop app: the real app (offscreen) in home a calls a ``parley-cli`` in
home b through the lab's NATs, with only the ICE servers parley-server hands out.

1. both NATs port-randomising: the call is relayed by coturn, and the call window's quality
   tooltip says so ("Relayed (UDP)");
2. home a's path black-holed for 10 s: the window shows "Reconnecting…", then the video comes
   back by itself and the status goes away; the call ends normally when the app hangs up.

The app runs as its own process inside home a's namespace (``tests/net/drive_app.py``), with
its files in a temporary home; the test reads what its window shows, twice a second.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.procs import CliProcess, password_of
from tests.net.relay import USERS, TurnLab, turn_lab_unavailable
from tests.ui.test_app_process import app_env

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(turn_lab_unavailable()), reason=turn_lab_unavailable() or ""),
    pytest.mark.timeout(600),
]


class AppCall:
    """The app in home a calling the cli in home b (answering); both processes."""

    def __init__(self, turn: TurnLab, tmp: Path) -> None:
        self.stop_file = tmp / "hang-up"
        home = tmp / "home"
        home.mkdir()
        # The app's files under ``home`` (as tests/ui's app processes); the CA for turns:.
        environment = {
            k: v for k, v in app_env(home).items() if k not in os.environ or os.environ[k] != v
        }
        environment["SSL_CERT_FILE"] = str(turn.ca)
        server = turn.children[1]
        mark = len(server.err)
        self.callee = turn.cli(turn.lab.b, USERS[1], "-v", "answer", "--wait", "120")
        server.wait_stderr(rf"event=login conn=\S+ user={USERS[1]}(\s|$)", 90, mark)
        argv = [
            "env",
            *(f"{k}={v}" for k, v in environment.items()),
            sys.executable, "-m", "tests.net.drive_app", "--server", turn.url,
            "--user", USERS[0], "--password", password_of(USERS[0]), "--call", USERS[1],
            "--stop-file", str(self.stop_file),
        ]  # fmt: skip
        self.app = CliProcess("parley app in home a", turn.lab.a.argv(argv))
        turn.children.append(self.app)

    def windows(self, since: int = 0) -> list[dict[str, object]]:
        """What the window showed, each half second, from event index ``since``."""
        return self.app.named("window", since)

    def wait_window(self, check: object, timeout: float, what: str, since: int = 0) -> float:
        """When a ``window`` line from ``since`` on first satisfied ``check``."""

        def found() -> float | None:
            for at, message in self.app.events[since:]:
                if message["event"] == "window" and check(message):  # type: ignore[operator]
                    return at
            return None

        return self.app.wait_for(found, timeout, what)

    def hang_up(self) -> None:
        """The app hangs up and quits with status 0; the cli ends the call normally."""
        self.stop_file.touch()
        _, ended = self.app.wait_event("ended", 60)
        assert ended["reason"] == "hangup", self.app.describe()
        assert self.app.wait_exit(60) == 0, self.app.describe()
        for marker in ("Traceback", "Fatal Python error"):
            assert marker not in self.app.stderr, self.app.describe()
        self.callee.finish(60, expect=0)
        assert self.callee.summary["reason"] == "hangup", self.callee.describe()
        assert self.callee.summary["frames_received"] > 0, self.callee.summary

    def stop(self) -> None:
        for child in (self.app, self.callee):
            child.kill()


@pytest.fixture
def app_call(lab: TurnLab, tmp_path: Path) -> Iterator[AppCall]:
    """The app's call; the homes back to ordinary NATs with open paths after."""
    call = AppCall(lab, tmp_path)
    try:
        yield call
    finally:
        call.stop()
        for home in lab.lab.homes.values():
            home.set_random_nat(False)
            home.set_black_hole(False)


def _video(message: dict[str, object], frames: int) -> bool:
    return message["state"] == "connected" and int(message["frames"]) > frames  # type: ignore[call-overload]


@pytest.fixture
def randomising(lab: TurnLab) -> None:
    for home in lab.lab.homes.values():
        home.set_random_nat(True)


@pytest.mark.usefixtures("randomising")
def test_the_app_behind_a_port_randomising_nat_is_relayed_and_says_so(app_call: AppCall) -> None:
    app_call.wait_window(lambda m: _video(m, 60), 90, "video in the app's window")
    app_call.wait_window(
        lambda m: "Relayed (UDP)" in str(m["tooltip"]), 20, "the tooltip saying relayed"
    )
    tooltip = str(app_call.windows()[-1]["tooltip"])
    assert "Relayed (UDP)" in tooltip and "Packet loss" in tooltip, tooltip
    app_call.hang_up()
    path = app_call.callee.summary["path"]
    assert path["relayed"] is True, path


def test_the_app_reconnects_by_itself_after_a_10_s_black_hole(
    lab: TurnLab, app_call: AppCall
) -> None:
    app_call.wait_window(lambda m: _video(m, 60), 90, "video in the app's window")
    app_call.wait_window(lambda m: "Direct" in str(m["tooltip"]), 20, "the tooltip saying direct")
    mark = app_call.app.mark()
    home = lab.lab.a
    home.set_black_hole(True)
    try:
        app_call.wait_window(
            lambda m: m["status"] == "Reconnecting…", 15, "Reconnecting… shown", since=mark
        )
        time.sleep(max(0.0, 10 - (time.monotonic() - app_call.app.events[mark][0])))
    finally:
        home.set_black_hole(False)
    restored = time.monotonic()
    back = app_call.app.mark()
    app_call.app.wait_for(lambda: app_call.windows(back) or None, 10, "a window line")
    frames = int(app_call.windows(back)[0]["frames"])  # type: ignore[call-overload]
    resumed = app_call.wait_window(
        lambda m: _video(m, frames + 30) and m["status"] == "", 30, "video back", since=back
    )
    assert resumed - restored < 30
    # The status went away and stays away; the call was never ended.
    later = app_call.windows(app_call.app.mark() - 1)
    assert later and later[-1]["status"] == "", later
    assert all(m["state"] != "ended" for m in app_call.windows(mark))
    assert app_call.callee.find("state", 0, state="ended") is None
    app_call.hang_up()
