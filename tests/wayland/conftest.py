"""The Wayland tests: a headless Wayland desktop (:mod:`tests.wayland.session`) for the whole
test session, and the app running on it as the desktop's user, driven through a JSON pipe
(:mod:`tests.wayland.app_driver`).

No ``QApplication`` is made in the pytest process: the app runs in a child process of its own
(as another user), and the other end of its calls is an in-process :class:`CallSession`
with a real :class:`~gui.media.analysis.VideoReceiver`, on the test's asyncio loop, beside a
real signaling server. That peer must not share a process with the other folders' Qt tests
(their QApplication and qasync loop are still alive; the whole suite once crashed there), so
when any are selected this folder runs in a child process (:mod:`tests.own_process`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.own_process import delegate_folder
from tests.wayland.app_driver import MARKER
from tests.wayland.session import WaylandError, WaylandSession

HERE = Path(__file__).resolve().parent
#: Set in the child process that runs this folder on its own.
CHILD_FLAG = "PARLEY_WAYLAND_TESTS_CHILD"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Run this folder in a child process when other selected tests use Qt."""
    delegate_folder(HERE, CHILD_FLAG, items)


#: What one driver command may take at most (a call connecting, a portal starting).
COMMAND_TIMEOUT_S = 90.0
#: How much longer than a command's own timeout its answer may take to come back.
ANSWER_SLACK_S = 10.0


def _desktop(portal: bool, refuse_share: bool = False) -> Iterator[WaylandSession]:
    try:
        session = WaylandSession(portal=portal, refuse_share=refuse_share)
    except WaylandError as exc:
        pytest.fail(f"Wayland tests: {exc}")
    try:
        yield session
    finally:
        session.stop()


@pytest.fixture(scope="session")
def wayland() -> Iterator[WaylandSession]:
    """The session's Wayland desktop, with the portal; stopped at the end, whatever happens."""
    yield from _desktop(portal=True)


@pytest.fixture
def bare_wayland() -> Iterator[WaylandSession]:
    """A Wayland desktop of its own without the desktop portal (nothing on its bus)."""
    yield from _desktop(portal=False)


@pytest.fixture
def refusing_wayland() -> Iterator[WaylandSession]:
    """A Wayland desktop of its own whose portal refuses every screen cast."""
    yield from _desktop(portal=True, refuse_share=True)


class AppProcess:
    """The app as a child process of the desktop's user, and its command pipe."""

    def __init__(self, process: asyncio.subprocess.Process, session: WaylandSession, log: str):
        self.process = process
        self.session = session
        self.log = log

    async def do(self, what: str, timeout: float = COMMAND_TIMEOUT_S, **fields: Any) -> dict:
        """Send one command and return its answer; a failed command fails the test."""
        answer = await self.ask(what, timeout, **fields)
        if not answer.get("ok"):
            raise AssertionError(
                f"{what}: {answer.get('error')} (state {answer.get('state')})\n{self.diagnosis()}"
            )
        return answer

    async def ask(self, what: str, timeout: float = COMMAND_TIMEOUT_S, **fields: Any) -> dict:
        """Send one command and return its answer as it is."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(
            (json.dumps({"do": what, "timeout": timeout, **fields}) + "\n").encode()
        )
        await self.process.stdin.drain()
        try:
            # The driver's own wait for ``timeout`` answers first, with the app's state.
            async with asyncio.timeout(timeout + ANSWER_SLACK_S):
                while True:
                    line = await self.process.stdout.readline()
                    if not line:
                        raise AssertionError(f"the app exited during {what!r}: {self.output()}")
                    text = line.decode(errors="replace")
                    if text.startswith(MARKER):
                        result: dict = json.loads(text[len(MARKER) :])
                        return result
        except TimeoutError:
            raise AssertionError(
                f"the app did not answer {what!r} within {timeout + ANSWER_SLACK_S:g} s.\n"
                f"{self.diagnosis()}"
            ) from None

    async def quit(self, timeout: float = 30) -> int:
        """Ask the app to quit the normal way; its exit status."""
        if self.process.returncode is None:
            await self.ask("quit", timeout)
            assert self.process.stdin is not None
            self.process.stdin.close()
        async with asyncio.timeout(timeout):
            return await self.process.wait()

    def output(self) -> str:
        """What the app wrote on stderr (its log)."""
        return self.session.log(self.log)[-4000:]

    def diagnosis(self) -> str:
        """The ends of the app's log and of the portal's, for a failure's message."""
        parts = [f"app log:\n{self.output()}"]
        for name in ("portal", "xdpw"):
            text = self.session.log(name)
            if text:
                parts.append(f"{name} log:\n{text[-2500:]}")
        return "\n".join(parts)


AppFactory = Callable[..., Awaitable[AppProcess]]
#: Numbers the apps started in this test run.
_apps_started = itertools.count(1)


@pytest.fixture
async def app_on(tmp_path: Any) -> AsyncIterator[AppFactory]:
    """Start the app on a desktop: ``await app_on(session, server_url)``; killed at the end
    if a test left it running."""
    started: list[AppProcess] = []

    async def start(session: WaylandSession, server_url: str, *args: str) -> AppProcess:
        # A profile (and log) of its own for every app of the run: the desktop's home lives
        # as long as the session, and an earlier test's profile would send this app to that
        # test's server, gone by now (sign-in then timed out in the second test of a run).
        count = next(_apps_started)
        log = f"app-{os.getpid()}-{count}"
        argv = [
            *session.python(),
            "tests.wayland.app_driver",
            "--server",
            server_url,
            "--profile",
            f"wayland{count}",
            *args,
        ]
        err = open(session.logs / f"{log}.log", "ab")  # noqa: SIM115 - the child keeps it
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                env={**session.env, "QT_QPA_PLATFORM": "wayland"},
                **session.as_user(),
            )
        finally:
            err.close()
        app = AppProcess(process, session, log)
        started.append(app)
        return app

    yield start
    for app in started:
        if app.process.returncode is None:
            app.process.kill()
            await app.process.wait()
