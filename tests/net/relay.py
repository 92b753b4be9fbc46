"""The lab with TURN: coturn (started by ``deploy/coturn/start``, UDP and TCP on 3478, TLS on
5349 with a test certificate) and ``parley-server --turn ... --stun ... --turn-secret-file`` in
the internet namespace, two users who are contacts, and calls between the homes where each
``parley-cli`` uses only the ICE servers the server handed out.

:func:`turn_lab` builds it once (tests change a home's NAT or firewall between calls);
:meth:`TurnLab.call` makes one call and returns both ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.cli.procs import URL_RE, Child, CliProcess, password_of
from tests.net.lab import SERVER_IP, Home, Lab, network_lab, unavailable
from tests.tls import make_server_files

ROOT = Path(__file__).resolve().parents[2]
START_COTURN = ROOT / "deploy" / "coturn" / "start"
TURN_UDP = f"turn:{SERVER_IP}:3478?transport=udp"
TURN_TCP = f"turn:{SERVER_IP}:3478?transport=tcp"
TURNS = f"turns:{SERVER_IP}:5349"
STUN = f"stun:{SERVER_IP}:3478"
USERS = ("ann-turn", "bob-turn")
Json = dict[str, Any]


def turn_lab_unavailable() -> str | None:
    """Why the TURN lab cannot run here (for a skip), or None."""
    return unavailable() or (None if shutil.which("turnserver") else "coturn is not installed")


@dataclass
class TurnLab:
    """The lab, its servers and the CA the TURN server's certificate comes from."""

    lab: Lab
    url: str
    ca: Path
    children: list[Child] = field(default_factory=list)
    #: The secret coturn and parley-server share (for peers that make their own credentials).
    secret: str = field(default="", repr=False)

    def cli(self, home: Home, user: str, *args: str, register: bool = False) -> CliProcess:
        """``parley-cli`` in ``home`` as ``user`` (no ICE servers of its own); trusts the CA."""
        argv = [
            "env",
            f"SSL_CERT_FILE={self.ca}",  # for turns: (aioice verifies with the default context)
            sys.executable,
            "-m",
            "gui.cli",
            "--server",
            self.url,
            "--user",
            user,
            "--password",
            password_of(user),
            *(["--register"] if register else []),
            *args,
        ]
        child = CliProcess(f"parley-cli[{user}@{home.name} {args[0]}]", home.argv(argv))
        self.children.append(child)
        return child

    def call(self, duration: float = 6.0, timeout: float = 90.0) -> tuple[CliProcess, CliProcess]:
        """A call from home a to home b for ``duration`` s after it connects; both ends, exited.

        The callee starts answering first; each end's output is checked clean and its status
        0 (a call that did not connect fails here, with both ends' last lines).
        """
        server = self.children[1]
        mark = len(server.err)
        callee = self.cli(self.lab.b, USERS[1], "answer", "--wait", "120")
        server.wait_stderr(rf"event=login conn=\S+ user={USERS[1]}(\s|$)", 90, mark)
        caller = self.cli(self.lab.a, USERS[0], "call", USERS[1], "--duration", str(duration))
        try:
            for side in (caller, callee):
                side.finish(timeout, expect=0)
        finally:
            for side in (caller, callee):
                side.kill()
        return caller, callee


def _services(
    lab: Lab, tmp: Path, children: list[Child], private_peers: bool, ttl_s: int = 600
) -> TurnLab:
    secret = tmp / "turn-secret"
    shared = "parley-lab-" + os.urandom(12).hex()
    secret.write_text(shared + "\n")
    secret.chmod(0o600)
    tls = make_server_files(tmp, (SERVER_IP,), prefix="turn")
    coturn = Child(
        "coturn",
        lab.internet.argv(
            [
                "env", f"TMPDIR={tmp}", str(START_COTURN), str(secret),
                f"--listening-ip={SERVER_IP}", f"--relay-ip={SERVER_IP}",
                f"--cert={tls.cert}", f"--pkey={tls.key}",
                f"--pidfile={tmp / 'turnserver.pid'}", f"--userdb={tmp / 'turndb'}",
                "--no-dtls",
                # Relaying into the homes' private network allowed (the deploy configuration
                # denies it): checks to private addresses through the relay then reach
                # coturn's sendto, which fails and closes the allocation; gui/core/ice.py's
                # patch keeps aioice from sending them.
                *(["--allowed-peer-ip=192.168.0.0-192.168.255.255"] if private_peers else []),
            ]
        ),
    )  # fmt: skip
    children.append(coturn)
    server = Child(
        "parley-server",
        lab.internet.argv(
            [
                sys.executable, "-m", "gui.server", "--host", SERVER_IP, "--port", "0",
                "--db", str(tmp / "parley.db"), "--no-echo",
                "--turn", TURN_UDP, "--turn", TURN_TCP, "--turn", TURNS, "--stun", STUN,
                "--turn-secret-file", str(secret), "--turn-ttl", str(ttl_s),
            ]
        ),
    )  # fmt: skip
    children.append(server)
    turn = TurnLab(lab, "", tls.ca, children, shared)

    def url() -> str | None:
        for _, line in server.out:
            if match := URL_RE.search(line):
                return match.group(1)
        return None

    turn.url = server.wait_for(url, 30, "listening URL")
    coturn.wait_for(
        lambda: next((1 for _, line in coturn.out if "Total General servers" in line), None),
        30,
        "coturn listening",
    )
    return turn


@contextlib.contextmanager
def turn_lab(private_peers: bool = True, ttl_s: int = 600) -> Iterator[TurnLab]:
    """The lab with coturn and parley-server, ``ann-turn`` (home a) and ``bob-turn`` (home b)
    registered and contacts. Every process is killed and the lab torn down at the end.

    ``private_peers``: coturn relays into private networks (the worst case, and the default);
    ``False`` keeps ``deploy/coturn/turnserver.conf``'s refusal (403 to such permissions).
    ``ttl_s``: how long the TURN credentials parley-server hands out last (``--turn-ttl``)."""
    with tempfile.TemporaryDirectory(prefix="parley-turn-") as name, network_lab() as lab:
        tmp = Path(name)
        children: list[Child] = []
        try:
            turn = _services(lab, tmp, children, private_peers, ttl_s)
            homes = (lab.a, lab.b)
            for home, user in zip(homes, USERS, strict=True):
                turn.cli(home, user, "contacts", register=True).finish(60, expect=0)
            ann, bob = USERS
            for home, me, other in ((lab.a, ann, bob), (lab.b, bob, ann)):
                turn.cli(home, me, "add", other).finish(60, expect=0)
            yield turn
        finally:
            for child in reversed(children):
                child.kill()


def path_of(side: CliProcess) -> Json:
    """The media path a finished call's end reports in its summary (fails without one)."""
    path = side.summary.get("path")
    assert path is not None, f"{side.name}: no path in the summary\n{side.describe()}"
    return dict(path)
