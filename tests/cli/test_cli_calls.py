"""Whole calls between real processes: ``parley-server`` and two ``parley-cli`` clients.

Nothing runs in the test process but the bookkeeping (and, for the network
cut, a loopback TCP proxy): the server is ``python -m signaling`` on a free
port with its own SQLite file, every client is ``python -m gui.cli``, users
are made with ``--register`` and become contacts with ``add`` from both
sides. The tests read the clients' JSON lines and the server's structured
log lines as they come, and check every client's exit status and stderr.
"""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from gui.core.adaptation import SCALES
from gui.media.scaler import scaled_size
from tests.cli.procs import (
    CliProcess,
    Json,
    Launcher,
    ProxyThread,
    ServerProcess,
    serving,
    videos_flowing,
)

pytestmark = pytest.mark.slow

#: The server's ``--ring-timeout``: short, so that "no answer" takes seconds, not 45.
RING_TIMEOUT_S = 4.0
#: How far the received tone's peak may be from the one sent.
PITCH_TOLERANCE_HZ = 5.0
#: Endings a person chose (exit status 0); anything else exits 1.
NORMAL_ENDINGS = {"hangup", "cancelled", "declined", "answered_elsewhere"}
#: A ringing callee must hear of a cancellation or a timeout within this.
CALLEE_NOTICE_S = 8.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One parley-server child process for the module (every test uses its own users)."""
    with serving(
        tmp_path_factory.mktemp("cli-calls"), "--ring-timeout", f"{RING_TIMEOUT_S:g}"
    ) as process:
        yield process


# Helpers ----------------------------------------------------------------------------


def answering(
    launch: Launcher, server: ServerProcess, user: str, *args: str, wait: float = 60
) -> CliProcess:
    """``USER answer ARGS``, returned once the server has seen it log in."""
    mark = server.log_mark()
    callee = launch.cli(user, "answer", "--wait", f"{wait:g}", *args)
    server.wait_logged_in(user, mark)
    return callee


def states(child: CliProcess) -> list[tuple[str, str | None]]:
    """The (state, reason) lines in order."""
    return [(m["state"], m.get("reason")) for m in child.named("state")]


def ended(child: CliProcess) -> Json:
    """The single ``state: ended`` line."""
    lines = [m for m in child.named("state") if m["state"] == "ended"]
    assert len(lines) == 1, f"{child.name}: {len(lines)} 'ended' lines\n{child.describe()}"
    return lines[0]


def check_media(
    who: CliProcess, summary: Json, size: tuple[int, int], hz: float, seconds: float
) -> None:
    """Video at ``size`` with increasing frame numbers, and the ``hz`` tone, for ``seconds``.

    The sender's adaptation (gui/core/adaptation.py) may step the picture down when the
    encoder falls short, which a loaded machine makes it do: the size received is then one
    of its rungs of ``size``, never another."""
    where = f"{who.name}: {summary}"
    assert (summary["width"], summary["height"]) in sizes_sent_for(size), where
    assert summary["frames_received"] >= 15 * seconds, where  # 30 fps sent; half is plenty
    assert summary["frames_numbered"] >= 0.9 * summary["frames_received"], where
    assert summary["frame_numbers_decreased"] == 0, where
    assert summary["audio_ms_received"] >= 800 * seconds, where
    assert summary["audio_peak_hz"] is not None, where
    assert abs(summary["audio_peak_hz"] - hz) <= PITCH_TOLERANCE_HZ, where


def sizes_sent_for(size: tuple[int, int]) -> set[tuple[int, int]]:
    """``size`` and the smaller pictures the sender's adaptation may send instead of it."""
    return {scaled_size(*size, scale) for scale in SCALES}


def wait_video_flowing(child: CliProcess, since: int = 0, timeout: float = 20.0) -> None:
    """Until a ``stats`` line shows received camera frames."""
    child.wait_for(
        lambda: next(
            (
                True
                for _, m in child.events[since:]
                if m["event"] == "stats" and any(v["fps"] > 0 for v in m.get("videos") or [])
            ),
            None,
        ),
        timeout,
        "stats line with video fps > 0",
    )


