"""Cases 6 and 7 of issue 10: a call between two homes recovers by itself from a dead path.

Two ``parley-cli`` in the lab's homes (ordinary NATs, direct path through STUN), real media
both ways. The bounds catch a broken recovery, not a slow one: the figures (how fast) come
from ``bench/network.py``.
"""

from __future__ import annotations

import time

import pytest

from tests.net.impaired import hang_up, lab_call, lab_unavailable, wait_video

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(lab_unavailable() is not None, reason=str(lab_unavailable())),
]


def test_black_hole_of_10_s_then_media_resumes_by_itself() -> None:
    """Everything home a sends or receives is dropped for 10 s; then the path is back."""
    with lab_call() as call:
        marks = {side: side.mark() for side in (call.caller, call.callee)}
        call.home("a").set_black_hole(True)
        time.sleep(10)
        call.home("a").set_black_hole(False)
        restored = time.monotonic()
        for side in (call.caller, call.callee):
            side.wait_event("state", 20, since=marks[side], state="reconnecting")
            resumed = wait_video(side, 30, since=side.mark())
            assert resumed - restored < 30, side.describe()
            side.wait_event("state", 30, since=marks[side], state="connected")
            assert side.find("state", marks[side], state="ended") is None, side.describe()
            reconnecting = [m for m in side.named("stats", marks[side]) if m.get("reconnecting")]
            assert reconnecting, "no stats line said the call was reconnecting"
        hang_up(call)
        for side in (call.caller, call.callee):
            assert side.summary["reason"] == "hangup"
            assert side.summary["frames_received"] > 0


def test_a_new_address_mid_call_recovers() -> None:
    """Home a's computer gets another address: the old path and signaling socket are dead."""
    with lab_call() as call:
        home = call.home("a")
        marks = {side: side.mark() for side in (call.caller, call.callee)}
        new = home.address.rsplit(".", 1)[0] + ".7"
        lan = home.address.rsplit(".", 1)[0] + ".1"
        # (Deleting the only address takes the default route with it: both come back.)
        home.run("ip", "addr", "del", f"{home.address}/24", "dev", "eth0")
        home.run("ip", "addr", "add", f"{new}/24", "dev", "eth0")
        home.run("ip", "route", "replace", "default", "via", lan)
        changed = time.monotonic()
        for side in (call.caller, call.callee):
            resumed = wait_video(side, 45, since=side.mark())
            assert resumed - changed < 45, side.describe()
        # The call moved to a new connection: the caller's summary counts a recovery.
        hang_up(call)
        for side in (call.caller, call.callee):
            assert side.summary["reason"] == "hangup", side.describe()
        assert call.caller.summary["recoveries"] >= 1, call.caller.describe()
        assert any(m for m in call.caller.named("restarted", marks[call.caller]))
