"""How long the death of a service's coordinator interrupts what it carried.

Three ``parley-server --db postgresql://… --bus redis://… --sfu …`` instances (real PostgreSQL,
``redis-server`` and Janus, started here); the first one started is the coordinator. Each round
runs two scenes, each on a fresh service, and SIGKILLs the coordinator once media flows:

* **Echo Test**: one ``parley-cli`` on an edge in a call with the Echo Test, which the
  coordinator's bot answered; the next coordinator's bot takes the call over by a restart.
  Figures from the kill: the new coordinator's ``bus.coordinator`` log line, the caller's
  ``connected`` again, and its first stats line with video arriving (1 s resolution).
* **Meeting through Janus**: three ``parley-cli``, one per instance (each given every
  address), 320x180 at 8 frames/s; the new coordinator gives the meeting a new room. Figures from
  the kill: the last participant's ``media_server connected`` again, and the last participant's
  first stats line, after it said ``reconnecting``, with every other's video arriving (1 s
  resolution).

Every figure is min / median / max over the rounds, with the load average beside them: the
instances, the clients, PostgreSQL, Redis and Janus share the machine. Measurements, not
assertions. ``python -m bench.takeover [--rounds N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from tests.cli.procs import CliProcess, Launcher, ServerProcess
from tests.cluster.redis_server import RedisServer
from tests.pg import PostgresServer
from tests.sfu.janus_proc import new_secret, running_janus
from tests.stopping import terminate

SMALL = ("--resolution", "320x180", "--fps", "8")


@contextmanager
def service(
    postgres: PostgresServer, redis: RedisServer, *extra: str
) -> Iterator[list[ServerProcess]]:
    """Three instances on a fresh database and an emptied Redis; stopped at the end."""
    import redis as redis_py

    with redis_py.Redis(host="127.0.0.1", port=redis.port) as client:
        client.flushall()
    database = postgres.new_database()
    started: list[ServerProcess] = []
    try:
        for _ in range(3):  # one at a time: the first takes the lease
            instance = ServerProcess("--port", "0", "--db", database, "--bus", redis.url, *extra)
            started.append(instance)
            instance.wait_ready(60)
        yield started
    finally:
        for instance in started:
            terminate(instance.proc, 15)


def also(*others: ServerProcess) -> tuple[str, ...]:
    """``--server`` for each of ``others``."""
    return tuple(arg for o in others for arg in ("--server", o.url))


def first_after(
    child: CliProcess | ServerProcess, since: float, test: Callable[[str], bool], timeout: float
) -> float:
    """The arrival time of ``child``'s first stdout (client) or stderr (server) line after
    ``since`` that passes ``test``."""
    lines = child.out if isinstance(child, CliProcess) else child.err

    def check() -> float | None:
        return next((at for at, line in lines if at >= since and test(line)), None)

    return child.wait_for(check, timeout, "a line after the kill")


def parsed(line: str) -> dict[str, Any]:
    """A client's JSON line (empty for anything else)."""
    try:
        message = json.loads(line)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def event(kind: str, **fields: object) -> Callable[[str], bool]:
    """A client's ``kind`` line with these fields."""

    def test(line: str) -> bool:
        message = parsed(line)
        return message.get("event") == kind and all(message.get(k) == v for k, v in fields.items())

    return test


def video_from(username: str | None) -> Callable[[str], bool]:
    """A stats line (``link_stats`` of ``username``, or a call's ``stats``) with video arriving."""

    def test(line: str) -> bool:
        message = parsed(line)
        if username is None:
            ok = message.get("event") == "stats"
        else:
            ok = message.get("event") == "link_stats" and message.get("username") == username
        videos = message.get("videos") or []
        return ok and bool(videos) and float(videos[0].get("fps") or 0) > 0

    return test