def one_error_line(child: CliProcess) -> str:
    """The only stderr line, which must be ``parley-cli: error: ...``."""
    lines = [line for line in child.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"{child.name}: expected one error line, got:\n{child.stderr}"
    assert lines[0].startswith("parley-cli: error: "), lines[0]
    return lines[0]


# Command line -------------------------------------------------------------------------


def free_port_nobody_listens_on() -> tuple[socket.socket, int]:
    """A bound, not listening socket: connecting to its port is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


BAD_ARGUMENTS = {
    "no --server": ["--user", "ann", "--password", "pw-pw-pw-pw", "contacts"],
    "no command": ["--server", "{url}", "--user", "ann", "--password", "pw-pw-pw-pw"],
    "unknown command": ["--server", "{url}", "--user", "a", "--password", "p", "dance"],
    "call without a peer": ["--server", "{url}", "--user", "a", "--password", "p", "call"],
    "tone out of range": ["--server", "{url}", "--user", "a", "--password", "p", "call", "bo",
                          "--audio", "tone:5"],
    "audio not a choice": ["--server", "{url}", "--user", "a", "--password", "p", "call", "bo",
                           "--audio", "trumpet"],
    "negative duration": ["--server", "{url}", "--user", "a", "--password", "p", "call", "bo",
                          "--duration", "-1"],
    "video not a choice": ["--server", "{url}", "--user", "a", "--password", "p", "call", "bo",
                           "--video", "hologram"],
    "odd resolution": ["--server", "{url}", "--user", "a", "--password", "p", "call", "bo",
                       "--resolution", "641x480"],
    "resolution not WxH": ["--server", "{url}", "--user", "a", "--password", "p", "answer",
                           "--resolution", "big"],
    "accept-after not seconds": ["--server", "{url}", "--user", "a", "--password", "p",
                                 "answer", "--accept-after", "soon"],
    "ice not stun/turn": ["--server", "{url}", "--ice", "http://example.org", "--user", "a",
                          "--password", "p", "contacts"],
}  # fmt: skip


def test_bad_arguments_exit_2_with_a_one_line_error(launch: Launcher) -> None:
    # The server address leads nowhere: an argument that slipped through would exit 1, not 2.
    sock, port = free_port_nobody_listens_on()
    url = f"ws://127.0.0.1:{port}/ws"
    try:
        runs = {
            case: launch.raw_cli(*(a.replace("{url}", url) for a in argv), name=case)
            for case, argv in BAD_ARGUMENTS.items()
        }
        problems = []
        for case, child in runs.items():
            code = child.finish(30)
            lines = child.stderr.splitlines()
            # argparse prints its usage first; what follows it is one error line.
            usage = 0
            if lines and lines[0].startswith("usage: "):
                usage = 1
                while usage < len(lines) and lines[usage].startswith(" "):
                    usage += 1
            rest = lines[usage:]
            ok = (
                code == 2
                and not child.out
                and len(rest) == 1
                and re.match(r"parley-cli( \w+)?: error: \S", rest[0]) is not None
            )
            if not ok:
                problems.append(f"{case}: exit {code}, stdout {child.out}, stderr {lines}")
    finally:
        sock.close()
    assert not problems, "\n".join(problems)


def test_wrong_password_exits_1_with_a_one_line_error(launch: Launcher) -> None:
    launch.register("pw-ann")
    wrong = launch.cli("pw-ann", "contacts", password="not-the-password")
    nobody = launch.cli("pw-nobody", "contacts", password="whatever-password")
    for child in (wrong, nobody):
        assert child.finish(30) == 1, child.describe()
        assert not child.out
        assert "bad_credentials" in one_error_line(child)


def test_unreachable_server_exits_1_with_a_one_line_error(launch: Launcher) -> None:
    sock, port = free_port_nobody_listens_on()
    try:
        child = launch.cli("ann", "contacts", server=f"ws://127.0.0.1:{port}/ws")
        assert child.finish(30) == 1, child.describe()
    finally:
        sock.close()
    assert not child.out
    assert "cannot reach the server" in one_error_line(child)


# A full call -------------------------------------------------------------------------------


def test_ten_second_video_call(launch: Launcher, server: ServerProcess) -> None:
    """Video both ways at the sizes sent, tones both ways, chat both ways, the same words."""
    launch.befriend(("ann-10s", "bo-10s"))
    callee = answering(
        launch, server, "bo-10s",
        "--audio", "tone:660", "--resolution", "320x240", "--chat", "hello from bo",
    )  # fmt: skip
    caller = launch.cli(
        "ann-10s", "call", "bo-10s", "--duration", "10",
        "--audio", "tone:440", "--resolution", "640x480", "--chat", "hello from ann ✓",
    )  # fmt: skip
    assert caller.finish(60) == 0, caller.describe()
    assert callee.finish(30) == 0, callee.describe()

    # The same call, set up in order, ended by the caller's hang-up on both sides.
    (incoming,) = callee.named("incoming")
    assert incoming["caller"]["username"] == "ann-10s"
    assert incoming["media"] == {"audio": True, "video": True}
    call_id = incoming["call_id"]
    assert {m["call_id"] for m in caller.named("state") + callee.named("state")} == {call_id}
    assert states(caller) == [
        ("outgoing_ringing", None), ("connecting", None), ("connected", None), ("ended", "hangup"),
    ]  # fmt: skip
    assert states(callee) == [
        ("incoming_ringing", None), ("connecting", None), ("connected", None), ("ended", "hangup"),
    ]  # fmt: skip
    connected_at, _ = caller.wait_state("connected", 0)
    ended_at, _ = caller.wait_state("ended", 0)
    assert 9.5 <= ended_at - connected_at <= 13, ended_at - connected_at

    # What each side received is what the other sent.
    check_media(caller, caller.summary, (320, 240), 660.0, 10)
    check_media(callee, callee.summary, (640, 480), 440.0, 10)
    for child, size in ((caller, [320, 240]), (callee, [640, 480])):
        summary = child.summary
        assert summary["reason"] == "hangup"
        assert summary["setup_ms"] is not None and 0 < summary["setup_ms"] < 10_000, summary
        stats = [(0.0, m) for m in child.named("stats")]
        assert len(stats) >= 8, f"{child.name}: only {len(stats)} stats lines"
        # Frames arrived in every second after the first, up to the end.
        assert all(fps > 0 for fps in list(videos_flowing(stats))[2:]), child.named("stats")
        seen = [(v["width"], v["height"]) for _, m in stats for v in m["videos"]]
        # The size sent, and at most the adaptation's steps down from it.
        assert tuple(size) in seen, seen
        assert set(seen) <= sizes_sent_for((size[0], size[1])), seen

    # Chat both ways, each delivery confirmed.
    for sender, receiver, text in (
        (caller, callee, "hello from ann ✓"),
        (callee, caller, "hello from bo"),
    ):
        (sent,) = sender.named("chat_sent")
        assert sent["text"] == text
        assert [m["id"] for m in sender.named("chat_delivered")] == [sent["id"]]
        (got,) = receiver.named("chat")
        assert (got["id"], got["text"]) == (sent["id"], text)

    # Both sides show the same verification words.
    (caller_sas,) = caller.named("sas")
    (callee_sas,) = callee.named("sas")
    assert len(caller_sas["words"]) >= 3
    assert all(isinstance(w, str) and w for w in caller_sas["words"])
    assert caller_sas["words"] == callee_sas["words"]


# Calls that do not happen ---------------------------------------------------------------


def test_declined_call_ends_both_sides_with_status_0(
    launch: Launcher, server: ServerProcess
) -> None:
    launch.befriend(("ann-dec", "bo-dec"))
    callee = answering(launch, server, "bo-dec", "--decline")
    caller = launch.cli("ann-dec", "call", "bo-dec")
    assert caller.finish(30) == 0, caller.describe()
    assert callee.finish(30) == 0, callee.describe()
    assert states(caller) == [("outgoing_ringing", None), ("ended", "declined")]
    assert caller.summary["reason"] == "declined"
    assert caller.summary["frames_received"] == 0
    (incoming,) = callee.named("incoming")
    assert incoming["caller"]["username"] == "ann-dec"
    assert ended(callee)["reason"] == "declined"
    assert callee.summary["reason"] == "declined"


def test_cancelled_call_ends_both_sides_with_status_0(
    launch: Launcher, server: ServerProcess
) -> None:
    """The caller gives up while it rings (SIGINT); the ringing callee stops at once."""
    launch.befriend(("ann-can", "bo-can"))
    callee = answering(launch, server, "bo-can", "--accept-after", "30")
    caller = launch.cli("ann-can", "call", "bo-can")
    caller.wait_state("outgoing_ringing")
    callee.wait_event("incoming")
    caller.send_signal(signal.SIGINT)
    assert caller.finish(15) == 0, caller.describe()
    assert states(caller) == [("outgoing_ringing", None), ("ended", "cancelled")]
    assert caller.summary["reason"] == "cancelled"

    # The callee, still ringing (it would answer only 30 s in), hears of it at once.
    _, line = callee.wait_event("state", CALLEE_NOTICE_S, state="ended")
    assert line["reason"] == "cancelled"
    assert callee.finish(10) == 0, callee.describe()
    assert callee.summary["reason"] == "cancelled"
    assert ("incoming_ringing", None) in states(callee)


def test_busy_callee(launch: Launcher, server: ServerProcess) -> None:
    """The callee is in a call (with the Echo Test): the caller gets 'busy', the call goes on."""
    launch.befriend(("ann-busy", "bo-busy"))
    busy = launch.cli("bo-busy", "call", "echo")
    busy.wait_state("connected", 30)
    caller = launch.cli("ann-busy", "call", "bo-busy")
    assert caller.finish(30) == 1, caller.describe()
    assert states(caller) == [("outgoing_ringing", None), ("ended", "busy")]
    assert caller.summary["reason"] == "busy"
    assert not caller.stderr.strip(), caller.stderr

    mark = busy.mark()
    wait_video_flowing(busy, since=mark)  # undisturbed
    busy.send_signal(signal.SIGINT)
    assert busy.finish(30) == 0, busy.describe()
    assert states(busy)[-1] == ("ended", "hangup")


def test_no_answer_times_out(launch: Launcher, server: ServerProcess) -> None:
    """Nobody answers: the server's ring timeout (--ring-timeout) ends the call on both sides."""
    launch.befriend(("ann-nor", "bo-nor"))
    callee = answering(launch, server, "bo-nor", "--accept-after", "30")
    caller = launch.cli("ann-nor", "call", "bo-nor")
    rang_at, _ = caller.wait_state("outgoing_ringing")
    assert caller.finish(RING_TIMEOUT_S + 20) == 1, caller.describe()
    ended_at, line = caller.wait_state("ended", 0)
    assert line["reason"] == "timeout"
    assert RING_TIMEOUT_S - 0.5 <= ended_at - rang_at <= RING_TIMEOUT_S + 5, ended_at - rang_at
    assert caller.summary["reason"] == "timeout"
    assert not caller.stderr.strip(), caller.stderr

    # The callee stops ringing with the same reason (a failure for it too: status 1).
    callee.wait_event("incoming", 0)
    _, line = callee.wait_event("state", CALLEE_NOTICE_S, state="ended")
    assert line["reason"] == "timeout"
    assert callee.finish(10) == 1, callee.describe()
    assert callee.summary["reason"] == "timeout"


def test_callee_offline(launch: Launcher) -> None:
    launch.befriend(("ann-off", "bo-off"))
    caller = launch.cli("ann-off", "call", "bo-off")
    assert caller.finish(30) == 1, caller.describe()
    assert states(caller) == [("outgoing_ringing", None), ("ended", "offline")]
    assert caller.summary["reason"] == "offline"
    assert caller.summary["frames_received"] == 0
    assert not caller.stderr.strip(), caller.stderr


# Faults mid-call ---------------------------------------------------------------------


def test_caller_signaling_cut_mid_call(launch: Launcher, server: ServerProcess) -> None:
    """The caller's WebSocket is cut: media goes on, it logs in again, its hang-up arrives."""
    launch.befriend(("ann-cut", "bo-cut"))
    proxy = ProxyThread(server.port)
    try:
        callee = answering(launch, server, "bo-cut")
        caller = launch.cli("ann-cut", "call", "bo-cut", server=proxy.url())
        _, line = caller.wait_state("connected", 30)
        call_id = line["call_id"]
        callee.wait_state("connected", 30)
        wait_video_flowing(caller)
        wait_video_flowing(callee)
        assert proxy.connections == 1

        caller_mark, callee_mark, log_mark = caller.mark(), callee.mark(), server.log_mark()
        proxy.cut()
        user = re.escape("ann-cut")
        server.wait_log(rf"event=call\.detached call={call_id} user={user}\b", log_mark)
        # The client reconnects by itself (through the proxy) and the server gives it its call.
        server.wait_log(rf"event=call\.reattached call={call_id} user={user}\b", log_mark)
        assert proxy.connections >= 2

        # Media never stopped: every second since the cut brought frames, on both sides.
        for child, mark in ((caller, caller_mark), (callee, callee_mark)):
            stats = child.wait_stats(4, mark)
            fps = list(videos_flowing(stats))
            assert all(f > 0 for f in fps), f"{child.name}: fps since the cut {fps}"
            assert child.named("state", mark) == [], child.named("state", mark)

        # The hang-up goes over the new connection and reaches the callee.
        caller.send_signal(signal.SIGINT)
        assert caller.finish(30) == 0, caller.describe()
        assert callee.finish(30) == 0, callee.describe()
    finally:
        proxy.close()
    assert ended(caller)["reason"] == "hangup"
    assert ended(callee)["reason"] == "hangup"
    for child in (caller, callee):
        assert child.summary["reason"] == "hangup"
        assert child.summary["frame_numbers_decreased"] == 0
        assert child.summary["frames_numbered"] > 0


def test_killed_callee_ends_the_call_and_the_caller_calls_again(
    launch: Launcher, server: ServerProcess
) -> None:
    """SIGKILL the callee: the caller notices by itself (no help from the server's 30 s grace)."""
    launch.befriend(("ann-kill", "bo-kill"), ("ann-kill", "cy-kill"))
    doomed = answering(launch, server, "bo-kill")
    caller = launch.cli("ann-kill", "call", "bo-kill")
    caller.wait_state("connected", 30)
    doomed.wait_state("connected", 30)
    wait_video_flowing(caller)
    # The next callee logs in meanwhile, so that the second call can follow at once.
    next_callee = answering(launch, server, "cy-kill", "--duration", "3", wait=120)

    doomed.kill()
    killed_at = time.monotonic()
    ended_at, line = caller.wait_event("state", 30, state="ended")
    assert ended_at - killed_at <= 30
    assert line["reason"] not in NORMAL_ENDINGS, line
    assert caller.finish(10) == 1, caller.describe()
    assert caller.summary["reason"] == line["reason"]

    again = launch.cli("ann-kill", "call", "cy-kill")
    assert again.finish(40) == 0, again.describe()
    assert next_callee.finish(30) == 0, next_callee.describe()
    assert [s for s, _ in states(again)] == [
        "outgoing_ringing", "connecting", "connected", "ended",
    ]  # fmt: skip
    assert again.summary["reason"] == "hangup"
    assert again.summary["frames_received"] > 0
    assert next_callee.summary["frames_received"] > 0


# The Echo Test -----------------------------------------------------------------------


def test_echo_sends_back_the_pattern_at_once_and_the_tone_later(launch: Launcher) -> None:
    """A 5 s call gets its own pattern and tone back; in a 1 s call the tone is not back yet."""
    launch.register("ann-echo", "bo-echo")
    long = launch.cli(
        "ann-echo", "call", "echo", "--duration", "5", "--chat", "echo this",
        "--audio", "tone:523", "--resolution", "320x240",
    )  # fmt: skip
    short = launch.cli(
        "bo-echo", "call", "echo", "--duration", "1",
        "--audio", "tone:523", "--resolution", "320x240",
    )  # fmt: skip
    assert long.finish(60) == 0, long.describe()
    assert short.finish(60) == 0, short.describe()

    summary = long.summary
    assert summary["reason"] == "hangup"
    check_media(long, summary, (320, 240), 523.0, 3)
    (sent,) = long.named("chat_sent")
    assert [m["text"] for m in long.named("chat")] == ["echo this"]
    assert long.named("chat")[0]["id"] != sent["id"]

    # One second in, the pattern is back (frames with their numbers) but the tone is not:
    # the Echo Test plays audio back 1.5 s late, so what came so far is silence.
    summary = short.summary
    assert summary["reason"] == "hangup"
    assert summary["frames_numbered"] > 0, summary
    assert (summary["width"], summary["height"]) == (320, 240), summary
    assert summary["frame_numbers_decreased"] == 0, summary
    assert summary["audio_ms_received"] >= 300, summary
    peak = summary["audio_peak_hz"]
    assert peak is None or abs(peak - 523.0) > 50, summary
