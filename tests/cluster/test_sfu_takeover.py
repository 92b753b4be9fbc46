"""A meeting through a real Janus outlives the coordinator of three instances.

Three ``parley-cli``, one on each instance (each given all three addresses, its own first),
meet through the session's Janus; once media flows the coordinator, which holds the meeting
and its room, is SIGKILLed. The next coordinator has the meeting from the mirror and gives it
a new room, as when a Janus dies: the two participants on the other instances are told
(``sfu.reconnect``), the one on the dead instance reconnects to another and joins again; each
must then receive every other's video again, and hear every other's pitch.
"""

from __future__ import annotations

import signal

import pytest

from tests.cli.meetings import check_heard
from tests.cli.procs import CliProcess, Launcher, ServerProcess
from tests.cluster.conftest import Service
from tests.sfu.conftest import SfuSetup, sfu  # noqa: F401 (the fixture)
from tests.sfu.test_failover import connected_again, wait_videos
from tests.sfu.test_sfu_meetings import SMALL, receiving
from tests.waiting import until

pytestmark = pytest.mark.slow

TONES = {"tk-ada": 440, "tk-bob": 550, "tk-cyd": 660}


def took_over(
    instances: tuple[ServerProcess, ...], since: dict[ServerProcess, int]
) -> ServerProcess | None:
    """The one of ``instances`` that logged becoming the coordinator since its mark, if any."""
    for instance in instances:
        with instance.cond:
            lines = [line for _, line in instance.err[since[instance] :]]
        if any("event=bus.coordinator " in line for line in lines):
            return instance
    return None


def also(*others: ServerProcess) -> tuple[str, ...]:
    """``--server`` for each of ``others``: where a client moves when its first one dies."""
    out: list[str] = []
    for instance in others:
        out += ["--server", instance.url]
    return tuple(out)


async def test_a_janus_meeting_outlives_the_coordinator(
    service: Service,
    sfu: SfuSetup,  # noqa: F811 (the fixture imported above)
) -> None:
    first, second, third = await service(3, "--no-echo", *sfu.server_args)
    places = {"tk-ada": first, "tk-bob": second, "tk-cyd": third}
    with Launcher.around(second.url) as launch:
        launch.befriend(("tk-ada", "tk-bob"), ("tk-ada", "tk-cyd"))
        everyone: dict[str, CliProcess] = {}
        for user in ("tk-bob", "tk-cyd"):
            here = places[user]
            elsewhere = [i for i in (first, second, third) if i is not here]
            mark = first.log_mark()  # the coordinator logs every login
            everyone[user] = launch.cli(
                user,
                *also(*elsewhere),
                "meet", "answer", "--wait", "60", "--audio", f"tone:{TONES[user]}",
                "--stats", *SMALL,
                server=here.url,
            )  # fmt: skip
            first.wait_logged_in(user, mark)
        everyone["tk-ada"] = launch.cli(
            "tk-ada",
            *also(second, third),
            "meet", "create", "--invite", "tk-bob,tk-cyd", "--end",
            "--audio", f"tone:{TONES['tk-ada']}", "--stats", *SMALL,
            server=first.url,
        )  # fmt: skip
        host = everyone["tk-ada"]
        _, joined = host.wait_event("state", 30, state="joined")
        assert joined["topology"] == "sfu", joined
        for user, child in everyone.items():
            receiving(child, set(TONES) - {user})
            wait_videos(child, set(TONES) - {user}, 0)

        marks = {user: child.mark() for user, child in everyone.items()}
        logs = {instance: instance.log_mark() for instance in (second, third)}
        first.kill()
        # The next coordinator (either of the two) makes the meeting a new room.
        new = await until(lambda: took_over((second, third), logs), 30, "a new coordinator")
        new.wait_log(r"event=sfu\.room ", logs[new], 40)
        for user, child in everyone.items():
            child.wait_for(
                lambda c=child, u=user: connected_again(c, marks[u]),
                90,
                "connected to the media server again",
            )
        # From now on (a stats line of the second before the kill would show the old links).
        for user, child in everyone.items():
            wait_videos(child, set(TONES) - {user}, child.mark(), timeout=60)

        host.send_signal(signal.SIGINT)
        assert host.finish(30) == 0, host.describe()
        for user in ("tk-bob", "tk-cyd"):
            assert everyone[user].finish(30) == 0, everyone[user].describe()
        for user, child in everyone.items():
            check_heard(child, {u: hz for u, hz in TONES.items() if u != user}, frames=10)
            for figures in child.summary["participants"].values():
                assert figures["links"] >= 2, (user, child.summary["participants"])
            child.assert_clean()
