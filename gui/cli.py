"""``parley-cli``: the headless client, for scripts, bots, tests and people without a display.

Built on the same engine as the desktop app (``SignalingClient`` and
``CallSession``). It prints one JSON object per line on stdout and exits 0
when the call ended by a person's choice (hang-up, cancel, decline), 1 when
it could not be made or broke (busy, offline, no answer, lost, refused), and
2 on bad arguments, with a one-line error on stderr.

``meet create|join|answer`` take part in a meeting of up to four (a mesh: a
peer connection to every other participant), with the same media options; the
summary then has the figures of what came from each participant.

``call`` and ``answer`` take ``--share-screen [N]``: once the call connects,
screen N (0 by default) goes out on the call's screen slot, beside the
camera slot's pattern. Only then does the CLI need Qt: it runs on a
``QGuiApplication`` and a qasync loop; everything else stays plain asyncio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import ssl
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import platformdirs

from gui.core import account, guest_links
from gui.core.call_machine import CallState
from gui.core.call_session import (
    CallOptions,
    CallSession,
    IceServer,
    LocalMedia,
    ScreenShareUnavailable,
)
from gui.core.escalation import continue_in_meeting
from gui.core.meeting_machine import MeetingState, ParticipantsChanged
from gui.core.meeting_session import MeetingSession
from gui.core.peer_channel import ChatMessage, ChatUnavailable, PeerMediaState
from gui.core.pinning import KnownServers
from gui.core.quality import MediaPath, QualitySample
from gui.core.receive_repair import repair_counts
from gui.core.servers import server_argument
from gui.core.signaling_client import (
    NotConnected,
    RequestError,
    SignalingClient,
    TlsRefused,
    tls_context,
)
from gui.media.analysis import AudioReceiver, FrameTimeline, VideoReceiver
from gui.media.processing import AudioProcessor, ProcessedAudioTrack, ProcessingOptions
from signaling import __version__

#: Endings a person chose; anything else means the call could not be made or broke.
NORMAL_ENDINGS = frozenset({"hangup", "cancelled", "declined", "answered_elsewhere"})
#: The same for meetings: this end left or declined, the host ended it, or all left.
MEETING_NORMAL_ENDINGS = frozenset(
    {"left", "declined", "ended", "empty", "answered_elsewhere", "declined_elsewhere"}
)


class CliError(Exception):
    """A failure to report in one line, with exit status 1."""


class BadArguments(CliError):
    """An option's value makes no sense: exit status 2, like argparse's own errors."""


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout."""
    print(json.dumps({"event": event, **fields}, ensure_ascii=False), flush=True)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError("seconds cannot be negative")
    return value


def _audio_choice(text: str) -> str:
    kind, _, hz = text.partition(":")
    if kind == "tone":
        if hz:
            _number_in(hz, 20, 20000, "a frequency in Hz", "the tone must be 20 to 20000 Hz")
        return text
    if text in ("mic", "none"):
        return text
    if kind == "mic" and hz.strip():
        return f"mic:{hz.strip()}"
    raise argparse.ArgumentTypeError("--audio is tone[:HZ], mic[:NAME] or none")


