"""Meetings between real processes: every participant a ``parley-cli`` of its own, 640x360 at
15 frames/s (the test pattern, numbered, and a tone), against a real signaling server.

``python -m bench.meetings [--mode mesh] [--runs N] [--sizes 2,3,4] [--window S]
[--svg FILE] [--json FILE]``, or ``python -m bench --only meetings`` (three runs; one with
``--quick``). For each size of meeting and each run:

* **join → first frame**: for every pair (P sees Q), from the later of the two to begin
  joining, to P's first decoded frame from Q (each ``parley-cli`` reports its own times on
  the machine's monotonic clock, which all processes share); p50 and worst over the pairs;
* **frames per second per tile**: the mean of each link's per-second figures (``--stats``)
  over a steady window that starts once every link is connected and a few seconds have
  passed; the median tile and the worst tile;
* **CPU per participant**: each process's user+system time over that window, from
  ``/proc/PID/stat``, as a percentage of one core; the mean over the participants (and the
  server's own, beside it);

and, once per run in the ``sfu`` mode, the **failover**: three meet, the Janus holding the
meeting is killed, and each one's time until video from both others arrives again (to the
second of its per-second stats); and, once per run, the **escalation**: ``call --add``: two
in a call, a third added; the longest wait for a frame and the largest jump in frame
numbers that each of the first two saw from the other, from the moment the call moved on.

Every figure is printed as min/median/max over the runs. ``--svg`` draws CPU per
participant against the number of participants, one line per mode (``docs/
performance-meetings.svg``), by hand: no plotting library needed.

Modes are pluggable (:data:`MODES`): a mode starts the server (and whatever media server it
needs), says which sizes it measures and which extra processes' CPU to report. ``mesh``
needs nothing but ``parley-server``; ``sfu`` (2 to 8) starts a Janus from ``deploy/janus/`` and
``parley-server --sfu`` pointing at it, reports Janus's own CPU, and counts a participant
ready once it is connected to Janus and receives video from every other one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import Figure, Goal, PartialFailure, percentile
from bench.serverproc import PROJECT_ROOT, ServerProcess
from gui.core.signaling_client import SignalingClient
from signaling.server.sfu import launch

Json = dict[str, Any]

RESOLUTION = "640x360"
FPS = 15
PASSWORD = "bench-meetings-pw"
TICKS = os.sysconf("SC_CLK_TCK")
#: Goals from the issue: at least 14 frames/s per tile in a four-person mesh.
FPS_GOAL = Goal.at_least(14)
#: Extra options of every participant's ``meet`` command (``--max-videos N``).
MEET_OPTIONS: list[str] = []


# Modes -------------------------------------------------------------------------------


class Mode:
    """How meetings are served: the mesh of the built-in server, by default."""

    name = "mesh"
    sizes: tuple[int, ...] = (2, 3, 4)

    def __init__(self) -> None:
        self.server: ServerProcess | None = None

    async def start(self, workdir: Path) -> str:
        """Start what serves meetings; returns the signaling URL."""
        self.server = ServerProcess(workdir / "parley.db", workdir / "server.log")
        await self.server.start()
        return self.server.url

    async def stop(self) -> None:
        """Stop everything :meth:`start` started."""
        if self.server is not None:
            await self.server.stop()

    def cli_arguments(self) -> list[str]:
        """Extra arguments of every participant's ``parley-cli``."""
        return []

    def log_path(self) -> Path | None:
        """Where the signaling server logs (its logfmt lines)."""
        return self.server.log_path if self.server is not None else None

    def log_size(self) -> int:
        """How much the server has logged so far (a mark for :meth:`logged_in`)."""
        path = self.log_path()
        return path.stat().st_size if path is not None and path.exists() else 0

    def logged_in(self, users: Sequence[str], since: int) -> bool:
        """Whether each of ``users`` logged in after the mark ``since``."""
        path = self.log_path()
        if path is None:
            return True
        with open(path, "rb") as log:
            log.seek(since)
            lines = log.read().decode("utf-8", "replace").splitlines()
        return all(any("event=login" in x and f"user={user}" in x for x in lines) for user in users)

    def other_pids(self) -> dict[str, int]:
        """Processes whose CPU is reported beside the participants' (the server's, ...)."""
        return {"server": self.server.pid} if self.server is not None else {}

    def ready(self, participant: Participant, others: int) -> bool:
        """Whether ``participant`` receives from ``others`` others (mesh: links connected)."""
        return participant.linked(others)


