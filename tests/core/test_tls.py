"""``SignalingClient`` over wss:// against a real server with certificates made here.

Trusted (a chosen file, or the system's store through ``SSL_CERT_FILE``) it signs
in; a certificate from an unknown authority, for another name or out of date is
refused with one sentence, and a session whose server changed certificate stops
reconnecting instead of retrying forever.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gui.core.backoff import Backoff
from gui.core.signaling_client import (
    LinkState,
    NotConnected,
    SignalingClient,
    TlsRefused,
    tls_context,
)
from tests.conftest import ServerFactory
from tests.tls import ServerFiles, make_server_files, system_trust_only


async def tls_server(make_server: ServerFactory, files: ServerFiles, **overrides: object) -> str:
    """Start an in-process server serving ``files``; its wss:// URL."""
    server = await make_server(tls_cert=files.cert, tls_key=files.key, **overrides)
    assert server.url.startswith("wss://")
    return server.url


async def test_trusted_certificate_signs_in(tmp_path: Path, make_server: ServerFactory) -> None:
    files = make_server_files(tmp_path)
    url = await tls_server(make_server, files)
    # The authority, or the server's own certificate (a partial chain), are both enough.
    for name, trusted in (("ca-trust", files.ca), ("leaf-trust", files.cert)):
        client = SignalingClient(url, ssl_context=tls_context(trusted))
        try:
            await client.connect()
            await client.register(name, "correct horse")
            assert client.state is LinkState.ONLINE
            assert isinstance((await client.request("contacts.list"))["contacts"], list)
        finally:
            await client.close()


async def test_system_trust_store_is_the_default(
    tmp_path: Path, make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = make_server_files(tmp_path)
    url = await tls_server(make_server, files)
    monkeypatch.setenv("SSL_CERT_FILE", str(files.ca))
    client = SignalingClient(url)
    try:
        await client.connect()
        await client.register("system-trust", "correct horse")
    finally:
        await client.close()


async def test_untrusted_wrong_host_and_expired_are_refused(
    tmp_path: Path, make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_trust_only(monkeypatch)
    good = make_server_files(tmp_path)
    url = await tls_server(make_server, good)
    stranger = make_server_files(tmp_path, prefix="stranger")
    for context in (None, tls_context(stranger.ca)):
        client = SignalingClient(url, ssl_context=context)
        with pytest.raises(TlsRefused, match=r"^the server's certificate is not trusted \(") as e:
            await client.connect()
        assert e.value.untrusted and client.state is LinkState.OFFLINE

    other = make_server_files(tmp_path, ("other.example",), prefix="other")
    other_url = await tls_server(make_server, other, db_path=tmp_path / "other.db")
    client = SignalingClient(other_url, ssl_context=tls_context(other.ca))
    with pytest.raises(TlsRefused, match=r"not valid for 127\.0\.0\.1") as e:
        await client.connect()
    assert not e.value.untrusted

    old = make_server_files(tmp_path, prefix="old", expired=True)
    old_url = await tls_server(make_server, old, db_path=tmp_path / "old.db")
    client = SignalingClient(old_url, ssl_context=tls_context(old.ca))
    with pytest.raises(TlsRefused, match="has expired"):
        await client.connect()


def test_a_trust_file_that_cannot_be_used_says_why(tmp_path: Path) -> None:
    files = make_server_files(tmp_path)
    with pytest.raises(ValueError, match=r"cannot read the certificate .*No such file"):
        tls_context(tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="holds no PEM certificate"):
        tls_context(files.key)


async def test_plain_server_behind_wss_is_not_a_certificate_problem(
    make_server: ServerFactory,
) -> None:
    server = await make_server()
    client = SignalingClient(server.url.replace("ws://", "wss://"), connect_timeout=5)
    with pytest.raises(NotConnected, match=r"closed \(is it a wss:// server\?\)") as e:
        await client.connect()
    assert not isinstance(e.value, TlsRefused)


async def test_a_new_untrusted_certificate_stops_reconnection(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    files = make_server_files(tmp_path)
    server = await make_server(tls_cert=files.cert, tls_key=files.key)
    client = SignalingClient(
        server.url,
        ssl_context=tls_context(files.ca),
        backoff=Backoff(initial=0.05, maximum=0.2),
    )
    events: list[dict[str, object]] = []
    client.on_event(events.append)
    try:
        await client.connect()
        await client.register("moved", "correct horse")
        port = server.port
        await server.stop()
        replaced = make_server_files(tmp_path, prefix="replaced")
        await make_server(port=port, tls_cert=replaced.cert, tls_key=replaced.key)
        async with asyncio.timeout(10):
            while not any(e["type"] == "client.refused" for e in events):
                await asyncio.sleep(0.05)
        await asyncio.sleep(1)  # many backoff periods: it must not have tried again
        (refused,) = [e for e in events if e["type"] == "client.refused"]
        assert isinstance(refused["error"], TlsRefused) and refused["error"].untrusted
        assert client.state is LinkState.OFFLINE and client.token is None
    finally:
        await client.close()
