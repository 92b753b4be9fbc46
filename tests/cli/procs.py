"""Real child processes for the ``parley-cli`` tests: a server and CLI clients, output streamed.

Reader threads drain stdout and stderr as they come (a full pipe would stall
the child) and keep every line, stamped with ``time.monotonic()``; the tests
wait for a line or a JSON event with a deadline, then collect the exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[2]
URL_RE = re.compile(r"listening on (ws\S+)")
#: What must never appear on a client's stderr.
FATAL_MARKERS = ("Traceback", "Fatal Python error")

T = TypeVar("T")
Json = dict[str, Any]


def password_of(user: str) -> str:
    """Every test user's password (8 characters at least, as the server wants)."""
    return f"{user}-Secret-1"


class Child:
    """A child process whose stdout and stderr lines are collected by two threads."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            cwd=ROOT,
        )
        self.started_at = time.monotonic()
        #: (arrival time, line without its newline), in order.
        self.out: list[tuple[float, str]] = []
        self.err: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        self._open_streams = 2
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: Any, is_stdout: bool) -> None:
        for raw in stream:
            line = raw.rstrip("\n")
            now = time.monotonic()
            with self.cond:
                (self.out if is_stdout else self.err).append((now, line))
                if is_stdout:
                    self._stdout_line(now, line)
                self.cond.notify_all()
        with self.cond:
            self._open_streams -= 1
            self.cond.notify_all()

    def _stdout_line(self, at: float, line: str) -> None:
        """Hook for subclasses (called with ``cond`` held)."""

    # Waiting -------------------------------------------------------------------

    def wait_for(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        """Until ``check()`` (run with the lock held) gives something; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                result = check()
                if result is not None:
                    return result
                if self._open_streams == 0:
                    raise AssertionError(
                        f"{self.name} exited (status {self.proc.wait()}) before {what}\n"
                        + self.describe()
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.name}: no {what} within {timeout:g} s\n" + self.describe()
                    )
                self.cond.wait(left)

    def wait_stderr(self, pattern: str, timeout: float, since: int = 0) -> re.Match[str]:
        """The first stderr line from index ``since`` on that matches ``pattern``."""
        regex = re.compile(pattern)

        def check() -> re.Match[str] | None:
            for _, line in self.err[since:]:
                match = regex.search(line)
                if match:
                    return match
            return None

        return self.wait_for(check, timeout, f"stderr line matching {pattern!r}")

    def wait_exit(self, timeout: float) -> int:
        """The exit status; fails (and kills the child) if it runs longer than ``timeout``."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} still running after {timeout:g} s\n" + self.describe()
            ) from None
        for reader in self._readers:
            reader.join(10)
        return code

    # Control ---------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the child has not exited yet."""
        return self.proc.poll() is None

    def send_signal(self, signum: int) -> None:
        """Signal the child (by its pid only)."""
        self.proc.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the child if it still runs, and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(20)

    # Reading -------------------------------------------------------------------

    @property
    def stderr(self) -> str:
        """Everything on stderr so far."""
        with self.cond:
            return "\n".join(line for _, line in self.err)

    def describe(self, last: int = 25) -> str:
        """The newest lines of both streams, for failure messages."""
        out = "\n".join(line for _, line in self.out[-last:])
        err = "\n".join(line for _, line in self.err[-last:])
        return f"--- {self.name} stdout (last lines) ---\n{out}\n--- stderr ---\n{err}"


