"""Regenerate the screenshots in docs/screenshots/ on a real X server (Xvfb).

    .venv/bin/python docs/make_screenshots.py

Starts Xvfb on a free display (unless ``--display`` names a running one), then runs two
Parley profiles in one process against the built-in server: Ada and Grace become contacts,
Ada calls Grace, and the main window, the incoming call and the call in progress are
captured; then Ada meets Grace, Alan and Edsger (the meeting window). Nothing touches your
own profiles: everything lives in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the app, and tests.xvfb, from this checkout
OUT = ROOT / "docs" / "screenshots"


@contextlib.contextmanager
def xvfb(display: str | None) -> Iterator[str]:
    """A running X server: the one named, or a new Xvfb stopped afterwards."""
    if display:
        yield display
        return
    from tests.xvfb import Xvfb, XvfbError

    try:
        server = Xvfb(1440, 900)
    except XvfbError as exc:
        sys.exit(str(exc))
    with server:
        yield server.display


async def until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    """Let Qt and asyncio run until ``predicate()`` holds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def scenario(app: object, only_meeting: bool = False) -> None:
    """Two people, one call; a picture at each step."""
    from gui.app.ui import ParleyUi

    def make(name: str) -> ParleyUi:
        ui = ParleyUi(app, name, None)  # type: ignore[arg-type]
        ui.profile.settings.synthetic_media = True
        ui.profile.settings.embedded_port = 0
        ui.profile.settings.keep_signed_in = False
        ui.profile.settings.theme = "light"
        ui.apply_theme()
        ui.main.show()
        return ui

    ada, grace = make("ada"), make("grace")
    try:
        await ada.controller.start()
        await grace.controller.start()
        await ada.controller.sign_in(
            None, "ada", "analytical engine", register=True, display_name="Ada Lovelace"
        )
        await grace.controller.sign_in(
            None, "grace", "compiler compiler", register=True, display_name="Grace Hopper"
        )
        for name, shown in (("alan", "Alan Turing"), ("edsger", "Edsger Dijkstra")):
            from gui.core.signaling_client import SignalingClient

            other = SignalingClient(ada.controller.default_server or "")
            await other.connect()
            await other.register(name, "a long password", shown)
            await other.request("contacts.request", username="ada")
            await other.close()
        await ada.controller.add_contact("grace")
        await grace.controller.accept_contact("ada")
        await ada.controller.accept_contact("alan")
        await until(
            lambda: (
                ada.controller.contacts.contact("grace") is not None
                and ada.controller.contacts.contact("grace").presence == "online"
            )
        )
        await asyncio.sleep(0.3)
        ada.main.resize(420, 640)
        await asyncio.sleep(0.3)
        if only_meeting:
            await meeting_scene(ada, grace)
            return
        ada.main.grab().save(str(OUT / "main-window.png"))

        session = ada.controller.place_call("grace", video=True)
        assert session is not None
        await until(lambda: grace.incoming.isVisible())
        await asyncio.sleep(0.5)
        grace.incoming.grab().save(str(OUT / "incoming-call.png"))
        grace.incoming.answer_video.click()
        await until(lambda: ada.calls and ada.calls[0].remote.frames_given > 60)
        window = ada.calls[0]
        window.resize(1100, 640)
        window.chat_button.click()
        grace.calls[0].chat_input.setText("Hello Ada! The pattern is crisp.")
        grace.calls[0].chat_send.click()
        window.chat_input.setText("Hi Grace!")
        window.chat_send.click()
        await asyncio.sleep(2.5)
        window.grab().save(str(OUT / "call.png"))
        window.hang_up_button.click()
        await until(lambda: session.machine.ended)
        await until(lambda: not ada.calls and ada.controller.call is None)
        await meeting_scene(ada, grace)
    finally:
        await grace.shutdown()
        await ada.shutdown()


async def meeting_scene(ada: Any, grace: Any) -> None:
    """Ada meets Grace, Alan and Edsger: Alan speaks (the ring), Edsger is muted."""
    from gui.core.meeting_session import MeetingSession
    from gui.core.peer_link import LocalMedia
    from gui.core.signaling_client import SignalingClient
    from gui.media.pattern import PatternVideoTrack
    from gui.media.tone import ToneAudioTrack

    await ada.controller.accept_contact("edsger")
    peers = []
    for name in ("alan", "edsger"):
        client = SignalingClient(ada.controller.default_server or "")
        await client.connect()
        await client.login(name, "a long password")
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        client.on_event(lambda m, q=queue: m.get("type") == "meeting.invited" and q.put_nowait(m))
        peers.append((name, client, queue))
    meeting = ada.controller.start_meeting(["grace", "alan", "edsger"])
    assert meeting is not None
    await until(lambda: grace.meeting_invitation.isVisible())
    grace.meeting_invitation.join_video.click()
    sessions = []
    for name, client, queue in peers:
        event = await asyncio.wait_for(queue.get(), 10)
        media = LocalMedia(audio=ToneAudioTrack(300), camera=PatternVideoTrack(320, 180, fps=10))
        session = MeetingSession.invited(client, name, event, media)
        session.accept()
        sessions.append(session)
    window = ada.meetings[0]
    window.resize(1100, 640)
    await until(lambda: grace.meetings)
    grace.meetings[0].mic_button.click()
    sessions[1].set_audio_enabled(False)
    await until(
        lambda: (
            len(window.tile_views) == 4
            and all(v.video.frames_given > 20 for u, v in window.tile_views.items() if u != "ada")
        ),
        40,
    )
    window.chat_button.click()
    grace.meetings[0].chat.input.setText("Can everyone see the pattern?")
    grace.meetings[0].chat.send.click()
    await until(lambda: window.tile_views["alan"].speaking and window.chat_model.rowCount())
    await asyncio.sleep(1.0)
    window.grab().save(str(OUT / "meeting.png"))
    meeting.end()
    await meeting.wait_ended()
    for session in sessions:
        await session.wait_ended()
    for _, client, _ in peers:
        await client.close()


def main() -> int:
    """Run the scenario under X and write the PNGs."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--display", help="use this running X display instead of a new Xvfb")
    parser.add_argument("--meeting", action="store_true", help="only the meeting window")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with xvfb(args.display) as display, tempfile.TemporaryDirectory() as home:
        os.environ.update(
            DISPLAY=display,
            QT_QPA_PLATFORM="xcb",
            HOME=home,
            XDG_CONFIG_HOME=f"{home}/config",
            XDG_DATA_HOME=f"{home}/data",
            XDG_RUNTIME_DIR=f"{home}/run",
        )
        os.makedirs(f"{home}/run", mode=0o700)
        from PySide6.QtWidgets import QApplication

        from gui.app.main import destroy_qt
        from gui.qt_loop import QtEventLoop

        app = QApplication(["parley"])
        app.setApplicationName("Parley")
        asyncio.run(scenario(app, args.meeting), loop_factory=lambda: QtEventLoop(app))
        destroy_qt(app)
    names = ["meeting"] if args.meeting else ["main-window", "incoming-call", "call", "meeting"]
    for name in names:
        print(OUT / f"{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
