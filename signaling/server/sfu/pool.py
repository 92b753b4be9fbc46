"""The Janus instances parley-server may use: health, load, and noticing one that dies.

Each configured instance has a watcher task: connect (and register this server's token),
then ping every few seconds; when the connection closes or a ping fails, the instance is
*down*: the ``on_down`` callback moves its meetings elsewhere, and the watcher tries to
connect again every ``retry_s``. A new meeting goes to the healthy instance with the
fewest participants (the relay counts them); ties go to the first configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit, urlunsplit

from signaling.server.logs import log_event
from signaling.server.sfu.janus import JanusError, JanusInstance

log = logging.getLogger("parley.sfu")

PING_INTERVAL_S = 3.0
RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class SfuAddress:
    """Where one Janus listens: its API URL and its admin API's port."""

    url: str
    admin_port: int | None = None

    @classmethod
    def parse(cls, text: str) -> SfuAddress:
        """``ws://HOST:PORT`` with an optional ``?admin=PORT`` (default: the port - 1000).

        Raises :class:`ValueError` with a sentence for a person.
        """
        parts = urlsplit(text)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"'{text}' is not a ws://HOST:PORT address")
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"'{text}' has a bad port") from None
        admin: int | None = None
        query = parse_qs(parts.query)
        if "admin" in query:
            try:
                admin = int(query["admin"][0])
            except ValueError:
                raise ValueError(f"'{text}': admin= must be a port number") from None
            if not 1 <= admin <= 65535:
                raise ValueError(f"'{text}': admin= must be a port from 1 to 65535")
        elif port is None or port <= 1000:
            raise ValueError(f"'{text}': give the admin API's port as ?admin=PORT")
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return cls(url, admin)


class Member:
    """One instance of the pool and what the pool knows of it."""

    def __init__(self, address: SfuAddress, admin_secret: str) -> None:
        self.address = address
        self.janus = JanusInstance(address.url, admin_secret, address.admin_port)
        self.healthy = False
        #: Participants in rooms on this instance (kept by the relay).
        self.load = 0
        #: Rises each time the instance comes up again (a room made before is gone).
        self.generation = 0
        #: The first try to connect has ended (either way).
        self.tried = False
        self.task: asyncio.Task[None] | None = None


class SfuPool:
    """Keeps the instances connected and says which one a meeting should use."""

    def __init__(
        self,
        addresses: list[SfuAddress],
        admin_secret: str,
        on_down: Callable[[Member], Awaitable[None]],
        retry_s: float = RETRY_S,
        ping_interval_s: float = PING_INTERVAL_S,
        on_up: Callable[[Member], Awaitable[None]] | None = None,
    ) -> None:
        """``on_down`` is awaited when an instance goes down, ``on_up`` each time one is
        connected (first or again), before it is offered to new meetings."""
        self.members = [Member(address, admin_secret) for address in addresses]
        self._on_down = on_down
        self._on_up = on_up
        self._retry_s = retry_s
        self._ping_s = ping_interval_s
        self.changed = asyncio.Event()

    async def start(self, wait_s: float = 5.0) -> None:
        """Start watching every instance; wait up to ``wait_s`` for one to be up (or for every
        first try to have failed)."""
        for member in self.members:
            member.task = asyncio.get_running_loop().create_task(self._watch(member))
        deadline = asyncio.get_running_loop().time() + wait_s
        while not self.healthy() and asyncio.get_running_loop().time() < deadline:
            if all(m.tried for m in self.members):
                break
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.2)

    async def stop(self) -> None:
        """Stop watching and close every connection."""
        for member in self.members:
            if member.task is not None:
                member.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await member.task
            await member.janus.close()

    def healthy(self) -> list[Member]:
        """The instances up now."""
        return [m for m in self.members if m.healthy]

    def pick(self, exclude: Member | None = None) -> Member | None:
        """The healthy instance with the fewest participants (``None``: none is up)."""
        candidates = [m for m in self.healthy() if m is not exclude]
        return min(candidates, key=lambda m: m.load) if candidates else None

    async def wait_healthy(self, wait_s: float) -> Member | None:
        """An instance to use, waiting up to ``wait_s`` seconds for one to come up."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            member = self.pick()
            remaining = deadline - asyncio.get_running_loop().time()
            if member is not None or remaining <= 0:
                return member
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.5))

    def _set(self, member: Member, healthy: bool) -> None:
        if member.healthy != healthy:
            member.healthy = healthy
            if healthy:
                member.generation += 1
            log_event(
                "sfu.up" if healthy else "sfu.down", 20 if healthy else 30, sfu=member.address.url
            )
            self.changed.set()

    async def _watch(self, member: Member) -> None:
        reported = False
        while True:
            try:
                await member.janus.open()
            except JanusError as exc:
                member.tried = True
                self.changed.set()
                if not reported:
                    log_event("sfu.unreachable", 30, sfu=member.address.url, error=exc.reason)
                    reported = True
                await asyncio.sleep(self._retry_s)
                continue
            reported = False
            if self._on_up is not None:
                try:
                    await self._on_up(member)
                except JanusError as exc:
                    log.info("%s: %s", member.address.url, exc)
                except Exception as exc:
                    log_event("internal", 40, where="sfu.on_up", error=repr(exc))
            member.tried = True
            self._set(member, True)
            try:
                while member.janus.alive:
                    closed = asyncio.ensure_future(member.janus.wait_closed())
                    try:
                        await asyncio.wait_for(asyncio.shield(closed), self._ping_s)
                    except TimeoutError:
                        await member.janus.ping()
                    finally:
                        closed.cancel()
            except JanusError as exc:
                log.info("%s: %s", member.address.url, exc)
            self._set(member, False)
            await member.janus.close()
            try:
                await self._on_down(member)
            except Exception as exc:
                log_event("internal", 40, where="sfu.on_down", error=repr(exc))
            await asyncio.sleep(self._retry_s)


__all__ = ["Member", "SfuAddress", "SfuPool"]
