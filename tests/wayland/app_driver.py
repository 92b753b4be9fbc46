"""The real app, driven from inside its own process by commands on its standard input.

``python -m tests.wayland.app_driver [app arguments]`` runs ``gui.app.main.main`` (exactly what
``parley`` runs) with a driver that reads one JSON command per line from stdin and answers
each with one line ``DRIVER {json}`` on stdout: ``{"ok": true, ...}`` or ``{"ok": false,
"error": "..."}``. The test process (another user: the app runs as the Wayland desktop's user)
sends the commands through :class:`tests.wayland.conftest.AppProcess`. The app quits the
normal way on ``{"do": "quit"}`` or at the end of its input, and the process's exit status is
the app's.

Commands (``do``): ``state``, ``sign_in`` (user, password: through the sign-in screen),
``call`` (peer: placed from the app, until the call window shows it connected), ``answer``
(the incoming-call window, answered with video),
``click_share`` (the call window's share button, as a person clicks it), ``wait_sharing``
(until the screen track has sent a frame), ``wait_share_stopped``, ``pattern`` (show: a
:class:`~tests.screen.helpers.PatternWindow`, which sway floats at a known place),
``hang_up``, ``quit``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gui.app.call_window import CallWindow
    from gui.app.ui import ParleyUi

MARKER = "DRIVER "


def answer(**fields: Any) -> None:
    print(MARKER + json.dumps(fields), flush=True)


async def until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.02)


class Driver:
    """Runs the commands on the app's own loop."""

    def __init__(self, ui: ParleyUi) -> None:
        self.ui = ui
        self.pattern: Any = None
        # No camera or microphone here: the app's own synthetic ones (as in the settings).
        ui.profile.settings.synthetic_media = True

    @property
    def window(self) -> CallWindow:
        if not self.ui.calls:
            raise RuntimeError("no call window")
        return self.ui.calls[0]

    def state(self) -> dict[str, Any]:
        from PySide6.QtGui import QGuiApplication

        from gui.devices.screen import capture_supported

        support = capture_supported()
        out: dict[str, Any] = {
            "platform": QGuiApplication.platformName(),
            "screens": [s.name() for s in QGuiApplication.screens()],
            "signed_in": self.ui.controller.user is not None,
            "support": {
                "supported": support.supported,
                "backend": support.backend,
                "reason": support.reason,
                "system_picker": support.system_picker,
            },
            "calls": len(self.ui.calls),
        }
        if self.ui.calls:
            window = self.window
            session = window.session
            button = window.screen_button
            track = session.media.screen
            out["call"] = {
                "state": session.state.name,
                "visible": window.isVisible(),
                "share_enabled": button.isEnabled(),
                "share_checked": button.isChecked(),
                "share_name": button.accessibleName(),
                "share_tooltip": button.toolTip(),
                "sharing": session.sharing_screen,
                "note": window.sharing_note.text(),
                "note_visible": window.sharing_note.isVisible(),
                "picker": window.picker is not None and window.picker.isVisible(),
                "screen_frames": getattr(track, "frames_delivered", None),
                # Where a share that does not start or stop is stuck (a failure's message).
                "screen_capture": None
                if track is None or not hasattr(track, "capture")
                else {
                    "active": track.capture.isActive(),
                    "error": track.capture.errorString(),
                    "lost": track.lost_reason,
                    "ready": track.readyState,
                },
                "remote_frames": window.remote.frames_given,
                "received": {k: getattr(r, "frames", None) for k, r in session.receivers.items()},
            }
        return out

    async def run(self, command: dict[str, Any]) -> dict[str, Any]:
        what = command.get("do")
        if what == "state":
            await until(lambda: self.ui.main.isVisible(), 30, "the main window")
            return self.state()
        if what == "sign_in":
            return await self.sign_in(command["user"], command["password"])
        if what == "call":
            return await self.call(command["peer"])
        if what == "answer":
            return await self.answer()
        if what == "click_share":
            self.window.screen_button.click()
            return self.state()
        if what == "wait_sharing":
            return await self.wait_sharing(float(command.get("timeout", 20)))
        if what == "wait_share_stopped":
            window = self.window
            await until(
                lambda: not window.session.sharing_screen and not window.screen_button.isChecked(),
                float(command.get("timeout", 20)),
                "the share to stop",
            )
            return self.state()
        if what == "pattern":
            return await self.show_pattern()
        if what == "hang_up":
            window = self.window
            window.hang_up_button.click()
            await until(lambda: not self.ui.calls, 15, "the call window to close")
            return self.state()
        raise ValueError(f"unknown command {what!r}")

    async def sign_in(self, user: str, password: str) -> dict[str, Any]:
        sign_in = self.ui.main.sign_in
        await until(sign_in.isVisible, 30, "the sign-in screen")
        if sign_in.registering:
            sign_in.switch.click()
        sign_in.username.setText(user)
        sign_in.password.setText(password)
        sign_in.submit.click()
        await until(lambda: self.ui.controller.user is not None, 30, "signing in")
        await until(lambda: self.ui.main.stack.currentWidget() is self.ui.main.home, 10, "home")
        return self.state()

    async def call(self, peer: str) -> dict[str, Any]:
        from gui.core.call_machine import CallState

        session = self.ui.controller.place_call(peer, video=True)
        if session is None:
            raise RuntimeError("the app did not place the call")
        await until(lambda: session.state is CallState.CONNECTED, 60, "the call to connect")
        await until(lambda: self.ui.calls and self.window.isVisible(), 10, "the call window")
        await asyncio.sleep(0.5)  # the share button follows what the peer can receive
        return self.state()

    async def answer(self) -> dict[str, Any]:
        """Wait for the incoming-call window and answer with video, as a person would."""
        from gui.core.call_machine import CallState

        incoming = self.ui.incoming
        await until(incoming.isVisible, 30, "the incoming-call window")
        shown = {"incoming_visible": True, "incoming_title": incoming.windowTitle()}
        incoming.answer_video.click()
        await until(lambda: bool(self.ui.calls), 10, "the call window")
        window = self.window
        await until(lambda: window.session.state is CallState.CONNECTED, 30, "connected")
        await until(window.isVisible, 10, "the call window shown")
        return {**self.state(), **shown}

    async def wait_sharing(self, timeout: float) -> dict[str, Any]:
        session = self.window.session

        def sent() -> bool:
            track = session.media.screen
            return bool(track is not None and getattr(track, "frames_delivered", 0) > 0)

        await until(sent, timeout, "the first shared frame to be sent")
        track: Any = session.media.screen
        out = self.state()
        out["first_frame_s"] = (
            None
            if track.first_frame_at is None or track.started_at is None
            else track.first_frame_at - track.started_at
        )
        return out

    async def show_pattern(self) -> dict[str, Any]:
        from tests.screen.helpers import PatternWindow

        if self.pattern is None:
            self.pattern = PatternWindow()
        self.pattern.show()
        await until(lambda: self.pattern.paints > 0, 10, "the pattern painted")
        await asyncio.sleep(0.5)  # sway places it (floating) and shows it
        return {"size": [self.pattern.width(), self.pattern.height()]}


async def drive(ui: ParleyUi) -> None:
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read, name="driver-stdin", daemon=True).start()
    driver = Driver(ui)
    try:
        while (line := await lines.get()) is not None:
            if not line.strip():
                continue
            command = json.loads(line)
            if command.get("do") == "quit":
                answer(ok=True)
                break
            try:
                answer(ok=True, **await driver.run(command))
            except Exception as exc:
                answer(ok=False, error=f"{type(exc).__name__}: {exc}", state=driver.state())
    finally:
        if driver.pattern is not None:
            driver.pattern.close()
        ui.request_quit()


def main() -> int:
    from gui.app.main import main as app_main

    return app_main(sys.argv[1:], driver=drive)


if __name__ == "__main__":
    sys.exit(main())
