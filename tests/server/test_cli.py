"""``parley-server`` as a user runs it: help, start, signals, and one-line errors."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

import pytest

from tests.server.process import ServerProcess, run_server
from tests.server.test_transport import http_get
from tests.wire import WireClient


def test_help_explains_each_option() -> None:
    result = run_server("--help")
    assert result.returncode == 0
    for option in (
        "--host",
        "--port",
        "--db",
        "--tls-cert",
        "--tls-key",
        "--log-level",
        "--reconnect-grace",
        "--meeting-capacity",
        "--no-echo",
    ):
        assert option in result.stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_serves_then_exits_0_on_signal_closing_with_1001(tmp_path: Path, signum) -> None:
    server = ServerProcess("--port", "0", "--db", str(tmp_path / "p.db"))
    try:
        url = await asyncio.to_thread(server.wait_ready)
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/ws")
        assert await http_get(server.port, "/healthz") == (200, "ok\n")
        client = await WireClient.open(url)
        await client.register("alice", password="hunter2-hunter2")
        server.proc.send_signal(signum)
        await client.ws.wait_closed()
        assert client.ws.close_code == 1001
        code, _, err = await asyncio.to_thread(server.finish)
    finally:
        server.kill() if server.proc.poll() is None else None
    assert code == 0
    assert "Traceback" not in err
    # Structured logs: one line per connection and never a secret.
    assert "event=conn.open" in err and "event=conn.close" in err
    assert "hunter2" not in err and client.token not in err


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_server("--port", str(port), "--db", str(tmp_path / "p.db"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"parley-server: error: port {port} on 127.0.0.1 is already in use"
    )
    assert "Traceback" not in result.stderr


def test_unreadable_certificate_is_one_line(tmp_path: Path) -> None:
    result = run_server(
        "--port",
        "0",
        "--db",
        str(tmp_path / "p.db"),
        "--tls-cert",
        str(tmp_path / "missing.pem"),
        "--tls-key",
        str(tmp_path / "k.pem"),
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot read TLS file" in result.stderr and "missing.pem" in result.stderr
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    result = run_server(
        "--port",
        "0",
        "--db",
        str(tmp_path / "p.db"),
        "--tls-cert",
        str(garbage),
        "--tls-key",
        str(garbage),
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot use TLS certificate" in result.stderr


@pytest.mark.parametrize("kind", ["directory", "not-a-database"])
def test_database_it_cannot_open_is_one_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "db"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"this is not sqlite" * 100)
    result = run_server("--port", "0", "--db", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"parley-server: error: cannot open database {path}")
    assert "Traceback" not in result.stderr


def test_bad_arguments_exit_2() -> None:
    result = run_server("--port", "99999")
    assert result.returncode == 2 and "port" in result.stderr


def test_meeting_capacity_reaches_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    """parley-server's options (gui/server.py over signaling/server/cli.py) set the capacity."""
    from gui.server import build_parser
    from signaling.server.cli import config_from_args

    parse = build_parser().parse_args
    assert config_from_args(parse([])).meeting_capacity == 4
    assert config_from_args(parse(["--meeting-capacity", "6"])).meeting_capacity == 6
    for bad in ("1", "two", "2.5"):
        with pytest.raises(SystemExit) as info:
            parse(["--meeting-capacity", bad])
        assert info.value.code == 2
    assert "--meeting-capacity" in capsys.readouterr().err


async def test_tls(tmp_path: Path) -> None:
    """wss:// with a self-signed certificate made here (needs the openssl command)."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make a test certificate; .ci/run installs it")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server = ServerProcess(
        "--port",
        "0",
        "--db",
        str(tmp_path / "p.db"),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
    )
    try:
        url = await asyncio.to_thread(server.wait_ready)
        assert url.startswith("wss://")
        context = ssl.create_default_context(cafile=str(cert))
        client = await WireClient.open(url, ssl=context)
        await client.register("tls-user")
        await client.close()
        server.proc.send_signal(signal.SIGTERM)
        code, _, _ = await asyncio.to_thread(server.finish)
        assert code == 0
    finally:
        server.kill()
