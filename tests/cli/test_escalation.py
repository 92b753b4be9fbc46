"""A 1:1 call becomes a meeting between real processes ("Add person" headless: ``parley-cli
call USER --add C``): the two already talking keep their connection and their media, and the
third joins both.

Each sends the numbered test pattern and its own tone. The first two measure their picture
from each other from the moment the call moved (the longest wait between frames and the
largest jump in frame numbers); the bound only catches a broken pipeline (the other side's
picture stopping for seconds), the figure itself is ``bench/meetings.py --escalation``'s.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from tests.cli.meetings import wait_pictures
from tests.cli.procs import CliProcess, Launcher, ServerProcess, serving
from tests.cli.test_meetings import check_heard, wait_linked

pytestmark = pytest.mark.slow

SMALL = ("--resolution", "320x180", "--fps", "10")
#: A picture that stops for longer than this across the move is a broken pipeline, not a slow one.
BROKEN_GAP_MS = 5000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(tmp_path_factory.mktemp("cli-escalation"), "--no-echo") as process:
        yield process


def answering(launch: Launcher, server: ServerProcess, user: str, *args: str) -> CliProcess:
    """``USER answer`` (or ``meet answer``), returned once the server has seen it log in."""
    mark = server.log_mark()
    child = launch.cli(user, *args, "--wait", "60", *SMALL)
    server.wait_logged_in(user, mark)
    return child


def test_a_call_becomes_a_meeting_of_three_and_the_first_two_keep_their_media(
    launch: Launcher, server: ServerProcess
) -> None:
    launch.befriend(("es-ada", "es-bob"), ("es-ada", "es-cyd"), ("es-bob", "es-cyd"))
    bob = answering(launch, server, "es-bob", "answer", "--audio", "tone:550")
    cyd = answering(launch, server, "es-cyd", "meet", "answer", "--audio", "tone:660", "--stats")
    ada = launch.cli(
        "es-ada", "call", "es-bob", "--add", "es-cyd", "--add-after", "2", "--audio", "tone:440",
        *SMALL,
    )  # fmt: skip
    ada.wait_state("connected", 40)
    _, moving = ada.wait_event("moving", 30)
    meeting = moving["meeting_id"]
    for child in (ada, bob):
        _, moved = child.wait_event("moved", 30)
        assert moved["meeting_id"] == meeting
        (call,) = child.named("call_summary")
        assert call["reason"] == "moved_to_meeting" and call["frames_received"] > 0
    _, invited = cyd.wait_event("state", 30, state="invited")
    assert invited["inviter"]["username"] == "es-ada"
    for user, child in (("es-ada", ada), ("es-bob", bob), ("es-cyd", cyd)):
        wait_linked(child, {"es-ada", "es-bob", "es-cyd"} - {user})
    host = [m for m in ada.named("state") if m["state"] == "joined"]
    assert host and host[0]["host"] == "es-ada"

    # Media flows on every link for a while: 4 s, and until cyd's per-second figures add up to
    # more pictures from each of the others than the summaries must show, however long a
    # loaded machine takes for them (a call, ada's and bob's, has no such figures).
    time.sleep(4)
    wait_pictures(cyd, {"es-ada", "es-bob"}, 24)
    ada.send_signal(signal.SIGINT)  # SIGINT: ada leaves; bob and cyd go on, then leave too
    assert ada.finish(30) == 0, ada.describe()
    for child in (bob, cyd):
        child.wait_event("participant_left", 20, username="es-ada", reason="left")
        child.send_signal(signal.SIGINT)
        assert child.finish(30) == 0, child.describe()
    check_heard(cyd, {"es-ada": 440, "es-bob": 550})
    for child, other, hz in ((ada, "es-bob", 550), (bob, "es-ada", 440)):
        figures = child.summary["participants"][other]
        assert figures["links"] == 1, child.describe()  # the call's connection, never replaced
        assert figures["frames_since_mark"] > 20, figures
        assert figures["longest_gap_ms"] < BROKEN_GAP_MS, figures
        assert abs(figures["audio_peak_hz"] - hz) <= 5, figures
    check_heard(ada, {"es-bob": 550, "es-cyd": 660})
    check_heard(bob, {"es-ada": 440, "es-cyd": 660})


def test_a_refused_move_leaves_the_call_going(launch: Launcher, server: ServerProcess) -> None:
    """A refusal (here: inviting a stranger) leaves the call as it was."""
    launch.befriend(("en-ada", "en-bob"))
    launch.register("en-zed")
    bob = answering(launch, server, "en-bob", "answer", "--duration", "6")
    ada = launch.cli("en-ada", "call", "en-bob", "--add", "en-zed", *SMALL)
    _, refused = ada.wait_event("request_failed", 30, request="meeting.create")
    assert refused["code"] == "forbidden"
    assert bob.finish(40) == 0, bob.describe()
    assert ada.finish(30) == 0, ada.describe()
    assert ada.summary["reason"] == "hangup" and ada.summary["frames_received"] > 10
    assert not ada.named("moved") and not bob.named("moved")