class CliProcess(Child):
    """``python -m gui.cli ...``: stdout is one JSON object per line."""

    def __init__(self, name: str, argv: list[str]) -> None:
        #: (arrival time, event), in order.
        self.events: list[tuple[float, Json]] = []
        #: stdout lines that were not JSON objects with an "event" (there should be none).
        self.not_json: list[str] = []
        super().__init__(name, argv)

    def _stdout_line(self, at: float, line: str) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            self.not_json.append(line)
            return
        if isinstance(message, dict) and isinstance(message.get("event"), str):
            self.events.append((at, message))
        else:
            self.not_json.append(line)

    def find(self, event: str, since: int = 0, **fields: Any) -> tuple[float, Json] | None:
        """The first ``event`` at index ``since`` or later whose fields match (lock held)."""
        for at, message in self.events[since:]:
            if message["event"] == event and all(message.get(k) == v for k, v in fields.items()):
                return at, message
        return None

    def wait_event(
        self, event: str, timeout: float = 20.0, since: int = 0, **fields: Any
    ) -> tuple[float, Json]:
        """(arrival time, message) of the first matching event; fails after ``timeout``."""
        described = event + "".join(f" {k}={v!r}" for k, v in fields.items())
        return self.wait_for(lambda: self.find(event, since, **fields), timeout, described)

    def wait_state(self, state: str, timeout: float = 20.0) -> tuple[float, Json]:
        """The ``state`` event for ``state``."""
        return self.wait_event("state", timeout, state=state)

    def wait_stats(self, count: int, since: int, timeout: float = 20.0) -> list[tuple[float, Json]]:
        """At least ``count`` ``stats`` events from index ``since`` on."""

        def check() -> list[tuple[float, Json]] | None:
            found = [(t, m) for t, m in self.events[since:] if m["event"] == "stats"]
            return found if len(found) >= count else None

        return self.wait_for(check, timeout, f"{count} stats lines")

    def named(self, event: str, since: int = 0) -> list[Json]:
        """Every ``event`` so far (from index ``since``)."""
        with self.cond:
            return [m for _, m in self.events[since:] if m["event"] == event]

    def mark(self) -> int:
        """The index the next event will have."""
        with self.cond:
            return len(self.events)

    @property
    def summary(self) -> Json:
        """The ``summary`` line (fails if there is none)."""
        summaries = self.named("summary")
        assert len(summaries) == 1, f"{self.name}: {len(summaries)} summaries\n{self.describe()}"
        return summaries[0]

    def finish(self, timeout: float = 30.0, expect: int | None = None) -> int:
        """Wait for the exit; check the output is clean; return (or check) the status."""
        code = self.wait_exit(timeout)
        self.assert_clean()
        if expect is not None:
            assert code == expect, f"{self.name} exited {code}, not {expect}\n{self.describe()}"
        return code

    def assert_clean(self) -> None:
        """No fatal error on stderr, nothing but JSON lines on stdout."""
        err = self.stderr
        for marker in FATAL_MARKERS:
            assert marker not in err, f"{self.name}: {marker!r} on stderr\n{err[-4000:]}"
        assert not self.not_json, f"{self.name}: stdout lines that are not JSON: {self.not_json}"


