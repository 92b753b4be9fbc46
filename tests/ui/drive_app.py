"""Run the real app (``gui.app.main.main``) in this process and drive it through one call.

Used by ``test_app_process.py`` as a child process: it registers through the
sign-in screen, calls the Echo Test, checks its own pattern comes back, hangs
up and quits (``call``, the default), or only starts and quits (``start``).
The process's exit status is the app's.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from gui.app.main import main
from gui.core.call_machine import CallState

if TYPE_CHECKING:  # imported by the app itself, after it routes Qt's messages
    from gui.app.ui import ParleyUi


async def until(predicate, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


async def drive(ui: ParleyUi) -> None:
    try:
        ui.profile.settings.synthetic_media = True
        await until(lambda: ui.controller.default_server is not None or ui.main.isVisible())
        form = ui.main.sign_in
        form._set_mode(registering=True)
        form.username.setText("driver")
        form.password.setText("correct horse battery")
        form.submit.click()
        await until(lambda: ui.controller.user is not None)
        session = ui.controller.place_call("echo", video=True)
        assert session is not None
        await until(lambda: session.state is CallState.CONNECTED)
        await until(lambda: ui.calls and ui.calls[0].remote.frames_given > 30)
        print(f"frames shown: {ui.calls[0].remote.frames_given}", flush=True)
        ui.calls[0].hang_up_button.click()
        await until(lambda: session.machine.ended)
        print("call ended:", session.machine.reason, flush=True)
    except BaseException as exc:
        print(f"driver failed: {exc!r}", flush=True)
        raise
    finally:
        ui.request_quit()


async def start_and_quit(ui: ParleyUi) -> None:
    """Only start: the sign-in screen and the built-in server come up, then quit."""
    try:
        await until(lambda: ui.controller.default_server is not None and ui.main.isVisible())
        print("started", flush=True)
    finally:
        ui.request_quit()


DRIVERS = {"call": drive, "start": start_and_quit}

if __name__ == "__main__":
    arguments = sys.argv[1:]
    chosen = DRIVERS[arguments.pop(0)] if arguments and arguments[0] in DRIVERS else drive
    sys.exit(main(["--profile", "driver", *arguments], driver=chosen))
