"""The real desktop app (``gui.app.main.main``, offscreen) in a lab home, calling a contact.

Run by ``tests/net/test_app_lab.py`` inside a home's namespace (``ip netns exec``)::

    python -m tests.net.drive_app --server URL --user U --password P --call PEER --stop-file F

It signs in through the sign-in screen with the app's synthetic media (the test pattern and
the tone), places a video call to ``PEER`` and, twice a second until ``F`` exists (or the call
ends, or 180 s pass), prints what the call window shows as one JSON line (``event`` ``window``:
the call's state, the status line over the video, the quality indicator's tooltip, the remote
frames shown so far); then it hangs up, prints ``event`` ``ended`` with the reason, and quits
the app the normal way. The exit status is the app's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gui.app.main import main
from gui.core.call_machine import CallState

if TYPE_CHECKING:  # imported by the app itself, after it routes Qt's messages
    from gui.app.ui import ParleyUi

LONGEST_S = 180.0


def say(event: str, **fields: Any) -> None:
    """One JSON line on stdout."""
    print(json.dumps({"event": event, **fields}), flush=True)


async def until(predicate: Any, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


def driver(args: argparse.Namespace) -> Any:
    async def drive(ui: ParleyUi) -> None:
        try:
            ui.profile.settings.synthetic_media = True
            await until(lambda: ui.main.isVisible(), 30)
            form = ui.main.sign_in
            form.server.setText(args.server)
            form.username.setText(args.user)
            form.password.setText(args.password)
            form.submit.click()
            await until(lambda: ui.controller.user is not None, 60)
            say("signed_in", user=args.user)
            session = ui.controller.place_call(args.call, video=True)
            assert session is not None, "the app placed no call"
            await until(lambda: bool(ui.calls), 10)
            window = ui.calls[0]
            stop = Path(args.stop_file)
            deadline = time.monotonic() + LONGEST_S
            while not await asyncio.to_thread(stop.exists) and not session.machine.ended:
                if time.monotonic() > deadline:
                    break
                say(
                    "window",
                    state=session.state.value,
                    status=window.status.text() if window.status.isVisible() else "",
                    tooltip=window.quality.toolTip(),
                    frames=window.remote.frames_given,
                )
                await asyncio.sleep(0.5)
            if session.state is not CallState.ENDED and not session.machine.ended:
                window.hang_up_button.click()
            await until(lambda: session.machine.ended, 30)
            say("ended", reason=session.machine.reason, frames=window.remote.frames_given)
        except BaseException as exc:
            say("failed", error=repr(exc))
            raise
        finally:
            ui.request_quit()

    return drive


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for name in ("--server", "--user", "--password", "--call", "--stop-file"):
        parser.add_argument(name, required=True)
    parsed = parser.parse_args()
    # -v: the app's log on stderr, for the test's failure messages.
    sys.exit(main(["--profile", "lab", "--server", parsed.server, "-v"], driver=driver(parsed)))
