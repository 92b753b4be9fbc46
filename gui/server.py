"""``parley-server``: the signaling server's command line, with the built-in users plugged in.

The server package (``signaling/``) imports nothing from the client; the Echo Test is a
client built on the client's call engine. This module is the composition root that joins
the two: the server's options (:mod:`signaling.server.cli`) plus ``--no-echo``, and the
Echo Test (:func:`gui.bots.echo_test`) handed to the server as a ``Bot``.
``python -m signaling`` is the same server without any built-in user.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from gui.bots import echo_test
from signaling.protocol.bots import Bot
from signaling.server import cli as server_cli
from signaling.server.logs import configure


def build_parser() -> argparse.ArgumentParser:
    """The server's command line and the built-in users' options."""
    parser = server_cli.build_parser()
    parser.add_argument(
        "--no-echo",
        action="store_true",
        help="do not run the Echo Test (a built-in contact that answers calls and sends the "
        "caller's video back, and its audio 1.5 s later)",
    )
    return parser


def bots_from_args(args: argparse.Namespace) -> list[Bot]:
    """The built-in users to plug in."""
    return [] if args.no_echo else [echo_test()]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``parley-server``."""
    args = build_parser().parse_args(argv)
    configure(args.log_level)
    config = server_cli.config_from_args(args)
    return asyncio.run(server_cli.run(config, lambda: bots_from_args(args)))


if __name__ == "__main__":
    sys.exit(main())
