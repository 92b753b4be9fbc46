"""A 1:1 call becomes a meeting through a real Janus (``parley-cli call USER --add C`` against
``parley-server --sfu``): the two already talking keep their call's connection until the media
server carries them to each other, then close it (make before break); the third joins them
through Janus.

Each sends the numbered test pattern and its own tone. The first two measure the picture they
show of each other from the moment the call moved (the call's connection, then the media
server's subscription): the longest wait between frames and the largest jump in frame numbers.
The bound only catches a broken pipeline (the other side's picture stopping for seconds); the
figure itself is ``bench/meetings.py --mode sfu``'s escalation step.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from tests.cli.meetings import wait_pictures
from tests.cli.procs import CliProcess, Launcher, ServerProcess, serving
from tests.sfu.conftest import SfuSetup
from tests.sfu.test_sfu_meetings import SMALL, check_heard, receiving

pytestmark = pytest.mark.slow

#: A picture that stops for longer than this across the move is a broken pipeline, not a slow
#: one (the issue states 2 s; bench/meetings.py measures it).
BROKEN_GAP_MS = 5000
TONES = {"ex-ada": 440, "ex-bob": 550, "ex-cyd": 660}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sfu: SfuSetup) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("sfu-escalation")
    with serving(folder, "--no-echo", *sfu.server_args) as process:
        yield process


def answering(launch: Launcher, server: ServerProcess, user: str, *args: str) -> CliProcess:
    """``USER answer`` (or ``meet answer``), returned once the server has seen it log in."""
    mark = server.log_mark()
    child = launch.cli(user, *args, "--wait", "60", "--audio", f"tone:{TONES[user]}", *SMALL)
    server.wait_logged_in(user, mark)
    return child


def test_a_call_moves_to_janus_and_the_first_two_keep_their_picture_across_the_switch(
    launch: Launcher, server: ServerProcess
) -> None:
    ada_name, bob_name, cyd_name = TONES
    launch.befriend((ada_name, bob_name), (ada_name, cyd_name), (bob_name, cyd_name))
    bob = answering(launch, server, bob_name, "answer")
    cyd = answering(launch, server, cyd_name, "meet", "answer", "--stats")
    ada = launch.cli(
        ada_name, "call", bob_name, "--add", cyd_name, "--add-after", "2",
        "--audio", f"tone:{TONES[ada_name]}", *SMALL,
    )  # fmt: skip
    ada.wait_state("connected", 40)
    _, moving = ada.wait_event("moving", 30)
    for child in (ada, bob):
        _, moved = child.wait_event("moved", 30)
        assert moved["meeting_id"] == moving["meeting_id"]
        (call,) = child.named("call_summary")
        assert call["reason"] == "moved_to_meeting" and call["frames_received"] > 0
        _, joined = child.wait_event("state", 30, state="joined")
        assert joined["topology"] == "sfu", joined
    # Each of the first two switches to the media server, then closes the call's connection.
    for child, other in ((ada, bob_name), (bob, ada_name)):
        child.wait_event("handover", 40, username=other, state="switched")
        child.wait_event("handover", 40, username=other, state="closed")
    for user, child in ((ada_name, ada), (bob_name, bob), (cyd_name, cyd)):
        receiving(child, set(TONES) - {user})

    # Media flows through Janus for a while: 4 s, and until cyd's per-second figures add up to
    # more pictures from each of the others than the summaries must show, however long a
    # loaded machine takes for them (a call, ada's and bob's, has no such figures).
    time.sleep(4)
    wait_pictures(cyd, {ada_name, bob_name}, 24)
    ada.send_signal(signal.SIGINT)  # ada leaves; bob and cyd go on, then leave too
    assert ada.finish(30) == 0, ada.describe()
    for child in (bob, cyd):
        child.wait_event("participant_left", 20, username=ada_name, reason="left")
        child.send_signal(signal.SIGINT)
        assert child.finish(30) == 0, child.describe()
    for user, child in ((ada_name, ada), (bob_name, bob), (cyd_name, cyd)):
        check_heard(child, {u: hz for u, hz in TONES.items() if u != user})
        child.assert_clean()
    for child, other in ((ada, bob_name), (bob, ada_name)):
        figures = child.summary["participants"][other]
        # The call's connection, then one subscription through Janus: nothing made twice.
        assert figures["links"] == 2, child.describe()
        assert figures["frames_since_mark"] > 20, figures
        assert figures["longest_gap_ms"] < BROKEN_GAP_MS, figures
