"""The routing core: who is connected, who may reach whom, and where each message goes.

The hub knows nothing of WebSockets. A transport hands it a :class:`Peer`
(something with an id, an address and a non-blocking ``send``) and the raw
frames it received; the hub decodes them, checks them, changes state through
the :class:`Store` and calls ``send`` on the peers that must hear of it. The
tests drive it with plain objects in place of sockets.

Order of effects for every request: validate, change state in memory
(synchronously, so concurrent requests see it), commit to the store, reply,
then send the events the change causes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from signaling.protocol.constants import (
    ECHO_USERNAME,
    FEATURES,
    SEARCH_LIMIT,
    TOKEN_LIFETIME_S,
    UNAUTHENTICATED_REQUESTS,
    ContactStatus,
    ErrorCode,
    EventType,
    Presence,
    RequestType,
)
from signaling.protocol.errors import ProtocolError, bad_message
from signaling.protocol.guests import is_guest_username
from signaling.protocol.ice import ICE_FEATURE
from signaling.protocol.messages import (
    ContactsAccept,
    ContactsRemove,
    ContactsRequest,
    FrameError,
    Json,
    Login,
    PresenceSet,
    ProfileUpdate,
    Register,
    Request,
    UsersSearch,
    decode_object,
    error_message,
    event_message,
    ok_message,
    parse_fields,
    read_id,
    read_type,
)
from signaling.protocol.sfu import SFU_FEATURE
from signaling.server.calls import CallPhase, CallTable
from signaling.server.config import ServerConfig
from signaling.server.credentials import PasswordVault, new_token, token_hash
from signaling.server.guests import GuestRouter
from signaling.server.hub_accounts import AccountRouter
from signaling.server.hub_calls import CallRouter
from signaling.server.hub_meetings import MeetingRouter
from signaling.server.logs import log_event
from signaling.server.metrics import Metrics
from signaling.server.ratelimit import FailureLimiter, TokenBucket
from signaling.server.routing import Background, Handler, Peer, Result, Session, Timers, iso
from signaling.server.routing import me as _me
from signaling.server.routing import me_user as _me_user
from signaling.server.store import (
    Store,
    StoreBusy,
    StoreUnavailable,
    UsernameTaken,
    UserRecord,
)
from signaling.server.turn import DEFAULT_TTL_S, ice_servers

ECHO_USER = UserRecord(ECHO_USERNAME, "Echo Test")


class Hub:
    """Routes requests and events between the sessions of one server."""

    def __init__(
        self,
        store: Store,
        vault: PasswordVault,
        config: ServerConfig,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.vault = vault
        self.config = config
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.sessions: dict[int, Session] = {}
        self.by_user: dict[str, set[Session]] = {}
        self.chosen_presence: dict[str, Presence] = {}
        self.calls = CallTable(unlimited=frozenset({ECHO_USERNAME}))
        # Accepted contacts of logged-in users, so invites and presence need no query.
        self._contacts: dict[str, set[str]] = {}
        self._contacts_loading: set[str] = set()
        self._contacts_dirty: set[str] = set()
        limits = config.rate_limits
        self.user_failures = FailureLimiter(limits.login_failures_per_user, limits.login_window_s)
        self.address_failures = FailureLimiter(
            limits.login_failures_per_address, limits.login_window_s
        )
        self._background = Background("background")
        self._spawn = self._background.spawn
        self.timers = Timers(self._spawn)
        self._handlers: dict[RequestType, Handler] = {
            RequestType.REGISTER: self._register,
            RequestType.LOGIN: self._login,
            RequestType.LOGOUT: self._logout,
            RequestType.CONTACTS_LIST: self._contacts_list,
            RequestType.CONTACTS_REQUEST: self._contacts_request,
            RequestType.CONTACTS_ACCEPT: self._contacts_accept,
            RequestType.CONTACTS_REMOVE: self._contacts_remove,
            RequestType.USERS_SEARCH: self._users_search,
            RequestType.PRESENCE_SET: self._presence_set,
            RequestType.PROFILE_UPDATE: self._profile_update,
        }
        self._handlers[RequestType.ICE_SERVERS] = self._ice_servers
        self.call_router = CallRouter(self)
        self._handlers.update(self.call_router.handlers())
        self.meetings = MeetingRouter(self)
        self._handlers.update(self.meetings.handlers())
        self.accounts = AccountRouter(self)
        self._handlers.update(self.accounts.handlers())
        self.guests = GuestRouter(self)
        self._handlers.update(self.guests.handlers())

    # Connections ----------------------------------------------------------

    def connect(self, peer: Peer) -> Session:
        """A connection opened."""
        limits = self.config.rate_limits
        session = Session(
            peer, TokenBucket(limits.requests_per_s, limits.request_burst, self.now())
        )
        self.sessions[peer.id] = session
        self.metrics.connections_total += 1
        return session

    @property
    def connection_count(self) -> int:
        """Open client connections (bots not counted)."""
        return sum(1 for session in self.sessions.values() if not session.bot)

    @property
    def user_count(self) -> int:
        """Users logged in on at least one client connection (bots not counted)."""
        return sum(1 for sessions in self.by_user.values() if any(not s.bot for s in sessions))

    def attach_bot(self, session: Session, user: UserRecord) -> None:
        """Log a built-in bot (the Echo Test) in on an in-process session, with no rate limit."""
        session.user = user
        session.bot = True
        session.bucket = TokenBucket(rate=1e9, burst=1e9, now=self.now())
        self.by_user.setdefault(user.username, set()).add(session)

    async def disconnect(self, session: Session) -> None:
        """A connection closed: the user may go offline and its call starts its grace period."""
        session.closed = True
        self.sessions.pop(session.id, None)
        if session.guest is not None:
            await self.guests.disconnected(session)
        if session.user is not None:
            await self.detach(session)

    async def shutdown(self) -> None:
        """Stop timers and wait for background work (the server is stopping)."""
        self.timers.cancel_all()
        if self._background.tasks:
            await asyncio.gather(*self._background.tasks, return_exceptions=True)

    def now(self) -> float:
        """The hub's clock (Unix seconds), which the tests may replace."""
        return self.clock()

    # Sending --------------------------------------------------------------

    def send(self, session: Session, message: Json) -> None:
        """Queue ``message`` for one connection, counted by type; a closed one gets nothing."""
        if session.closed:
            return
        self.metrics.messages_out[message["type"]] += 1
        session.peer.send(message)
        if session.guest is not None:
            self.guests.sent(session, message)

    def send_user(self, username: str, message: Json, *, skip: Session | None = None) -> None:
        """Send to every logged-in connection of ``username`` (but ``skip``)."""
        for session in list(self.by_user.get(username, ())):
            if session is not skip:
                self.send(session, message)

    def send_conn(self, conn: int | None, username: str, message: Json) -> None:
        """Send to connection ``conn`` if it is open and still logged in as ``username``."""
        session = self.sessions.get(conn) if conn is not None else None
        if session is not None and session.user is not None and session.user.username == username:
            self.send(session, message)

    # Receiving ------------------------------------------------------------

    async def receive(self, session: Session, data: str | bytes) -> None:
        """Handle one frame: reply to it and send whatever it causes."""
        request_id: str | None = None
        kind: str = "invalid"
        try:
            message = decode_object(data)
            request_id = read_id(message)
            request_type = read_type(message, request_id)
            kind = request_type.value
            self.metrics.messages_in[kind] += 1
            wait = session.bucket.take(self.now())
            if wait is not None:
                raise ProtocolError(
                    ErrorCode.RATE_LIMITED, "too many requests; slow down", retry_after=wait
                )
            if session.user is None and request_type not in UNAUTHENTICATED_REQUESTS:
                raise ProtocolError(ErrorCode.UNAUTHENTICATED, "log in first")
            self.guests.check_allowed(session, request_type)
            request = parse_fields(request_type, message, request_id)
            result = await self._handlers[request_type](session, request)
        except ProtocolError as exc:
            if isinstance(exc, FrameError):
                request_id = exc.request_id
            if kind == "invalid":
                self.metrics.messages_in[kind] += 1
            self._reply_error(session, request_id, kind, exc)
            return
        except StoreUnavailable as exc:
            self._reply_error(session, request_id, kind, store_error(exc))
            return
        except Exception as exc:
            log_event("internal", 40, conn=session.id, type=kind, error=repr(exc))
            self._reply_error(
                session, request_id, kind, ProtocolError(ErrorCode.INTERNAL, "server error")
            )
            return
        self.send(session, ok_message(request_id, **result.fields))
        try:
            await self.follow_up(result)
        except Exception as exc:
            # Answered already; the events it causes failed (the store timed out, e.g. after the
            # process stalled). Raising on would end the connection: a coordinator of several
            # instances would count its user gone (issue 12).
            log_event("internal", 40, conn=session.id, type=kind, error=repr(exc))
        if session.guest is not None:
            self.guests.settle(session)

    @staticmethod
    async def follow_up(result: Result) -> None:
        """Do what a handler left for after its reply (the events its change causes)."""
        if result.then is not None:
            outcome = result.then()
            if outcome is not None:
                await outcome

    def _reply_error(
        self, session: Session, request_id: str | None, kind: str, exc: ProtocolError
    ) -> None:
        self.metrics.errors[exc.code.value] += 1
        log_event("request.error", conn=session.id, type=kind, code=exc.code.value)
        self.send(session, error_message(request_id, exc.code, exc.message, exc.retry_after))

    # Accounts -------------------------------------------------------------

    async def _register(self, session: Session, req: Register) -> Result:
        if session.user is not None:
            raise bad_message("already logged in; log out first")
        if (
            req.username == ECHO_USERNAME
            or is_guest_username(req.username)
            or await self.store.get_user(req.username)
        ):
            raise ProtocolError(ErrorCode.TAKEN, f"the username '{req.username}' is taken")
        password_hash = await self.vault.hash(req.password)
        # The account and its first token in one transaction, and nothing else read before
        # the session is bound: a register that fails changes nothing, and its retry works.
        token = new_token()
        try:
            user = await self.store.create_user(
                req.username,
                req.display_name or req.username,
                password_hash,
                (token_hash(token), self.now() + TOKEN_LIFETIME_S),
            )
        except UsernameTaken:
            raise ProtocolError(
                ErrorCode.TAKEN, f"the username '{req.username}' is taken"
            ) from None
        log_event("account.created", conn=session.id, user=user.username)
        return await self._start_session(session, user, token, req.features, contacts=set())

    async def _login(self, session: Session, req: Login) -> Result:
        if session.user is not None:
            raise bad_message("already logged in; log out first")
        verified, session.verified = session.verified, None
        if verified is None:
            verified = await self.authenticate(session.id, session.peer.address, req)
        user, token = verified
        return await self._start_session(session, user, token, req.features)

    async def authenticate(self, conn: int, address: str, req: Login) -> tuple[UserRecord, str]:
        """Check a login's credentials (failure limits, the store, Argon2 for a password): the
        user, and the session's token (the one presented, or a new one, stored). Touches no
        session: an edge instance of a service (``bus/redis.py``) runs it for its own
        connections, and the coordinator then only binds the session (``Session.verified``)."""
        now = self.now()
        wait = self.address_failures.blocked(address, now)
        if req.token is not None:
            if wait is not None:
                raise _rate_limited(wait)
            user = await self.store.user_for_token(token_hash(req.token), now)
            if user is None:
                self.address_failures.failed(address, now)
                raise ProtocolError(ErrorCode.BAD_CREDENTIALS, "the token is invalid or expired")
            return user, req.token
        assert req.username is not None and req.password is not None
        wait = wait or self.user_failures.blocked(req.username, now)
        if wait is not None:
            raise _rate_limited(wait)
        found = await self.store.get_user(req.username)
        stored_hash = found.password_hash if found else None
        if not await self.vault.verify(stored_hash, req.password):
            now = self.now()
            self.user_failures.failed(req.username, now)
            self.address_failures.failed(address, now)
            log_event("login.failed", conn=conn, user=req.username)
            raise ProtocolError(ErrorCode.BAD_CREDENTIALS, "wrong username or password")
        assert found is not None and stored_hash is not None
        self.user_failures.succeeded(req.username)
        if self.vault.needs_rehash(stored_hash):
            await self.store.set_password_hash(found.username, await self.vault.hash(req.password))
        token = new_token()
        await self.store.add_token(token_hash(token), found.username, now + TOKEN_LIFETIME_S)
        return found, token

    async def _start_session(
        self,
        session: Session,
        user: UserRecord,
        token: str,
        features: tuple[str, ...] = (),
        contacts: set[str] | None = None,
    ) -> Result:
        """Log ``session`` in as ``user`` with ``token`` (stored already) (``contacts``: the
        accepted contacts when known, a new account's none)."""
        # Read everything the session needs before binding it: a request that fails (the
        # store unavailable) leaves the connection as it was, not half logged in.
        if contacts is None and user.username not in self._contacts:
            contacts = await self._read_contacts(user.username)
        if session.closed:
            return Result()
        before = self.presence_of(user.username)
        session.user = user
        session.token_hash = token_hash(token)
        session.features = frozenset(features)
        sessions = self.by_user.setdefault(user.username, set())
        if not sessions:
            self.chosen_presence[user.username] = Presence.ONLINE
        sessions.add(session)
        log_event("login", conn=session.id, user=user.username)
        if contacts is not None and user.username not in self._contacts:
            self._contacts[user.username] = contacts

        async def after() -> None:
            self.call_router.replay(session)
            self.meetings.replay(session)
            await self.presence_changed(user.username, before)

        reply: Json = {"user": user.public(), "token": token, "features": list(FEATURES)}
        if self.meetings.sfu is not None:  # meetings through a media server (protocol/sfu.py)
            reply["features"].append(SFU_FEATURE)
        if self.config.ice is not None:  # STUN/TURN servers for this user (protocol/ice.py)
            reply["features"].append(ICE_FEATURE)
            reply.update(ice_servers(self.config.ice, user.username, self.clock()))
        return Result(reply, after)

    async def _ice_servers(self, session: Session, _: object) -> Result:
        """Fresh ICE servers and TURN credentials (none on a server without them)."""
        assert session.user is not None
        if self.config.ice is None:
            return Result({"ice_servers": [], "ice_ttl": DEFAULT_TTL_S})
        return Result(ice_servers(self.config.ice, session.user.username, self.clock()))

    async def _logout(self, session: Session, _: object) -> Result:
        assert session.token_hash is not None
        await self.store.revoke_token(session.token_hash)
        log_event("logout", conn=session.id, user=session.user.username if session.user else None)
        return Result(then=lambda: self.detach(session))

    async def detach(self, session: Session) -> None:
        """``session`` is no longer logged in (logout, closed, or let go as a lost connection):
        its user may go offline, its meeting and call start their grace."""
        user = session.user
        if user is None:
            return
        username = user.username
        before = self.presence_of(username)
        session.user = None
        session.token_hash = None
        sessions = self.by_user.get(username)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self.by_user[username]
                self.chosen_presence.pop(username, None)
                self._contacts.pop(username, None)
        self.meetings.detached(session, username)
        self.call_router.detached(session, username)
        await self.presence_changed(username, before)

    # Contact cache ----------------------------------------------------------

    async def load_contacts(self, username: str) -> None:
        """Read a user's accepted contacts into memory (again, if they changed meanwhile)."""
        contacts = await self._read_contacts(username)
        if username in self.by_user:
            self._contacts[username] = contacts

    async def _read_contacts(self, username: str) -> set[str]:
        """A user's accepted contacts as the store has them now (read again if they changed
        while reading; the caller caches them with no ``await`` in between)."""
        self._contacts_loading.add(username)
        try:
            while True:
                self._contacts_dirty.discard(username)
                contacts = set(await self.store.accepted_contacts(username))
                if username not in self._contacts_dirty:
                    break
        finally:
            self._contacts_loading.discard(username)
            self._contacts_dirty.discard(username)
        return contacts

    async def accepted_contacts(self, username: str) -> set[str]:
        """``username``'s accepted contacts, from the cache when they are logged in."""
        cached = self._contacts.get(username)
        if cached is not None:
            return cached
        return set(await self.store.accepted_contacts(username))

    def relation_changed(self, a: str, b: str, accepted: bool) -> None:
        """Keep the cache in step after the store committed a change between ``a`` and ``b``."""
        for user, peer in ((a, b), (b, a)):
            if user in self._contacts_loading:
                self._contacts_dirty.add(user)
            cached = self._contacts.get(user)
            if cached is not None:
                if accepted:
                    cached.add(peer)
                else:
                    cached.discard(peer)

    def busy(self, username: str) -> bool:
        """In a call (ringing or accepted) or a meeting: a user is in at most one."""
        return self.calls.of_user(username) is not None or self.meetings.in_meeting(username)

    # Presence -------------------------------------------------------------

    def presence_of(self, username: str) -> Presence:
        """What ``username``'s accepted contacts see now."""
        if username == ECHO_USERNAME:
            return Presence.ONLINE
        if username not in self.by_user:
            return Presence.OFFLINE
        call = self.calls.of_user(username)
        if call is not None and call.phase is CallPhase.ACCEPTED:
            return Presence.IN_CALL
        if self.meetings.in_meeting(username):
            return Presence.IN_CALL
        return self.chosen_presence.get(username, Presence.ONLINE)

    async def presence_changed(
        self, username: str, before: Presence | None, *, force: bool = False
    ) -> None:
        """Tell accepted contacts if what they see of ``username`` changed."""
        if not force and self.presence_of(username) == before:
            return
        contacts = list(await self.accepted_contacts(username))
        # Read again after the await: the last broadcast always carries the current state.
        presence = self.presence_of(username)
        user = await self.user_record(username)
        message = event_message(
            EventType.PRESENCE,
            username=username,
            presence=presence.value,
            display_name=user.display_name if user else username,
        )
        for contact in contacts:
            self.send_user(contact, message)

    async def _presence_set(self, session: Session, req: PresenceSet) -> Result:
        username = _me(session)
        before = self.presence_of(username)
        self.chosen_presence[username] = req.status
        return Result(then=lambda: self.presence_changed(username, before))

    async def user_record(self, username: str) -> UserRecord | None:
        """The account, from a logged-in session when there is one (no query), else the store."""
        if username == ECHO_USERNAME:
            return ECHO_USER
        sessions = self.by_user.get(username)
        if sessions:
            user = next(iter(sessions)).user
            if user is not None:
                return user
        return await self.store.get_user(username)

    async def _profile_update(self, session: Session, req: ProfileUpdate) -> Result:
        username = _me(session)
        user = await self.store.set_display_name(username, req.display_name)
        for other in self.by_user.get(username, ()):
            other.user = user
        return Result(
            {"user": user.public()},
            lambda: self.presence_changed(username, None, force=True),
        )

    # Contacts -------------------------------------------------------------

    def _contact_json(self, user: UserRecord, status: ContactStatus) -> Json:
        presence = (
            self.presence_of(user.username)
            if status is ContactStatus.ACCEPTED
            else Presence.OFFLINE
        )
        return {**user.public(), "status": status.value, "presence": presence.value}

    async def _contacts_list(self, session: Session, _: object) -> Result:
        username = _me(session)
        records = await self.store.list_contacts(username)
        contacts = [self._contact_json(ECHO_USER, ContactStatus.ACCEPTED)]
        contacts += [self._contact_json(r.user, r.status) for r in records]
        return Result({"contacts": contacts})

    async def existing_peer(self, session: Session, username: str) -> UserRecord:
        """The account ``username`` names, another than the session's and no guest's."""
        if username == _me(session):
            raise bad_message("that is you")
        user = await self.user_record(username)
        if user is None or is_guest_username(username):
            raise ProtocolError(ErrorCode.NOT_FOUND, f"no user '{username}'")
        return user

    def tell_contact(
        self, me: UserRecord, peer: UserRecord, my_status: ContactStatus, skip: Session
    ) -> None:
        """Send ``contact`` events to both sides of a relation that changed."""
        peer_status = {
            ContactStatus.OUTGOING: ContactStatus.INCOMING,
            ContactStatus.INCOMING: ContactStatus.OUTGOING,
        }.get(my_status, my_status)
        self.send_user(
            me.username,
            event_message(EventType.CONTACT, contact=self._contact_json(peer, my_status)),
            skip=skip,
        )
        self.send_user(
            peer.username,
            event_message(EventType.CONTACT, contact=self._contact_json(me, peer_status)),
        )

    async def _contacts_request(self, session: Session, req: ContactsRequest) -> Result:
        me = _me_user(session)
        peer = await self.existing_peer(session, req.username)
        if peer.username == ECHO_USERNAME:
            return Result({"contact": self._contact_json(peer, ContactStatus.ACCEPTED)})
        await self.accounts.check_request(me.username, peer.username)
        status = await self.store.request_contact(me.username, peer.username)
        if status is ContactStatus.ACCEPTED:
            self.relation_changed(me.username, peer.username, accepted=True)
        log_event("contact.request", user=me.username, peer=peer.username, status=status.value)
        return Result(
            {"contact": self._contact_json(peer, status)},
            lambda: self._contact_changed(me, peer, status, session),
        )

    async def _contact_changed(
        self, me: UserRecord, peer: UserRecord, status: ContactStatus, skip: Session
    ) -> None:
        self.tell_contact(me, peer, status, skip)
        if status is ContactStatus.ACCEPTED:
            # Each side now sees the other's presence; send it so lists update at once.
            for a, b in ((me, peer), (peer, me)):
                self.send_user(
                    b.username,
                    event_message(
                        EventType.PRESENCE,
                        username=a.username,
                        presence=self.presence_of(a.username).value,
                        display_name=a.display_name,
                    ),
                )

    async def _contacts_accept(self, session: Session, req: ContactsAccept) -> Result:
        me = _me_user(session)
        peer = await self.existing_peer(session, req.username)
        if peer.username == ECHO_USERNAME:
            return Result({"contact": self._contact_json(peer, ContactStatus.ACCEPTED)})
        if not await self.store.accept_contact(me.username, peer.username):
            raise ProtocolError(ErrorCode.FORBIDDEN, f"no pending request from '{peer.username}'")
        self.relation_changed(me.username, peer.username, accepted=True)
        log_event("contact.accept", user=me.username, peer=peer.username)
        return Result(
            {"contact": self._contact_json(peer, ContactStatus.ACCEPTED)},
            lambda: self._contact_changed(me, peer, ContactStatus.ACCEPTED, session),
        )

    async def _contacts_remove(self, session: Session, req: ContactsRemove) -> Result:
        me = _me_user(session)
        peer = await self.existing_peer(session, req.username)
        if peer.username == ECHO_USERNAME:
            raise ProtocolError(ErrorCode.FORBIDDEN, "the Echo Test cannot be removed")
        if not await self.store.remove_contact(me.username, peer.username):
            return Result()
        self.relation_changed(me.username, peer.username, accepted=False)
        log_event("contact.remove", user=me.username, peer=peer.username)
        return Result(then=lambda: self.tell_contact(me, peer, ContactStatus.REMOVED, session))

    async def _users_search(self, session: Session, req: UsersSearch) -> Result:
        me = _me(session)
        found = await self.store.search_users(req.query, SEARCH_LIMIT + 1)
        users = [
            u.public() for u in found if u.username != me and not is_guest_username(u.username)
        ][:SEARCH_LIMIT]
        return Result({"users": users})

    # Calls ----------------------------------------------------------------


def store_error(exc: StoreUnavailable) -> ProtocolError:
    """What a client is told when the store cannot answer its request."""
    busy = isinstance(exc, StoreBusy)  # alive, every connection at work
    return ProtocolError(
        ErrorCode.UNAVAILABLE,
        f"the database is {'busy' if busy else 'unreachable'}; try again in a moment",
    )


def _rate_limited(wait: int) -> ProtocolError:
    return ProtocolError(
        ErrorCode.RATE_LIMITED, "too many failed logins; try again later", retry_after=wait
    )


__all__ = ["Hub", "Peer", "Request", "Result", "Session", "iso"]