class SfuMode(Mode):
    """Through a Janus started from ``deploy/janus/`` (``parley-server --sfu``): 2 to 8."""

    name = "sfu"
    sizes = (2, 3, 4, 5, 6, 7, 8)

    def __init__(self) -> None:
        super().__init__()
        #: The Janus meetings go to, and a second one they move to when it is killed.
        self.janus: asyncio.subprocess.Process | None = None
        self.standby: asyncio.subprocess.Process | None = None
        self.parley: asyncio.subprocess.Process | None = None
        self.workdir = Path()
        self.primary = ""

    async def _janus(self, name: str) -> asyncio.subprocess.Process:
        with open(self.workdir / f"{name}.log", "ab") as log:
            return await asyncio.create_subprocess_exec(
                *launch.command(self.workdir / name), stdout=log, stderr=log
            )

    async def start(self, workdir: Path) -> str:
        """Two Janus on free ports, then ``parley-server --sfu`` pointing at both (the
        first gets the meetings: both are empty and ties go to the first)."""

        def free() -> int:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                return int(sock.getsockname()[1])

        self.workdir = workdir
        secret = secrets.token_urlsafe(24)
        (workdir / "secret").write_text(secret)
        addresses = []
        for name, rtp in (("janus", (41000, 41999)), ("standby", (42000, 42999))):
            ws, admin = free(), free()
            launch.render(
                workdir / name, admin_secret=secret, ws_port=ws, admin_port=admin, rtp_ports=rtp
            )
            addresses += ["--sfu", f"ws://127.0.0.1:{ws}?admin={admin}"]
            setattr(self, name, await self._janus(name))
        self.primary = addresses[1]
        with open(workdir / "server.log", "wb") as log:
            self.parley = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gui.server", "--port", "0", "--no-echo",
                "--db", str(workdir / "parley.db"), *addresses,
                "--sfu-admin-secret-file", str(workdir / "secret"),
                stdout=asyncio.subprocess.PIPE, stderr=log, cwd=PROJECT_ROOT,
            )  # fmt: skip
        assert self.parley.stdout is not None
        async with asyncio.timeout(30):
            async for line in self.parley.stdout:
                if b"listening on " in line:
                    return line.decode().rsplit(" ", 1)[1].strip()
        raise RuntimeError(f"parley-server did not start; see {workdir / 'server.log'}")

    async def stop(self) -> None:
        """Stop the server, then Janus."""
        for process in (self.parley, self.janus, self.standby):
            if process is not None and process.returncode is None:
                process.terminate()
                try:
                    async with asyncio.timeout(15):
                        await process.wait()
                except TimeoutError:
                    process.kill()
                    await process.wait()

    def log_path(self) -> Path | None:
        """``parley-server --sfu`` logs beside Janus."""
        return self.workdir / "server.log"

    def other_pids(self) -> dict[str, int]:
        """The server's and Janus's own CPU, beside the participants'."""
        pids = {"server": self.parley.pid} if self.parley is not None else {}
        return pids | ({"janus": self.janus.pid} if self.janus is not None else {})

    def ready(self, participant: Participant, others: int) -> bool:
        """Connected to Janus, media arriving from ``others`` others, and video from each
        of those whose video it receives (all, or the most recent speakers in a larger
        meeting: its last ``videos`` line)."""
        states = participant.named("media_server")
        if not states or states[-1]["state"] != "connected":
            return False
        # Each other's newest figures: a video paused and resumed must be arriving again.
        newest = {line["username"]: line for line in participant.named("link_stats")}
        hearing = {u for u, line in newest.items() if line.get("bitrate_in_kbps", 0) > 0}
        seeing = {
            u
            for u, line in newest.items()
            if any(video.get("fps", 0) > 0 for video in line.get("videos") or [])
        }
        wanted = participant.videos()
        if wanted is None:
            return len(seeing) >= others
        return len(hearing) >= others and set(wanted) <= seeing

    async def failover(self, url: str, users: Sequence[str]) -> list[float]:
        """Three meet; the first Janus is killed: for each, seconds until it receives video
        from both others again. The first Janus is started again after."""
        people = list(users[:3])
        guests = [
            Participant(u, ["meet", "answer", "--wait", "60", "--stats", *media(550 + 110 * i)])
            for i, u in enumerate(people[1:])
        ]
        host = Participant(
            people[0],
            ["meet", "create", "--invite", ",".join(people[1:]), "--end", "--stats", *media(440)],
        )
        everyone = [host, *guests]
        log = self.workdir / "server.log"
        ups = log.read_text().count(f"event=sfu.up sfu={self.primary.split('?')[0]}")
        try:
            for p in everyone:
                await p.start(url)
            await wait_until(lambda: all(self.ready(p, 2) for p in everyone), 90, "all receiving")
            assert self.janus is not None
            killed = time.monotonic()
            self.janus.kill()
            await self.janus.wait()

            def resumed(p: Participant) -> float | None:
                later = [(at, m) for at, m in p.events if at > killed]
                states = [m["state"] for _, m in later if m.get("event") == "media_server"]
                if "reconnecting" not in states or states[-1] != "connected":
                    return None
                seen: dict[str, float] = {}
                for at, m in later:
                    videos = (m.get("videos") or []) if m.get("event") == "link_stats" else []
                    if any(v.get("fps", 0) > 0 for v in videos):
                        seen.setdefault(m["username"], at)
                return max(seen.values()) - killed if len(seen) == 2 else None

            await wait_until(lambda: all(resumed(p) for p in everyone), 90, "resumed meeting")
            times = [resumed(p) or 0.0 for p in everyone]
            host.stop()
            for p in everyone:
                await p.finish()
        finally:
            await reap(everyone)
        self.janus = await self._janus("janus")
        needle = f"event=sfu.up sfu={self.primary.split('?')[0]}"
        await wait_until(lambda: log.read_text().count(needle) > ups, 60, "the first Janus back")
        return times


