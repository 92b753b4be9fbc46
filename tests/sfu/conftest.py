"""Fixtures of the media-server tests: one real Janus for the session, with its admin secret."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.procs import Launcher, ServerProcess
from tests.sfu.janus_proc import JanusProcess, janus_available, new_secret, running_janus


@dataclass(frozen=True)
class SfuSetup:
    """A running Janus and the admin secret file parley-server reads."""

    janus: JanusProcess
    secret: str
    secret_file: Path

    @property
    def server_args(self) -> tuple[str, ...]:
        """parley-server's options for this Janus: ``--sfu URL --sfu-admin-secret-file PATH``."""
        return ("--sfu", self.janus.address, "--sfu-admin-secret-file", str(self.secret_file))


@pytest.fixture(scope="session")
def sfu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SfuSetup]:
    """Janus with Parley's configuration on ports the system picked."""
    if not janus_available():
        pytest.fail("janus is not installed: run installer/bootstrap")
    folder = tmp_path_factory.mktemp("janus")
    secret = new_secret()
    secret_file = folder / "admin-secret"
    secret_file.write_text(secret + "\n")
    with running_janus(folder / "config", secret) as janus:
        yield SfuSetup(janus, secret, secret_file)


@pytest.fixture
def launch(server: ServerProcess) -> Iterator[Launcher]:
    """Starts this test's client processes; kills any left running at the end."""
    with Launcher.around(server.url) as launcher:
        yield launcher
