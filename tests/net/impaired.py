"""Calls between the lab's two homes, for the impaired-network cases (loss, cap, black hole,
new address): a STUN server (coturn) and ``parley-server`` in the internet namespace, one
``parley-cli`` in each home, and what their ``stats`` lines say about the media.

Used by ``tests/net/test_recovery.py``, ``tests/net/test_degraded.py`` and
``bench/network.py``. The homes sit behind ordinary NATs, so the call takes the direct
(server-reflexive) path; each cli learns its public address from the STUN server.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cli.procs import URL_RE, Child, CliProcess, password_of
from tests.net.lab import SERVER_IP, Home, Lab, network_lab

STUN_PORT = 3478
STUN = f"stun:{SERVER_IP}:{STUN_PORT}"
Json = dict[str, Any]


@dataclass
class LabCall:
    """A call from home a (``caller``) to home b (``callee``) in a lab."""

    lab: Lab
    caller: CliProcess
    callee: CliProcess
    children: list[Child]

    def home(self, name: str) -> Home:
        """Home ``a`` or ``b``."""
        return self.lab.homes[name]

    def side(self, name: str) -> CliProcess:
        """The cli in home ``a`` (the caller) or ``b`` (the callee)."""
        return self.caller if name == "a" else self.callee


def _cli(
    url: str, home: Home, user: str, *args: str, register: bool = False, verbose: bool = False
) -> CliProcess:
    argv = [
        sys.executable,
        "-m",
        "gui.cli",
        "--server",
        url,
        "--user",
        user,
        "--password",
        password_of(user),
        "--ice",
        STUN,
        *(["--register"] if register else []),
        *(["-v"] if verbose else []),
        *args,
    ]
    return CliProcess(f"parley-cli[{user}@{home.name} {' '.join(args[:1])}]", home.argv(argv))


def start_services(lab: Lab, directory: Path, children: list[Child]) -> Child:
    """coturn (STUN only) and parley-server in the internet namespace; the server, listening."""
    stun = Child(
        "coturn",
        lab.internet.argv(
            [
                "turnserver", "-n", "--stun-only", "--no-cli", "--no-tls", "--no-dtls",
                f"--listening-ip={SERVER_IP}", f"--listening-port={STUN_PORT}",
                "--log-file=stdout", "--simple-log",
            ]
        ),
    )  # fmt: skip
    children.append(stun)
    server = Child(
        "parley-server",
        lab.internet.argv(
            [
                sys.executable, "-m", "gui.server", "--host", SERVER_IP, "--port", "0",
                "--db", str(directory / "parley.db"), "--no-echo",
            ]
        ),
    )  # fmt: skip
    children.append(server)

    def url() -> str | None:
        for _, line in server.out:
            match = URL_RE.search(line)
            if match:
                return match.group(1)
        return None

    server.url = server.wait_for(url, 30, "listening URL")  # type: ignore[attr-defined]
    return server


def lab_unavailable() -> str | None:
    """Why these calls cannot run here (for a skip), or None."""
    from tests.net.lab import unavailable

    return unavailable() or (None if shutil.which("turnserver") else "coturn is not installed")


@contextlib.contextmanager
def lab_call(
    caller_args: tuple[str, ...] = (),
    callee_args: tuple[str, ...] = (),
    verbose: bool = False,
) -> Iterator[LabCall]:
    """A lab with its services, and a connected call from home a to home b whose video flows.

    ``caller_args``/``callee_args`` go after ``call``/``answer`` (``--resolution``...). Every
    process is killed and the lab torn down at the end, whatever happens.
    """
    children: list[Child] = []
    with tempfile.TemporaryDirectory(prefix="parley-lab-") as tmp, network_lab() as lab:
        try:
            server = start_services(lab, Path(tmp), children)
            url: str = server.url  # type: ignore[attr-defined]
            users = ("ann-lab", "bob-lab")
            first = [_cli(url, lab.a, users[0], "contacts", register=True)]
            first.append(_cli(url, lab.b, users[1], "contacts", register=True))
            children += first
            for child in first:
                child.finish(60, expect=0)
            pairs = ((lab.a, users[0], users[1]), (lab.b, users[1], users[0]))
            for home, me, other in pairs:
                adding = _cli(url, home, me, "add", other)
                children.append(adding)
                adding.finish(60, expect=0)
            mark = len(server.err)
            callee = _cli(
                url, lab.b, users[1], "answer", "--wait", "120", *callee_args, verbose=verbose
            )
            children.append(callee)
            server.wait_stderr(rf"event=login conn=\S+ user={users[1]}(\s|$)", 30, mark)
            caller = _cli(url, lab.a, users[0], "call", users[1], *caller_args, verbose=verbose)
            children.append(caller)
            call = LabCall(lab, caller, callee, children)
            for side in (caller, callee):
                side.wait_state("connected", 60)
            for side in (caller, callee):
                wait_video(side, 30)
            yield call
        finally:
            for process in reversed(children):
                process.kill()


def camera_fps(stats: Json) -> float:
    """The received camera's frame rate in one ``stats`` line (0 when none)."""
    return next((v["fps"] for v in stats.get("videos", []) if v["name"] == "camera"), 0.0)


def wait_video(side: CliProcess, timeout: float, since: int = 0, fps: float = 3.0) -> float:
    """Until a ``stats`` line from index ``since`` shows the camera at ``fps`` or more; when."""

    def check() -> float | None:
        for at, message in side.events[since:]:
            if message["event"] == "stats" and camera_fps(message) >= fps:
                return at
        return None

    return side.wait_for(check, timeout, f"camera video at {fps} fps or more")


def stats_between(side: CliProcess, start: float, end: float) -> list[Json]:
    """The ``stats`` lines that arrived between two monotonic times."""
    with side.cond:
        return [m for at, m in side.events if m["event"] == "stats" and start <= at <= end]


def hang_up(call: LabCall) -> None:
    """The caller hangs up (SIGINT); both end normally, each with one summary."""
    import signal

    call.caller.send_signal(signal.SIGINT)
    for side in (call.caller, call.callee):
        side.finish(30, expect=0)
