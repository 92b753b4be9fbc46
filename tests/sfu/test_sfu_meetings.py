"""Meetings through a real Janus: ``parley-server --sfu`` and six ``parley-cli`` participants.

Each participant sends the test pattern (320x180 at 8 frames/s: six encoders and thirty
decoders on two cores) and a tone of its own pitch; each summary must show pictures and
the right pitch from every other one. A user who was never invited is refused. The
bounds catch a broken pipeline only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.cli.procs import CliProcess, Json, Launcher, ServerProcess, serving
from tests.sfu.conftest import SfuSetup

pytestmark = pytest.mark.slow

PITCH_TOLERANCE_HZ = 5.0
SMALL = ("--resolution", "320x180", "--fps", "8")
TONES = {"s6-ada": 400, "s6-bob": 500, "s6-cyd": 600, "s6-dan": 700, "s6-eve": 800, "s6-fay": 900}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sfu: SfuSetup) -> Iterator[ServerProcess]:
    """One parley-server for the module, its meetings through the session's Janus."""
    folder = tmp_path_factory.mktemp("sfu-meetings")
    with serving(
        folder,
        "--no-echo",
        "--sfu",
        sfu.janus.address,
        "--sfu-admin-secret-file",
        str(sfu.secret_file),
    ) as process:
        yield process


def answering(
    launch: Launcher, server: ServerProcess, user: str, hz: int, *args: str
) -> CliProcess:
    """``USER meet answer``, returned once the server has seen it log in."""
    mark = server.log_mark()
    child = launch.cli(
        user, "meet", "answer", "--wait", "60", "--audio", f"tone:{hz}", *SMALL, *args
    )
    server.wait_logged_in(user, mark)
    return child


def receiving(child: CliProcess, others: set[str], timeout: float = 60.0) -> None:
    """Until ``child`` is connected to the media server and lists exactly ``others``."""

    def check() -> bool | None:
        connected = any(m["state"] == "connected" for m in child.named("media_server"))
        lists = child.named("participants")
        present = {p["username"] for p in lists[-1]["participants"]} if lists else set()
        return True if connected and present == others else None

    child.wait_for(check, timeout, f"in the media server's meeting with {sorted(others)}")


def check_heard(child: CliProcess, tones: dict[str, int], frames: int = 10) -> None:
    """``child``'s summary shows pictures and the right pitch from each of ``tones``."""
    got: dict[str, Json] = child.summary["participants"]
    where = f"{child.name}: {got}"
    assert set(got) == set(tones), where
    for username, hz in tones.items():
        figures = got[username]
        assert figures["connected"], where
        assert figures["frames_received"] >= frames, where
        assert (figures["width"], figures["height"]) == (320, 180), where
        assert figures["audio_peak_hz"] is not None, where
        assert abs(figures["audio_peak_hz"] - hz) <= PITCH_TOLERANCE_HZ, where


def test_six_through_janus_each_sees_and_hears_every_other_and_a_stranger_is_refused(
    launch: Launcher, server: ServerProcess
) -> None:
    host_name = "s6-ada"
    launch.befriend(*((host_name, u) for u in TONES if u != host_name))
    launch.register("s6-zed")
    guests = {u: answering(launch, server, u, hz) for u, hz in TONES.items() if u != host_name}
    host = launch.cli(
        host_name, "meet", "create", "--invite", ",".join(guests), "--end",
        "--audio", f"tone:{TONES[host_name]}", *SMALL,
    )  # fmt: skip
    _, joined = host.wait_event("state", 30, state="joined")
    assert joined["topology"] == "sfu", joined
    everyone = set(TONES)
    for user, child in ((host_name, host), *guests.items()):
        receiving(child, everyone - {user})

    stranger = launch.cli("s6-zed", "meet", "join", str(joined["meeting_id"]), *SMALL)
    assert stranger.finish(30) == 1
    assert stranger.summary["reason"] == "forbidden", stranger.describe()

    time.sleep(4)  # media flows through Janus for a while
    host.send_signal(2)  # SIGINT; --end: the host ends it for everyone
    assert host.finish(30) == 0, host.describe()
    for child in guests.values():
        assert child.finish(30) == 0, child.describe()
        assert child.summary["reason"] == "ended"
    for user, child in ((host_name, host), *guests.items()):
        check_heard(child, {u: hz for u, hz in TONES.items() if u != user})
        child.assert_clean()
