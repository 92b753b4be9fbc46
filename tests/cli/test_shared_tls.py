"""A Parley sharing its built-in server on the network serves TLS with its own certificate,
and ``parley-cli`` pins that certificate on first use and refuses another one, as SSH does.

The app's embedded server (``gui/embedded.py``) runs in this test's loop, with its profile
in a temporary home; ``parley-cli`` runs as a real process beside it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from gui.core.profile import Profile
from gui.embedded import EmbeddedServer
from tests.cli.procs import ROOT, password_of


async def cli(url: str, known: Path, user: str, *args: str) -> tuple[int, list[dict], str]:
    """Run ``parley-cli`` to its end; its status, JSON lines and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gui.cli", "--server", url, "--known-servers", str(known),
        "--user", user, "--password", password_of(user), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 90)
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert "Traceback" not in err.decode(), err.decode()
    return process.returncode or 0, lines, err.decode()


async def test_shared_server_is_tls_pinned_on_first_use_and_a_new_certificate_refused(
    isolated_home: Path,
) -> None:
    profile = Profile("sharing")
    profile.settings = replace(profile.settings, share_on_lan=True, embedded_port=0)
    embedded = EmbeddedServer(profile)
    url = await embedded.start()
    known = isolated_home / "known_servers.json"
    try:
        assert url.startswith("wss://127.0.0.1:"), url  # never plain ws:// when shared
        assert embedded.shared_urls == [] or all(
            u.startswith("wss://") for u in embedded.shared_urls
        )
        certificate = embedded.certificate
        assert certificate is not None
        key_mode = certificate.key_path.stat().st_mode & 0o777
        assert key_mode == 0o600
        # First use: pinned, and the words are the ones the sharing app shows.
        code, lines, err = await cli(url, known, "ann", "--register", "contacts")
        assert code == 0, err
        pinned = [line for line in lines if line["event"] == "pinned"]
        assert len(pinned) == 1 and pinned[0]["words"] == certificate.words
        assert len(certificate.words) == 8
        address = url.split("//", 1)[1].split("/", 1)[0]
        assert json.loads(known.read_text())[address] == certificate.fingerprint
        # Again: the same certificate passes, nothing new is pinned.
        code, lines, err = await cli(url, known, "ann", "contacts")
        assert code == 0, err
        assert [line["event"] for line in lines] == ["contacts"]
        # Restarted with the certificate kept in the profile: still the same.
        port = int(address.rsplit(":", 1)[1])
        await embedded.stop()
        profile.settings = replace(profile.settings, embedded_port=port)
        assert await embedded.start() == url
        assert embedded.certificate == certificate
        code, _, err = await cli(url, known, "ann", "contacts")
        assert code == 0, err
        # A new certificate at the same address: refused, explained, nothing sent.
        await embedded.stop()
        shutil.rmtree(certificate.cert_path.parent)
        assert await embedded.start() == url
        assert embedded.certificate is not None
        assert embedded.certificate.fingerprint != certificate.fingerprint
        code, lines, err = await cli(url, known, "ann", "contacts")
        assert code == 1 and lines == []
        assert "has changed since you first connected" in err
        assert " ".join(certificate.words) in err and " ".join(embedded.certificate.words) in err
        assert f"remove the line for {address} from {known}" in err
        assert err.count("\n") == 1  # one line
    finally:
        await embedded.stop()


async def test_not_shared_stays_plain_on_loopback(isolated_home: Path) -> None:
    profile = Profile("alone")
    profile.settings = replace(profile.settings, share_on_lan=False, embedded_port=0)
    embedded = EmbeddedServer(profile)
    url = await embedded.start()
    try:
        assert url.startswith("ws://127.0.0.1:") and embedded.certificate is None
        assert embedded.server is not None and embedded.server.config.host == "127.0.0.1"
    finally:
        await embedded.stop()
