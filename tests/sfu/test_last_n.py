"""How many videos a participant receives through the media server ("Last-N"): by the
meeting's size, or ``--max-videos``; the most recent speakers, not swapped back and forth
while several talk; and, through a real Janus, the paused videos really stop while
everyone's audio goes on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial

import pytest

from gui.core.sfu_session import MAX_VIDEOS, VideoChooser, video_limit
from tests.cli.meetings import meet_answering
from tests.cli.procs import CliProcess, Launcher, ServerProcess, serving
from tests.sfu.conftest import SfuSetup

SMALL = ("--resolution", "320x180", "--fps", "8")
TONES = {"ln-ada": 400, "ln-bob": 600, "ln-cyd": 800}


def test_the_number_of_videos_follows_the_meetings_size() -> None:
    assert [video_limit(n) for n in (2, 3, 4)] == [MAX_VIDEOS] * 3  # everyone's
    assert [video_limit(n) for n in (5, 6, 7, 8, 16)] == [4, 4, 3, 3, 3]
    assert video_limit(8, most=7) == 7 and video_limit(3, most=1) == 1
    assert video_limit(3, most=-2) == 0


def test_a_new_speaker_takes_the_place_of_the_one_quiet_longest() -> None:
    chooser = VideoChooser(limit=2, hold_s=2.0)
    chooser.present(["a", "b", "c"])
    assert chooser.shown() == {"a", "b"}
    for at in (1.0, 1.5, 2.0, 2.5, 3.0):  # all three talk at once: nothing swaps
        for name in ("a", "b", "c"):
            chooser.spoke(name, at)
        assert chooser.shown() == {"a", "b"}
    for at in (3.5, 4.0, 4.5):  # b falls quiet; c goes on
        chooser.spoke("a", at)
        chooser.spoke("c", at)
    assert chooser.shown() == {"a", "b"}  # b was heard 2 s ago at most: held
    chooser.spoke("c", 5.5)
    assert chooser.shown() == {"a", "c"}  # quiet 2.5 s: c takes b's place


def test_a_growing_meeting_receives_fewer_videos_the_quietest_going() -> None:
    chooser = VideoChooser(limit=video_limit(4))
    chooser.present(["a", "b", "c"])
    chooser.spoke("c", 1.0)
    chooser.spoke("a", 2.0)
    names = ["a", "b", "c", "d", "e", "f", "g"]
    chooser.limit = video_limit(len(names) + 1)  # eight: three videos
    chooser.present(names)
    assert chooser.shown() == {"a", "c", "b"}  # speakers, then the first arrival
    chooser.limit = 1
    assert chooser.shown() == {"a"}  # the most recent speaker stays
    chooser.limit = 0
    chooser.spoke("g", 3.0)
    assert chooser.shown() == set()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sfu: SfuSetup) -> Iterator[ServerProcess]:
    """One parley-server for the module, its meetings through the session's Janus."""
    with serving(tmp_path_factory.mktemp("last-n"), "--no-echo", *sfu.server_args) as process:
        yield process


def camera_fps(child: CliProcess, username: str, since: int) -> list[float]:
    """The per-second frame rates of ``username``'s camera at ``child`` since line ``since``."""
    return [
        video["fps"]
        for line in child.named("link_stats", since)
        if line["username"] == username
        for video in line.get("videos") or []
        if video.get("name") == "camera"
    ]


@pytest.mark.slow
def test_one_video_each_through_janus_the_others_paused_and_every_voice_heard(
    launch: Launcher, server: ServerProcess
) -> None:
    host_name = "ln-ada"
    launch.befriend(*((host_name, u) for u in TONES if u != host_name))
    options = ("--max-videos", "1", "--stats", *SMALL)
    guests = {
        u: meet_answering(launch, server, u, hz, *options)
        for u, hz in TONES.items()
        if u != host_name
    }
    host = launch.cli(
        host_name, "meet", "create", "--invite", ",".join(guests), "--end",
        "--audio", f"tone:{TONES[host_name]}", *options,
    )  # fmt: skip
    everyone = {host_name: host, **guests}

    def one_video_seen(child: CliProcess, me: str) -> list[str] | None:
        said = child.named("videos")
        if not said or len(said[-1]["usernames"]) != 1:
            return None
        shown = said[-1]["usernames"]
        fps = camera_fps(child, shown[0], 0)
        return shown if fps and fps[-1] > 0 and shown[0] != me else None

    shown: dict[str, list[str]] = {}
    for user, child in everyone.items():
        shown[user] = child.wait_for(partial(one_video_seen, child, user), 90, "one video")

    def paused_quiet(child: CliProcess, me: str) -> bool | None:
        """The paused video shows no frame in the last two seconds' figures (or never came):
        its pictures still on their way (late, on a loaded machine) are in."""
        (seen,) = shown[me]
        (paused,) = set(TONES) - {me, seen}
        fps = camera_fps(child, paused, 0)
        return True if not fps or (len(fps) >= 2 and not any(fps[-2:])) else None

    for user, child in everyone.items():
        child.wait_for(partial(paused_quiet, child, user), 30, "the paused video stopped")
    marks = {u: c.mark() for u, c in everyone.items()}
    time.sleep(4)  # a few seconds of the chosen video, and none of the paused one
    host.send_signal(2)  # SIGINT; --end: the host ends it for everyone
    for child in everyone.values():
        assert child.finish(30) == 0, child.describe()
    for user, child in everyone.items():
        where = child.describe()
        assert child.named("videos")[-1]["usernames"] == shown[user], where  # no swapping
        (seen,) = shown[user]
        (paused,) = set(TONES) - {user, seen}
        assert max(camera_fps(child, seen, marks[user]), default=0) > 0, where
        assert not any(camera_fps(child, paused, marks[user])), where  # stopped at Janus
        got = child.summary["participants"]
        for other in set(TONES) - {user}:
            assert abs((got[other]["audio_peak_hz"] or 0) - TONES[other]) <= 5, where
        child.assert_clean()
