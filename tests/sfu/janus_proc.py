"""A real Janus for the tests: Parley's configuration (``deploy/janus/``) on ports the system
picked, in a temporary folder, started in the foreground and stopped (or killed) after."""

from __future__ import annotations

import contextlib
import random
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from signaling.server.sfu import launch
from tests.stopping import terminate


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    """Whether something accepts connections on loopback ``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class JanusProcess:
    """One Janus child process; ``address`` is what ``parley-server --sfu`` takes."""

    def __init__(self, folder: Path, secret: str) -> None:
        self.ws_port, self.admin_port = free_port(), free_port()
        low = random.randrange(20000, 59000, 200)
        self.config = launch.render(
            folder,
            admin_secret=secret,
            ws_port=self.ws_port,
            admin_port=self.admin_port,
            rtp_ports=(low, low + 199),
        )
        self.log_path = folder / "janus.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            launch.command(self.config), stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 20
        while not (listening(self.ws_port) and listening(self.admin_port)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"janus did not start: {self.log()[-3000:]}")
            time.sleep(0.1)

    @property
    def address(self) -> str:
        """``ws://127.0.0.1:PORT?admin=PORT``."""
        return f"ws://127.0.0.1:{self.ws_port}?admin={self.admin_port}"

    def log(self) -> str:
        """What Janus printed so far."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: Janus dies as in a crash."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        terminate(self.proc, 10)
        self._log.close()


def janus_available() -> bool:
    """Whether the ``janus`` binary is installed."""
    return shutil.which(launch.JANUS) is not None


def new_secret() -> str:
    """An admin secret."""
    return secrets.token_urlsafe(24)


@contextlib.contextmanager
def running_janus(folder: Path, secret: str) -> Iterator[JanusProcess]:
    """A Janus for the length of the block."""
    process = JanusProcess(folder, secret)
    try:
        yield process
    finally:
        process.stop()
