"""A bare WebSocket relay: the floor the signaling server's invite latency is compared with.

``python -m bench.relay`` serves, on 127.0.0.1 and a free port, the least a relay of
invites can do with the same library and the same connection settings as
``parley-server`` (no compression, the same frame limit and keepalive pings): it
parses each JSON request, answers ``ok`` and, for ``call.invite``, sends
``call.incoming`` to every connection of the named user (``call.cancel`` sends
``call.ended``). No accounts, no store, no state machine: ``login {token}`` logs
the connection in as the user named by the token itself.

It speaks just enough of the protocol for :class:`bench.client.BenchClient`, so a
benchmark drives it exactly as it drives Parley. Like ``bench.serverproc``, it
prints ``URL ws://...`` and serves until SIGTERM or the end of its stdin.
:class:`RelayProcess` starts it from a benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.serverproc import ServerProcess, raise_open_files_limit, until_stopped
from signaling.protocol.constants import (
    WS_PATH,
)
from signaling.server.app import CONNECTION_OPTIONS
from signaling.server.collector import long_lived_heap


class Relay:
    """Who is logged in where, and the one relaying rule."""

    def __init__(self) -> None:
        self.by_user: dict[str, set[ServerConnection]] = {}

    async def handle(self, ws: ServerConnection) -> None:
        """Serve one connection until it closes."""
        user: str | None = None
        try:
            async for raw in ws:
                message: dict[str, Any] = json.loads(raw)
                kind, request_id = message.get("type"), message.get("id")
                if kind == "login":
                    user = str(message.get("token"))
                    self.by_user.setdefault(user, set()).add(ws)
                    await ws.send(
                        json.dumps({"type": "ok", "re": request_id, "user": {"username": user}})
                    )
                    continue
                await ws.send(json.dumps({"type": "ok", "re": request_id}))
                if kind == "call.invite":
                    event = {
                        "type": "call.incoming",
                        "call_id": message.get("call_id"),
                        "from": {"username": user},
                        "media": message.get("media"),
                    }
                elif kind == "call.cancel":
                    event = {"type": "call.ended", "call_id": message.get("call_id")}
                else:
                    continue
                text = json.dumps(event)
                for other in list(self.by_user.get(str(message.get("to", "")), ())):
                    with contextlib.suppress(ConnectionClosed):
                        await other.send(text)
        except (ConnectionClosed, ValueError):
            pass
        finally:
            if user is not None:
                self.by_user.get(user, set()).discard(ws)


async def main_async() -> None:
    """Serve until a signal or the end of stdin."""
    relay = Relay()
    # The same collector settings as parley-server's (a process setting, not relaying work).
    async with (
        long_lived_heap(),
        serve(relay.handle, "127.0.0.1", 0, **CONNECTION_OPTIONS) as server,
    ):
        port = server.sockets[0].getsockname()[1]
        print(f"URL ws://127.0.0.1:{port}{WS_PATH}", flush=True)
        await until_stopped()


class RelayProcess(ServerProcess):
    """A running ``bench.relay``, handled like a :class:`ServerProcess` (its database unused)."""

    def __init__(self, log_path: Path) -> None:
        super().__init__(log_path.with_suffix(".unused"), log_path)

    def arguments(self) -> list[str]:
        """``-m bench.relay``."""
        return ["-m", "bench.relay"]


if __name__ == "__main__":
    raise_open_files_limit()
    asyncio.run(main_async())
