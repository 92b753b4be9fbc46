"""A signaling server in its own process, for the benchmarks, and the handle that starts it.

``python -m bench.serverproc --db PATH|URL [--bus redis://…]`` serves a
:class:`SignalingServer` on 127.0.0.1 with a free port (``--db`` a SQLite file or a
``postgresql://`` database; with ``--bus``, as one instance of several) and rate limits
out of the way (the benchmarks send far more than one client would), prints
``URL ws://...`` on stdout, and serves until SIGTERM or SIGINT, or until its stdin
closes, so that a load generator that dies cannot leave it behind. Everything else is
the server's default configuration, Argon2 parameters included, and the Echo Test
plugged in on its own thread, as ``parley-server`` does. It logs at ``info`` to its stderr, as
``parley-server`` does by default.

:class:`ServerProcess` starts that process from a benchmark, reads its URL and
memory, and stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import resource
import signal
import sys
import threading
from pathlib import Path
from types import TracebackType

from gui.bots import echo_test
from signaling.server.app import SignalingServer
from signaling.server.collector import long_lived_heap
from signaling.server.config import RateLimits, ServerConfig
from signaling.server.logs import configure
from signaling.server.store import is_postgres_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: Rate limits no benchmark reaches: the point is to measure the server, not its limiter.
GENEROUS_LIMITS = RateLimits(
    requests_per_s=1e6,
    request_burst=1e6,
    login_failures_per_user=1_000_000,
    login_failures_per_address=1_000_000,
)


def raise_open_files_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return soft
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def rss_kib(pid: int) -> int:
    """The resident memory of process ``pid`` in KiB (``VmRSS`` in ``/proc/PID/status``)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


# The server side ----------------------------------------------------------------


async def until_stopped() -> None:
    """Return on SIGTERM or SIGINT, or when stdin closes (the load generator is gone)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def watch_stdin() -> None:
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(4096):
                pass
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    await stop.wait()


async def serve(config: ServerConfig) -> None:
    """Start the server, print its URL, serve until a signal or the end of stdin."""
    async with long_lived_heap():  # as parley-server runs (signaling/server/cli.py)
        server = SignalingServer(config, bots=[echo_test()])
        await server.start()
        print(f"URL {server.url}", flush=True)
        try:
            await until_stopped()
        finally:
            await server.stop()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m bench.serverproc``."""
    parser = argparse.ArgumentParser(prog="python -m bench.serverproc")
    parser.add_argument(
        "--db", required=True, help="SQLite database file, or a postgresql:// database"
    )
    parser.add_argument("--bus", help="redis:// URL: one instance of several (needs PostgreSQL)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    args = parser.parse_args(argv)
    raise_open_files_limit()
    configure(args.log_level)
    db: str | Path = args.db if is_postgres_url(args.db) else Path(args.db)
    config = ServerConfig(host="127.0.0.1", port=0, db_path=db, rate_limits=GENEROUS_LIMITS)
    if args.bus:
        config = dataclasses.replace(config, bus_url=args.bus)
    asyncio.run(serve(config))
    return 0


# The load generator's side -----------------------------------------------------


class ServerProcess:
    """A running ``bench.serverproc``: its URL, pid and memory; an async context manager.

    ``log_path`` receives the server's stderr (its logfmt log). ``db_path`` may be a
    ``postgresql://`` URL, and ``bus`` a ``redis://`` one (an instance of several).
    """

    def __init__(
        self, db_path: Path | str, log_path: Path, log_level: str = "info", bus: str | None = None
    ) -> None:
        self.db_path = db_path
        self.log_path = log_path
        self.log_level = log_level
        self.bus = bus
        self.url = ""
        self._process: asyncio.subprocess.Process | None = None

    def arguments(self) -> list[str]:
        """What follows the interpreter on the server's command line."""
        bus = ["--bus", self.bus] if self.bus else []
        return [
            "-m", "bench.serverproc", "--db", str(self.db_path), *bus,
            "--log-level", self.log_level,
        ]  # fmt: skip

    @property
    def pid(self) -> int:
        """The server process's id."""
        assert self._process is not None
        return self._process.pid

    @property
    def http_base(self) -> str:
        """``http://host:port`` of the same server, for /healthz and /metrics."""
        return self.url.replace("ws://", "http://", 1).removesuffix("/ws")

    async def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait for it to print its URL."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
        )
        with open(self.log_path, "ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                *self.arguments(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                cwd=PROJECT_ROOT,
                env=env,
            )
        assert self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), timeout)
        except TimeoutError:
            await self.stop()
            raise RuntimeError(f"the server did not start within {timeout:.0f} s") from None
        text = line.decode("utf-8", "replace").strip()
        if not text.startswith("URL "):
            await self.stop()
            raise RuntimeError(f"the server did not start: {self.log_tail()}")
        self.url = text.removeprefix("URL ")

    def rss_kib(self) -> int:
        """The server's resident memory now, in KiB."""
        return rss_kib(self.pid)

    async def metrics(self) -> dict[str, float]:
        """The server's unlabelled gauges and counters from ``GET /metrics``."""
        host, _, port = self.http_base.removeprefix("http://").rpartition(":")
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 10)
        try:
            writer.write(f"GET /metrics HTTP/1.1\r\nHost: {host}\r\n\r\n".encode("ascii"))
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        _, _, body = data.decode("utf-8", "replace").partition("\r\n\r\n")
        values: dict[str, float] = {}
        for line in body.splitlines():
            if line and not line.startswith("#") and "{" not in line:
                name, _, value = line.partition(" ")
                values[name] = float(value)
        return values

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"

    async def stop(self, timeout: float = 15.0) -> None:
        """Close its stdin and send SIGTERM; SIGKILL if it has not exited within ``timeout``."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def __aenter__(self) -> ServerProcess:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


if __name__ == "__main__":
    sys.exit(main())
