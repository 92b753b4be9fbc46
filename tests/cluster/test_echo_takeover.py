"""An Echo Test call outlives the coordinator, whose bot carried its media.

``parley-cli`` on an edge, or on the coordinator itself, calls ``echo``; the coordinator, whose
Echo Test answered, is SIGKILLed. The next coordinator's Echo Test takes the call over and the
two ends negotiate a new path inside the call (a restart): the caller says ``reconnecting``, then
``connected`` again, and gets its own pattern and tone back until it hangs up.
"""

from __future__ import annotations

import signal

import pytest

from tests.cli.meetings import PITCH_TOLERANCE_HZ
from tests.cli.procs import Launcher
from tests.cluster.conftest import Service

pytestmark = pytest.mark.slow

HZ = 523


@pytest.mark.parametrize("on", ["edge", "coordinator"])
async def test_an_echo_test_call_outlives_the_coordinator(service: Service, on: str) -> None:
    """The caller on an edge keeps its socket; on the coordinator, it loses it too, moves to
    another instance (its next ``--server``), logs in again and offers a restart from there."""
    first, second, third = await service(3)
    here, *elsewhere = (second, third, first) if on == "edge" else (first, second, third)
    with Launcher.around(second.url) as launch:
        launch.register("ek-ann")
        caller = launch.cli(
            "ek-ann", "--server", elsewhere[0].url, "--server", elsewhere[1].url,
            "call", "echo", "--duration", "120",
            "--audio", f"tone:{HZ}", "--resolution", "320x240", "--fps", "10",
            server=here.url,
        )  # fmt: skip
        caller.wait_event("state", 60, state="connected")
        caller.wait_stats(2, 0, 30)
        mark = caller.mark()
        first.kill()
        caller.wait_event("state", 30, since=mark, state="reconnecting")
        caller.wait_event("state", 60, since=mark, state="connected")
        caller.wait_stats(3, caller.mark(), 30)  # the call goes on, on the new path
        caller.send_signal(signal.SIGINT)
        assert caller.finish(30) == 0, caller.describe()
        summary = caller.summary
        assert summary["reason"] == "hangup", summary
        assert summary["recoveries"] >= 1, summary
        # What the current path received: the pattern and the tone, from the new Echo Test.
        assert summary["frames_numbered"] > 0, summary
        assert summary["frame_numbers_decreased"] == 0, summary
        peak = summary["audio_peak_hz"]
        assert peak is not None and abs(peak - HZ) <= PITCH_TOLERANCE_HZ, summary
