"""Helpers of the meeting tests over ``parley-cli`` (mesh and media server alike)."""

from __future__ import annotations

from tests.cli.procs import CliProcess, Json, Launcher, ServerProcess

PITCH_TOLERANCE_HZ = 5.0


def meet_answering(
    launch: Launcher, server: ServerProcess, user: str, hz: int, *args: str
) -> CliProcess:
    """``USER meet answer`` sending a tone of ``hz`` (and ``args``), returned once the
    server has seen it log in."""
    mark = server.log_mark()
    child = launch.cli(user, "meet", "answer", "--wait", "60", "--audio", f"tone:{hz}", *args)
    server.wait_logged_in(user, mark)
    return child


def check_heard(child: CliProcess, tones: dict[str, int], frames: int = 15) -> None:
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