#: Every mode ``--mode`` knows; another topology adds its class here.
MODES: dict[str, type[Mode]] = {"mesh": Mode, "sfu": SfuMode}


# Processes -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, in seconds."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class Participant:
    """One ``parley-cli`` process and the JSON lines it printed, with their arrival times."""

    user: str
    argv: list[str]
    events: list[tuple[float, Json]] = field(default_factory=list)
    process: asyncio.subprocess.Process | None = None
    reader: asyncio.Task[None] | None = None
    stderr: bytes = b""

    async def start(self, url: str) -> None:
        """Start the process against the server at ``url``."""
        env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gui.cli", "--server", url, "--user", self.user,
            "--password", PASSWORD, *self.argv,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=PROJECT_ROOT, env=env,
        )  # fmt: skip
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            with contextlib.suppress(ValueError):
                self.events.append((time.monotonic(), json.loads(line)))

    @property
    def pid(self) -> int:
        """The process's id."""
        assert self.process is not None
        return self.process.pid

    def named(self, event: str) -> list[Json]:
        """Every line of this ``event``, in order."""
        return [m for _, m in self.events if m.get("event") == event]

    def videos(self) -> list[str] | None:
        """Whose video it receives now (its last ``videos`` line); None: it never said
        (a mesh: everyone's)."""
        lines = self.named("videos")
        return list(lines[-1]["usernames"]) if lines else None

    def linked(self, count: int) -> bool:
        """Whether its newest participant list shows ``count`` connected links."""
        lists = self.named("participants")
        if not lists:
            return False
        links = [p["link"] for p in lists[-1]["participants"]]
        return len(links) == count and all(link == "connected" for link in links)

    async def finish(self, timeout: float = 60.0) -> int:
        """Its exit status (killed after ``timeout``)."""
        assert self.process is not None
        try:
            async with asyncio.timeout(timeout):
                assert self.process.stderr is not None
                self.stderr = await self.process.stderr.read()
                code = await self.process.wait()
        except TimeoutError:
            self.process.kill()
            code = await self.process.wait()
        if self.reader is not None:
            await self.reader
        return code

    def summary(self) -> Json:
        """Its last ``summary`` line."""
        found = self.named("summary")
        if not found:
            tail = self.stderr.decode("utf-8", "replace")[-600:]
            raise RuntimeError(f"{self.user} printed no summary: {tail}")
        return found[-1]

    def stop(self) -> None:
        """Ctrl+C: leave (or, as a host with ``--end``, end the meeting)."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)


async def reap(people: Sequence[Participant]) -> None:
    """Kill whichever of ``people`` is still running (a run that failed part-way)."""
    for p in people:
        if p.process is not None and p.process.returncode is None:
            p.process.kill()
            await p.finish(10)


def describe(people: Sequence[Participant]) -> str:
    """Each process's last lines, for a failure's message."""
    return " | ".join(
        f"{p.user}: {[m for _, m in p.events[-3:]]} {p.stderr.decode('utf-8', 'replace')[-300:]}"
        for p in people
    )


async def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} within {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def make_friends(url: str, users: Sequence[str]) -> None:
    """Register ``users`` (or log them in) and make every pair accepted contacts."""
    clients = []
    for user in users:
        client = SignalingClient(url)
        await client.connect()
        try:
            await client.register(user, PASSWORD)
        except Exception:
            await client.login(user, PASSWORD)
        clients.append(client)
    for i, a in enumerate(clients):
        for b, name in zip(clients[i + 1 :], users[i + 1 :], strict=True):
            await a.request("contacts.request", username=name)
            await b.request("contacts.request", username=users[i])
    for client in clients:
        await client.close()


def media(hz: int) -> list[str]:
    return ["--resolution", RESOLUTION, "--fps", str(FPS), "--audio", f"tone:{hz}"]


def answer_options(i: int) -> list[str]:
    """The ``meet`` options and media of the ``i``-th participant (the host is 0)."""
    return [*MEET_OPTIONS, *media(500 + 110 * i if i else 440)]


# One meeting -----------------------------------------------------------------------------


@dataclass
class MeetingRun:
    """What one meeting of ``size`` measured."""

    size: int
    first_frame_ms: list[float]
    tile_fps: list[float]
    cpu_pct: list[float]
    other_cpu_pct: dict[str, float]
    #: Videos each participant received at once (the tiles), on average.
    tiles_each: float = 0.0


async def one_meeting(
    mode: Mode, url: str, users: Sequence[str], size: int, window: float
) -> MeetingRun:
    """``size`` participants meet: the host creates, the others answer as soon as invited."""
    people = list(users[:size])
    extra = mode.cli_arguments()
    guests = [
        Participant(u, [*extra, "meet", "answer", "--wait", "60", "--stats", *answer_options(i)])
        for i, u in enumerate(people[1:], start=1)
    ]
    host = Participant(
        people[0],
        [*extra, "meet", "create", "--invite", ",".join(people[1:]), "--end", "--stats",
         *MEET_OPTIONS, *media(440)],
    )  # fmt: skip
    everyone = [host, *guests]
    try:
        for guest in guests:
            await guest.start(url)
        await host.start(url)
        await wait_until(
            lambda: all(mode.ready(p, size - 1) for p in everyone), 90, "meeting fully linked"
        )
        await asyncio.sleep(3)  # let bandwidth estimation settle
        pids = {p.user: p.pid for p in everyone} | mode.other_pids()
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        window_start = time.monotonic()
        await asyncio.sleep(window)
        elapsed = time.monotonic() - window_start
        after = {name: cpu_seconds(pid) for name, pid in pids.items()}
        host.stop()  # --end: the host ends it for everyone
        codes = [await p.finish() for p in everyone]
    finally:
        await reap(everyone)
    if any(codes):
        raise RuntimeError(f"a participant failed ({codes}): {describe(everyone)}")
    cpu = {name: 100 * (after[name] - before[name]) / elapsed for name in pids}
    summaries = {p.user: p.summary() for p in everyone}
    firsts = []
    shown_to = {p.user: p.videos() for p in everyone}
    for viewer, summary in summaries.items():
        for other, figures in summary["participants"].items():
            seen = figures.get("first_frame_at")
            if seen is not None:
                began = max(summary["joining_at"], summaries[other]["joining_at"])
                firsts.append(1000 * (seen - began))
            elif (shown := shown_to[viewer]) is None or other in shown:
                print(f"[meetings] {viewer} never saw {other}", file=sys.stderr)
    # A tile is a video received: everyone else's, or the few a larger meeting through a
    # media server receives at once (the others' are paused at the server: no tile).
    tiles, tile_counts = [], []
    for p in everyone:
        by_other: dict[str, list[float]] = {}
        shown = shown_to[p.user]
        for at, line in p.events:
            if line.get("event") == "link_stats" and window_start <= at <= window_start + elapsed:
                if shown is not None and line["username"] not in shown:
                    continue
                for video in line.get("videos") or []:
                    if video.get("name") == "camera":
                        by_other.setdefault(line["username"], []).append(video["fps"])
        tiles += [statistics.fmean(v) for v in by_other.values() if v]
        tile_counts.append(len(shown) if shown is not None else size - 1)
    return MeetingRun(
        size,
        firsts,
        tiles,
        [cpu[p.user] for p in everyone],
        {k: v for k, v in cpu.items() if k not in summaries},
        statistics.fmean(tile_counts),
    )


async def one_escalation(mode: Mode, url: str, users: Sequence[str]) -> list[Json]:
    """A call of two becomes a meeting of three; the first two's figures since the move."""
    ada, bob, cyd = users[:3]
    extra = mode.cli_arguments()
    callee = Participant(bob, [*extra, "answer", "--wait", "60", "--duration", "14", *media(550)])
    third = Participant(cyd, [*extra, "meet", "answer", "--wait", "60", "--duration", "6",
                              *media(660)])  # fmt: skip
    caller = Participant(
        ada,
        [*extra, "call", bob, "--add", cyd, "--add-after", "3", "--duration", "14", *media(440)],
    )
    everyone = [callee, third, caller]
    try:
        mark = mode.log_size()
        for p in (callee, third):
            await p.start(url)
        # A call to someone not logged in yet ends at once as "offline".
        await wait_until(lambda: mode.logged_in([bob, cyd], mark), 60, "callee logged in")
        await caller.start(url)
        codes = [await p.finish(90) for p in everyone]
    finally:
        await reap(everyone)
    if any(codes):
        raise RuntimeError(f"escalation failed ({codes}): {describe(everyone)}")
    out = []
    for viewer, other in ((caller, bob), (callee, ada)):
        figures = dict(viewer.summary()["participants"][other])
        # Through a media server: from the move to the other shown through it, and to the
        # call's connection closed (make before break), on this process's clock.
        moved = next((t for t, m in viewer.events if m.get("event") == "moved"), None)
        for state in ("switched", "closed"):
            at = next(
                (t for t, m in viewer.events
                 if m.get("event") == "handover" and m.get("state") == state),
                None,
            )  # fmt: skip
            if moved is not None and at is not None:
                figures[f"{state}_s"] = at - moved
        out.append(figures)
    return out


