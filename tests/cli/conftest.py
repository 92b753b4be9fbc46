"""The ``launch`` fixture of the CLI tests: each module provides its own ``server``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.procs import Launcher, ServerProcess


@pytest.fixture
def launch(server: ServerProcess) -> Iterator[Launcher]:
    """Starts this test's client processes; kills any left running at the end."""
    with Launcher.around(server.url) as launcher:
        yield launcher
