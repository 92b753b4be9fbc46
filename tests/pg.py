"""A real PostgreSQL 15 for the tests: Debian's binaries, a cluster in a temporary directory.

``initdb`` refuses to run as root, so the cluster belongs to an unprivileged system user
(``parleytest``, created when missing). The server listens on 127.0.0.1 on a free port and on
a Unix socket in its directory; :meth:`PostgresServer.stop` always removes it all.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
USER = "parleytest"


def available() -> bool:
    """Whether PostgreSQL 15 is installed (``installer/bootstrap`` installs it)."""
    return (PG_BIN / "initdb").exists()


def _system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        pass
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    # Another test run may create it at the same moment: look again whatever useradd says.
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
        capture_output=True,
        check=False,
    )
    return pwd.getpwnam(USER)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One cluster: :meth:`start`, :meth:`url` per database, :meth:`restart`, :meth:`stop`."""

    def __init__(self) -> None:
        self.user = _system_user()
        self.dir = Path(tempfile.mkdtemp(prefix="parley-pg-"))
        os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.data = self.dir / "data"
        self.port = free_port()
        self._databases = 0

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self.user.pw_uid if os.geteuid() == 0 else None,
            group=self.user.pw_gid if os.geteuid() == 0 else None,
            cwd=self.dir,
            check=False,
        )

    def _checked(self, *args: str, timeout: float = 120) -> None:
        result = self._run(*args, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}")

    def start(self) -> None:
        if not self.data.exists():
            self._checked(
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "parley",
                "--auth=trust",
                "--locale=C.UTF-8",
                "--encoding=UTF8",
                "--no-sync",
            )
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
            " -c shared_buffers=16MB -c max_connections=100"
        )
        self._checked(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://parley@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        self._databases += 1
        name = f"t{self._databases}_{os.getpid()}"
        self._checked(
            str(PG_BIN / "createdb"),
            "-h",
            str(self.dir),
            "-p",
            str(self.port),
            "-U",
            "parley",
            name,
        )
        return self.url(name)

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return (self.dir / "log").read_text()
        return ""
