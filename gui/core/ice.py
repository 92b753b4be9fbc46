"""ICE servers for calls, and what Parley changes in aioice's ICE to make relayed calls work.

**Where ICE servers come from.** A server with STUN/TURN servers hands them out at login
(``ice_servers``, ``ice_ttl``: protocol v1.1, ``signaling/protocol/ice.py``) with TURN
credentials that expire; :class:`ServerIce` keeps them and asks ``ice.servers`` again before
they do. The user's own servers (settings, ``parley-cli --ice``) add to them:
:func:`servers_for_call` puts the server's first. Nothing at all by default, so that nothing
reaches out to a public STUN server.

**aioice, patched** (:func:`install`, once per process, before the first peer connection):

1. *No relaying to private addresses.* aioice pairs its relayed candidate with every remote
   candidate, the other side's private host addresses (``192.168.x.y``) included, and sends
   connectivity checks to them through the TURN server. A TURN server on the internet cannot
   reach them; coturn's ``sendto`` from the relay socket fails (``EINVAL``/``ENETUNREACH``,
   "udp send: Invalid argument" in its log), and coturn then *closes that allocation*
   (``s->tobeclosed = 1`` in ``ns_ioalib_engine_impl.c``): every later channel message and the
   relay→relay check die with it, the refresh gets "437 Invalid allocation", and ICE stays
   "checking". With port-randomising NATs on both sides the relay was the only way through, so
   those calls never connected (an ordinary NAT's direct path hid it). Chromium sends the same
   checks (coturn logs the same errors) but holds one allocation per TURN URL and usually one
   survives: with UDP blocked, where it has only TCP and TLS ones, it failed 2 calls of 3. The
   patch pairs a relayed candidate with a private remote address only when the
   relay itself is on a private network (a TURN server on the LAN). Parley's own coturn
   configuration (``deploy/coturn/turnserver.conf``) also denies private peers (403 to the
   ChannelBind, which aioice survives), but a user's TURN server may not.
2. *Every TURN server, not only the first.* aiortc keeps one TURN URL (the first); a home
   that blocks UDP then gets no relay at all. Relayed candidates are gathered from every
   ``turn:``/``turns:`` URL at once (UDP, TCP, TLS), with priorities that prefer UDP to TCP to
   TLS (RFC 8445's local preference), and each remembers its transport for
   :func:`selected_path`. Once one STUN or TURN server has answered, the others get 1.5 s more
   (aioice waited 5 s for a blocked one, and without trickle ICE the offer waited with it).
3. *Consent that survives a busy machine.* aioice sends each consent check (RFC 7675) once,
   waits 0.5 s for the answer and closes the connection after 6 checks in a row went
   unanswered that way. A loaded process reads each UDP socket one datagram per loop pass, so a
   peer's answer can sit behind a second of video in the socket: at load 12, three meeting
   participants in one process lost every link within a minute ("Consent to send expired",
   then "connection closed" and a new link), and a chat message sent meanwhile waited for the
   new link. Here each check is sent again (0.5, 1, 2, 4 s apart) and an answer to any of them
   counts, checks do not wait for each other, and consent expires as the RFC says: when no
   check has been answered for :data:`CONSENT_TIMEOUT_S` (and at least as many checks as aioice
   counts have gone unanswered). A dead path still ends the connection, after about 37 s
   instead of 30; calls and meetings notice one in seconds by themselves (``quiet``, ``silent``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aioice
import aioice.ice
import aioice.stun
import aiortc.rtcicetransport
from aioice.candidate import candidate_foundation, candidate_priority

from gui.core.quality import MediaPath
from signaling.protocol.ice import ICE_TTL_MIN_S, parse_ice_servers

log = logging.getLogger("parley.ice")

Json = dict[str, Any]

#: Addresses a TURN server on the internet cannot reach: RFC 1918, shared (CGNAT), loopback,
#: link-local, unique-local. (``ipaddress``'s ``is_private`` also holds documentation ranges.)
_PRIVATE = tuple(
    ipaddress.ip_network(net)
    for net in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "::1/128",
        "fc00::/7",
        "fe80::/10",
    )
)
#: Once one STUN or TURN server has answered, how long the others still get (ICE gathering).
GATHER_GRACE_S = 1.5
#: Local preference of relayed candidates by TURN transport (RFC 8445 section 5.1.2.1).
_RELAY_PREFERENCE = {"udp": 65535, "tcp": 32767, "tls": 16383}
#: Consent to send expires when no consent check has been answered for this long (RFC 7675).
CONSENT_TIMEOUT_S = 30.0
#: Each consent check is sent this many times more (0.5, 1, 2 and 4 s after the first) before it
#: counts as unanswered: an answer 7.5 s late still counts.
CONSENT_RETRANSMISSIONS = 3


@dataclass(frozen=True, slots=True)
class IceServer:
    """A STUN or TURN server (TURN with credentials)."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