def _screen_index(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a screen number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("screens are numbered from 0")
    return value


def _usernames(text: str) -> list[str]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("--invite takes usernames separated by commas")
    return names


def _number_in(text: str, low: float, high: float, what: str, out_of_range: str) -> float:
    """``text`` as a number from ``low`` to ``high``, or an argument error in words."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(out_of_range)
    return value


def _fps(text: str) -> float:
    return _number_in(text, 1, 60, "a frame rate", "the frame rate must be 1 to 60")


def _add_media(parser: argparse.ArgumentParser) -> None:
    _add_sources(parser)
    parser.add_argument(
        "--speaker",
        default="none",
        metavar="default|NAME|none",
        help="play the other side's audio on the default output, on the output named NAME "
        "(its description or id), or nowhere (default: none, the audio is only measured)",
    )
    parser.add_argument(
        "--no-audio-processing",
        action="store_true",
        help="send the microphone as it is: no echo cancellation, noise suppression, "
        "high-pass filter or automatic gain (all on by default)",
    )
    parser.add_argument(
        "--duration",
        type=_seconds,
        metavar="S",
        help="hang up S seconds after the call connects (default: stay until the other side "
        "hangs up)",
    )
    parser.add_argument(
        "--share-screen",
        type=_screen_index,
        nargs="?",
        const=0,
        default=None,
        metavar="N",
        help="once connected, share screen N (default 0) on the call's screen slot, "
        "at up to 1920x1080 and 15 frames/s; needs a display",
    )


def _add_meeting_options(parser: argparse.ArgumentParser) -> None:
    _add_sources(parser)
    parser.add_argument(
        "--duration",
        type=_seconds,
        metavar="S",
        help="leave S seconds after joining (default: stay until the meeting ends)",
    )
    parser.add_argument(
        "--end",
        action="store_true",
        help="when leaving (--duration, Ctrl+C), end the meeting for everyone, as its host",
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print each link's figures every second (link_stats lines: frames/s per video)",
    )
    parser.add_argument(
        "--max-videos",
        type=_video_count,
        metavar="N",
        help="through a media server, receive at most N videos at once, the most recent "
        "speakers' (default: every other participant's up to 4 participants, 4 from 5, 3 from "
        "7); audio from everyone always. A 'videos' line says whose video comes, on each change",
    )
    parser.add_argument(
        "--chat", metavar="TEXT", help="send this chat message once someone can receive it"
    )


def _video_count(text: str) -> int:
    value = _number_in(text, 0, 64, "a whole number", f"must be 0 to 64, not {text}")
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number")
    return int(value)


def _add_sources(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--video",
        choices=["pattern", "camera", "none"],
        default="pattern",
        help="what to send as video: a moving test pattern, the camera, or nothing "
        "(default: pattern)",
    )
    parser.add_argument(
        "--audio",
        type=_audio_choice,
        default="tone:440",
        metavar="tone[:HZ]|mic[:NAME]|none",
        help="what to send as audio: a tone (440 Hz unless given), the default microphone or "
        "the one named NAME (its description or id; processed, see --no-audio-processing), "
        "or nothing (default: tone:440)",
    )
    parser.add_argument(
        "--resolution",
        default="640x480",
        metavar="WxH",
        help="size of the test pattern (default: 640x480)",
    )
    parser.add_argument(
        "--fps",
        type=_fps,
        default=30.0,
        metavar="N",
        help="frames per second of the test pattern (default: 30)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="parley-cli",
        description="Headless Parley client: list and add contacts, place and answer calls. "
        "Prints one JSON object per line.",
    )
    parser.add_argument(
        "--server",
        required=True,
        action="append",
        type=server_argument,
        metavar="URL",
        help="ws://HOST:PORT/ws or wss://HOST:PORT/ws; repeat it for several instances of one "
        "service: the client uses the first that answers and moves to another if it goes away",
    )
    parser.add_argument(
        "--trust-cert",
        metavar="FILE",
        help="for wss://, also trust this PEM certificate (the server's own, e.g. self-signed, "
        "or the authority that signed it); the system's trusted authorities always count",
    )
    parser.add_argument(
        "--known-servers",
        metavar="FILE",
        default=str(Path(platformdirs.user_data_dir("parley")) / "known_servers.json"),
        help="for wss:// servers no authority vouches for (a Parley shared on a network): "
        "the certificates trusted on first use, as SSH's known_hosts (default: %(default)s)",
    )
    parser.add_argument("--user", required=True, metavar="NAME", help="your username")
    parser.add_argument("--password", required=True, metavar="PW", help="your password")
    parser.add_argument(
        "--register",
        action="store_true",
        help="create the account first (if it exists already, log in with the password)",
    )
    parser.add_argument(
        "--ice",
        action="append",
        default=[],
        metavar="URL",
        help="a STUN or TURN server, e.g. stun:stun.example.org:3478 or "
        "turn:turn.example.org:3478 (repeatable; default: none, so nothing is contacted)",
    )
    parser.add_argument("--ice-username", metavar="U", help="username for the TURN servers")
    parser.add_argument("--ice-credential", metavar="C", help="password for the TURN servers")
    parser.add_argument("--version", action="version", version=f"parley-cli {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("contacts", help="list contacts and their presence")
    add = commands.add_parser("add", help="send or accept a contact request")
    add.add_argument("peer", metavar="USER")
    call = commands.add_parser("call", help="call a contact")
    call.add_argument("peer", metavar="USER")
    _add_media(call)
    call.add_argument("--chat", metavar="TEXT", help="send this chat message once connected")
    call.add_argument(
        "--add",
        type=_usernames,
        default=[],
        metavar="A,B",
        help="once connected, turn the call into a meeting and invite these contacts; both "
        "of you stay connected as you are (the other side's app must have meetings)",
    )
    call.add_argument(
        "--add-after",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="with --add: wait S seconds after connecting first (default: 0)",
    )
    answer = commands.add_parser("answer", help="wait for one call and answer it")
    _add_media(answer)
    answer.add_argument(
        "--accept-after",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="let it ring S seconds before answering (default: 0)",
    )
    answer.add_argument("--decline", action="store_true", help="decline the call instead")
    answer.add_argument(
        "--wait", type=_seconds, metavar="S", help="give up if no call comes within S seconds"
    )
    answer.add_argument("--chat", metavar="TEXT", help="send this chat message once connected")
    meet = commands.add_parser("meet", help="create, join or answer a meeting (up to 4, mesh)")
    meetings = meet.add_subparsers(dest="meet_command", required=True, metavar="ACTION")
    create = meetings.add_parser("create", help="start a meeting as its host")
    create.add_argument(
        "--invite", type=_usernames, default=[], metavar="A,B", help="contacts to invite"
    )
    create.add_argument("--title", metavar="T", help="the meeting's title")
    _add_meeting_options(create)
    join = meetings.add_parser("join", help="join a meeting you are invited to (or were in)")
    join.add_argument("meeting_id", metavar="ID")
    _add_meeting_options(join)
    answer_meeting = meetings.add_parser("answer", help="wait for an invitation and join")
    _add_meeting_options(answer_meeting)
    answer_meeting.add_argument(
        "--wait", type=_seconds, metavar="S", help="give up if no invitation comes within S s"
    )
    answer_meeting.add_argument(
        "--decline", action="store_true", help="decline the invitation instead"
    )
    _add_guest_link(commands)
    _add_account(commands)
    return parser


def _link_expiry(text: str) -> int:
    low, high = guest_links.MIN_EXPIRY_S, guest_links.MAX_EXPIRY_S
    value = _number_in(text, low, high, "a number of seconds", f"a link lasts {low} to {high} s")
    if not value.is_integer():
        raise argparse.ArgumentTypeError("a link lasts a whole number of seconds")
    return int(value)


def _add_guest_link(commands: Any) -> None:
    guest = commands.add_parser(
        "guest-link", help="create, list or revoke links for guests who join from a browser"
    )
    actions = guest.add_subparsers(dest="guest_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="a link for a call with you, or for a meeting")
    create.add_argument("--meeting", metavar="ID", help="a link into this meeting (you are in it)")
    create.add_argument(
        "--expires", type=_link_expiry, metavar="S", help="seconds it admits guests (24 h)"
    )
    actions.add_parser("list", help="your links that still admit guests")
    revoke = actions.add_parser("revoke", help="turn a link off; its guests are removed")
    revoke.add_argument("link_id", metavar="LINK_ID")


def _add_account(commands: Any) -> None:
    account = commands.add_parser(
        "account", help="change your password, sign out other sessions, delete, block users"
    )
    actions = account.add_subparsers(dest="account_command", required=True, metavar="ACTION")
    password = actions.add_parser("password", help="change your password (--password: the current)")
    password.add_argument("--new", required=True, metavar="PW", help="the new password")
    actions.add_parser("sign-out-others", help="sign out every other session of your account")
    delete = actions.add_parser(
        "delete", help="delete your account, its contacts, requests and call history"
    )
    delete.add_argument(
        "--yes", action="store_true", help="really delete (without it nothing is deleted)"
    )
    block = actions.add_parser("block", help="nothing of this user reaches you any more")
    block.add_argument("peer", metavar="USER")
    unblock = actions.add_parser("unblock", help="lift a block")
    unblock.add_argument("peer", metavar="USER")
    actions.add_parser("blocked", help="the users you blocked")


async def run_account(client: SignalingClient, args: argparse.Namespace) -> int:
    """``account …``: each action prints one JSON line saying what was done."""
    action = args.account_command
    if action == "password":
        problem = account.check_new_password(args.password, args.new)
        if problem is not None:
            raise BadArguments(f"--new: {problem}")
        revoked = await account.change_password(client, args.password, args.new)
        emit("password_changed", signed_out=revoked)
    elif action == "sign-out-others":
        emit("signed_out_others", signed_out=await account.sign_out_others(client))
    elif action == "delete":
        if not args.yes:
            raise BadArguments(
                "account delete: this deletes the account with its contacts, requests and call "
                "history, for good; add --yes to do it"
            )
        await account.delete_account(client, args.password)
        emit("account_deleted", username=args.user.lower())
    elif action == "block":
        emit("blocked", user=await account.block(client, args.peer))
    elif action == "unblock":
        await account.unblock(client, args.peer)
        emit("unblocked", username=args.peer.lower())
    else:
        emit("blocked_users", users=await account.blocked(client))
    return 0


async def run_guest_link(client: SignalingClient, args: argparse.Namespace) -> int:
    """``guest-link create`` prints the link's ``url`` (its secret: shown once), ``list`` the
    links that admit guests, ``revoke`` turns one off."""
    if args.guest_command == "create":
        link = await guest_links.create_link(client, args.meeting, args.expires)
        emit("guest_link", **link)
    elif args.guest_command == "list":
        emit("guest_links", links=await guest_links.list_links(client))
    else:
        await guest_links.revoke_link(client, args.link_id)
        emit("guest_link_revoked", link_id=args.link_id.lower())
    return 0


def _resolution(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise BadArguments(f"--resolution must look like 640x480, not '{text}'") from None
    if not (64 <= width <= 3840 and 64 <= height <= 2160) or width % 2 or height % 2:
        raise BadArguments("--resolution must be even sizes from 64x64 to 3840x2160")
    return width, height


def local_media(args: argparse.Namespace) -> LocalMedia:
    """The tracks to send, from --video and --audio."""
    from gui.media.pattern import PatternVideoTrack
    from gui.media.tone import ToneAudioTrack

    media = LocalMedia()
    if args.video == "pattern":
        media.camera = PatternVideoTrack(*_resolution(args.resolution), fps=args.fps)
    elif args.video == "camera":
        from gui.devices import CameraTrack, DeviceCatalog

        if not DeviceCatalog().cameras():
            raise CliError("no camera was found on this computer")
        media.camera = CameraTrack(
            None, width=_resolution(args.resolution)[0], height=_resolution(args.resolution)[1]
        )
    if args.audio.startswith("tone"):
        _, _, hz = args.audio.partition(":")
        media.audio = ToneAudioTrack(float(hz) if hz else 440.0)
    elif args.audio.startswith("mic"):
        from gui.devices import DeviceCatalog, DeviceKind, MicrophoneTrack, capture_period

        try:
            device = audio_device(DeviceCatalog(), DeviceKind.AUDIO_INPUT, args.audio[4:])
        except CliError:
            media.stop()
            raise
        off = getattr(args, "no_audio_processing", False)
        processor = AudioProcessor(ProcessingOptions.off() if off else ProcessingOptions())
        microphone = MicrophoneTrack(
            device, period_frames=capture_period(not off), pulse_reader=True
        )
        media.audio = ProcessedAudioTrack(microphone, processor)
    return media


def audio_device(catalog: Any, kind: Any, name: str) -> Any:
    """The ``QAudioDevice`` of ``kind`` whose description or id is ``name`` (any case; the
    default one for "" or "default"); BadArguments naming what there is, if none."""
    from gui.devices import DeviceKind

    word = "microphone" if kind is DeviceKind.AUDIO_INPUT else "sound output"
    found = catalog.devices(kind)
    if not found:
        raise CliError(f"no {word} was found on this computer")
    wanted = name.strip().lower()
    for info in found:
        if (wanted in ("", "default") and info.is_default) or wanted in (
            info.id.lower(),
            info.description.lower(),
        ):
            lookup = catalog.audio_input if kind is DeviceKind.AUDIO_INPUT else catalog.audio_output
            return lookup(info.id)
    if wanted in ("", "default"):
        return None  # no default marked: Qt's own default
    names = ", ".join(f"'{info.description}'" for info in found)
    raise BadArguments(f"there is no {word} named '{name}' (there are: {names})")


class SpeakerOutput:
    """``--speaker``: the call's remote audio played on an output device; what it plays is
    the echo canceller's reference when this end sends a processed microphone."""

    def __init__(self, name: str, media: LocalMedia) -> None:
        from gui.devices import DeviceCatalog, DeviceKind, SpeakerSink

        catalog = DeviceCatalog()
        self.sink = SpeakerSink(audio_device(catalog, DeviceKind.AUDIO_OUTPUT, name))
        self.processor = (
            media.audio.processor if isinstance(media.audio, ProcessedAudioTrack) else None
        )
        if self.processor is not None:
            self.sink.played_listeners.append(self.processor.played)
        emit("speaker", device=self.sink.device.description())

    def attach(self, session: CallSession) -> None:
        """Play the audio ``session`` receives, now and after a renegotiated track."""

        def remote(slot: str, receiver: Any) -> None:
            if slot == "audio":
                self.sink.attach(receiver)

        session.on("remote_track", remote)
        receiver = session.receivers.get("audio")
        if receiver is not None:
            remote("audio", receiver)

    def summary(self) -> dict[str, Any]:
        """What was played, for the call's summary."""
        return {
            "speaker_underruns": self.sink.underruns,
            "speaker_frames_played": self.sink.frames_fed,
        }

    def stop(self) -> None:
        """Release the output device."""
        self.sink.stop()


def needs_qt(args: argparse.Namespace) -> bool:
    """Whether the command uses Qt (a camera, a microphone or a shared screen)."""
    if args.command not in ("call", "answer", "meet"):
        return False
    return (
        getattr(args, "share_screen", None) is not None
        or args.video == "camera"
        or args.audio.startswith("mic")
        or getattr(args, "speaker", "none") != "none"
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


class CallReporter:
    """Prints a call's events as JSON lines and remembers what the summary needs."""

    def __init__(
        self,
        session: CallSession,
        args: argparse.Namespace,
        speaker: SpeakerOutput | None = None,
    ) -> None:
        self.session = session
        self.args = args
        self.speaker = speaker
        self.started = time.monotonic()
        self.connected = asyncio.Event()
        #: The screen track shared with --share-screen, once sharing started.
        self.shared: Any = None
        #: The media's path as last seen (direct or relayed, and how).
        self.path: MediaPath | None = None
        session.on("state", self.state)
        session.on("sas", lambda words: emit("sas", words=words))
        session.on("chat", self.chat)
        session.on("delivered", lambda msg_id: emit("chat_delivered", id=msg_id))
        session.on("peer_media", self.peer_media)
        session.on("stats", self.stats)
        session.on("restarted", lambda token: emit("restarted", restart=token))
        session.on(
            "request_failed",
            lambda kind, code, message: emit(
                "request_failed", request=kind, code=code, message=message
            ),
        )

    def state(self, state: CallState, reason: str | None) -> None:
        """Print a state change; note when the call connects."""
        fields: dict[str, Any] = {"state": state.value, "call_id": self.session.call_id}
        if reason is not None:
            fields["reason"] = reason
        if state is CallState.ENDED and self.session.failure_detail is not None:
            fields["detail"] = self.session.failure_detail
        emit("state", **fields)
        if state is CallState.CONNECTED:
            self.connected.set()

    @staticmethod
    def chat(message: ChatMessage) -> None:
        """Print a received chat message."""
        emit("chat", id=message.id, text=message.text, sent_at=message.sent_at)

    @staticmethod
    def peer_media(state: PeerMediaState) -> None:
        """Print what the peer sends."""
        emit("peer_media", audio=state.audio, video=state.video, screen=state.screen)

    def stats(self, sample: QualitySample) -> None:
        """Print the second's figures (``reconnecting`` while a lost path is being recovered)."""
        reconnecting = self.session.state is CallState.RECONNECTING
        if sample.path is not None:
            self.path = sample.path
        camera = self.session.receivers.get("camera")
        frames = freeze = None
        if isinstance(camera, VideoReceiver):  # counted from this link's first frame
            frames, freeze = camera.frames, round(camera.freeze_s * 1000)
        emit(
            "stats",
            **sample.to_json(),
            grade=sample.grade,
            reconnecting=reconnecting,
            camera_frames=frames,
            camera_freeze_ms=freeze,
        )

    def summary(self) -> dict[str, Any]:
        """What arrived during the call."""
        video = self.session.receivers.get("camera")
        audio = self.session.receivers.get("audio")
        out: dict[str, Any] = {
            "frames_received": 0,
            "width": None,
            "height": None,
            "audio_ms_received": 0,
            "audio_peak_hz": None,
        }
        if isinstance(video, VideoReceiver):
            out.update(
                frames_received=video.frames,
                width=video.width,
                height=video.height,
                frames_numbered=video.numbered,
                frame_numbers_decreased=video.decreases,
            )
        if isinstance(audio, AudioReceiver):
            peak = audio.peak_hz(1.0)
            level = audio.rms(1.0)
            out.update(
                audio_ms_received=round(audio.received_ms),
                audio_peak_hz=round(peak, 1) if peak is not None else None,
                # The last second's level, dBFS (-120 for silence).
                audio_level_db=round(20 * math.log10(max(level, 1e-6)), 1),
            )
        sent = self.session.media.audio
        if isinstance(sent, ProcessedAudioTrack):
            out["audio_processing"] = sent.processor.describe()
            out["echo_reference_ms"] = 10 * sent.processor.render_chunks
            tones = sent.processor.tones
            out["echo_tones_hz"] = [round(f, 1) for f in tones.active] if tones else []
        if self.speaker is not None:
            out.update(self.speaker.summary())
        screen = self.session.receivers.get("screen")
        out["screen_frames_received"] = screen.frames if isinstance(screen, VideoReceiver) else 0
        # Lost packets asked for again, given up, key frames asked (gui/core/receive_repair.py).
        out["video_repair"] = repair_counts(self.session.pc.getTransceivers())
        if self.shared is not None:
            out["screen_frames_sent"] = self.shared.frames_delivered
        session = self.session
        if session.connected_at is not None and session.answered_at is not None:
            out["setup_ms"] = round((session.connected_at - session.answered_at) * 1000)
            first = video.first_frame_at if isinstance(video, VideoReceiver) else None
            if first is not None and first >= session.answered_at:
                # From the answer to the first remote video frame decoded.
                out["first_frame_ms"] = round((first - session.answered_at) * 1000)
        out["reason"] = self.session.machine.reason
        out["path"] = self.path.to_json() if self.path is not None else None
        # Paths lost and recovered inside the call (restarts that connected).
        out["recoveries"] = self.session.machine.recoveries
        # Working paths moved onto fresh TURN allocations before their credentials expired.
        out["renewals"] = self.session.machine.renewals
        if session.failure_detail is not None:
            # Why it failed: a sentence for people, and the engine's technical reason.
            out.update(detail=session.failure_detail, problem=session.machine.problem)
        return out


async def _send_chat_when_open(session: CallSession, text: str) -> None:
    async with asyncio.timeout(15):
        while not session.channel.is_open:
            if session.machine.ended:
                return
            if session.channel.channel is None and session.state is CallState.CONNECTED:
                await asyncio.sleep(1.0)  # the peer may still announce its channel
                if session.channel.channel is None:
                    break
            await asyncio.sleep(0.05)
    try:
        message = session.send_chat(text)
    except ChatUnavailable as exc:
        emit("chat_unavailable", reason=str(exc))
        return
    emit("chat_sent", id=message.id, text=message.text)


async def _meeting_chat_when_heard(session: MeetingSession, text: str) -> None:
    """Send ``text`` to the meeting as soon as someone can receive it (within 60 s)."""
    async with asyncio.timeout(60):
        while not session.machine.ended:
            try:
                message = session.send_chat(text)
            except ChatUnavailable:
                await asyncio.sleep(0.2)
                continue
            emit("chat_sent", id=message.id, text=message.text)
            return


async def _share_screen(session: CallSession, index: int, reporter: CallReporter) -> None:
    """Share screen ``index`` on the call's screen slot; print ``screen_share`` (or why not)."""
    from gui.devices.screen import ScreenTrack, list_screens

    # The callee hears of the data channel a moment after connecting: wait for it (up to
    # 3 s), so that the peer is told of the share; messages queue until the channel opens.
    for _ in range(60):
        if session.channel.channel is not None or session.machine.ended:
            break
        await asyncio.sleep(0.05)
    screens = list_screens()
    if session.machine.ended or index >= len(screens):
        return
    source = screens[index]
    track = ScreenTrack(source)
    try:
        session.start_screen(track)
    except ScreenShareUnavailable as exc:
        track.stop()
        emit("screen_unavailable", reason=str(exc))
        return
    reporter.shared = track

    def lost(reason: str) -> None:
        emit("screen_lost", reason=reason)
        session.stop_screen()

    track.on("lost", lost)
    width, height = source.size
    emit("screen_share", screen=index, name=source.name, width=width, height=height)


async def run_call(
    session: CallSession,
    args: argparse.Namespace,
    answer: Callable[[], Coroutine[Any, Any, None]] | None = None,
    speaker: SpeakerOutput | None = None,
) -> int:
    """Follow a call to its end (answering it with ``answer`` first); returns the exit status.

    The reporter and the signal handlers are in place before anything else, so every
    state is printed and Ctrl+C declines a ringing call as it hangs up a connected one.
    ``speaker`` (``--speaker``) plays what the call receives.
    """
    reporter = CallReporter(session, args, speaker)
    if speaker is not None:
        speaker.attach(session)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, session.hang_up)
    helpers: list[asyncio.Task[None]] = []
    if answer is not None:
        helpers.append(loop.create_task(answer()))

    async def after_connect() -> None:
        await reporter.connected.wait()
        if getattr(args, "share_screen", None) is not None:
            helpers.append(loop.create_task(_share_screen(session, args.share_screen, reporter)))
        if args.chat:
            helpers.append(loop.create_task(_send_chat_when_open(session, args.chat)))
        if args.duration is not None:
            await asyncio.sleep(args.duration)
            session.hang_up()

    helpers.append(loop.create_task(after_connect()))
    if getattr(args, "add", None):
        helpers.append(loop.create_task(_add_people(session, args, reporter)))
    try:
        await session.wait_ended()
    finally:
        for task in helpers:
            task.cancel()
        for task in helpers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    summary = reporter.summary()
    if session.machine.moved_to is not None:
        # The call goes on as a meeting: its figures so far, then the meeting's.
        emit("call_summary", **summary)
        left = None
        if args.duration is not None and session.connected_at is not None:
            left = max(0.0, args.duration - (time.monotonic() - session.connected_at))
        return await follow_meeting(continue_in_meeting(session), args, left, moved=True)
    emit("summary", **summary)
    return 0 if summary["reason"] in NORMAL_ENDINGS else 1


async def _add_people(
    session: CallSession, args: argparse.Namespace, reporter: CallReporter
) -> None:
    """``--add``: once connected (and ``--add-after`` later), move the call into a meeting."""
    await reporter.connected.wait()
    await asyncio.sleep(args.add_after)
    if not session.machine.ended:
        meeting_id = session.move_to_meeting(args.add)
        emit("moving", call_id=session.call_id, meeting_id=meeting_id, invite=args.add)


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


def _video_rate(video: VideoReceiver) -> dict[str, float | None]:
    """Frames per second from the first frame to the newest one."""
    if video.first_frame_at is None or video.latest_at is None or video.frames < 2:
        return {"fps": None}
    span = video.latest_at - video.first_frame_at
    return {"fps": round((video.frames - 1) / span, 2) if span > 0 else None}


class MeetingReporter:
    """Prints a meeting's events as JSON lines and sums up what came from each participant."""

    def __init__(self, session: MeetingSession) -> None:
        self.session = session
        self.joined = asyncio.Event()
        #: When this end began to join (monotonic): first frames are counted from here.
        self.started = time.monotonic()
        #: The picture shown of each participant since a call moved into this meeting.
        self.timelines: dict[str, FrameTimeline] = {}
        session.on("state", self.state)
        session.on("participants", self.participants)
        session.on(
            "participant_left",
            lambda username, reason: emit("participant_left", username=username, reason=reason),
        )
        # Through a media server: connecting, connected, reconnecting (it moved).
        session.on("sfu", lambda state: emit("media_server", state=state))
        session.on("videos", lambda usernames: emit("videos", usernames=list(usernames)))
        # A call that moved into it: its connection switched to the media server, then closed.
        session.on(
            "handover", lambda username, state: emit("handover", username=username, state=state)
        )
        session.on(
            "chat",
            lambda username, message: emit(
                "chat", username=username, id=message.id, text=message.text
            ),
        )
        # Sent before this end joined (or while it was away): once each, marked.
        session.on(
            "chat_history",
            lambda username, message: emit(
                "chat", username=username, id=message.id, text=message.text, history=True
            ),
        )
        session.on(
            "request_failed",
            lambda kind, code, message: emit(
                "request_failed", request=kind, code=code, message=message
            ),
        )

    def state(self, state: MeetingState, reason: str | None) -> None:
        """Print a state change; note when this end is in."""
        machine = self.session.machine
        fields: dict[str, Any] = {"state": state.value, "meeting_id": machine.meeting_id}
        if state is MeetingState.INVITED and machine.inviter is not None:
            fields.update(inviter=machine.inviter, title=machine.title)
        if state is MeetingState.JOINED:
            fields.update(host=machine.host, title=machine.title, topology=machine.topology)
            self.joined.set()
        if reason is not None:
            fields["reason"] = reason
        emit("state", **fields)

    def follow_pictures(self) -> None:
        """Measure from now the picture of each participant linked already (the call's other
        party) as a window shows it: whichever receiver the session names last."""
        for username, links in self.session.history.items():
            video = links[-1].receivers.get("camera")
            if isinstance(video, VideoReceiver):
                self.timelines[username] = FrameTimeline(video)

        def shown(username: str, slot: str, receiver: object) -> None:
            timeline = self.timelines.get(username)
            if slot == "camera" and timeline is not None and isinstance(receiver, VideoReceiver):
                timeline.follow(receiver)

        self.session.on("remote_track", shown)

    @staticmethod
    def participants(change: ParticipantsChanged) -> None:
        """Print who is in, what they send, and how this end's link to each stands."""
        emit(
            "participants",
            host=change.host,
            invited=list(change.invited),
            participants=[
                {
                    "username": p.username,
                    "display_name": p.display_name,
                    "audio": p.audio,
                    "video": p.video,
                    "screen": p.screen,
                    "link": p.link.value,
                    **({"problem": p.problem} if p.problem else {}),
                }
                for p in change.participants
            ],
        )

    def summary(self) -> dict[str, Any]:
        """What came from each participant this end was ever linked to, over all its links."""
        figures: dict[str, Any] = {}
        for username, links in self.session.history.items():
            out: dict[str, Any] = {
                "frames_received": 0,
                "width": None,
                "height": None,
                "audio_ms_received": 0,
                "audio_peak_hz": None,
                "links": len(links),
                "connected": any(link.connected_at is not None for link in links),
            }
            for link in links:  # oldest first: the newest link's figures win
                video = link.receivers.get("camera")
                audio = link.receivers.get("audio")
                if isinstance(video, VideoReceiver) and video.frames:
                    out["frames_received"] += video.frames
                    out.update(width=video.width, height=video.height, **_video_rate(video))
                    first = video.first_frame_at
                    if out.get("first_frame_ms") is None and first and first >= self.started:
                        out["first_frame_ms"] = round(1000 * (first - self.started))
                        # On the machine's monotonic clock, which every process shares.
                        out["first_frame_at"] = round(first, 4)
                if isinstance(audio, AudioReceiver) and audio.frames:
                    out["audio_ms_received"] += round(audio.received_ms)
                    peak = audio.peak_hz(1.0)
                    if peak is not None:
                        out["audio_peak_hz"] = round(peak, 1)
            timeline = self.timelines.get(username)
            if timeline is not None:
                out.update(timeline.figures())
            figures[username] = out
        return {
            "meeting_id": self.session.meeting_id,
            "joining_at": round(self.started, 4),
            "reason": self.session.machine.reason,
            "participants": figures,
        }


async def run_meeting(
    client: SignalingClient,
    args: argparse.Namespace,
    media: LocalMedia,
    options: CallOptions,
    first: FirstEvent | None = None,
) -> int:
    """Create, join or answer a meeting and follow it to this end's part's end."""
    assert client.user is not None
    me = str(client.user["username"])
    if args.meet_command == "create":
        session = MeetingSession.create(
            client, me, media, invite=args.invite, title=args.title, options=options
        )
    elif args.meet_command == "join":
        session = MeetingSession.join(client, me, args.meeting_id, media, options)
    else:
        assert first is not None
        event = await first.wait(args.wait)
        session = MeetingSession.invited(client, me, event, media, options)
    answer = None
    if args.meet_command == "answer":
        answer = session.decline if args.decline else session.accept
    return await follow_meeting(session, args, args.duration, answer=answer)


async def follow_meeting(
    session: MeetingSession,
    args: argparse.Namespace,
    duration: float | None,
    *,
    answer: Callable[[], None] | None = None,
    moved: bool = False,
) -> int:
    """Follow ``session`` to this end's part's end (leaving ``duration`` s after joining);
    ``answer`` accepts or declines an invitation first. ``moved``: the meeting continues this
    end's call, whose picture from the other party is measured from now (``longest_gap_ms``,
    ``largest_frame_skip`` in the summary)."""
    reporter = MeetingReporter(session)
    if getattr(args, "stats", False):
        session.on(
            "link_stats",
            lambda username, sample: emit("link_stats", username=username, **sample.to_json()),
        )
    if moved:
        emit("moved", meeting_id=session.meeting_id)
        reporter.follow_pictures()
    loop = asyncio.get_running_loop()
    finish = session.end if getattr(args, "end", False) else session.leave
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, finish)
    if answer is not None:
        answer()

    async def leave_after(seconds: float) -> None:
        await reporter.joined.wait()
        await asyncio.sleep(seconds)
        finish()

    helpers = [loop.create_task(leave_after(duration))] if duration is not None else []
    if getattr(args, "chat", None) and not moved:  # (a call's --chat went to the call)
        helpers.append(loop.create_task(_meeting_chat_when_heard(session, args.chat)))
    try:
        await session.wait_ended()
    finally:
        for helper in helpers:
            helper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await helper
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    summary = reporter.summary()
    emit("summary", **summary)
    return 0 if summary["reason"] in MEETING_NORMAL_ENDINGS else 1