# The whole benchmark ----------------------------------------------------------------------


def spread(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


async def measure(
    mode_name: str,
    runs: int,
    sizes: Sequence[int],
    window: float,
    failover: bool = True,
    escalation: bool = True,
) -> Json:
    """Every run of every size, and the escalations; the raw figures by size
    (``failover``, ``escalation``: whether to measure those)."""
    mode = MODES[mode_name]()
    users = [f"bm-{mode_name}-{i}" for i in range(max([*sizes, 3]))]
    errors: list[str] = []
    results: Json = {
        "mode": mode_name,
        "runs": runs,
        "window_s": window,
        "sizes": {},
        "errors": errors,
    }
    with tempfile.TemporaryDirectory(prefix="bench-meetings-") as tmp:
        url = await mode.start(Path(tmp))
        try:
            await make_friends(url, users)
            for run in range(runs):
                for size in sizes:
                    print(f"[meetings] run {run + 1}/{runs}: {size} participants", file=sys.stderr)
                    try:
                        got = await one_meeting(mode, url, users, size, window)
                    except Exception as exc:  # one broken run must not lose the others
                        errors.append(f"run {run + 1}, {size} participants: {exc}")
                        continue
                    entry = results["sizes"].setdefault(
                        str(size), {"first_frame_ms": [], "tile_fps": [], "cpu_pct": [],
                                    "runs": []}
                    )  # fmt: skip
                    entry["first_frame_ms"] += got.first_frame_ms
                    entry["tile_fps"] += got.tile_fps
                    entry["cpu_pct"] += got.cpu_pct
                    entry["runs"].append(
                        {
                            "first_frame_p50_ms": percentile(got.first_frame_ms, 50),
                            "first_frame_worst_ms": max(got.first_frame_ms, default=float("nan")),
                            "tile_fps_median": statistics.median(got.tile_fps)
                            if got.tile_fps else float("nan"),
                            "tile_fps_worst": min(got.tile_fps, default=float("nan")),
                            "cpu_pct_mean": statistics.fmean(got.cpu_pct),
                            "tiles_each": got.tiles_each,
                            "load_1min": os.getloadavg()[0],
                            "others_cpu_pct": got.other_cpu_pct,
                        }
                    )  # fmt: skip
                if isinstance(mode, SfuMode) and failover:
                    print(f"[meetings] run {run + 1}/{runs}: failover", file=sys.stderr)
                    try:
                        moved = await mode.failover(url, users)
                        results.setdefault("failover_s", []).extend(moved)
                    except Exception as exc:
                        errors.append(f"run {run + 1}, failover: {exc}")
                if not escalation:
                    continue
                print(f"[meetings] run {run + 1}/{runs}: escalation", file=sys.stderr)
                try:
                    escalated = await one_escalation(mode, url, users)
                except Exception as exc:
                    errors.append(f"run {run + 1}, escalation: {exc}")
                    continue
                results.setdefault("escalation", []).extend(escalated)
        finally:
            await mode.stop()
    return results


def figures_of(results: Json) -> list[Figure]:
    """The benchmark's figures: medians over the runs."""
    name = f"meetings-{results['mode']}"
    out = []
    for size, entry in results["sizes"].items():
        runs = entry["runs"]

        def med(key: str, runs: list[Json] = runs) -> float:
            return statistics.median(r[key] for r in runs)

        goal = FPS_GOAL if size == "4" else None
        out += [
            Figure(name, f"{size}: join to first frame, p50", med("first_frame_p50_ms"), "ms"),
            Figure(name, f"{size}: join to first frame, worst", med("first_frame_worst_ms"), "ms"),
            Figure(name, f"{size}: frames/s per tile, median", med("tile_fps_median"), "fps"),
            Figure(name, f"{size}: frames/s per tile, worst", med("tile_fps_worst"), "fps", goal),
            Figure(name, f"{size}: CPU per participant", med("cpu_pct_mean"), "% of a core"),
        ]
    moved = results.get("failover_s", [])
    if moved:
        out.append(Figure(name, "Janus killed: video again after", statistics.median(moved), "s"))
    gaps = [e["longest_gap_ms"] for e in results.get("escalation", [])]
    if gaps:
        out.append(Figure(name, "escalation: longest frame gap", statistics.median(gaps), "ms"))
    return out


def report(results: Json) -> str:
    """min / median / max over the runs, as text."""
    lines = [
        f"mode {results['mode']}: {results['runs']} runs, {RESOLUTION} at {FPS} fps, "
        f"{results['window_s']:g} s window (min / median / max over runs)"
    ]
    for size, entry in results["sizes"].items():
        runs = entry["runs"]
        pick = {k: [r[k] for r in runs] for k in runs[0] if k != "others_cpu_pct"}
        others = {k: [r["others_cpu_pct"][k] for r in runs] for k in runs[0]["others_cpu_pct"]}
        lines.append(
            f"  {size} participants: join->first frame p50 "
            f"{spread(pick['first_frame_p50_ms'])} ms, "
            f"worst {spread(pick['first_frame_worst_ms'])} ms; frames/s per tile median "
            f"{spread(pick['tile_fps_median'])}, worst {spread(pick['tile_fps_worst'])}; CPU per "
            f"participant {spread(pick['cpu_pct_mean'])} % of a core; tiles each "
            f"{spread(pick['tiles_each'])}; load average {spread(pick['load_1min'])}"
            + "".join(f"; {k} {spread(v)} %" for k, v in others.items())
        )
    failover = results.get("failover_s", [])
    if failover:
        lines.append(
            f"  Janus killed mid-meeting of three (each participant, every run): video from both "
            f"others again after {spread(failover)} s"
        )
    escalation = results.get("escalation", [])
    if escalation:
        gaps = [e["longest_gap_ms"] for e in escalation]
        skips = [e["largest_frame_skip"] for e in escalation]
        lines.append(
            f"  escalation (each of the first two, every run): longest wait for a frame "
            f"{spread(gaps)} ms, largest jump in frame numbers {spread(skips)}"
        )
        switched = [e["switched_s"] for e in escalation if "switched_s" in e]
        closed = [e["closed_s"] for e in escalation if "closed_s" in e]
        if switched:
            lines.append(
                f"  escalation through the media server: the other shown through it "
                f"{spread(switched)} s after the move, the call's connection closed after "
                f"{spread(closed)} s"
            )
    lines += [f"  FAILED {error}" for error in results["errors"]]
    return "\n".join(lines)


def svg(all_results: Sequence[Json]) -> str:
    """CPU per participant (median over runs) against participants, one line per mode."""
    width, height, left, bottom, top, right = 560, 340, 60, 50, 40, 130
    points = {
        r["mode"]: sorted(
            (int(size), statistics.median(run["cpu_pct_mean"] for run in entry["runs"]))
            for size, entry in r["sizes"].items()
        )
        for r in all_results
    }
    sizes = sorted({n for pts in points.values() for n, _ in pts})
    top_cpu = max([v for pts in points.values() for _, v in pts] + [10.0])
    y_max = 20 * int(top_cpu / 20 + 1)
    x_lo, x_hi = min(sizes), max(sizes) if max(sizes) > min(sizes) else min(sizes) + 1

    def x(n: float) -> float:
        return left + (n - x_lo) / (x_hi - x_lo) * (width - left - right)

    def y(v: float) -> float:
        return height - bottom - v / y_max * (height - bottom - top)

    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">CPU per participant '
        f"({RESOLUTION}, {FPS} fps, each a parley-cli process)</text>",
    ]
    for step in range(0, y_max + 1, 20):
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(step)}" y2="{y(step)}" '
            f'stroke="#ddd"/><text x="{left - 6}" y="{y(step) + 4}" text-anchor="end">{step}</text>'
        )
    for n in range(x_lo, x_hi + 1):
        parts.append(f'<text x="{x(n)}" y="{height - bottom + 18}" text-anchor="middle">{n}</text>')
    parts.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">'
        "participants</text>"
        f'<text x="16" y="{(top + height - bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {(top + height - bottom) / 2})">% of one core</text>'
    )
    for i, (mode, pts) in enumerate(points.items()):
        colour = colours[i % len(colours)]
        path = " ".join(f"{x(n):.1f},{y(v):.1f}" for n, v in pts)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [
            f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="3.5" fill="{colour}"/>' for n, v in pts
        ]
        parts.append(
            f'<text x="{width - right + 12}" y="{top + 20 + 18 * i}" fill="{colour}">{mode}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def run(quick: bool) -> list[Figure]:
    """``python -m bench --only meetings``: the mesh, three runs (one with ``quick``)."""
    results = asyncio.run(measure("mesh", 1 if quick else 3, (2, 3, 4), 4.0 if quick else 8.0))
    print(report(results), file=sys.stderr)
    if results["errors"]:
        raise PartialFailure(figures_of(results), results["errors"])
    return figures_of(results)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.meetings", description=__doc__)
    parser.add_argument("--mode", action="append", choices=sorted(MODES), help="default: mesh")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default=None, help="e.g. 2,3,4 (default: the mode's)")
    parser.add_argument("--window", type=float, default=8.0, help="seconds measured (default 8)")
    parser.add_argument("--svg", type=Path, help="write the CPU plot here")
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    parser.add_argument(
        "--escalation-only", action="store_true", help="measure only the call becoming a meeting"
    )
    parser.add_argument(
        "--max-videos",
        type=int,
        metavar="N",
        help="each participant receives at most N videos at once (parley-cli meet "
        "--max-videos; default: its own choice by the meeting's size)",
    )
    parser.add_argument(
        "--no-failover", action="store_true", help="sfu: skip the Janus-killed measurement"
    )
    parser.add_argument(
        "--no-escalation", action="store_true", help="skip the call-becomes-a-meeting measurement"
    )
    args = parser.parse_args(argv)
    if args.max_videos is not None:
        MEET_OPTIONS[:] = ["--max-videos", str(args.max_videos)]
    all_results = []
    for mode in args.mode or ["mesh"]:
        sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(MODES[mode].sizes)
        if args.escalation_only:
            sizes = []
        results = asyncio.run(
            measure(
                mode,
                args.runs,
                sizes,
                args.window,
                failover=not (args.no_failover or args.escalation_only),
                escalation=not args.no_escalation,
            )
        )
        print(report(results), flush=True)
        all_results.append(results)
    if args.svg:
        args.svg.write_text(svg(all_results), encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(all_results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