class ServerProcess(Child):
    """``python -m gui.server ...`` (parley-server); ``url`` once it printed it."""

    def __init__(self, *args: str) -> None:
        super().__init__("parley-server", [sys.executable, "-m", "gui.server", *args])
        self.url = ""

    def wait_ready(self, timeout: float = 30.0) -> str:
        """The URL it serves on."""

        def check() -> str | None:
            for _, line in self.out:
                match = URL_RE.search(line)
                if match:
                    return match.group(1)
            return None

        self.url = self.wait_for(check, timeout, "listening URL")
        return self.url

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def log_mark(self) -> int:
        """The index the next stderr (log) line will have."""
        with self.cond:
            return len(self.err)

    def wait_log(self, pattern: str, since: int, timeout: float = 20.0) -> re.Match[str]:
        """A structured log line (``event=... user=...``) from index ``since`` on."""
        return self.wait_stderr(pattern, timeout, since)

    def wait_logged_in(self, user: str, since: int, timeout: float = 30.0) -> None:
        """Until ``user`` has logged in on a connection opened after ``since``."""
        self.wait_log(rf"event=login conn=\S+ user={re.escape(user)}(\s|$)", since, timeout)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit status."""
        if self.running:
            self.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)


@contextlib.contextmanager
def serving(directory: Path, *args: str) -> Iterator[ServerProcess]:
    """A parley-server on a free port with its database in ``directory`` (and ``args``).

    On leaving it must stop with status 0, with no traceback and no ``internal`` error logged.
    """
    process = ServerProcess("--port", "0", "--db", str(directory / "parley.db"), *args)
    try:
        process.wait_ready()
        yield process
    finally:
        code = process.stop()
    assert code == 0, process.describe()
    log = process.stderr
    assert "Traceback" not in log, log[-4000:]
    assert "event=internal" not in log, [line for line in log.splitlines() if "internal" in line]


@dataclass
class Launcher:
    """Starts the processes of one test and kills whatever is left at the end."""

    url: str
    children: list[Child] = field(default_factory=list)

    def cli(
        self,
        user: str,
        *args: str,
        register: bool = False,
        server: str | None = None,
        password: str | None = None,
        verbose: bool = False,
        name: str | None = None,
    ) -> CliProcess:
        """Start ``parley-cli --server URL --user USER --password PW [--register] ARGS...``."""
        argv = [
            sys.executable,
            "-m",
            "gui.cli",
            "--server",
            server or self.url,
            "--user",
            user,
            "--password",
            password or password_of(user),
        ]
        if register:
            argv.append("--register")
        if verbose:
            argv.append("-v")
        argv += args
        words = " ".join(a for a in args[:2] if not a.startswith("-"))
        child = CliProcess(name or f"parley-cli[{user} {words}]", argv)
        self.children.append(child)
        return child

    def raw_cli(self, *args: str, name: str = "parley-cli") -> CliProcess:
        """Start ``parley-cli`` with exactly these arguments."""
        child = CliProcess(name, [sys.executable, "-m", "gui.cli", *args])
        self.children.append(child)
        return child

    def register(self, *users: str) -> None:
        """Create the accounts, all at once (``contacts --register``)."""
        registering = [self.cli(user, "contacts", register=True) for user in users]
        for child in registering:
            child.finish(60, expect=0)

    def befriend(self, *pairs: tuple[str, str]) -> None:
        """Register every user, then make each pair accepted contacts with ``add`` from both sides.

        Each phase runs its processes at once; the second ``add`` of a pair must report the
        contact ``accepted``.
        """
        self.register(*sorted({user for pair in pairs for user in pair}))
        first = [self.cli(a, "add", b) for a, b in pairs]
        for child in first:
            child.finish(60, expect=0)
        second = [self.cli(b, "add", a) for a, b in pairs]
        for child, (a, _) in zip(second, pairs, strict=True):
            child.finish(60, expect=0)
            (contact,) = child.named("contact")
            assert contact["contact"]["username"] == a
            assert contact["contact"]["status"] == "accepted", contact

    def cleanup(self) -> None:
        """Kill every child still running."""
        for child in self.children:
            child.kill()

    @classmethod
    @contextlib.contextmanager
    def around(cls, url: str) -> Iterator[Launcher]:
        """A launcher for one test; whatever it started and is left running is killed after."""
        launcher = cls(url)
        try:
            yield launcher
        finally:
            launcher.cleanup()


class ProxyThread:
    """A :class:`TcpProxy` on its own event loop in a thread, so that sync tests can cut it."""

    def __init__(self, target_port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = CountingProxy(target_port)
        self._call(self.proxy.start())

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(20)

    def url(self) -> str:
        """ws:// URL of the proxy."""
        return self.proxy.url()

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return self.proxy.accepted

    def cut(self) -> None:
        """Abort every open connection (RST), like a dropped network."""

        async def cut() -> None:
            self.proxy.cut()

        self._call(cut())

    def close(self) -> None:
        """Stop the proxy and its loop."""
        try:
            self._call(self.proxy.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


class CountingProxy(TcpProxy):
    """A :class:`TcpProxy` that counts the connections it accepted."""

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port)
        self.accepted = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        await super()._handle(reader, writer)


def videos_flowing(stats: list[tuple[float, Json]]) -> Iterator[float]:
    """The received camera fps of each stats line (0.0 when no video was listed)."""
    for _, message in stats:
        videos = message.get("videos") or []
        yield float(videos[0]["fps"]) if videos else 0.0