async def run(args: argparse.Namespace) -> int:
    """Carry out one command."""
    options = call_options(args)
    context = server_tls(args)
    media = local_media(args) if args.command in ("call", "answer", "meet") else None
    speaker: SpeakerOutput | None = None
    if media is not None and getattr(args, "speaker", "none") != "none":
        try:
            speaker = SpeakerOutput(args.speaker, media)
        except CliError:
            media.stop()
            raise
    first: FirstEvent | None = None
    if args.command == "answer":
        first = FirstEvent("call.incoming", "call")
    elif args.command == "meet" and args.meet_command == "answer":
        first = FirstEvent("meeting.invited", "invitation")
    try:
        client = await sign_in(args, context, first)
    except CliError:
        if speaker is not None:
            speaker.stop()
        if media is not None:
            media.stop()
        raise
    try:
        if args.command == "contacts":
            reply = await client.request("contacts.list")
            emit("contacts", contacts=reply["contacts"])
            return 0
        if args.command == "add":
            reply = await client.request("contacts.request", username=args.peer)
            emit("contact", contact=reply["contact"])
            return 0
        if args.command == "guest-link":
            return await run_guest_link(client, args)
        if args.command == "account":
            return await run_account(client, args)
        assert media is not None
        if args.command == "meet":
            return await run_meeting(client, args, media, options, first)
        if args.command == "call":
            session = CallSession.outgoing(client, args.peer.lower(), media, options)
            return await run_call(session, args, speaker=speaker)
        assert first is not None
        event = await first.wait(args.wait)
        emit(
            "incoming", call_id=event["call_id"], caller=event.get("from"), media=event.get("media")
        )
        session = CallSession.incoming(client, event, media, options)

        async def answer() -> None:
            if args.accept_after:
                # Let it ring, unless the caller gives up (or Ctrl+C declines) first.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(session.wait_ended(), args.accept_after)
            if not session.machine.ended:
                session.decline() if args.decline else session.accept()

        return await run_call(session, args, answer, speaker)
    except RequestError as exc:
        raise CliError(f"{exc.code}: {exc.message}") from None
    except NotConnected as exc:
        raise CliError(str(exc)) from None
    finally:
        if speaker is not None:
            speaker.stop()
        if media is not None:
            media.stop()
        await client.close()


