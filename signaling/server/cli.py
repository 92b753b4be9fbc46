"""The signaling server's command line: options, configuration, and serving until a signal.

``python -m signaling`` runs it bare. ``parley-server`` is :mod:`gui.server`, which adds
the built-in users (the Echo Test, ``--no-echo``) through :func:`run`'s ``bots``: they are
clients built on the client's call engine, which this package does not import.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from signaling import __version__
from signaling.protocol.bots import Bot
from signaling.protocol.constants import MESH_CAPACITY
from signaling.protocol.sfu import SFU_CAPACITY
from signaling.server import turn
from signaling.server.app import SignalingServer, StartupError
from signaling.server.collector import long_lived_heap
from signaling.server.config import ServerConfig, SfuSettings, default_db_path
from signaling.server.logs import configure, log_event
from signaling.server.sfu.launch import read_secret
from signaling.server.sfu.pool import SfuAddress
from signaling.server.store import is_postgres_url


def _parsed[T](text: str, convert: Callable[[str], T], what: str) -> T:
    """``convert(text)``, or the error argparse shows as "argument --x: 'text' is not ..."."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None


def _port(text: str) -> int:
    value = _parsed(text, int, "a port number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is from 0 to 65535 (0 picks a free one)")
    return value


def _database(text: str) -> Path | str:
    """A SQLite file, or a ``postgresql://`` URL checked for its form (not yet reached)."""
    if not is_postgres_url(text):
        if "://" in text:
            raise argparse.ArgumentTypeError(
                f"{text.split('://', 1)[0]}:// is not a database; use a file or postgresql://"
            )
        return Path(text)
    try:
        from signaling.server.store.postgres import check_url
    except ImportError:
        raise argparse.ArgumentTypeError(
            "PostgreSQL needs asyncpg: pip install 'parley[postgres]'"
        ) from None
    try:
        return check_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> float:
    value = _parsed(text, float, "a number")
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _capacity(text: str) -> int:
    value = _parsed(text, int, "a whole number")
    if value < 2:
        raise argparse.ArgumentTypeError("a meeting holds at least 2 participants")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line, with help for each option."""
    parser = argparse.ArgumentParser(
        prog="parley-server",
        description="Run a Parley signaling server: accounts, contacts, presence, call and meeting "
        "routing over WebSocket (protocol parley.v1, see docs/protocol.md).",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; 0.0.0.0 (or ::) serves other computers (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--port", type=_port, default=8765, help="TCP port; 0 picks a free one (default: 8765)"
    )
    parser.add_argument(
        "--db",
        type=_database,
        default=None,
        metavar="PATH|URL",
        help=f"SQLite database file, created if missing (default: {default_db_path()}), or a "
        "PostgreSQL database, postgresql://USER[:PASSWORD]@HOST[:PORT]/NAME, that several "
        "instances may share",
    )
    parser.add_argument(
        "--bus",
        metavar="redis://HOST:PORT",
        help="Redis that several instances of one service share (each with the same "
        "PostgreSQL --db): any instance then serves any user (default: this instance alone)",
    )
    parser.add_argument(
        "--tls-cert",
        type=Path,
        metavar="C",
        help="PEM certificate (chain) to serve wss:// instead of ws://; needs --tls-key",
    )
    parser.add_argument("--tls-key", type=Path, metavar="K", help="PEM private key for --tls-cert")
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="how much to log to stderr, one logfmt line per event (default: info)",
    )
    parser.add_argument(
        "--ring-timeout",
        type=_positive,
        default=None,
        metavar="S",
        help="seconds an unanswered call rings before it ends with 'timeout' (default: 45)",
    )
    parser.add_argument(
        "--reconnect-grace",
        type=_positive,
        default=None,
        metavar="S",
        help="seconds a call, or a meeting's participant, waits for a lost connection to "
        "come back (default: 30)",
    )
    parser.add_argument(
        "--meeting-capacity",
        type=_capacity,
        default=None,
        metavar="N",
        help="participants a meeting holds; in a mesh each one sends its media to every other "
        f"one, so every place costs upload (default: {MESH_CAPACITY})",
    )
    _add_sfu_options(parser)
    turn.add_options(parser)
    parser.add_argument("--version", action="version", version=f"parley-server {__version__}")
    return parser


def _sfu_address(text: str) -> SfuAddress:
    try:
        return SfuAddress.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _deployment(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", text):
        raise argparse.ArgumentTypeError("a name of 1 to 64 letters, digits and ._-")
    return text


def _add_sfu_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sfu",
        type=_sfu_address,
        action="append",
        default=[],
        metavar="ws://HOST:PORT[?admin=PORT]",
        help="a Janus instance (VideoRoom) for meetings; repeat for several (a meeting goes to "
        "the one with the fewest participants, and moves if it dies). With one up, every new "
        "meeting goes through it. Its admin API is on PORT-1000 unless admin= says otherwise",
    )
    parser.add_argument(
        "--sfu-admin-secret-file",
        type=Path,
        metavar="F",
        help="file holding the Janus admin secret (needed with --sfu)",
    )
    parser.add_argument(
        "--sfu-capacity",
        type=_capacity,
        default=SFU_CAPACITY,
        metavar="N",
        help=f"participants of a meeting through Janus (default: {SFU_CAPACITY})",
    )
    parser.add_argument(
        "--sfu-deployment",
        type=_deployment,
        default=None,
        metavar="NAME",
        help="what this service's Janus rooms are marked with; at start a server destroys the "
        "rooms with its mark that no meeting of its own holds (left by a crash). Servers of "
        "one service share it, other services sharing the Janus need another (default: a "
        "digest of the database's location)",
    )


def sfu_settings(args: argparse.Namespace) -> SfuSettings | None:
    """The media servers of ``--sfu``, or ``None``; raises ``ValueError`` for a person."""
    if not args.sfu:
        if args.sfu_admin_secret_file is not None:
            raise ValueError("--sfu-admin-secret-file needs --sfu")
        return None
    if args.sfu_admin_secret_file is None:
        raise ValueError("--sfu needs --sfu-admin-secret-file")
    secret = read_secret(args.sfu_admin_secret_file)
    return SfuSettings(tuple(args.sfu), secret, args.sfu_capacity, args.sfu_deployment or "")


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """A :class:`ServerConfig` from parsed arguments."""
    config = ServerConfig(
        host=args.host,
        port=args.port,
        db_path=args.db if args.db is not None else default_db_path(),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        bus_url=args.bus,
    )
    if args.bus is not None and not is_postgres_url(str(config.db_path)):
        print(
            "parley-server: error: --bus needs a PostgreSQL --db that every instance shares",
            file=sys.stderr,
        )
        raise SystemExit(2)
    overrides: dict[str, float | int] = {}
    if args.ring_timeout is not None:
        overrides["ring_timeout_s"] = args.ring_timeout
    if args.reconnect_grace is not None:
        overrides["reconnect_grace_s"] = args.reconnect_grace
    if args.meeting_capacity is not None:
        overrides["meeting_capacity"] = args.meeting_capacity
    if overrides:
        config = replace(config, **overrides)  # type: ignore[arg-type]
    try:
        sfu = sfu_settings(args)
    except ValueError as exc:  # a bad argument: one line, status 2, as argparse does
        print(f"parley-server: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if sfu is not None:
        config = replace(config, sfu=sfu)
    try:
        ice = turn.settings_from_args(args)
    except ValueError as exc:  # one line, status 2, as argparse does
        print(f"parley-server: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if ice is not None:
        config = replace(config, ice=ice)
    return config


async def run(config: ServerConfig, bots: Callable[[], Sequence[Bot]] = tuple) -> int:
    """Serve (with the built-in users ``bots()`` makes plugged in) until SIGINT or SIGTERM;
    returns the exit status. A server whose bus asks for it (``Bus.restart``: an instance of a
    service whose hub can no longer be trusted) is stopped and started again, anew."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with long_lived_heap():  # full collections over what is new (collector.py)
            return await _serve(config, bots, stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)


async def _serve(
    config: ServerConfig, bots: Callable[[], Sequence[Bot]], stop: asyncio.Event
) -> int:
    """Start the server and run it until ``stop``, anew each time its bus asks to restart."""
    while True:
        server = SignalingServer(config, bots=bots())
        try:
            await server.start()
        except StartupError as exc:
            print(f"parley-server: error: {exc}", file=sys.stderr)
            return exc.status
        print(f"Parley signaling server listening on {server.url}", flush=True)
        assert server.port is not None
        config = replace(config, port=server.port)  # a restart listens where clients know
        restart = server.restart_wanted()
        try:
            await _first(stop.wait(), restart.wait())
        finally:
            await server.stop()
        if stop.is_set():
            return 0
        log_event("server.restarting", 30)


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of ``waits`` is done; the others are cancelled."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m signaling``: the server without built-in users."""
    args = build_parser().parse_args(argv)
    configure(args.log_level)
    return asyncio.run(run(config_from_args(args)))


if __name__ == "__main__":
    sys.exit(main())
