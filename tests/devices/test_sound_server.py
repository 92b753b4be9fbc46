"""The test sound server itself: what its clients see of it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.devices.conftest import PulseServer


def test_clients_in_a_fresh_home_neither_create_a_cookie_nor_complain(
    pulse: PulseServer, tmp_path: Path
) -> None:
    """Clients use the session's cookie, not ``~/.config/pulse/cookie``: two of them creating
    that file at once in a fresh home made one print "Failed to truncate cookie file"."""
    env = dict(os.environ, HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    clients = [
        subprocess.Popen(["pactl", "info"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    for client in clients:
        _, stderr = client.communicate(timeout=30)
        assert (client.returncode, stderr) == (0, "")
    assert list(tmp_path.rglob("*cookie*")) == []