def _display_problem() -> str | None:
    """Why no display can be reached (checked before Qt, which would abort), or None."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith(("xcb", "wayland")):
        return f"there is no screen to share with QT_QPA_PLATFORM={platform}"
    display = os.environ.get("DISPLAY", "")
    if not display and not os.environ.get("WAYLAND_DISPLAY"):
        return "there is no screen to share: DISPLAY is not set"
    if display.startswith(":") and not os.environ.get("WAYLAND_DISPLAY"):
        number = display[1:].split(".")[0]
        if number.isdigit() and not os.path.exists(f"/tmp/.X11-unix/X{number}"):
            return f"there is no screen to share: no X server on display {display}"
    return None


def run_sharing(args: argparse.Namespace) -> int:
    """:func:`run` on a QGuiApplication and a qasync loop, for devices and --share-screen.

    A screen to share is checked first (a number that does not exist is a bad argument);
    a camera or microphone alone needs no display (Qt then runs offscreen). Qt is torn
    down before the interpreter exits.
    """
    sharing = getattr(args, "share_screen", None) is not None
    if sharing:
        problem = _display_problem()
        if problem is not None:
            raise BadArguments(f"--share-screen: {problem}")
    elif not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import gc

    from PySide6.QtGui import QGuiApplication

    from gui.qt_loop import QtEventLoop

    if not args.verbose and "QT_LOGGING_RULES" not in os.environ:
        # Qt Multimedia's start-up chatter (FFmpeg version, no PipeWire on X11) is not ours
        # to print; why capture cannot work is said in words below.
        os.environ["QT_LOGGING_RULES"] = (
            "qt.multimedia.symbolsresolver=false;qt.multimedia.ffmpeg.info=false"
        )
    if not os.environ.get("WAYLAND_DISPLAY") and os.environ.get("XDG_SESSION_TYPE", "") in (
        "",
        "tty",
    ):
        os.environ["XDG_SESSION_TYPE"] = "x11"  # Qt's fast X11 capture (see prefer_x11_capture)
    app = QGuiApplication.instance() or QGuiApplication(["parley-cli"])
    assert isinstance(app, QGuiApplication)
    try:
        if not sharing:
            return asyncio.run(run(args), loop_factory=lambda: QtEventLoop(app))
        screens = QGuiApplication.screens()
        index = args.share_screen
        if index >= len(screens):
            known = ", ".join(
                f"{i} = {s.name()} {s.size().width()}x{s.size().height()}"
                for i, s in enumerate(screens)
            )
            raise BadArguments(
                f"--share-screen {index}: there is no screen {index} "
                f"(this display has {len(screens)}: {known or 'none'})"
            )
        from gui.devices.screen import capture_supported

        support = capture_supported()
        if not support.supported:
            raise BadArguments(f"--share-screen: {support.reason}")
        return asyncio.run(run(args), loop_factory=lambda: QtEventLoop(app))
    finally:
        gc.collect()
        app.processEvents()
        app.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``parley-cli``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        if needs_qt(args):
            return run_sharing(args)
        return asyncio.run(run(args))
    except CliError as exc:
        print(f"parley-cli: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, BadArguments) else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
