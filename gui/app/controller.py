"""The app's controller: the one object the windows talk to.

It owns the signaling client, the models and the current call, turns server
events into model updates, and user actions (from the windows) into
requests. It exposes Qt signals for the windows to follow and holds no
widget: the windows present its state and forward clicks, nothing more.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from PySide6.QtCore import QObject, Signal

from gui.app.models import Contact, ContactFilter, ContactsModel, HistoryModel
from gui.core.call_machine import CallState
from gui.core.call_session import CallOptions, CallSession, IceServer, LocalMedia
from gui.core.escalation import continue_in_meeting
from gui.core.meeting_session import MeetingSession
from gui.core.meeting_tiles import newest_first
from gui.core.pinning import KnownServers
from gui.core.profile import Profile, SavedSession
from gui.core.servers import parse_servers, server_list
from gui.core.signaling_client import (
    LinkState,
    NotConnected,
    RequestError,
    SignalingClient,
    TlsRefused,
    tls_context,
)
from gui.embedded import EmbeddedServer, find_running
from signaling.protocol.guests import is_guest_username

log = logging.getLogger("parley.app")

#: Makes the tracks for a call: ``(audio, video)`` wanted → LocalMedia.
MediaFactory = Callable[[bool, bool], LocalMedia]

ERROR_TEXT = {
    "bad_credentials": "Wrong username or password.",
    "taken": "That username is taken. Pick another one.",
    "not_found": "There is no such user.",
    "forbidden": "You can only call people who accepted you as a contact.",
    "busy": "They are in another call.",
    "offline": "They are not online.",
    "timeout": "No answer.",
}


def explain(error: BaseException) -> str:
    """A sentence for a person, from a refused request or a connection problem."""
    if isinstance(error, RequestError):
        if error.code == "rate_limited":
            wait = error.retry_after or 1
            return f"Too many attempts. Try again in {wait} second{'s' if wait != 1 else ''}."
        return ERROR_TEXT.get(error.code, error.message[:1].upper() + error.message[1:] + ".")
    if isinstance(error, NotConnected):
        sentence = str(error)[:1].upper() + str(error)[1:] + "."
        if isinstance(error, TlsRefused) and error.untrusted:
            sentence += " If you trust this server, choose its certificate in Settings (Ctrl+,)."
        return sentence
    if isinstance(error, TimeoutError):
        return "The server did not answer in time."
    return f"Something went wrong: {error}"


def synthetic_media(audio: bool, video: bool) -> LocalMedia:
    """The test pattern and a tone, for people without a camera or microphone (and the tests)."""
    from gui.media.pattern import PatternVideoTrack
    from gui.media.tone import ToneAudioTrack

    return LocalMedia(
        audio=ToneAudioTrack(440) if audio else None,
        camera=PatternVideoTrack(640, 480) if video else None,
    )


class AppController(QObject):
    """State and actions of the running app."""

    linkStateChanged = Signal(str)
    signedIn = Signal(dict)
    signedOut = Signal(str)
    failed = Signal(str)
    busyChanged = Signal(bool)
    incomingCall = Signal(object)
    callStarted = Signal(object)
    callEnded = Signal(str)
    missedCallsChanged = Signal(int)
    serverReady = Signal(str)
    searchResults = Signal(list)
    notice = Signal(str)
    #: A ``meeting.invited`` event (who invites, who else is in it).
    meetingInvited = Signal(dict)
    #: An invitation is gone (joined, declined, or the meeting ended): its meeting id.
    meetingInvitationGone = Signal(str)
    #: A meeting this user creates, joins or was moved into: open its window.
    meetingStarted = Signal(object)
    meetingEnded = Signal(str)

    def __init__(
        self,
        profile: Profile,
        server_override: str | Sequence[str] | None = None,
        media_factory: MediaFactory | None = None,
        trust_cert: str | None = None,
    ) -> None:
        """``server_override`` (one address or several of one service) and ``trust_cert`` come
        from the command line, over the settings."""
        super().__init__()
        self.profile = profile
        self.server_override = server_override
        self.trust_cert_override = trust_cert
        self.media_factory = media_factory or synthetic_media
        self.contacts = ContactsModel()
        self.contact_list = ContactFilter(self.contacts, {"accepted", "outgoing"})
        self.requests = ContactFilter(self.contacts, {"incoming"})
        self.history = HistoryModel()
        self.client: SignalingClient | None = None
        self.user: dict[str, Any] | None = None
        self.call: CallSession | None = None
        self.meeting: MeetingSession | None = None
        #: Guests who called, by username: the name the server shows them by ("Guest: NAME").
        self.guest_names: dict[str, str] = {}
        #: Pending invitations by meeting id (the ``meeting.invited`` events).
        self.invitations: dict[str, dict[str, Any]] = {}
        self.embedded = EmbeddedServer(profile)
        self.default_server: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: list[Callable[[], None]] = []

    # Running coroutines from Qt slots ----------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], *, report: bool = True) -> asyncio.Task[Any]:
        """Run ``coro`` on the loop; a failure becomes a ``failed`` message, never a crash."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._tasks.discard(finished)
            if finished.cancelled():
                return
            error = finished.exception()
            if error is not None:
                log.warning("action failed: %r", error)
                if report:
                    self.failed.emit(explain(error))

        task.add_done_callback(done)
        return task

    # Server -----------------------------------------------------------------------

    @property
    def configured_servers(self) -> list[str]:
        """The servers the user chose (command line or settings); empty: the built-in one."""
        override = self.server_override
        if override:
            return server_list([override] if isinstance(override, str) else override)
        return list(self.profile.settings.server_urls)

    @property
    def configured_server(self) -> str | None:
        """The configured servers as one line of text; ``None``: the built-in one."""
        return ", ".join(self.configured_servers) or None

    @property
    def trusted_certificate(self) -> str | None:
        """The certificate the user chose to trust for wss:// (command line or settings)."""
        return self.trust_cert_override or self.profile.settings.trust_cert

    def tls_for(self, urls: str | Sequence[str]) -> ssl.SSLContext | None:
        """How to check wss:// servers: the system's trust store plus the trusted certificate."""
        urls = [urls] if isinstance(urls, str) else list(urls)
        cert = self.trusted_certificate
        own = self.embedded.certificate
        if own is not None and self.embedded.url in urls:
            cert = str(own.cert_path)  # this app's own server, shared on the network
        if not cert or not any(url.lower().startswith("wss:") for url in urls):
            return None
        try:
            return tls_context(cert)
        except ValueError as exc:
            raise NotConnected(str(exc)) from None

    async def resolve_servers(self, typed: str | None = None) -> list[str]:
        """The URLs to use: what was typed (one or several, separated by commas or spaces),
        else the configured ones, else the built-in server."""
        try:
            urls = parse_servers(typed or "") or self.configured_servers
        except ValueError as exc:
            raise NotConnected(str(exc)) from None
        if urls:
            return urls
        if self.default_server is None:
            self.default_server = await find_running() or await self.embedded.start()
            self.serverReady.emit(self.default_server)
        return [self.default_server]

    async def start(self) -> bool:
        """At launch: sign in with the saved session if there is one. Returns whether it did."""
        saved = self.profile.credentials().load() if self.profile.settings.keep_signed_in else None
        if saved is None:
            if not self.configured_server:
                await self.resolve_servers()
            return False
        self.busyChanged.emit(True)
        try:
            url = saved.server_url
            configured = self.configured_servers
            if not configured and url.startswith("ws://127.0.0.1:"):
                urls = await self.resolve_servers()  # the built-in server may have moved port
            else:  # the token is good on any server of the service: the saved one first
                urls = configured if url in configured else [url, *configured]
            await self._connect(urls, lambda client: client.login(token=saved.token), last_good=url)
        except RequestError as exc:
            if exc.code == "bad_credentials":
                self.profile.credentials().clear()
            self.failed.emit(explain(exc))
            return False
        except (NotConnected, TimeoutError) as exc:
            self.failed.emit(explain(exc))
            return False
        finally:
            self.busyChanged.emit(False)
        return True

    async def sign_in(
        self,
        server: str | None,
        username: str,
        password: str,
        *,
        register: bool = False,
        display_name: str | None = None,
        keep: bool = True,
    ) -> None:
        """Sign in (or create the account) and load the contacts and history."""
        self.busyChanged.emit(True)
        try:
            urls = await self.resolve_servers(server)
            if register:
                await self._connect(
                    urls, lambda client: client.register(username, password, display_name)
                )
            else:
                await self._connect(urls, lambda client: client.login(username, password))
        finally:
            self.busyChanged.emit(False)
        settings = self.profile.settings
        settings.keep_signed_in = keep
        settings.last_username = username.lower()
        if server and server.strip():
            settings.server_urls = urls
        self.profile.save_settings()
        assert self.client is not None and self.client.token is not None
        store = self.profile.credentials()
        if keep:
            store.save(SavedSession(self.client.url, username.lower(), self.client.token))
        else:
            store.clear()

    async def _connect(
        self,
        urls: list[str],
        authenticate: Callable[[SignalingClient], Coroutine[Any, Any, Any]],
        last_good: str | None = None,
    ) -> None:
        client = SignalingClient(
            urls,
            ssl_context=self.tls_for(urls),
            known_servers=KnownServers(self.profile.data_dir / "known_servers.json"),
        )
        if last_good is not None:
            client.servers.good(last_good)
        client.on_state(lambda state: self.linkStateChanged.emit(state.value))
        refusals = client.on_event(self._on_server_refused)
        try:
            await client.connect()
            self.user = await authenticate(client)
        except BaseException:
            await client.close()
            raise
        finally:
            refusals()
        await self._close_client()
        self.client = client
        self._unsubscribe.append(client.on_event(self._on_event))
        await self.refresh()
        self.signedIn.emit(self.user)
        if client.pinned is not None and client.pinned.first_use:
            self._pinned(client.pinned.address, client.pinned.words)

    async def refresh(self) -> None:
        """Reload contacts and history (after signing in or reconnecting)."""
        if self.client is None:
            return
        contacts = await self.client.request("contacts.list")
        self.contacts.reset([Contact.from_json(c) for c in contacts["contacts"]])
        await self.refresh_history()

    async def refresh_history(self) -> None:
        """Reload the call history."""
        if self.client is None:
            return
        reply = await self.client.request("history.list", limit=100)
        self.history.names = {c.username: c.display_name for c in self.contacts.contacts()}
        self.history.me = (self.user or {}).get("username")
        meetings = [dict(m, kind="meeting") for m in reply.get("meetings") or []]
        self.history.reset(newest_first(reply["calls"], meetings))
        self.missedCallsChanged.emit(self.history.missed_count)

    async def sign_out(self) -> None:
        """Hang up, revoke the token, forget the saved session."""
        await self.end_call()
        await self.leave_meeting()
        self.profile.credentials().clear()
        if self.client is not None and self.client.state is LinkState.ONLINE:
            try:
                await self.client.logout()
            except (RequestError, NotConnected, TimeoutError) as exc:
                log.info("logout failed: %s", exc)
        await self._close_client()
        self.user = None
        self.contacts.reset([])
        self.history.reset([])
        self.signedOut.emit("")

    async def _close_client(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self.client is not None:
            client, self.client = self.client, None
            await client.close()

    async def shutdown(self) -> None:
        """Quit: hang up, stop every device, close the connection and the built-in server."""
        await self.end_call()
        await self.leave_meeting()
        await self._close_client()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.embedded.stop()

    # Server events --------------------------------------------------------------------

    def _on_event(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "presence":
            self.contacts.set_presence(
                str(message.get("username")),
                str(message.get("presence")),
                message.get("display_name"),
            )
        elif kind == "contact" and isinstance(message.get("contact"), dict):
            contact = Contact.from_json(message["contact"])
            if contact.status == "removed":
                self.contacts.remove(contact.username)
            else:
                self.contacts.upsert(contact)
                if contact.status == "incoming":
                    self.notice.emit(f"{contact.display_name} wants to be your contact")
        elif kind == "call.incoming":
            self._incoming(message)
        elif kind == "meeting.invited":
            self._invited(message)
        elif kind == "meeting.ended":
            self._invitation_gone(str(message.get("meeting_id", "")).lower())
        elif kind == "client.pinned":
            self._pinned(str(message.get("address")), list(message.get("words") or []))
        elif kind == "client.reconnected":
            self._remember_server()
            self.spawn(self.refresh(), report=False)
        elif kind == "client.server_refused":
            self._on_server_refused(message)
        elif kind == "client.signed_out":
            self.profile.credentials().clear()
            self.signedOut.emit(
                str(message.get("reason") or "Your session has ended. Please sign in again.")
            )
        elif kind == "client.refused":
            # The server's certificate stopped passing: the session may still be good
            # once the user trusts the new certificate, so it is kept.
            self.signedOut.emit(explain(message["error"]))

    def _on_server_refused(self, message: dict[str, Any]) -> None:
        """One of several servers refused by TLS: said, and the others are used."""
        if message.get("type") == "client.server_refused":
            self.notice.emit(f"Not using {message.get('url')}: {explain(message['error'])}")

    def _remember_server(self) -> None:
        """Back online, maybe through another server: the next start tries that one first."""
        client, user = self.client, self.user
        if client is None or client.token is None or user is None:
            return
        store = self.profile.credentials()
        saved = store.load() if self.profile.settings.keep_signed_in else None
        if saved is not None and saved.server_url != client.url:
            store.save(SavedSession(client.url, saved.username, client.token))

    def _pinned(self, address: str, words: list[str]) -> None:
        """A shared Parley's certificate was trusted on first use: the user checks its words."""
        self.notice.emit(
            f"First connection to {address}: check with the server's owner that their "
            f"Parley shows these words: {' '.join(words)}"
        )

    def _incoming(self, message: dict[str, Any]) -> None:
        if self.client is None:
            return
        if self.call is not None:
            return  # the server already answers busy; a stray replay is ignored
        caller = message.get("from") or {}
        if is_guest_username(str(caller.get("username"))) and caller.get("display_name"):
            self.guest_names[caller["username"]] = str(caller["display_name"])
        session = CallSession.incoming(self.client, message, LocalMedia(), self.call_options())
        self._adopt(session)
        self.incomingCall.emit(session)

    # Contacts ---------------------------------------------------------------------

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send a request on the signed-in connection."""
        if self.client is None:
            raise NotConnected("you are not signed in")
        return await self.client.request(kind, **fields)

    async def add_contact(self, username: str) -> None:
        """Send a contact request (or accept theirs)."""
        reply = await self.request("contacts.request", username=username.strip().lower())
        self.contacts.upsert(Contact.from_json(reply["contact"]))

    async def accept_contact(self, username: str) -> None:
        """Accept an incoming request."""
        reply = await self.request("contacts.accept", username=username)
        self.contacts.upsert(Contact.from_json(reply["contact"]))

    async def remove_contact(self, username: str) -> None:
        """Remove a contact, or decline a request."""
        await self.request("contacts.remove", username=username)
        self.contacts.remove(username)

    async def search(self, query: str) -> None:
        """Find users; results arrive on ``searchResults``."""
        query = query.strip()
        if not query:
            self.searchResults.emit([])
            return
        reply = await self.request("users.search", query=query[:32])
        self.searchResults.emit(reply["users"])

    async def set_presence(self, status: str) -> None:
        """Online, away or do not disturb."""
        await self.request("presence.set", status=status)

    async def set_display_name(self, name: str) -> None:
        """Change how others see you."""
        reply = await self.request("profile.update", display_name=name.strip())
        self.user = reply["user"]
        self.signedIn.emit(self.user)

    # Calls ------------------------------------------------------------------------------

    def call_options(self) -> CallOptions:
        """ICE servers from the settings."""
        servers = [
            IceServer(list(s.urls), s.username, s.credential)
            for s in self.profile.settings.ice_servers
            if s.urls
        ]
        return CallOptions(ice_servers=servers)

    def place_call(self, username: str, video: bool = True) -> CallSession | None:
        """Ring a contact."""
        if self.client is None:
            self.failed.emit("You are not signed in.")
            return None
        if self.call is not None or self.meeting is not None:
            self.failed.emit(f"You are already in a {'call' if self.call else 'meeting'}.")
            return None
        media = self.media_factory(True, video)
        session = CallSession.outgoing(self.client, username, media, self.call_options())
        self._adopt(session)
        self.callStarted.emit(session)
        return session

    def answer(self, video: bool = True) -> None:
        """Answer the ringing call (with or without the camera)."""
        session = self.call
        if session is None or session.state is not CallState.INCOMING_RINGING:
            return
        # The session was made when the call rang, with nothing to send: fill its slots now.
        session.use_media(self.media_factory(True, video))
        session.accept()
        self.callStarted.emit(session)

    def decline(self) -> None:
        """Refuse the ringing call."""
        if self.call is not None:
            self.call.decline()

    def hang_up(self) -> None:
        """End the current call."""
        if self.call is not None:
            self.call.hang_up()

    async def end_call(self) -> None:
        """Hang up and wait until everything the call started has stopped."""
        session = self.call
        if session is None:
            return
        session.hang_up()
        try:
            await asyncio.wait_for(session.wait_ended(), 5)
        except TimeoutError:
            log.warning("the call did not end in time")

    def _adopt(self, session: CallSession) -> None:
        self.call = session

        def ended(reason: str | None) -> None:
            if self.call is session:
                self.call = None
            if session.machine.moved_to is not None:
                # "Add person": the call goes on as a meeting, on the same connection.
                self.open_meeting(continue_in_meeting(session))
            self.callEnded.emit(reason or "")
            if self.client is not None:
                self.spawn(self.refresh_history(), report=False)

        session.on("ended", ended)

    # Meetings ----------------------------------------------------------------------------

    def _invited(self, message: dict[str, Any]) -> None:
        meeting_id = str(message.get("meeting_id", "")).lower()
        if not meeting_id or (self.meeting is not None and self.meeting.meeting_id == meeting_id):
            return
        self.invitations[meeting_id] = message
        self.meetingInvited.emit(message)

    def _invitation_gone(self, meeting_id: str) -> None:
        if self.invitations.pop(meeting_id, None) is not None:
            self.meetingInvitationGone.emit(meeting_id)

    def _busy_text(self) -> str | None:
        if self.client is None or self.user is None:
            return "You are not signed in."
        if self.call is not None:
            return "You are already in a call."
        if self.meeting is not None:
            return "You are already in a meeting."
        return None

    def start_meeting(self, invite: list[str], video: bool = True) -> MeetingSession | None:
        """Create a meeting as its host and invite ``invite`` (accepted contacts)."""
        problem = self._busy_text()
        if problem is not None:
            self.failed.emit(problem)
            return None
        assert self.client is not None and self.user is not None
        media = self.media_factory(True, video)
        session = MeetingSession.create(
            self.client, self.user["username"], media, invite=invite, options=self.call_options()
        )
        self.open_meeting(session)
        return session

    def join_meeting(self, meeting_id: str, video: bool = True) -> MeetingSession | None:
        """Join the meeting of a pending invitation."""
        event = self.invitations.get(meeting_id)
        problem = self._busy_text()
        if problem is not None or event is None:
            self.failed.emit(problem or "That invitation is no longer open.")
            return None
        assert self.client is not None and self.user is not None
        self._invitation_gone(meeting_id)
        media = self.media_factory(True, video)
        session = MeetingSession.invited(
            self.client, self.user["username"], event, media, self.call_options()
        )
        session.accept()
        self.open_meeting(session)
        return session

    def decline_meeting(self, meeting_id: str) -> None:
        """Refuse a pending invitation."""
        event = self.invitations.get(meeting_id)
        self._invitation_gone(meeting_id)
        if event is None or self.client is None or self.user is None:
            return
        MeetingSession.invited(self.client, self.user["username"], event, LocalMedia()).decline()

    def open_meeting(self, session: MeetingSession) -> None:
        """Make ``session`` the current meeting and open its window.

        The entry point for every way into a meeting: created here, joined from an
        invitation, or a 1:1 call that became a meeting (the call's owner hands its
        session over; the call window closes by itself as its call ends).
        """
        self.meeting = session

        def ended(reason: str | None) -> None:
            if self.meeting is session:
                self.meeting = None
            self.meetingEnded.emit(reason or "")
            if self.client is not None:
                self.spawn(self.refresh_history(), report=False)

        session.on("ended", ended)
        self.meetingStarted.emit(session)

    async def leave_meeting(self) -> None:
        """Leave the current meeting and wait until everything it started has stopped."""
        session = self.meeting
        if session is None:
            return
        session.leave()
        try:
            await asyncio.wait_for(session.wait_ended(), 5)
        except TimeoutError:
            log.warning("the meeting did not end in time")
