"""Two apps: one shares its built-in server on the network (TLS, its own certificate, the
fingerprint's words in Settings), the other signs in to it, pins the certificate on first
use (its words shown), and refuses, with the explanation, a new certificate at that address."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.ui.helpers import until
from tests.ui.test_app_flow import register
from tests.ui.test_app_states import make_ui


async def test_shared_server_over_tls_pinned_then_a_new_certificate_refused(
    isolated_home: Path,
) -> None:
    host = make_ui("host")
    host.profile.settings.share_on_lan = True
    guest = None
    try:
        assert not await host.controller.start()
        url = host.controller.default_server
        assert url is not None and url.startswith("wss://127.0.0.1:"), url
        await register(host, "hana", "Hana")  # its own server, over TLS, its own certificate
        certificate = host.controller.embedded.certificate
        assert certificate is not None
        host.open_settings()
        assert host.settings_dialog is not None
        note = host.settings_dialog.share_note.text()
        assert " ".join(certificate.words) in note and "encrypted" in note

        guest = make_ui("guest", url)
        await register(guest, "gus", "Gus")
        words = " ".join(certificate.words)
        await until(lambda: words in guest.main.status.currentMessage(), what="the words shown")
        assert "First connection to" in guest.main.status.currentMessage()

        # The host makes a new certificate (same address): the guest's app refuses it.
        port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
        host.profile.settings.embedded_port = port
        await host.controller.embedded.stop()
        shutil.rmtree(certificate.cert_path.parent)
        assert await host.controller.embedded.start() == url
        error = guest.main.sign_in.error
        await until(lambda: error.isVisible(), timeout=40, what="the refusal")
        assert "has changed since you first connected" in error.text(), error.text()
        assert words in error.text()
    finally:
        if guest is not None:
            await guest.shutdown()
        await host.shutdown()
