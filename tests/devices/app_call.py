"""The app (``ParleyUi``, in the test's process) signs in and calls a ``parley-cli`` peer."""

from __future__ import annotations

from gui.app.ui import ParleyUi
from gui.core.call_machine import CallState
from gui.core.call_session import CallSession
from tests.waiting import until


async def call_from_the_app(ui: ParleyUi, user: str, peer: str, password: str) -> CallSession:
    """Sign ``ui`` in as ``user``, wait for ``peer`` (already started) to be online, place an
    audio call to it and wait until it connects."""
    await ui.controller.sign_in(None, user, password, keep=False)
    contacts = ui.controller.contacts
    await until(
        lambda: (c := contacts.contact(peer)) is not None and c.presence == "online",
        30,
        "parley-cli to sign in",
    )
    session = ui.controller.place_call(peer, video=False)
    assert session is not None
    await until(lambda: session.state is CallState.CONNECTED, 20, "the call to connect")
    return session
