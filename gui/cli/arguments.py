"""parley-cli's command line: the parser, its commands, and the parsers of option values."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import platformdirs

from gui.core import guest_links
from gui.core.servers import server_argument
from signaling import __version__


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
