"""The app against a wss:// server: the certificate to trust chosen in the settings window,
the refusal of an untrusted one shown where sign-in errors go (at sign-in, and when the
server comes back with another certificate), ``parley --trust-cert``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gui.app.main import main
from gui.core.profile import Profile
from tests.conftest import ServerFactory
from tests.tls import make_server_files, system_trust_only
from tests.ui.helpers import click, type_into, until
from tests.ui.test_app_states import make_ui, sign_in


async def test_trusted_in_settings_then_signs_in_over_wss(
    isolated_home: Path, make_server: ServerFactory
) -> None:
    files = make_server_files(isolated_home)
    server = await make_server(tls_cert=files.cert, tls_key=files.key)
    ui = make_ui("tls-trusted")
    try:
        ui.open_settings()
        dialog = ui.settings_dialog
        assert dialog is not None
        type_into(dialog.trust_cert, str(isolated_home / "missing.pem"))
        dialog.save()
        assert dialog.isVisible() and dialog.error.isVisible()  # refused, nothing lost
        assert dialog.error.text().startswith("Cannot read the certificate")
        type_into(dialog.trust_cert, str(files.ca))
        dialog.save()
        assert not dialog.isVisible()
        assert Profile("tls-trusted").settings.trust_cert == str(files.ca)

        click(ui.main.sign_in.switch)  # create the account
        await sign_in(ui, "tilda", "correct horse", server=server.url)
        await until(lambda: ui.main.stack.currentWidget() is ui.main.home, what="home")
        assert ui.controller.user is not None and ui.controller.user["username"] == "tilda"

        # The server comes back with a certificate nobody chose to trust: no endless retrying,
        # the sign-in page says why.
        port = server.port
        await server.stop()
        replaced = make_server_files(isolated_home, prefix="replaced")
        await make_server(port=port, tls_cert=replaced.cert, tls_key=replaced.key)
        error = ui.main.sign_in.error
        await until(lambda: error.isVisible(), timeout=20, what="the refusal")
        assert ui.main.stack.currentWidget() is ui.main.sign_in
        assert error.text().startswith("The server's certificate is not trusted ("), error.text()
    finally:
        await ui.shutdown()


async def test_an_untrusted_certificate_is_refused_in_words(
    isolated_home: Path, make_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_trust_only(monkeypatch)
    files = make_server_files(isolated_home)
    server = await make_server(tls_cert=files.cert, tls_key=files.key)
    ui = make_ui("tls-untrusted")
    try:
        await sign_in(ui, "ulla", "whatever1", server=server.url)
        error = ui.main.sign_in.error
        await until(lambda: error.isVisible(), what="the error")
        assert re.fullmatch(
            r"The server's certificate is not trusted \([^)]+\)\. If you trust this server, "
            r"choose its certificate in Settings \(Ctrl\+,\)\.",
            error.text(),
        ), error.text()
        assert ui.main.sign_in.username.isEnabled()
    finally:
        await ui.shutdown()


def test_parley_trust_cert_that_cannot_be_used_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--trust-cert", str(tmp_path / "nope.pem")]) == 2
    assert capsys.readouterr().err == (
        f"parley: error: --trust-cert: cannot read the certificate {tmp_path / 'nope.pem'}: "
        "No such file or directory\n"
    )