def servers_for_call(
    server_given: Sequence[IceServer], own: Sequence[IceServer]
) -> list[IceServer]:
    """The ICE servers of a call: the signaling server's, then the user's own (no repeats)."""
    merged: list[IceServer] = []
    for server in (*server_given, *own):
        if server not in merged:
            merged.append(server)
    return merged


class ServerIce:
    """The ICE servers a signaling server handed out, renewed before their credentials expire."""

    #: Renew when this share of the TTL has passed.
    RENEW_AT = 0.8

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.servers: list[IceServer] = []
        self.ttl_s: int | None = None
        self.expires_at: float | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._watchers: list[Callable[[], None]] = []

    def on_renewed(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` each time new servers (fresh credentials) arrive after the
        first ones; returns the function that stops it. A call relayed through TURN moves
        onto fresh allocations then (``CallSession``): coturn refuses to refresh an
        allocation whose username has expired, and aioice refreshes with the credentials the
        allocation was made with."""
        self._watchers.append(callback)

        def stop() -> None:
            if callback in self._watchers:
                self._watchers.remove(callback)

        return stop

    def update(self, reply: Json) -> bool:
        """Take ``ice_servers``/``ice_ttl`` from a reply; ``False`` if it had none or bad ones
        (logged; what was there stays)."""
        try:
            parsed = parse_ice_servers(reply)
        except ValueError as exc:
            log.warning("ignoring the ICE servers the server sent: %s", exc)
            return False
        if parsed is None:
            return False
        servers, ttl = parsed
        self.servers = [
            IceServer(s["urls"], s.get("username"), s.get("credential")) for s in servers
        ]
        self.ttl_s = ttl
        self.expires_at = self.clock() + ttl
        return True

    def renew_in(self) -> float | None:
        """Seconds until the next renewal (``None``: nothing to renew)."""
        if self.expires_at is None or self.ttl_s is None or not self.servers:
            return None
        renew_at = self.expires_at - (1 - self.RENEW_AT) * self.ttl_s
        return max(0.0, renew_at - self.clock())

    def keep_fresh(self, request: Callable[[], Awaitable[Json]]) -> None:
        """Renew in the background with ``request()`` (``ice.servers``) until :meth:`stop`."""
        self.stop()
        if self.renew_in() is not None:
            self._renewer = asyncio.get_running_loop().create_task(self._renew(request))

    async def _renew(self, request: Callable[[], Awaitable[Json]]) -> None:
        while (wait := self.renew_in()) is not None:
            await asyncio.sleep(wait)
            try:
                renewed = self.update(await request())
            except Exception as exc:  # offline, refused: try again soon, the old ones may last
                log.info("renewing the ICE servers failed (%s); trying again", exc)
                renewed = False
            if renewed:
                for watcher in list(self._watchers):
                    try:
                        watcher()
                    except Exception:
                        log.exception("a watcher of the ICE servers failed")
            if not renewed:
                await asyncio.sleep(min(ICE_TTL_MIN_S / 2, max(1.0, (self.ttl_s or 60) / 20)))

    def stop(self) -> None:
        """Stop renewing (logged out, closed)."""
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None

    def clear(self) -> None:
        """Forget the servers (logged out)."""
        self.stop()
        self.servers, self.ttl_s, self.expires_at = [], None, None


def server_ice_of(link: object) -> list[IceServer]:
    """The ICE servers the signaling ``link`` got from its server (none for a bot's link)."""
    given = getattr(link, "ice", None)
    return list(given.servers) if isinstance(given, ServerIce) else []


# What a call's path is ----------------------------------------------------------------------


def selected_path(pc: Any) -> MediaPath | None:
    """The path an aiortc ``RTCPeerConnection`` uses now, or ``None`` before ICE completes."""
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for dtls in transports:
        connection = getattr(getattr(dtls, "transport", None), "_connection", None)
        pair = getattr(connection, "_nominated", {}).get(1)
        if pair is None:
            continue
        local, remote = pair.local_candidate.type, pair.remote_candidate.type
        transport = getattr(pair.protocol, "parley_relay", None) or "udp"
        return MediaPath("relay" in (local, remote), transport, local, remote)
    return None


# The aioice patch ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TurnServer:
    """One TURN URL with its credentials, as aioice takes it."""

    url: str
    host: str
    port: int
    transport: str  # udp or tcp
    tls: bool
    username: str | None
    password: str | None

    @property
    def kind(self) -> str:
        """``udp``, ``tcp`` or ``tls``."""
        return "tls" if self.tls else self.transport


def _private(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name (mDNS): aioice never relays to those anyway
    return any(address in net for net in _PRIVATE if net.version == address.version)


class ParleyConnection(aioice.Connection):
    """aioice's ICE connection with the two changes this module's docstring explains."""

    def __init__(self, *args: Any, turn_servers: Sequence[TurnServer] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.parley_turn = list(turn_servers)
        #: When a consent check was last answered (the loop's clock), and how many checks went
        #: unanswered since.
        self.consent_answered_at = 0.0
        self.consent_unanswered = 0

    async def query_consent(self) -> None:
        """Consent freshness (RFC 7675), tolerant of a loaded machine: see the module's
        docstring (3). aioice's constants set the pace (``CONSENT_INTERVAL``, 5 s, randomised
        as there) and the count (``CONSENT_FAILURES``); :data:`CONSENT_TIMEOUT_S` the time."""
        assert self.remote_password is not None
        loop = asyncio.get_running_loop()
        self.consent_answered_at = loop.time()
        self.consent_unanswered = 0
        checks: set[asyncio.Task[None]] = set()
        try:
            while True:
                interval = aioice.ice.CONSENT_INTERVAL
                await asyncio.sleep(interval * (0.8 + 0.4 * random.random()))
                if (
                    self.consent_unanswered >= aioice.ice.CONSENT_FAILURES
                    and loop.time() - self.consent_answered_at >= CONSENT_TIMEOUT_S
                ):
                    log.info(
                        "consent to send expired: no check answered for %.0f s (%d unanswered)",
                        loop.time() - self.consent_answered_at,
                        self.consent_unanswered,
                    )
                    self._query_consent_task = None
                    await self.close()
                    return
                for pair in self._nominated.values():
                    task = loop.create_task(self._consent_check(pair))
                    checks.add(task)
                    task.add_done_callback(checks.discard)
        finally:
            for task in checks:
                task.cancel()

    async def _consent_check(self, pair: aioice.ice.CandidatePair) -> None:
        """One consent check on ``pair``, sent again until answered or given up."""
        assert self.remote_password is not None
        request = self.build_request(pair, nominate=False)
        try:
            await pair.protocol.request(
                request,
                pair.remote_addr,
                integrity_key=self.remote_password.encode("utf8"),
                retransmissions=CONSENT_RETRANSMISSIONS,
            )
        except aioice.stun.TransactionError:
            self.consent_unanswered += 1
        except Exception as exc:  # the socket closed under the check
            log.debug("consent check failed: %r", exc)
            self.consent_unanswered += 1
        else:
            self.consent_answered_at = asyncio.get_running_loop().time()
            self.consent_unanswered = 0

    async def get_component_candidates(
        self,
        component: int,
        addresses: list[str],
        timeout: int = 5,  # noqa: ASYNC109 (aioice's signature)
    ) -> list[aioice.Candidate]:
        """Host candidates as aioice makes them; then the server-reflexive one (STUN) and a
        relayed one from every TURN server, all at once: see :meth:`_servers`."""
        stun, self.stun_server = self.stun_server, None
        try:  # host candidates only, at once
            own = await super().get_component_candidates(component, addresses, timeout)
        finally:
            self.stun_server = stun
        return own + await self._servers(component, own, float(timeout))

    async def _servers(
        self, component: int, hosts: list[aioice.Candidate], wait_s: float
    ) -> list[aioice.Candidate]:
        """Server-reflexive and relayed candidates, gathered together.

        aioice waits up to ``wait_s`` (5 s) for every server, so a home that blocks UDP (no
        STUN answer, no UDP allocation) held every call's offer for 5 s: without trickle ICE
        nothing goes out before gathering ends. Here, once one server has answered, the others
        get :data:`GATHER_GRACE_S` more (two STUN retransmissions), then gathering ends.
        """
        tasks: dict[asyncio.Task[Any], str] = {}
        if self.stun_server:
            for protocol in self._protocols:
                if protocol.local_candidate in hosts and ":" not in protocol.local_candidate.host:
                    query = aioice.ice.server_reflexive_candidate(protocol, self.stun_server)
                    tasks[asyncio.create_task(query)] = "stun"
        hide = self._transport_policy == aioice.TransportPolicy.RELAY
        turns = {}
        for server in self.parley_turn:
            task = asyncio.create_task(
                aioice.ice.relayed_candidate(
                    component=component,
                    hide_related_address=hide,
                    protocol_factory=lambda: aioice.ice.StunProtocol(self),
                    turn_server=(server.host, server.port),
                    turn_username=server.username,
                    turn_password=server.password,
                    turn_ssl=server.tls,
                    turn_transport=server.transport,
                )
            )
            tasks[task], turns[task] = server.url, server
        if not tasks:
            return []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        pending = set(tasks)
        while pending and (left := deadline - loop.time()) > 0:
            done, pending = await asyncio.wait(
                pending, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            if any(not t.cancelled() and t.exception() is None for t in done):
                deadline = min(deadline, loop.time() + GATHER_GRACE_S)
        for task in pending:
            task.cancel()
            log.info("%s: no answer in time, gathering without it", tasks[task])
        candidates = []
        for task, name in tasks.items():
            if task in pending:
                continue
            if (error := task.exception()) is not None:
                log.warning("%s: %s", name, error or type(error).__name__)
                continue
            candidate, protocol = task.result()
            if (relay := turns.get(task)) is not None:
                candidate.foundation = candidate_foundation("relay", relay.kind, candidate.host)
                preference = _RELAY_PREFERENCE[relay.kind]
                candidate.priority = candidate_priority(component, "relay", preference)
                protocol.parley_relay = relay.kind  # type: ignore[attr-defined]  # selected_path()
                self._protocols.append(protocol)
                log.info("%s: relayed candidate %s:%d", name, candidate.host, candidate.port)
            candidates.append(candidate)
        return sorted(candidates, key=lambda c: -c.priority)

    def _pair_remote_candidate(self, remote_candidate: aioice.Candidate) -> None:
        """Pair as aioice does, except a relay with a private address it cannot reach."""
        host = getattr(remote_candidate, "_network_host", remote_candidate.host)
        if not _private(host):
            super()._pair_remote_candidate(remote_candidate)
            return
        everything = self._protocols
        self._protocols = [
            p
            for p in everything
            if p.local_candidate.type != "relay" or _private(p.local_candidate.host)
        ]
        try:
            super()._pair_remote_candidate(remote_candidate)
        finally:
            self._protocols = everything


def _connection_kwargs(servers: list[Any]) -> dict[str, Any]:
    """aiortc's ``connection_kwargs`` (the first STUN server), and every TURN URL it can use
    in ``turn_servers`` instead of only the first."""
    kwargs: dict[str, Any] = {}
    turn: list[TurnServer] = []
    for server in servers:
        for url in server.urls if isinstance(server.urls, list) else [server.urls]:
            parsed = aiortc.rtcicetransport.parse_stun_turn_uri(url)
            if parsed["scheme"] == "stun":
                kwargs.setdefault("stun_server", (parsed["host"], parsed["port"]))
                continue
            if parsed["scheme"] not in ("turn", "turns") or server.credentialType != "password":
                continue
            tls = parsed["scheme"] == "turns"
            transport = parsed["transport"]
            if transport not in ("udp", "tcp") or (tls and transport != "tcp"):
                log.warning("TURN %s: unsupported transport, skipped", url)
                continue
            turn.append(
                TurnServer(
                    url,
                    parsed["host"],
                    parsed["port"],
                    transport,
                    tls,
                    server.username,
                    server.credential,
                )
            )
    kwargs["turn_servers"] = turn
    return kwargs


def install() -> None:
    """Patch aiortc's ICE gatherer to build :class:`ParleyConnection` (idempotent)."""
    module = aiortc.rtcicetransport
    if module.Connection is ParleyConnection:
        return
    if not hasattr(module, "connection_kwargs") or not hasattr(aioice.ice, "relayed_candidate"):
        log.warning("aiortc/aioice changed: Parley's ICE patch is not applied")
        return
    module.Connection = ParleyConnection  # type: ignore[misc]
    module.connection_kwargs = _connection_kwargs
