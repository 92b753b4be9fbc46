"""The client side of the signaling protocol: requests, events, and staying connected.

``SignalingClient`` sends requests and awaits their replies (matched on
``id``, with a timeout), hands server events to its subscribers, and, once
logged in, reconnects by itself after a drop (exponential backoff with
jitter) and logs in again with its token. A server message it cannot make
sense of is logged and skipped; it never ends the connection.

``wss://`` is verified like a browser does it: against the system's trust
store (which honours ``SSL_CERT_FILE`` and ``SSL_CERT_DIR``), host name
included, plus any certificate the user chose to trust (:func:`tls_context`).
A certificate that fails is :class:`TlsRefused`: said in one line, and never
retried, since trying again cannot make it pass.

It may be given several addresses of one service (instances over a shared database): it
connects to the one that last worked, else the next (``gui/core/servers.py``), and when the
connection drops it reconnects to whichever answers, with the same token. A refused
certificate on one of them is said (``client.server_refused``) and that one is skipped.

The matching of replies to requests is :class:`RequestTracker`, pure and
tested without a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.uri import parse_uri

from gui.core.account import signed_out_text
from gui.core.backoff import Backoff
from gui.core.ice import ServerIce
from gui.core.pinning import (
    CertificateChanged,
    KnownServers,
    Pinned,
    is_shared_parley,
    on_local_network,
    unverified_context,
)
from gui.core.servers import ServerChoice
from signaling.protocol.constants import SUBPROTOCOL, ErrorCode
from signaling.protocol.errors import RequestError

log = logging.getLogger("parley.client")

__all__ = [
    "LinkState",
    "NotConnected",
    "RequestError",
    "RequestTracker",
    "SignalingClient",
    "TlsRefused",
    "tls_context",
]

Json = dict[str, Any]

#: What this client understands beyond protocol v1, told to the server at every login (v1.1):
#: a call with this client can move into a meeting; it takes part in meetings through a media
#: server (``sfu``).
CLIENT_FEATURES = ("meetings", "sfu")
EventCallback = Callable[[Json], None]
StateCallback = Callable[["LinkState"], None]


class LinkState(StrEnum):
    """Where the connection to the server stands."""

    OFFLINE = "offline"
    CONNECTING = "connecting"
    CONNECTED = "connected"  # socket open, not logged in
    ONLINE = "online"  # logged in
    RECONNECTING = "reconnecting"


class NotConnected(Exception):
    """No connection to the server (never made, lost, or timed out)."""


class TlsRefused(NotConnected):
    """The server's certificate failed verification: trying again would fail the same way.

    ``untrusted`` says whether trusting a certificate would help (self-signed,
    unknown authority), as opposed to a certificate for another name or out of date.
    """

    def __init__(self, message: str, *, untrusted: bool) -> None:
        super().__init__(message)
        self.untrusted = untrusted


#: OpenSSL's verification codes (``X509_V_ERR_*``) that trusting a certificate cannot fix.
_EXPIRED, _NOT_YET_VALID = 10, 9
_NAME_MISMATCH = frozenset({62, 63, 64})  # host name, e-mail, IP address


def _peer_certificate(ws: ClientConnection) -> bytes:
    """The certificate the server showed (DER), or nothing."""
    ssl_object = ws.transport.get_extra_info("ssl_object") if ws.transport else None
    return (ssl_object.getpeercert(binary_form=True) or b"") if ssl_object is not None else b""


def tls_context(trust_cert: str | os.PathLike[str] | None = None) -> ssl.SSLContext:
    """What ``wss://`` is checked against: the system's trust store, and ``trust_cert`` if given.

    ``trust_cert`` is a PEM file holding the certificate of a server (or of the
    authority that signed it) that the user chose to trust, typically a
    self-signed one on a LAN. The server's own certificate is enough, hence
    partial chains. Raises ``ValueError`` with a one-line reason if the file
    cannot be used.
    """
    context = ssl.create_default_context()
    if trust_cert is not None:
        try:
            context.load_verify_locations(cafile=trust_cert)
        except ssl.SSLError:
            raise ValueError(f"{os.fspath(trust_cert)} holds no PEM certificate") from None
        except OSError as exc:
            raise ValueError(
                f"cannot read the certificate {os.fspath(trust_cert)}: {exc.strerror or exc}"
            ) from None
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def certificate_refusal(error: ssl.SSLCertVerificationError, host: str) -> TlsRefused:
    """One sentence for a certificate that failed verification, and whether trust would fix it."""
    code = error.verify_code
    if code in _NAME_MISMATCH:
        return TlsRefused(
            f"the server's certificate is not valid for {host} (it names another server)",
            untrusted=False,
        )
    if code == _EXPIRED:
        return TlsRefused("the server's certificate has expired", untrusted=False)
    if code == _NOT_YET_VALID:
        return TlsRefused(
            "the server's certificate is not valid yet (is this computer's clock right?)",
            untrusted=False,
        )
    detail = error.verify_message or error.reason or "verification failed"
    return TlsRefused(f"the server's certificate is not trusted ({detail})", untrusted=True)


class RequestTracker:
    """Gives requests their ids and pairs replies with them. No I/O."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Json]] = {}

    def new(self, kind: str, fields: Json) -> tuple[str, asyncio.Future[Json], Json]:
        """A request message with a fresh id, and the future its reply will complete."""
        request_id = f"{next(self._ids)}"
        future: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        return request_id, future, {"type": kind, "id": request_id, **fields}

    def reply(self, message: Json) -> bool:
        """Complete the matching request; ``False`` if the message is not a reply we await."""
        re = message.get("re")
        if not isinstance(re, str):
            return False
        future = self._pending.pop(re, None)
        if future is None:
            return False
        if not future.done():
            future.set_result(message)
        return True

    def forget(self, request_id: str) -> None:
        """Stop waiting for a reply (timed out)."""
        self._pending.pop(request_id, None)

    def fail_all(self, error: BaseException) -> None:
        """The connection dropped: every waiting request fails."""
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)