def new_coordinator(instances: list[ServerProcess], since: float, timeout: float) -> float:
    """When one of ``instances`` logged that it became the coordinator after ``since``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for instance in instances:
            with instance.cond:
                found = [
                    a for a, line in instance.err if a >= since and "event=bus.coordinator " in line
                ]
            if found:
                return found[0]
        time.sleep(0.05)
    raise TimeoutError("no new coordinator")


def echo_round(postgres: PostgresServer, redis: RedisServer, name: str) -> dict[str, float]:
    """One Echo Test call through an edge; the coordinator killed mid-call."""
    with service(postgres, redis) as (first, second, third), Launcher.around(second.url) as launch:
        launch.register(name)
        caller = launch.cli(
            name, *also(third), "call", "echo", "--duration", "120",
            "--audio", "tone:523", "--resolution", "320x240", "--fps", "10",
        )  # fmt: skip
        caller.wait_event("state", 60, state="connected")
        caller.wait_stats(3, 0, 30)
        killed = time.monotonic()
        first.kill()
        took = new_coordinator([second, third], killed, 30)
        connected = first_after(caller, killed, event("state", state="connected"), 60)
        video = first_after(caller, connected, video_from(None), 30)
        caller.send_signal(signal.SIGINT)
        caller.finish(30, expect=0)
        return {
            "echo: new coordinator": took - killed,
            "echo: caller connected again": connected - killed,
            "echo: video back at the caller": video - killed,
        }


def sfu_round(
    postgres: PostgresServer, redis: RedisServer, sfu_args: tuple[str, ...], prefix: str
) -> dict[str, float]:
    """A meeting of three through Janus, one per instance; the coordinator killed mid-meeting."""
    users = [f"{prefix}-ada", f"{prefix}-bob", f"{prefix}-cyd"]
    with (
        service(postgres, redis, "--no-echo", *sfu_args) as instances,
        Launcher.around(instances[1].url) as launch,
    ):
        first, second, third = instances
        launch.befriend((users[0], users[1]), (users[0], users[2]))
        children: dict[str, CliProcess] = {}
        for user, here in zip(users[1:], instances[1:], strict=True):
            mark = first.log_mark()
            others = [i for i in instances if i is not here]
            children[user] = launch.cli(
                user, *also(*others), "meet", "answer", "--wait", "60",
                "--audio", "tone:550", "--stats", *SMALL, server=here.url,
            )  # fmt: skip
            first.wait_logged_in(user, mark)
        children[users[0]] = launch.cli(
            users[0], *also(second, third), "meet", "create", "--invite", ",".join(users[1:]),
            "--end", "--audio", "tone:440", "--stats", *SMALL, server=first.url,
        )  # fmt: skip
        start = time.monotonic()
        for user, child in children.items():
            for other in users:
                if other != user:
                    first_after(child, start, video_from(other), 90)
        killed = time.monotonic()
        first.kill()
        took = new_coordinator([second, third], killed, 30)
        connected = max(
            first_after(c, killed, event("media_server", state="connected"), 90)
            for c in children.values()
        )
        # Counted from each participant's "reconnecting" (its old links are closed then): a
        # stats line of the second before the kill would still show video on them.
        restarted = {
            user: first_after(child, killed, event("media_server", state="reconnecting"), 60)
            for user, child in children.items()
        }
        videos = max(
            first_after(child, restarted[user], video_from(other), 90)
            for user, child in children.items()
            for other in users
            if other != user
        )
        host = children[users[0]]
        host.send_signal(signal.SIGINT)
        for child in children.values():
            child.finish(30, expect=0)
        return {
            "janus meeting: new coordinator": took - killed,
            "janus meeting: last participant connected again": connected - killed,
            "janus meeting: every video back at every participant": videos - killed,
        }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.takeover", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {}
    loads: list[float] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="parley-takeover-") as tmp:
        postgres = PostgresServer()
        postgres.start()
        stack.callback(postgres.remove)
        redis = RedisServer()
        redis.start()
        stack.callback(redis.remove)
        secret = new_secret()
        secret_file = Path(tmp) / "admin-secret"
        secret_file.write_text(secret + "\n")
        janus = stack.enter_context(running_janus(Path(tmp) / "janus", secret))
        sfu_args = ("--sfu", janus.address, "--sfu-admin-secret-file", str(secret_file))
        for number in range(args.rounds):
            tag = f"to{os.getpid() % 1000}r{number}"
            for figures in (
                echo_round(postgres, redis, f"{tag}-ann"),
                sfu_round(postgres, redis, sfu_args, tag),
            ):
                for name, value in figures.items():
                    results.setdefault(name, []).append(value)
            loads.append(os.getloadavg()[0])
            print(f"round {number + 1}: load {loads[-1]:.1f}", flush=True)
    print(f"\nafter a SIGKILL of the coordinator, seconds (min / median / max of {args.rounds}):")
    for name, values in results.items():
        print(
            f"  {name:55s} {min(values):6.2f} / {statistics.median(values):6.2f} / "
            f"{max(values):6.2f}"
        )
    print(f"  load average (1 min) at the end of each round: {min(loads):.1f} / "
          f"{statistics.median(loads):.1f} / {max(loads):.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
