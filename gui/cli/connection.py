"""Reaching the server and the peers: ICE servers, TLS trust, signing in, and the first
server event of a kind, caught from the moment the client exists."""

from __future__ import annotations

import argparse
import asyncio
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gui.cli.output import BadArguments, CliError, emit
from gui.core.call_session import CallOptions, IceServer
from gui.core.pinning import KnownServers
from gui.core.signaling_client import (
    NotConnected,
    RequestError,
    SignalingClient,
    TlsRefused,
    tls_context,
)


def call_options(args: argparse.Namespace) -> CallOptions:
    """ICE servers from --ice (TURN ones with --ice-username and --ice-credential)."""
    servers = []
    for url in args.ice:
        if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
            raise BadArguments(f"--ice takes stun: or turn: URLs, not '{url}'")
        turn = url.startswith("turn")
        if turn and not (args.ice_username and args.ice_credential):
            raise BadArguments("a TURN server needs --ice-username and --ice-credential")
        servers.append(
            IceServer(
                [url],
                args.ice_username if turn else None,
                args.ice_credential if turn else None,
            )
        )
    return CallOptions(ice_servers=servers, max_videos=getattr(args, "max_videos", None))


def server_tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The trust store with --trust-cert added (``None``: the system's alone)."""
    if not args.trust_cert:
        return None
    try:
        return tls_context(args.trust_cert)
    except ValueError as exc:
        raise BadArguments(f"--trust-cert: {exc}") from None


def _client_event(message: dict[str, Any]) -> None:
    """What the connection itself has to say: a pinned certificate, one of several servers
    refused (and skipped), back online (maybe through another server)."""
    kind = message.get("type")
    if kind == "client.pinned":
        emit("pinned", address=message["address"], words=message["words"])
    elif kind == "client.server_refused":
        emit("server_refused", url=message["url"], reason=str(message["error"]))
    elif kind == "client.reconnected":
        emit("reconnected", server=message.get("url"))


async def sign_in(
    args: argparse.Namespace, context: ssl.SSLContext | None, first: FirstEvent | None = None
) -> SignalingClient:
    """Connect and log in (registering first with --register); ``first`` listens from the start."""
    client = SignalingClient(
        args.server, ssl_context=context, known_servers=KnownServers(Path(args.known_servers))
    )
    client.on_event(_client_event)
    if first is not None:
        first.attach(client)
    try:
        await client.connect()
        if args.register:
            try:
                await client.register(args.user, args.password)
                return client
            except RequestError as exc:
                if exc.code != "taken":
                    raise
        await client.login(args.user, args.password)
    except RequestError as exc:
        await client.close()
        raise CliError(f"{exc.code}: {exc.message}") from None
    except TlsRefused as exc:
        await client.close()
        hint = "; pass --trust-cert FILE if you trust it" if exc.untrusted else ""
        raise CliError(f"{exc}{hint}") from None
    except (NotConnected, TimeoutError) as exc:
        await client.close()
        raise CliError(str(exc)) from None
    return client


class FirstEvent:
    """The first server event of one kind, caught from the moment the client exists.

    Subscribing only after the login reply would miss an event the server sends
    right behind it (a call already ringing as ``answer`` logs in), so
    :func:`sign_in` attaches this before it connects.
    """

    def __init__(self, kind: str, what: str) -> None:
        """``what`` names the event in the error when none comes in time."""
        self.kind = kind
        self.what = what
        self._future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._unsubscribe: Callable[[], None] | None = None

    def attach(self, client: SignalingClient) -> None:
        """Start listening on ``client`` (before it logs in)."""
        self._unsubscribe = client.on_event(self._on_event)

    def _on_event(self, message: dict[str, Any]) -> None:
        if message.get("type") == self.kind and not self._future.done():
            self._future.set_result(message)

    async def wait(self, wait: float | None) -> dict[str, Any]:
        """The event, if it came already or within ``wait`` seconds from now."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._future), wait)
        except TimeoutError:
            raise CliError(f"no {self.what} came within {wait:g} s") from None
        finally:
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
