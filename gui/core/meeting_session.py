"""One mesh meeting carried out: the :class:`MeetingMachine`'s decisions applied to aiortc.

This end holds one :class:`~gui.core.peer_link.PeerLink` per other participant,
each negotiated exactly like a 1:1 call (camera, audio, screen, data channel;
the same checks of what the peer sends). Actions run one at a time, in order, on
one worker task, as in ``call_session.py``: an answer must not overtake the offer
it answers, nor a candidate its description.

What this end sends reaches every link through :class:`SharedMedia`: one
:class:`~gui.media.slot.SlotTrack` per slot (so a device can be switched, muted
or lost without ending any sender) fanned out by aiortc's ``MediaRelay``: one
source track cannot feed several senders itself, since each ``recv()`` would
take frames from the others. The relay hands every link the same frame objects,
which is why the slot, the one place that restamps them, sits before it.
Muting takes the slot's source away, for every link at once; the others learn of
it from the server (``meeting.media``).

Events (pyee): ``state`` (MeetingState, reason), ``participants``
(ParticipantsChanged), ``participant_left`` (username, reason), ``remote_track``
(username, slot, receiver), ``link_stats`` (username, QualitySample),
``chat`` (username, ChatMessage), ``chat_history`` (username, ChatMessage: one sent before
this end joined or while it was away; ``outgoing`` when it is this end's own), ``delivered``
(message id, once every link it went to has it), ``request_failed`` (kind, code, message),
``ended`` (reason). Every chat message is emitted once (``meeting_chat.ChatLog``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack
from pyee.asyncio import AsyncIOEventEmitter

from gui.core import ice
from gui.core.ice import ServerIce
from gui.core.meeting_chat import ChatLog, ServerChat, vouched
from gui.core.meeting_machine import (
    AddCandidate,
    ApplyRemoteDescription,
    CloseLink,
    MakeAnswer,
    MeetingMachine,
    MeetingState,
    OpenLink,
    ParticipantsChanged,
    RetryJoin,
    RetryLink,
    SendRequest,
    StateChanged,
)
from gui.core.peer_channel import ChatMessage, ChatUnavailable, outgoing_chat
from gui.core.peer_link import (
    AUDIO,
    CAMERA,
    SCREEN,
    CallOptions,
    LocalMedia,
    PeerLink,
    Receiver,
    RemoteUnusable,
    SignalingLink,
)
from gui.core.runner import ActionRunner, send_request
from gui.core.sfu_session import SfuMedia
from gui.media.slot import SlotTrack

log = logging.getLogger("parley.meeting")

Json = dict[str, Any]

#: What a meeting hears from each of its links.
LINK_EVENTS = (
    "connection",
    "quiet",
    "silent",
    "remote_track",
    "stats",
    "chat",
    "delivered",
    "past",
    "channel_open",
)
#: What each slot carries.
KINDS = {CAMERA: "video", AUDIO: "audio", SCREEN: "video"}


class SharedMedia:
    """This end's tracks, for every link of the meeting: one slot each, fanned out by a relay.

    Audio proxies are buffered (no 20 ms frame may be dropped; the encoder keeps up);
    video proxies keep only the newest frame, so a link whose encoder falls behind (a
    busy machine) skips frames instead of building up delay.
    """

    def __init__(self, media: LocalMedia, slots: dict[str, SlotTrack] | None = None) -> None:
        """``slots``: a call's slot tracks, kept so that what its link sends keeps its clock."""
        self.media = media
        self.relay = MediaRelay()
        given = slots or {}
        self.slots = {slot: given.get(slot) or SlotTrack(kind) for slot, kind in KINDS.items()}
        self.enabled = {slot: media.of(slot) is not None for slot in KINDS}
        for slot in KINDS:
            self.slots[slot].set_source(media.of(slot))

    def subscribe(self) -> dict[str, MediaStreamTrack]:
        """One proxy per slot, for a new link (stop them when the link closes)."""
        return {
            slot: self.relay.subscribe(track, buffered=slot == AUDIO)
            for slot, track in self.slots.items()
        }

    def set_enabled(self, slot: str, enabled: bool) -> None:
        """Send ``slot``'s track to every link, or nothing (muted, camera off)."""
        track = self.media.of(slot)
        self.enabled[slot] = enabled and track is not None
        self.slots[slot].set_source(track if self.enabled[slot] else None)

    def replace(self, slot: str, track: MediaStreamTrack | None) -> None:
        """A new device (or a share) on ``slot``; the old track is stopped."""
        old = self.media.of(slot)
        setattr(self.media, slot, track)
        if slot == SCREEN or track is None:  # a share is on while it lasts; a device as chosen
            self.enabled[slot] = track is not None
        self.slots[slot].set_source(track if self.enabled[slot] else None)
        if old is not None and old is not track:
            old.stop()

    def stop(self) -> None:
        """Stop the slots (the relay then stops reading them) and every track."""
        for slot in self.slots.values():
            slot.stop()
        self.media.stop()


