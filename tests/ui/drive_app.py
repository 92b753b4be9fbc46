"""Run the real app (``gui.app.main.main``) in this process and drive it through one call.

Used by ``test_app_process.py`` as a child process: it registers through the
sign-in screen, calls the Echo Test, checks its own pattern comes back, hangs
up and quits. The process's exit status is the app's.
"""

from __future__ import annotations

import asyncio
import sys

from gui.app.main import main
from gui.app.ui import ParleyUi
from gui.core.call_machine import CallState


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


if __name__ == "__main__":
    sys.exit(main(["--profile", "driver", *sys.argv[1:]], driver=drive))
