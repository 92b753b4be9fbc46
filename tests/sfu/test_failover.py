"""A Janus killed mid-meeting: parley-server moves the meeting to the other instance and the
participants publish and subscribe again by themselves (``reconnecting``, then ``connected``).

Three ``parley-cli`` in a meeting on a Janus of the test's own, with the session's Janus
as the second instance; the first is SIGKILLed once media flows. Each participant must
then receive every other's video again (``link_stats`` lines after its reconnection).
"""

from __future__ import annotations

import signal
from functools import partial
from pathlib import Path

import pytest

from tests.cli.meetings import meet_answering
from tests.cli.procs import CliProcess, Json, Launcher, serving
from tests.sfu.conftest import SfuSetup
from tests.sfu.janus_proc import running_janus
from tests.sfu.test_sfu_meetings import SMALL, check_heard, receiving

pytestmark = pytest.mark.slow

TONES = {"fo-ada": 440, "fo-bob": 550, "fo-cyd": 660}


def video_from(child: CliProcess, username: str, since: int) -> bool | None:
    """Whether a stats line since ``since`` shows ``username``'s video arriving."""
    for message in child.named("link_stats", since):
        videos = message.get("videos") or []
        if message.get("username") == username and videos and float(videos[0]["fps"]) > 0:
            return True
    return None


def wait_videos(child: CliProcess, others: set[str], since: int, timeout: float = 40.0) -> None:
    """Until stats lines since ``since`` show video arriving from each of ``others``."""
    for other in sorted(others):
        child.wait_for(partial(video_from, child, other, since), timeout, f"{other}'s video")


def connected_again(child: CliProcess, since: int) -> bool | None:
    """Whether the newest ``media_server`` state since ``since`` is ``connected``."""
    states: list[Json] = child.named("media_server", since)
    return True if states and states[-1]["state"] == "connected" else None


def test_janus_killed_mid_meeting_the_meeting_resumes_on_the_other_by_itself(
    tmp_path: Path, sfu: SfuSetup
) -> None:
    with (
        running_janus(tmp_path / "victim", sfu.secret) as victim,
        serving(
            tmp_path,
            "--no-echo",
            "--sfu",
            victim.address,  # first: both are empty, so the meeting goes here
            *sfu.server_args,
        ) as server,
        Launcher.around(server.url) as launch,
    ):
        launch.befriend(("fo-ada", "fo-bob"), ("fo-ada", "fo-cyd"))
        guests = {
            user: meet_answering(launch, server, user, TONES[user], "--stats", *SMALL)
            for user in ("fo-bob", "fo-cyd")
        }
        host = launch.cli(
            "fo-ada", "meet", "create", "--invite", "fo-bob,fo-cyd", "--end",
            "--audio", "tone:440", "--stats", *SMALL,
        )  # fmt: skip
        everyone = {"fo-ada": host, **guests}
        for user, child in everyone.items():
            receiving(child, set(TONES) - {user})
            wait_videos(child, set(TONES) - {user}, 0)
        server.wait_log(rf"event=sfu\.room .*sfu=ws://127\.0\.0\.1:{victim.ws_port}", 0)

        marks = {user: child.mark() for user, child in everyone.items()}
        log_mark = server.log_mark()
        victim.kill()
        server.wait_log(r"event=sfu\.down", log_mark, 20)
        server.wait_log(
            rf"event=sfu\.room .*sfu=ws://127\.0\.0\.1:{sfu.janus.ws_port}", log_mark, 30
        )
        for user, child in everyone.items():
            child.wait_event("media_server", 30, since=marks[user], state="reconnecting")
            child.wait_for(
                partial(connected_again, child, marks[user]), 60, "connected to the other server"
            )
        for user, child in everyone.items():
            wait_videos(child, set(TONES) - {user}, child.mark())

        host.send_signal(signal.SIGINT)
        assert host.finish(30) == 0, host.describe()
        for child in guests.values():
            assert child.finish(30) == 0, child.describe()
        for user, child in everyone.items():
            check_heard(child, {u: hz for u, hz in TONES.items() if u != user})
            for figures in child.summary["participants"].values():
                assert figures["links"] >= 2, (user, child.summary["participants"])
            child.assert_clean()
