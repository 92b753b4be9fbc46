"""``parley-cli`` against ``parley-server --tls-cert C --tls-key K``, both real processes.

A certificate the client trusts (``--trust-cert``, or the system's store through
``SSL_CERT_FILE``) lets it register, log in and list contacts; an untrusted one,
or one for another host name, ends it with status 1 and one line on stderr, no
traceback; a trust file it cannot use is a bad argument (status 2).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.procs import CliProcess, Launcher, ServerProcess
from tests.tls import ServerFiles, make_server_files, system_trust_only


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ServerFiles]:
    """``good``: for localhost and 127.0.0.1; ``other``: for other.example only."""
    folder = Path(tmp_path_factory.mktemp("tls"))
    return {
        "good": make_server_files(folder),
        "other": make_server_files(folder, ("other.example",), prefix="other"),
        "stranger": make_server_files(folder, prefix="stranger"),
    }


@pytest.fixture(scope="module")
def servers(
    certs: dict[str, ServerFiles], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServerProcess]]:
    """A wss:// parley-server for the ``good`` and for the ``other`` certificate."""
    folder = Path(tmp_path_factory.mktemp("tls-db"))
    started = {
        name: ServerProcess(
            "--port",
            "0",
            "--db",
            str(folder / f"{name}.db"),
            "--tls-cert",
            str(certs[name].cert),
            "--tls-key",
            str(certs[name].key),
        )
        for name in ("good", "other")
    }
    try:
        for process in started.values():
            assert process.wait_ready().startswith("wss://127.0.0.1:")
        yield started
    finally:
        for process in started.values():
            code = process.stop()
            assert code == 0, process.describe()
            assert "Traceback" not in process.stderr, process.stderr[-4000:]


@pytest.fixture
def launch(
    servers: dict[str, ServerProcess], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Launcher]:
    """Clients of the ``good`` server, with no trust store but the system's own."""
    system_trust_only(monkeypatch)
    launcher = Launcher(servers["good"].url)
    try:
        yield launcher
    finally:
        launcher.cleanup()


def refused(child: CliProcess, pattern: str) -> None:
    """Status 1 and exactly one stderr line, matching ``pattern``."""
    child.finish(60, expect=1)
    lines = child.stderr.splitlines()
    assert len(lines) == 1 and re.fullmatch(pattern, lines[0]), child.describe()
    assert child.named("contacts") == []


def test_trust_cert_registers_logs_in_and_lists_contacts(
    launch: Launcher, certs: dict[str, ServerFiles]
) -> None:
    good = certs["good"]
    first = launch.cli("tessa", "--trust-cert", str(good.ca), "contacts", register=True)
    first.finish(60, expect=0)
    assert first.stderr == ""
    (listed,) = first.named("contacts")
    assert isinstance(listed["contacts"], list)
    # Logging in again, trusting the server's own certificate rather than its authority.
    again = launch.cli("tessa", "--trust-cert", str(good.cert), "contacts")
    again.finish(60, expect=0)
    assert again.named("contacts") == [listed]


def test_system_trust_store_through_ssl_cert_file(
    launch: Launcher, certs: dict[str, ServerFiles], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certs["good"].ca))
    child = launch.cli("sylvia", "contacts", register=True)
    child.finish(60, expect=0)
    assert len(child.named("contacts")) == 1


def test_an_untrusted_certificate_is_refused_in_one_line(
    launch: Launcher, certs: dict[str, ServerFiles]
) -> None:
    untrusted = (
        r"parley-cli: error: the server's certificate is not trusted \([^)]+\); "
        r"pass --trust-cert FILE if you trust it"
    )
    refused(launch.cli("ursula", "contacts", register=True), untrusted)
    stranger = str(certs["stranger"].ca)
    refused(launch.cli("ursula", "--trust-cert", stranger, "contacts", register=True), untrusted)


def test_a_certificate_for_another_host_is_refused(
    launch: Launcher, servers: dict[str, ServerProcess], certs: dict[str, ServerFiles]
) -> None:
    trust = str(certs["other"].ca)
    child = launch.cli(
        "walter", "--trust-cert", trust, "contacts", register=True, server=servers["other"].url
    )
    refused(
        child,
        r"parley-cli: error: the server's certificate is not valid for 127\.0\.0\.1 "
        r"\(it names another server\)",
    )


def test_a_trust_file_it_cannot_use_is_a_bad_argument(
    launch: Launcher, certs: dict[str, ServerFiles], tmp_path: Path
) -> None:
    missing = launch.cli("xavier", "--trust-cert", str(tmp_path / "nope.pem"), "contacts")
    missing.finish(60, expect=2)
    assert re.fullmatch(
        r"parley-cli: error: --trust-cert: cannot read the certificate \S+nope\.pem: "
        r"No such file or directory",
        missing.stderr,
    ), missing.describe()
    key = launch.cli("xavier", "--trust-cert", str(certs["good"].key), "contacts")
    key.finish(60, expect=2)
    assert key.stderr.endswith("holds no PEM certificate"), key.describe()
