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


def wait_pictures(child: CliProcess, others: set[str], frames: int, timeout: float = 60) -> None:
    """Until ``child``'s per-second figures (``--stats``) add up to ``frames`` camera pictures
    from each of ``others``: the media has flowed for that long, however long a loaded machine
    takes for it (a fixed sleep holds fewer pictures the busier the machine)."""

    def counted() -> bool | None:
        seen = dict.fromkeys(others, 0.0)
        for line in child.named("link_stats"):
            if line["username"] in seen:
                videos = line.get("videos") or []
                seen[line["username"]] += sum(v["fps"] for v in videos if v["name"] == "camera")
        return True if min(seen.values()) >= frames else None

    child.wait_for(counted, timeout, f"{frames} pictures from each of {sorted(others)}")
