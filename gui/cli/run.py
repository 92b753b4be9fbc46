"""Carrying out one command: plain asyncio, or on Qt for devices and --share-screen;
the entry point of ``parley-cli``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Sequence

from gui.cli.account import run_account, run_guest_link
from gui.cli.arguments import build_parser
from gui.cli.calls import run_call
from gui.cli.connection import FirstEvent, call_options, server_tls, sign_in
from gui.cli.media import SpeakerOutput, local_media, needs_qt
from gui.cli.meetings import run_meeting
from gui.cli.output import BadArguments, CliError, emit
from gui.core.call_session import CallSession
from gui.core.signaling_client import NotConnected, RequestError


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
