"""``parley-cli --share-screen``: a child process shares the Xvfb screen with an in-process end."""

from __future__ import annotations

import asyncio
import sys

import pytest

from gui.core.call_machine import CallState
from gui.core.call_session import CallSession
from gui.core.peer_channel import PeerMediaState
from gui.media.analysis import VideoReceiver
from tests.cli.procs import CliProcess
from tests.core.test_call_session import answer_next_call, client_for, media
from tests.screen.helpers import PatternWindow, shows_pattern, until

pytestmark = pytest.mark.usefixtures("qt_app")

PASSWORD = "correct horse"  # what tests.core.test_call_session.client_for registers with


def cli(url: str, user: str, *args: str) -> CliProcess:
    argv = [sys.executable, "-m", "gui.cli", "--server", url, "--user", user]
    return CliProcess(user, [*argv, "--password", PASSWORD, *args])


async def exit_status(child: CliProcess, timeout: float = 30) -> int:
    await until(lambda: not child.running, timeout, f"{child.name} exits")
    return child.wait_exit(5)


def one_error_line(child: CliProcess) -> str:
    """The error line; argparse's usage may come first (as in tests/cli)."""
    lines = [line for line in child.stderr.splitlines() if line.strip()]
    if lines and lines[0].startswith("usage: "):
        lines = lines[1:]
        while lines and lines[0].startswith(" "):
            lines = lines[1:]
    assert len(lines) == 1, f"expected one error line, got:\n{child.stderr}"
    assert lines[0].startswith(("parley-cli: error: ", "parley-cli call: error: ")), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", "there is no screen 3 (this display has 1: 0 = "), ("-1", "numbered from 0")],
)
async def test_a_screen_that_does_not_exist_exits_2(server, value: str, expected: str) -> None:
    child = cli(server.url, "alice", "call", "bob", f"--share-screen={value}")
    assert await exit_status(child) == 2
    assert expected in one_error_line(child)
    assert child.events == []  # refused before signing in


async def presence(client, user: str) -> str:
    reply = await client.request("contacts.list")
    return next(c["presence"] for c in reply["contacts"] if c["username"] == user)


@pytest.mark.parametrize("command", ["call", "answer"])
async def test_the_cli_shares_its_screen(server, command: str, pattern: PatternWindow) -> None:
    """``parley-cli call|answer --share-screen``: the in-process end sees the pattern."""
    alice = await client_for(server, "alice")  # the CLI's account
    bob = await client_for(server, "bob")  # the in-process end
    await alice.request("contacts.request", username="bob")
    await bob.request("contacts.accept", username="alice")
    await alice.close()
    # The in-process end hangs up once it has seen enough: a fixed length of share could hold
    # fewer than 30 frames on a loaded machine (it did once at load 7). 60 s is a hang bound.
    options = ["--share-screen", "--duration", "60", "--audio", "none"]
    if command == "call":
        answering = asyncio.create_task(answer_next_call(bob, media(880)))
        child = cli(server.url, "alice", "call", "bob", *options)
    else:
        child = cli(server.url, "alice", "answer", "--wait", "30", *options)
    try:
        if command == "call":
            session = await asyncio.wait_for(answering, 20)
        else:
            for _ in range(600):  # the CLI starts Qt before it signs in: seconds under load
                if await presence(bob, "alice") == "online":
                    break
                await asyncio.sleep(0.05)
            session = CallSession.outgoing(bob, "alice", media(880))
        told: list[PeerMediaState] = []
        session.on("peer_media", told.append)
        await until(lambda: session.state is CallState.CONNECTED, 15, "connected")
        await until(lambda: told and told[-1].screen, 10, "told of the share")
        screen = session.receivers["screen"]
        assert isinstance(screen, VideoReceiver)
        await shows_pattern(screen, pattern, 10)
        await until(lambda: screen.frames >= 30, 30, "30 shared frames")
        assert (screen.width, screen.height) == (1280, 720)
        camera = session.receivers["camera"]
        assert isinstance(camera, VideoReceiver) and camera.frames > 0  # the pattern, too
        session.hang_up()
        assert await exit_status(child, 20) == 0
        await asyncio.wait_for(session.wait_ended(), 10)
    finally:
        child.kill()
        await bob.close()
        await asyncio.sleep(0.2)  # the server's side of the connections finishes in the test
    child.assert_clean()
    share = child.named("screen_share")
    assert share == [
        {"event": "screen_share", "screen": 0, "name": share[0]["name"], "width": 1280,
         "height": 720}
    ]  # fmt: skip
    summary = child.summary
    assert summary["screen_frames_sent"] >= 30 and summary["reason"] == "hangup"
