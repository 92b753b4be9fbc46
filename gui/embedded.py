"""The signaling server the app runs for you when you have none: Parley works out of the box.

With no server configured, the app first looks for an embedded server that
another Parley on this computer already runs (it leaves its address in a
small file in the user's runtime directory) and uses that one, so two
profiles, or the app and ``parley-cli``, meet on the same server. Otherwise it
starts its own on 127.0.0.1 (or on every interface when the user lets other
computers in), with its database in the profile's data directory.

It is a composition root, like ``parley-server`` (:mod:`gui.server`): it plugs the
Echo Test into the server, on a thread and loop of its own, so that the echo end of a
call (decoding and re-encoding) does not run on the app's Qt event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import warnings
from pathlib import Path

import platformdirs

from gui.bots import echo_test
from gui.core.pinning import unverified_context
from gui.core.profile import Profile, _atomic_write
from gui.core.server_cert import ServerCertificate, ensure_certificate
from signaling.server import ServerConfig, SignalingServer, StartupError

log = logging.getLogger("parley.embedded")


def discovery_path() -> Path:
    """Where a running embedded server leaves its address (per user, not per profile).

    Without ``XDG_RUNTIME_DIR`` (no login session, a container) platformdirs falls back to a
    private folder it checks itself, and says so with a warning at every start-up; the fallback
    serves Parley just as well, so that warning is not shown to the user.
    """
    quiet = getattr(platformdirs, "RuntimeDirWarning", UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", quiet)
        runtime = platformdirs.user_runtime_dir("parley", appauthor=False, ensure_exists=False)
    return Path(runtime) / "embedded-server.json"


def lan_addresses() -> list[str]:
    """This computer's private IPv4 addresses, to show the URL others can use."""
    import ifaddr

    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                address = ipaddress.ip_address(ip.ip)
                if address.is_private and not address.is_loopback and not address.is_link_local:
                    found.append(ip.ip)
    return sorted(set(found))


async def _answers_health(url: str, wait: float = 1.0) -> bool:
    """Whether ``ws://host:port/ws`` belongs to a live Parley server (``GET /healthz``)."""
    try:
        host_port = url.split("://", 1)[1].split("/", 1)[0]
        host, port = host_port.rsplit(":", 1)
        # Only whether something answers: the client checks the certificate when it connects.
        tls = unverified_context() if url.startswith("wss://") else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), int(port), ssl=tls), wait
        )
    except (OSError, ValueError, IndexError, TimeoutError):
        return False
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(256), wait)
        return reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"ok\n")
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()


async def find_running() -> str | None:
    """The URL of an embedded server another Parley on this computer runs, if it answers."""
    try:
        data = json.loads(discovery_path().read_text(encoding="utf-8"))
        url = str(data["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if await _answers_health(url) else None


class EmbeddedServer:
    """Start and stop the in-app server for one profile."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.server: SignalingServer | None = None
        #: The TLS certificate, while the server is shared on the network (wss:// only then).
        self.certificate: ServerCertificate | None = None

    @property
    def scheme(self) -> str:
        """``wss`` when shared on the network (TLS), ``ws`` on 127.0.0.1 only."""
        return "wss" if self.certificate is not None else "ws"

    @property
    def url(self) -> str | None:
        """The URL this computer's clients use (loopback)."""
        if self.server is None or self.server.port is None:
            return None
        return f"{self.scheme}://127.0.0.1:{self.server.port}/ws"

    @property
    def shared_urls(self) -> list[str]:
        """URLs to hand to people on the network, when sharing is on."""
        if self.server is None or not self.profile.settings.share_on_lan:
            return []
        return [f"{self.scheme}://{address}:{self.server.port}/ws" for address in lan_addresses()]

    async def start(self) -> str:
        """Listen (on the preferred port, else any free one) and advertise the URL.

        Shared on the network, it listens with TLS, with the profile's own certificate
        (made the first time); plain ``ws://`` is for 127.0.0.1 only, so that no password
        crosses a network in clear.
        """
        settings = self.profile.settings
        host = "0.0.0.0" if settings.share_on_lan else "127.0.0.1"
        self.certificate = None
        if settings.share_on_lan:
            self.certificate = await asyncio.to_thread(
                ensure_certificate, self.profile.data_dir / "tls", lan_addresses()
            )
        cert = self.certificate
        last_error: StartupError | None = None
        for port in dict.fromkeys((settings.embedded_port, 0)):
            server = SignalingServer(
                ServerConfig(
                    host=host,
                    port=port,
                    db_path=self.profile.embedded_db_path,
                    tls_cert=cert.cert_path if cert else None,
                    tls_key=cert.key_path if cert else None,
                ),
                bots=[echo_test()],
            )
            try:
                await server.start()
            except StartupError as exc:
                last_error = exc
                log.info("embedded server could not use port %s: %s", port, exc)
                continue
            self.server = server
            url = self.url
            assert url is not None
            _atomic_write(discovery_path(), json.dumps({"url": url, "pid": os.getpid()}))
            log.info("embedded server on %s", url)
            return url
        raise last_error or StartupError("the embedded server could not start")

    async def stop(self) -> None:
        """Stop serving and withdraw the advertisement (if it is still ours)."""
        if self.server is None:
            return
        with contextlib.suppress(OSError, ValueError, KeyError):
            data = json.loads(discovery_path().read_text(encoding="utf-8"))
            if data.get("pid") == os.getpid():
                discovery_path().unlink()
        server, self.server = self.server, None
        await server.stop()
