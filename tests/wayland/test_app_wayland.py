"""The app on a real (headless) Wayland desktop: sway, PipeWire, the desktop portal.

The app runs natively on Wayland (``QT_QPA_PLATFORM=wayland``) as the desktop's user, driven
through its command pipe; the other end of its calls is an in-process :class:`CallSession`
that receives what the app sends and looks at the pixels.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest

from gui.core.call_machine import CallState
from gui.core.call_session import CallSession
from gui.core.signaling_client import SignalingClient
from gui.media.analysis import VideoReceiver
from signaling.server import SignalingServer
from tests.core.test_call_session import answer_next_call, client_for, media
from tests.screen.helpers import pattern_mismatches, pattern_regions, rgb
from tests.waiting import until
from tests.wayland.conftest import AppFactory, AppProcess
from tests.wayland.session import PATTERN_AT, WaylandSession

PASSWORD = "correct horse"  # what client_for registers with
SCREEN = (1280, 720)

pytestmark = pytest.mark.slow


async def friends(server: SignalingServer) -> tuple[SignalingClient, SignalingClient]:
    """alice and bob, registered and contacts of each other."""
    alice = await client_for(server, "alice")
    bob = await client_for(server, "bob")
    await alice.request("contacts.request", username="bob")
    await bob.request("contacts.accept", username="alice")
    return alice, bob


async def friends_for_the_app(server: SignalingServer) -> SignalingClient:
    """alice (the app signs in as her) and bob (in-process, who will answer)."""
    alice, bob = await friends(server)
    await alice.close()
    return bob


async def signed_in_call(app: AppProcess, bob: SignalingClient) -> tuple[dict, CallSession]:
    """The app signs in as alice and calls bob, who answers in-process."""
    state = await app.do("state")
    assert state["platform"] == "wayland", state
    assert state["screens"] == ["HEADLESS-1"], state
    await app.do("sign_in", user="alice", password=PASSWORD)
    # Listening from now on (answer_next_call gives the call 10 s to ring).
    answering = asyncio.create_task(answer_next_call(bob, media(880)))
    state = await app.do("call", peer="bob")
    callee = await asyncio.wait_for(answering, 30)
    await until(lambda: callee.state is CallState.CONNECTED, 15, "the callee connected")
    return state, callee


def received(callee: CallSession, slot: str) -> int:
    receiver = callee.receivers.get(slot)
    return 0 if receiver is None else receiver.frames


async def camera_goes_on(callee: CallSession, what: str = "the call going on") -> None:
    """Until the peer has had ten more pictures from the app's camera (10 s at the most)."""
    camera = received(callee, "camera")
    await until(lambda: received(callee, "camera") > camera + 10, 10, what)


async def app_state_until(app: AppProcess, check: Callable[[dict], bool], failure: str) -> dict:
    """The app's state once ``check`` holds of it (asked every 0.1 s, 100 times at the most);
    else an AssertionError saying ``failure`` and the last state."""
    for _ in range(100):
        state = await app.do("state")
        if check(state):
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{failure}: {state}")


async def hang_up_and_quit(app: AppProcess, bob: SignalingClient) -> None:
    """The app hangs up and quits with status 0; then bob signs out."""
    await app.do("hang_up")
    assert await app.quit() == 0, app.output()
    await bob.close()


async def test_the_app_runs_on_wayland_signs_in_calls_and_quits(
    wayland: WaylandSession, server: SignalingServer, app_on: AppFactory
) -> None:
    bob = await friends_for_the_app(server)
    app = await app_on(wayland, server.url)
    state, callee = await signed_in_call(app, bob)
    assert state["call"]["visible"] and state["call"]["state"] == "CONNECTED"
    await until(lambda: received(callee, "camera") > 10, 40, "the app's camera at the peer")
    await app.do("hang_up")
    await until(lambda: callee.machine.ended, 10, "the call to end at the peer")
    assert await app.quit() == 0, app.output()
    await bob.close()


async def test_the_app_answers_an_incoming_call_on_wayland(
    wayland: WaylandSession, server: SignalingServer, app_on: AppFactory
) -> None:
    alice, bob = await friends(server)
    await bob.close()  # the app signs in as bob
    app = await app_on(wayland, server.url)
    await app.do("state")
    await app.do("sign_in", user="bob", password=PASSWORD)
    caller = CallSession.outgoing(alice, "bob", media(440))
    answered = await app.do("answer")
    assert answered["incoming_visible"] and answered["call"]["state"] == "CONNECTED"
    await until(lambda: caller.state is CallState.CONNECTED, 15, "the caller connected")
    # Both ways: the answering app's camera at the caller, the caller's in the app's window.
    await until(lambda: received(caller, "camera") > 10, 40, "the app's camera at the caller")
    await app_state_until(
        app,
        lambda state: state["call"]["remote_frames"] > 10,
        "the caller's camera did not reach the app",
    )
    caller.hang_up()
    await app_state_until(  # the app's call ends and its window goes
        app,
        lambda state: not state["calls"] or state["call"]["state"] == "ENDED",
        "the app's call did not end",
    )
    assert await app.quit() == 0, app.output()
    await alice.close()