@dataclass(eq=False, slots=True)
class _Undelivered:
    """A chat message this end sent, and who in the meeting has not acknowledged it yet: it
    goes again over a participant's next link when theirs was not open (being made, or made
    again) or closed before they acknowledged it."""

    message: ChatMessage
    waiting: set[str]
    #: Whether anybody acknowledged it (``delivered`` is said only then).
    acknowledged: bool = False


class MeetingSession(AsyncIOEventEmitter):
    """Drives one meeting at this end, from joining to leaving."""

    def __init__(
        self,
        link: SignalingLink,
        machine: MeetingMachine,
        media: LocalMedia,
        options: CallOptions | None = None,
        slots: dict[str, SlotTrack] | None = None,
    ) -> None:
        super().__init__()
        self.signaling = link
        self.machine = machine
        #: The options without the server's ICE servers, which each new link takes afresh.
        self._own_options = options or CallOptions()
        self.shared = SharedMedia(media, slots)
        #: The open link to each participant.
        self.links: dict[str, PeerLink] = {}
        #: Every link ever made to each participant, newest last (closed ones keep their
        #: receivers' figures).
        self.history: dict[str, list[PeerLink]] = {}
        self._proxies: dict[str, dict[str, MediaStreamTrack]] = {}
        self._signaling_check: asyncio.Task[Any] | None = None
        #: Chat messages sent that somebody has not acknowledged yet, by id.
        self._undelivered: dict[str, _Undelivered] = {}
        #: The meeting's chat so far, as a late joiner gets it from this end.
        self.chat_log = ChatLog()
        #: Through a media server (topology ``"sfu"``): the publisher and subscriptions.
        self.sfu: SfuMedia | None = None
        #: Where the media server's events go: this session's own, unless a call's connection
        #: still shows the other party (``sfu_handover.py`` holds back their tracks).
        self.sfu_emit: Callable[..., Any] = self.emit
        #: Awaited as this end's part ends, before ``ended`` (``sfu_handover.py``).
        self.closers: list[Callable[[], Awaitable[None]]] = []
        #: Chat through the server, in a meeting through a media server (no data channel).
        self._server_chat: ServerChat | None = None
        self._retry_timers: list[asyncio.TimerHandle] = []
        #: Links being closed: aiortc's close() can take seconds on a busy machine, and the
        #: actions behind it (the participant's tile going away) must not wait for it.
        self._closing: set[asyncio.Task[None]] = set()
        self._runner = ActionRunner(machine.take_actions, self._perform, self._failed, self._last)
        self._closed = asyncio.Event()
        self._unsubscribe = link.on_event(self._on_server_event)
        given = getattr(link, "ice", None)
        self._unwatch_ice = (
            given.on_renewed(self._ice_renewed) if isinstance(given, ServerIce) else None
        )

    # Construction -----------------------------------------------------------------

    @classmethod
    def create(
        cls,
        link: SignalingLink,
        me: str,
        media: LocalMedia,
        invite: list[str] | None = None,
        title: str | None = None,
        options: CallOptions | None = None,
        meeting_id: str | None = None,
    ) -> MeetingSession:
        """Start a meeting as its host, inviting ``invite``."""
        machine = MeetingMachine(me, meeting_id or str(uuid.uuid4()), _sends(media))
        session = cls(link, machine, media, options)
        machine.create(invite, title)
        session._pump()
        return session

    @classmethod
    def join(
        cls,
        link: SignalingLink,
        me: str,
        meeting_id: str,
        media: LocalMedia,
        options: CallOptions | None = None,
    ) -> MeetingSession:
        """Join a meeting this user is invited to (or was in)."""
        machine = MeetingMachine(me, meeting_id, _sends(media))
        session = cls(link, machine, media, options)
        machine.join()
        session._pump()
        return session

    @classmethod
    def invited(
        cls,
        link: SignalingLink,
        me: str,
        event: Json,
        media: LocalMedia,
        options: CallOptions | None = None,
    ) -> MeetingSession:
        """A ``meeting.invited`` event; go on with :meth:`accept` or :meth:`decline`."""
        machine = MeetingMachine.from_invitation(me, event, _sends(media))
        session = cls(link, machine, media, options)
        session._pump()
        return session

    def adopt_link(self, username: str, peer: PeerLink, held: list[Json]) -> None:
        """Carry on with ``peer``, the connection of the call this meeting continues: it is
        not renegotiated; its senders move onto this meeting's shared media (the same slots,
        so the same clock). ``held``: this meeting's events that came before this session
        listened, handled now. ``remote_track`` is emitted for what it receives already,
        once the caller has had a chance to listen."""
        peer.remove_all_listeners()
        self.links[username] = peer
        self.history.setdefault(username, []).append(peer)
        for event in LINK_EVENTS:
            peer.on(event, self._bind(username, peer, event))
        proxies = self._proxies[username] = self.shared.subscribe()
        for slot, proxy in proxies.items():
            peer.send(slot, proxy)
        receivers = list(peer.receivers.items())
        asyncio.get_running_loop().call_soon(
            lambda: [self.emit("remote_track", username, s, r) for s, r in receivers]
        )
        self.handle_held(held)

    def handle_held(self, held: list[Json]) -> None:
        """Handle ``held``, this meeting's events that came before this session listened (a
        call moving into it), then carry out what the machine decided so far."""
        for message in held:
            self._on_server_event(message)
        self._pump()

    # Controls ---------------------------------------------------------------------

    @property
    def meeting_id(self) -> str:
        """The meeting's UUID."""
        return self.machine.meeting_id

    @property
    def state(self) -> MeetingState:
        """The machine's state."""
        return self.machine.state

    def accept(self) -> None:
        """Join the meeting this end was invited to."""
        self.machine.join()
        self._pump()

    def decline(self) -> None:
        """Refuse the invitation."""
        self.machine.decline()
        self._pump()

    def leave(self) -> None:
        """Leave; the meeting goes on for the others."""
        self.machine.leave()
        self._pump()

    def end(self) -> None:
        """End the meeting for everyone (as its host; anyone else leaves)."""
        self.machine.end()
        self._pump()

    def invite(self, usernames: list[str]) -> None:
        """Invite more contacts."""
        self.machine.invite(usernames)
        self._pump()

    def set_audio_enabled(self, enabled: bool) -> None:
        """Mute or unmute for everyone."""
        self.shared.set_enabled(AUDIO, enabled)
        self._announce()

    def set_video_enabled(self, enabled: bool) -> None:
        """Camera on or off for everyone."""
        self.shared.set_enabled(CAMERA, enabled)
        self._announce()

    def replace_track(self, slot: str, track: MediaStreamTrack | None) -> None:
        """Another camera or microphone, or a screen share started (``None``: stopped)."""
        self.shared.replace(slot, track)
        self._announce()

    def _announce(self) -> None:
        enabled = self.shared.enabled
        self.machine.set_media(enabled[AUDIO], enabled[CAMERA], enabled[SCREEN])
        self._pump()

    def send_chat(self, text: str) -> ChatMessage:
        """Send a chat message to everyone in the meeting (raises ``ChatUnavailable`` when
        nobody else is in it, ``ValueError`` when it is too long); ``delivered`` follows once
        all have it. A participant whose link is not open now (being made, or made again after
        it failed) gets it over their next link as it opens, as does one whose link closes
        before they acknowledge it; one who leaves first is not waited for. Through a media
        server, the server relays it (``meeting_chat.py``)."""
        if self.machine.topology == "sfu":
            if self.machine.state is not MeetingState.JOINED or not self.machine.participants:
                raise ChatUnavailable("nobody in the meeting can receive chat now")
            message = self._chat_through_server().send(text)
            self.chat_log.add(self.machine.me, message)
            return message
        message = outgoing_chat(text)  # one id on every link: a late joiner keeps one copy
        recipients = (set(self.machine.participants) | set(self.links)) - {self.machine.me}
        if not recipients:
            raise ChatUnavailable("nobody in the meeting can receive chat now")
        for username in recipients:
            self._send_on_link(username, message)
        self._undelivered[message.id] = _Undelivered(message, recipients)
        self.chat_log.add(self.machine.me, message)
        return message

    def _send_on_link(self, username: str, message: ChatMessage) -> None:
        """``message`` over the link to ``username`` if its channel is open (else it goes when
        a link's channel opens: ``channel_open``)."""
        peer = self.links.get(username)
        if peer is not None and peer.channel.is_open:
            with contextlib.suppress(ChatUnavailable):  # closed meanwhile: the next link
                peer.channel.send_message(message)

    def _not_waited_for(self, username: str) -> None:
        """``username`` left: this end's messages no longer wait for them (``delivered`` once
        everyone else has them; never for a message nobody got)."""
        for msg_id in list(self._undelivered):
            self._no_longer_waiting(msg_id, username)

    def _no_longer_waiting(self, msg_id: str, username: str, acknowledged: bool = False) -> None:
        """Message ``msg_id`` waits for ``username`` no more (``acknowledged``: they have it)."""
        pending = self._undelivered.get(msg_id)
        if pending is None or username not in pending.waiting:
            return
        pending.waiting.discard(username)
        pending.acknowledged |= acknowledged
        if not pending.waiting:
            self._all_have(msg_id)

    def _all_have(self, msg_id: str) -> None:
        if self._undelivered.pop(msg_id).acknowledged:
            self.emit("delivered", msg_id)

    def _chat_through_server(self) -> ServerChat:
        if self._server_chat is None:
            self._server_chat = ServerChat(
                self.signaling,
                self.meeting_id,
                lambda msg_id: self.emit("delivered", msg_id),
                lambda kind, code, message: self.emit("request_failed", kind, code, message),
            )
        return self._server_chat

    def _delivered(self, username: str, msg_id: str) -> None:
        self._no_longer_waiting(msg_id, username, acknowledged=True)

    def receivers(self, username: str) -> dict[str, Receiver]:
        """What the newest link to ``username`` received, by slot (empty: never linked)."""
        links = self.history.get(username)
        return links[-1].receivers if links else {}

    async def wait_ended(self) -> None:
        """Until this end is out of the meeting and everything it started has stopped."""
        await self._closed.wait()

    # Inputs -----------------------------------------------------------------------

    def _on_server_event(self, message: Json) -> None:
        kind = message.get("type")
        if kind == "client.reconnected":
            self.machine.signaling_reconnected()
        elif kind in ("sfu.published", "sfu.reconnect"):
            if str(message.get("meeting_id", "")).lower() == self.meeting_id:
                self._media_server().server_event(message)
            return
        elif str(message.get("meeting_id", "")).lower() == self.meeting_id:
            if kind == "meeting.chat":
                received = self._chat_through_server().received(message)
                if received is not None:
                    self._chat_in(*received, history=message.get("history") is True)
                return
            if kind == "meeting.left":
                self._not_waited_for(str(message.get("username", "")))
                self.emit("participant_left", message.get("username"), message.get("reason"))
            self.machine.server_event(message)
        else:
            return
        self._pump()

    def _link_event(self, username: str, peer: PeerLink, event: str, *args: Any) -> None:
        """What one link reports; a link replaced or closed meanwhile is not heard."""
        if self.links.get(username) is not peer:
            return
        if event == "connection":
            self.machine.link_state(username, args[0])
        elif event == "quiet":
            self._check_signaling()
        elif event == "silent":
            self.machine.link_silent(username)
        elif event == "deadline":
            self.machine.connect_deadline_passed(username)
        elif event == "remote_track":
            self.emit("remote_track", username, *args)
        elif event == "stats":
            self.emit("link_stats", username, *args)
        elif event == "chat":
            self._chat_in(username, args[0], history=False)
        elif event == "past":
            present = self.machine.participants
            for entry in args[0]:
                if vouched(entry, username, self.machine.me, present):
                    self._chat_in(entry.sender, entry.message, history=True)
        elif event == "channel_open":
            # What this end sent that they have not acknowledged, as it was sent (live), then
            # the chat so far: what they got live is not history to them.
            for pending in self._undelivered.values():
                if username in pending.waiting:
                    self._send_on_link(username, pending.message)
            peer.channel.send_past(self.chat_log.past())
        elif event == "delivered":
            self._delivered(username, *args)
        self._pump()

    @property
    def options(self) -> CallOptions:
        """How a link made now connects: with the ICE servers (and TURN credentials) the server
        hands out now, not those of when the meeting began, which may have expired."""
        return self._own_options.with_server_ice(self.signaling)

    def _ice_renewed(self) -> None:
        """Fresh TURN credentials: every relayed link this end offered is offered anew (the
        relay would die at its next refresh once the old credentials expire)."""
        for username, peer in list(self.links.items()):
            path = ice.selected_path(peer.pc) if not peer.closed else None
            if path is not None and path.relayed:
                self.machine.renew_link(username)
        self._pump()

    def _check_signaling(self) -> None:
        """A link heard nothing for ``path_quiet_s``: this end's signaling may be as dead as
        the path (a new address leaves the old socket silent long before its keepalive
        notices). Ping the server, as a call does (``CallSession._path_quiet``): a socket that
        does not answer is dropped, the client reconnects, and the meeting joins again and
        offers every participant a fresh link (``MeetingMachine.signaling_reconnected``)."""
        check = getattr(self.signaling, "check_alive", None)
        if check is None or (
            self._signaling_check is not None and not self._signaling_check.done()
        ):
            return
        self._signaling_check = asyncio.get_running_loop().create_task(check())

    def _chat_in(self, sender: str, message: ChatMessage, history: bool) -> None:
        """A message received (live or from before): shown once, this end's own as such."""
        if sender == self.machine.me:
            message = replace(message, outgoing=True)
        known = message.id in self.chat_log
        if self.chat_log.add(sender, message) or not (history or known):
            # (a live message is shown even when its sender's clock puts it before the log)
            self.emit("chat_history" if history else "chat", sender, message)

    # Actions ----------------------------------------------------------------------

    def _pump(self) -> None:
        self._runner.pump()

    def _failed(self, action: Any, exc: Exception) -> None:
        """What performing ``action`` raised: one link fails, never the meeting."""
        if isinstance(exc, RemoteUnusable):
            self._unusable(action.username, str(exc))
        elif isinstance(action, MakeAnswer | ApplyRemoteDescription | AddCandidate):
            # What the peer sent got past the checks and aiortc still refused it.
            self._unusable(action.username, f"{type(action).__name__}: {type(exc).__name__}: {exc}")
        else:
            log.error("meeting %s: %s failed", self.meeting_id, action, exc_info=exc)
            if isinstance(action, OpenLink):
                self.machine.link_state(action.username, "failed")

    def _last(self, action: Any) -> bool:
        """Once ended, the worker stops after closing everything."""
        return isinstance(action, StateChanged) and action.state is MeetingState.ENDED

    def _unusable(self, username: str, problem: str) -> None:
        """Fail one link over what its peer sent: one log line, no traceback."""
        log.warning(
            "meeting %s: cannot use what %s sent: %s", self.meeting_id, username, problem[:300]
        )
        self.machine.remote_unusable(username, problem[:300])

    async def _perform(self, action: Any) -> None:
        if isinstance(action, SendRequest):
            await self._request(action)
        elif isinstance(action, StateChanged):
            self.emit("state", action.state, action.reason)
            if action.state is MeetingState.ENDED:
                if self._server_chat is not None:
                    self._server_chat.close()
                await self._close()
            elif action.state is MeetingState.JOINED and self.machine.topology == "sfu":
                self._media_server().start()
        elif isinstance(action, ParticipantsChanged):
            if self.machine.topology == "sfu":
                self._media_server().set_participants([p.username for p in action.participants])
            self.emit("participants", action)
        elif isinstance(action, OpenLink):
            await self._open(action.username, action.offerer)
        elif isinstance(action, RetryLink):
            self._retry_timers.append(
                asyncio.get_running_loop().call_later(
                    action.delay_s, self._retry_link, action.username
                )
            )
        elif isinstance(action, RetryJoin):
            self._retry_timers.append(
                asyncio.get_running_loop().call_later(action.delay_s, self._retry_join)
            )
        elif isinstance(action, CloseLink):
            self._close_link(action.username)
        else:
            peer = self.links.get(action.username)
            if peer is None:
                return
            if isinstance(action, ApplyRemoteDescription):
                offerer = self.machine.link_offerer(action.username)
                await peer.apply_remote(action.description, "answer" if offerer else "offer")
            elif isinstance(action, MakeAnswer):
                self.machine.local_description(action.username, await peer.make_answer())
            elif isinstance(action, AddCandidate):
                await peer.add_candidate(action.candidate)

    async def _request(self, action: SendRequest) -> None:
        reply = await send_request(
            self.signaling, action, f"meeting {self.meeting_id}", log, self._refused
        )
        if reply is not None:
            self.machine.request_succeeded(action.kind, reply)

    def _refused(self, kind: str, code: str, message: str) -> None:
        self.machine.request_failed(kind, code)
        self.emit("request_failed", kind, code, message)

    async def _open(self, username: str, offerer: bool) -> None:
        peer = PeerLink(self.options, f"meeting {self.meeting_id[:8]} {username}")
        self.links[username] = peer
        self.history.setdefault(username, []).append(peer)
        for event in LINK_EVENTS:
            peer.on(event, self._bind(username, peer, event))
        proxies = self._proxies[username] = self.shared.subscribe()
        for slot, proxy in proxies.items():
            peer.send(slot, proxy)
        peer.start_deadline(lambda: self._link_event(username, peer, "deadline"))
        if offerer:
            peer.offer_sections()
            self.machine.local_description(username, await peer.make_offer())

    def _retry_join(self) -> None:
        if not self.machine.ended:
            self.machine.retry_join()
            self._pump()

    def _retry_link(self, username: str) -> None:
        if not self.machine.ended:
            self.machine.retry_link(username)
            self._pump()

    def _bind(self, username: str, peer: PeerLink, event: str) -> Any:
        def handler(*args: Any) -> None:
            self._link_event(username, peer, event, *args)

        return handler

    def _close_link(self, username: str) -> None:
        """Let go of the link to ``username`` at once; its connection closes in the
        background (the meeting's end waits for it)."""
        peer = self.links.pop(username, None)
        for proxy in self._proxies.pop(username, {}).values():
            proxy.stop()
        if peer is not None:
            task = asyncio.get_running_loop().create_task(
                peer.close(), name=f"closing {peer.label}"
            )
            self._closing.add(task)
            task.add_done_callback(self._link_closed)

    def _link_closed(self, task: asyncio.Task[None]) -> None:
        self._closing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("%s failed", task.get_name(), exc_info=task.exception())

    # The end ----------------------------------------------------------------------

    def _media_server(self) -> SfuMedia:
        if self.sfu is None:
            self.sfu = SfuMedia(
                self.signaling,
                self.meeting_id,
                self.shared.subscribe,
                self.options,
                self.history,
                self.sfu_emit,
            )
        return self.sfu

    async def _close(self) -> None:
        self._unsubscribe()
        if self._unwatch_ice is not None:
            self._unwatch_ice()
            self._unwatch_ice = None
        for timer in self._retry_timers:
            timer.cancel()
        if self.sfu is not None:
            await self.sfu.close()
        for username in list(self.links):
            self._close_link(username)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        for closer in self.closers:
            await closer()
        self.shared.stop()
        self._closed.set()
        self.emit("ended", self.machine.reason)


def _sends(media: LocalMedia) -> Json:
    """What ``media`` sends, as the protocol says it."""
    return {
        "audio": media.audio is not None,
        "video": media.camera is not None,
        "screen": media.screen is not None,
    }