def parse_server_message(data: str | bytes) -> Json | None:
    """A server frame as a JSON object with a string ``type``, or ``None`` (logged)."""
    if not isinstance(data, str):
        log.warning("skipping a binary frame from the server")
        return None
    try:
        message = json.loads(data)
    except ValueError:
        log.warning("skipping a frame from the server that is not JSON")
        return None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        log.warning("skipping a server message without a type")
        return None
    return message


class SignalingClient:
    """One user's connection to a signaling server."""

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        request_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        backoff: Backoff | None = None,
        ssl_context: ssl.SSLContext | None = None,
        known_servers: KnownServers | None = None,
    ) -> None:
        """``ssl_context`` (see :func:`tls_context`) is used for ``wss://`` only; by default
        the system's trust store. With ``known_servers``, a ``wss://`` server whose certificate
        nobody vouches for is trusted on first use and pinned (``gui/core/pinning.py``).
        ``url`` may be several addresses of one service: see :attr:`servers`."""
        self.known_servers = known_servers
        #: The pin check of the last connection to a pinned server (None: verified normally).
        self.pinned: Pinned | None = None
        #: The service's addresses, which worked last, which were refused.
        self.servers = ServerChoice.of(url)
        #: The server connected to (or to be tried first).
        self.url = self.servers.order()[0]
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.backoff = backoff or Backoff()
        self.ssl_context = ssl_context
        self.state = LinkState.OFFLINE
        self.user: Json | None = None
        self.token: str | None = None
        #: What the server offers beyond v1 (``features`` of the login reply), once logged in.
        self.server_features: frozenset[str] = frozenset()
        self._ws: ClientConnection | None = None
        self._tracker = RequestTracker()
        self._reader: asyncio.Task[None] | None = None
        self._reconnector: asyncio.Task[None] | None = None
        self._online = asyncio.Event()
        self._closing = False
        self._event_callbacks: list[EventCallback] = []
        self._state_callbacks: list[StateCallback] = []
        #: STUN/TURN servers the server hands out at login, renewed before they expire.
        self.ice = ServerIce()

    # Subscriptions ----------------------------------------------------------

    def on_event(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(message)`` for every server event; returns an unsubscribe function."""
        self._event_callbacks.append(callback)
        return lambda: self._event_callbacks.remove(callback)

    def on_state(self, callback: StateCallback) -> Callable[[], None]:
        """Call ``callback(state)`` on every connection state change."""
        self._state_callbacks.append(callback)
        return lambda: self._state_callbacks.remove(callback)

    def _set_state(self, state: LinkState) -> None:
        if state is self.state:
            return
        self.state = state
        if state is LinkState.ONLINE:
            self._online.set()
        else:
            self._online.clear()
        log.info("signaling %s", state.value)
        for callback in list(self._state_callbacks):
            try:
                callback(state)
            except Exception:
                log.exception("state callback failed")

    def _signed_out(self, message: Json) -> Json:
        """The server signed this session out (v1.1): its token is dead; the app signs in again."""
        log.warning("signed out by the server: %s", message.get("reason"))
        self.token = None
        return {
            "type": "client.signed_out",
            "reason": signed_out_text(message.get("reason")),
            "by_server": message.get("reason"),
        }

    def _dispatch(self, message: Json) -> None:
        for callback in list(self._event_callbacks):
            try:
                callback(message)
            except Exception:
                log.exception("event callback failed for %s", message.get("type"))

    # Connection -------------------------------------------------------------

    async def connect(self) -> None:
        """Open the WebSocket. Raises :class:`NotConnected` with a reason a person can read."""
        self._closing = False
        self._set_state(LinkState.CONNECTING)
        self.servers.retry_all()
        try:
            await self._open_any()
        except NotConnected:
            self._set_state(LinkState.OFFLINE)
            raise
        self._set_state(LinkState.CONNECTED)

    async def _open_any(self, then: Callable[[], Awaitable[Json]] | None = None) -> Json | None:
        """Connect to the first server that answers (and passes ``then``, e.g. the login).

        A server whose certificate is refused is skipped from now on; a ``then`` that fails
        with anything but bad credentials moves on to the next server too. Raises
        :class:`NotConnected` (:class:`TlsRefused` if every server was refused) with each
        server's reason.
        """
        failures: list[tuple[str, NotConnected]] = []
        for url in self.servers.order():
            try:
                await self._open(url)
                result = await then() if then is not None else None
            except TlsRefused as exc:
                self.servers.refuse(url, exc)
                failures.append((url, exc))
                if self.servers.several:
                    log.warning("skipping %s: %s", url, exc)
                    self._dispatch({"type": "client.server_refused", "url": url, "error": exc})
                continue
            except NotConnected as exc:
                await self._drop_socket()
                failures.append((url, exc))
                continue
            except RequestError as exc:
                await self._drop_socket()
                if exc.code == ErrorCode.BAD_CREDENTIALS:
                    raise
                failures.append((url, NotConnected(f"{url} refused: {exc.message or exc.code}")))
                continue
            except TimeoutError as exc:
                await self._drop_socket()
                failures.append((url, NotConnected(str(exc))))
                continue
            self.url = url
            return result
        raise self._unreachable(failures)

    def _unreachable(self, failures: list[tuple[str, NotConnected]]) -> NotConnected:
        """One error for a round in which no server could be used."""
        if not self.servers.several and len(failures) == 1:
            return failures[0][1]
        refused = [(url, exc) for url, exc in self.servers.refused.items()]
        tried = dict(failures)
        tried.update((url, exc) for url, exc in refused if isinstance(exc, NotConnected))
        reasons = "; ".join(
            str(exc) if url in str(exc) else f"{url}: {exc}" for url, exc in tried.items()
        )
        if self.servers.all_refused:
            untrusted = any(getattr(exc, "untrusted", False) for _, exc in refused)
            return TlsRefused(f"every server was refused: {reasons}", untrusted=untrusted)
        return NotConnected(f"no server could be reached: {reasons}")

    async def _open(self, url: str) -> None:
        try:
            uri = parse_uri(url)
        except InvalidURI:
            raise NotConnected(f"'{url}' is not a ws:// or wss:// address") from None
        tls: dict[str, Any] = {}
        address = f"{uri.host}:{uri.port}"
        pinned = (
            uri.secure
            and self.known_servers is not None
            and self.known_servers.pinned(address) is not None
        )
        if pinned:
            tls["ssl"] = unverified_context()  # checked against the pin below
        elif uri.secure:
            if self.ssl_context is None:
                self.ssl_context = tls_context()
            tls["ssl"] = self.ssl_context
        try:
            ws = await self._connect(url, uri, tls)
        except TlsRefused as refused:
            if not (
                refused.untrusted and self.known_servers is not None and on_local_network(uri.host)
            ):
                raise
            # Nobody vouches for it: a shared Parley's is trusted on first use, as SSH does.
            ws = await self._connect(url, uri, {"ssl": unverified_context()})
            if not is_shared_parley(_peer_certificate(ws)):
                await ws.close()
                raise
            pinned = True
        if pinned:
            await self._check_pin(ws, address)
        self._ws = ws
        self._reader = asyncio.get_running_loop().create_task(self._read(ws))

    async def _check_pin(self, ws: ClientConnection, address: str) -> None:
        """Before anything is sent: the certificate must be the pinned one (or is pinned now)."""
        assert self.known_servers is not None
        der = _peer_certificate(ws)
        try:
            if not der:
                raise CertificateChanged(f"the server at {address} showed no certificate")
            self.pinned = self.known_servers.check(address, der)
        except CertificateChanged as exc:
            await ws.close()
            raise TlsRefused(str(exc), untrusted=False) from None
        if self.pinned.first_use:
            self._dispatch(
                {"type": "client.pinned", "address": address, "words": self.pinned.words}
            )

    async def _connect(self, url: str, uri: Any, tls: dict[str, Any]) -> ClientConnection:
        try:
            ws = await asyncio.wait_for(
                connect(
                    url,
                    subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                    compression=None,
                    open_timeout=None,
                    max_size=64 * 1024,
                    **tls,
                ),
                self.connect_timeout,
            )
        except TimeoutError:
            raise NotConnected(f"the server at {url} did not answer in time") from None
        except InvalidHandshake as exc:
            raise NotConnected(f"{url} is not a Parley server ({exc})") from None
        except ssl.SSLCertVerificationError as exc:
            raise certificate_refusal(exc, uri.host) from None
        except ssl.SSLError as exc:
            raise NotConnected(
                f"no secure connection to the server at {url} ({exc.reason or exc})"
            ) from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or "the connection was closed"
            if uri.secure and not exc.strerror:  # cut in the TLS handshake: a plain server?
                reason += " (is it a wss:// server?)"
            raise NotConnected(f"cannot reach the server at {url}: {reason}") from None
        return ws

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                message = parse_server_message(data)
                if message is not None and not self._tracker.reply(message):
                    if message.get("type") == "signed_out":
                        message = self._signed_out(message)
                    self._dispatch(message)
        except ConnectionClosed:
            pass
        finally:
            if self._ws is ws:
                self._ws = None
                self._tracker.fail_all(NotConnected("the connection to the server was lost"))
                self._connection_lost()

    def _connection_lost(self) -> None:
        if self._closing:
            self._set_state(LinkState.OFFLINE)
            return
        if self.token is None:
            self._set_state(LinkState.OFFLINE)
            return
        self._set_state(LinkState.RECONNECTING)
        if self._reconnector is None or self._reconnector.done():
            self._reconnector = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        """Try again and again, with growing random delays, until logged in or told to stop.

        Each round tries every server (the last good one first) before waiting again.
        """
        while not self._closing and self.token is not None:
            await asyncio.sleep(self.backoff.next_delay())
            if self._closing:
                return
            try:
                reply = await self._open_any(self._relogin)
            except TlsRefused as exc:
                log.warning("not reconnecting: %s", exc)
                self.token = None
                self._set_state(LinkState.OFFLINE)
                self._dispatch({"type": "client.refused", "error": exc})
                return
            except NotConnected:
                await self._drop_socket()
                continue
            except RequestError as exc:
                if exc.code == ErrorCode.BAD_CREDENTIALS:
                    log.warning("the saved session is no longer valid; sign in again")
                    self.token = None
                    self._set_state(LinkState.OFFLINE)
                    self._dispatch({"type": "client.signed_out", "reason": signed_out_text(None)})
                    return
                continue
            assert reply is not None
            self.user = reply.get("user", self.user)
            self._take_ice(reply)
            self.backoff.reset()
            self.servers.good(self.url)
            self._set_state(LinkState.ONLINE)
            self._dispatch({"type": "client.reconnected", "url": self.url})
            return

    async def _relogin(self) -> Json:
        """Log in again with the token, on a new connection."""
        return await self._send_request(
            "login", {"token": self.token, "features": list(CLIENT_FEATURES)}
        )

    async def _drop_socket(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def check_alive(self, wait_s: float = 3.0) -> bool:
        """Ping the server; a connection that does not answer within ``wait_s`` is dropped
        (and reconnected as any lost connection is). A call whose media path died asks this:
        a changed address leaves the old socket silent long before its keepalive notices.
        """
        ws = self._ws
        if ws is None or self.state is not LinkState.ONLINE:
            return False
        try:
            waiter = await ws.ping()
            await asyncio.wait_for(waiter, wait_s)
            return True
        except (TimeoutError, ConnectionClosed):
            pass
        if self._ws is ws:
            log.warning("the server did not answer a ping in %.0f s; reconnecting", wait_s)
            ws.transport.abort()  # the reader ends, and the reconnection starts
        return False

    async def close(self) -> None:
        """Close for good: no reconnection, pending requests fail."""
        self._closing = True
        self.ice.clear()
        if self._reconnector is not None:
            self._reconnector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnector
        ws = self._ws
        if ws is not None:
            await ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._tracker.fail_all(NotConnected("the client was closed"))
        self._set_state(LinkState.OFFLINE)

    # Requests ---------------------------------------------------------------

    async def _send_request(self, kind: str, fields: Json) -> Json:
        ws = self._ws
        if ws is None:
            raise NotConnected("not connected to the server")
        request_id, future, message = self._tracker.new(kind, fields)
        try:
            await ws.send(json.dumps(message))
            reply = await asyncio.wait_for(future, self.request_timeout)
        except ConnectionClosed:
            raise NotConnected("the connection to the server was lost") from None
        except TimeoutError:
            raise TimeoutError(f"the server did not answer '{kind}' in time") from None
        finally:
            self._tracker.forget(request_id)
        if reply.get("type") == "error":
            raise RequestError(
                str(reply.get("code")), str(reply.get("message", "")), reply.get("retry_after")
            )
        return reply

    async def request(self, kind: str, **fields: Any) -> Json:
        """Send a request and return its ``ok`` reply; raises :class:`RequestError`.

        While reconnecting it waits (up to the request timeout) for the
        connection to come back, so that a hang-up pressed during a network
        blip still reaches the other side.
        """
        if self.state is LinkState.RECONNECTING:
            try:
                await asyncio.wait_for(self._online.wait(), self.request_timeout)
            except TimeoutError:
                raise NotConnected("the connection to the server is lost") from None
        return await self._send_request(kind, fields)

    async def register(self, username: str, password: str, display_name: str | None = None) -> Json:
        """Create an account and log in; returns the User."""
        fields: Json = {"username": username, "password": password}
        fields["features"] = list(CLIENT_FEATURES)
        if display_name:
            fields["display_name"] = display_name
        return self._logged_in(await self._send_request("register", fields))

    async def login(
        self, username: str | None = None, password: str | None = None, token: str | None = None
    ) -> Json:
        """Log in with a password or a saved token; returns the User."""
        fields: Json = {"token": token} if token else {"username": username, "password": password}
        fields["features"] = list(CLIENT_FEATURES)
        return self._logged_in(await self._send_request("login", fields))

    def _take_ice(self, reply: Json) -> None:
        """The ICE servers of a login reply, kept fresh with ``ice.servers`` (v1.1)."""
        if self.ice.update(reply):
            self.ice.keep_fresh(lambda: self.request("ice.servers"))

    def _logged_in(self, reply: Json) -> Json:
        features = reply.get("features")
        self.server_features = frozenset(f for f in features or [] if isinstance(f, str))
        self.user = reply["user"]
        self.token = reply["token"]
        self._take_ice(reply)
        self.backoff.reset()
        self.servers.good(self.url)
        self._set_state(LinkState.ONLINE)
        assert self.user is not None
        return self.user

    async def logout(self) -> None:
        """Revoke the token; the connection stays open, logged out."""
        await self.request("logout")
        self.ice.clear()
        self.token = None
        self.user = None
        self._set_state(LinkState.CONNECTED)