async def test_a_window_shared_through_the_portal_arrives_and_stops_from_outside(
    wayland: WaylandSession, server: SignalingServer, app_on: AppFactory
) -> None:
    bob = await friends_for_the_app(server)
    app = await app_on(wayland, server.url)
    pattern = await app.do("pattern")
    state, callee = await signed_in_call(app, bob)
    assert state["support"] == {
        "supported": True,
        "backend": "pipewire",
        "reason": "",
        "system_picker": True,
    }
    assert state["call"]["share_enabled"], state

    # The share: no picker of ours (the portal's chooser decides: HEADLESS-1 here).
    state = await app.do("click_share")
    assert not state["call"]["picker"]
    sharing = await app.do("wait_sharing", timeout=30)
    assert sharing["call"]["share_name"] == "Stop sharing"
    assert sharing["call"]["note"] == "You are sharing what you chose in the system's dialog."

    # At the peer: the pattern where sway put its window, the camera still flowing.
    width, height = pattern["size"]
    problems: list[str] = ["no frame yet"]

    def shows_pattern() -> bool:
        receiver = callee.receivers.get("screen")
        frame = receiver.latest_frame if isinstance(receiver, VideoReceiver) else None
        if frame is None:
            return False
        assert (frame.width, frame.height) == SCREEN
        regions = pattern_regions(*PATTERN_AT, width, height, frame.width / SCREEN[0])
        problems[:] = pattern_mismatches(rgb(frame), regions)
        return not problems

    try:
        await until(shows_pattern, 20, "the pattern at the peer")
    except TimeoutError:
        raise AssertionError(f"the shared screen does not show the pattern: {problems}") from None
    await camera_goes_on(callee, "the camera going on")

    # Stopped from outside, as the desktop's indicator does: the portal backend closes the
    # session (and its PipeWire stream).
    closed = close_screencast_sessions(wayland)
    assert closed, "no screen-cast session to close on the portal backend"
    stopped = await app.do("wait_share_stopped", timeout=15)
    call = stopped["call"]
    assert call["state"] == "CONNECTED" and call["share_name"] == "Share screen", call
    assert call["note_visible"] and "stopped from outside Parley" in call["note"], call
    assert call["share_enabled"]
    await camera_goes_on(callee)
    await until(lambda: not callee.peer_media.screen, 10, "the peer told the share stopped")

    # And it can share again.
    await app.do("click_share")
    await app.do("wait_sharing", timeout=30)
    await app.do("click_share")  # stop, from the app this time
    await app.do("wait_share_stopped")
    await hang_up_and_quit(app, bob)


async def test_a_share_cancelled_in_the_system_dialog_says_so_and_the_call_goes_on(
    refusing_wayland: WaylandSession, server: SignalingServer, app_on: AppFactory
) -> None:
    bob = await friends_for_the_app(server)
    app = await app_on(refusing_wayland, server.url)
    state, callee = await signed_in_call(app, bob)
    assert state["call"]["share_enabled"]
    await app.do("click_share")
    stopped = await app.do("wait_share_stopped", timeout=20)
    call = stopped["call"]
    assert call["state"] == "CONNECTED" and call["share_name"] == "Share screen", call
    assert call["note_visible"], call
    # The portal's chooser chose nothing: xdg-desktop-portal-wlr answers 1, "cancelled", as
    # GNOME's and KDE's dialogs do when closed.
    assert "You cancelled the screen share in the system's dialog." in call["note"], call
    await camera_goes_on(callee)
    await hang_up_and_quit(app, bob)


async def test_without_a_portal_the_share_button_says_why(
    bare_wayland: WaylandSession, server: SignalingServer, app_on: AppFactory
) -> None:
    bob = await friends_for_the_app(server)
    app = await app_on(bare_wayland, server.url)
    state, callee = await signed_in_call(app, bob)
    support = state["support"]
    assert not support["supported"] and "desktop portal" in support["reason"], support
    call = state["call"]
    assert not call["share_enabled"]
    assert call["share_tooltip"].startswith("Screen sharing does not work here: ")
    assert "xdg-desktop-portal" in call["share_tooltip"]
    await until(lambda: received(callee, "camera") > 10, 40, "the call going on")
    await hang_up_and_quit(app, bob)


def close_screencast_sessions(session: WaylandSession) -> list[str]:
    """Close every screen-cast session on xdg-desktop-portal-wlr, as a desktop's "stop
    sharing" indicator does; the session paths closed."""
    name = "org.freedesktop.impl.portal.desktop.wlr"
    tree = session.run(["busctl", "--user", "tree", "--list", name])
    paths = re.findall(
        r"^/org/freedesktop/portal/desktop/session/[^/\s]+/[^/\s]+$", tree.stdout, re.M
    )
    for path in paths:
        result = session.run(
            ["busctl", "--user", "call", name, path, "org.freedesktop.impl.portal.Session", "Close"]
        )
        assert result.returncode == 0, result.stdout
    return paths


def self_test_screen_line(session: WaylandSession) -> str:
    """``parley --self-test`` run as the desktop's user: its screen line (the test passed)."""
    result = session.run([*session.python(), "gui", "--self-test"], timeout=120)
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    return next(line for line in lines if line.split()[:2] == ["info", "screen"])


def test_the_self_test_says_screen_sharing_would_work(wayland: WaylandSession) -> None:
    line = self_test_screen_line(wayland)
    assert "screen sharing would work here (Wayland, through the desktop portal" in line


def test_the_self_test_says_why_screen_sharing_would_not_work(
    bare_wayland: WaylandSession,
) -> None:
    line = self_test_screen_line(bare_wayland)
    assert "screen sharing would not work here: " in line and "xdg-desktop-portal" in line
