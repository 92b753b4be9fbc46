"""Issue 16: a peer that sends an offer Parley cannot use fails the call, the window says why,
and the app is ready for the next call. The peer is a raw protocol client; the offer is garbage."""

from __future__ import annotations

from pathlib import Path

from gui.core.call_machine import UNUSABLE_DETAIL, CallState
from tests.ui.helpers import click, row_of, select, until
from tests.ui.test_app_states import signed_in_with_friend
from tests.wire import new_call_id


async def test_an_unusable_offer_is_shown_and_the_next_call_connects(
    isolated_home: Path, server
) -> None:
    ui, alice = await signed_in_with_friend(server)
    try:
        call_id = new_call_id()
        await alice.request(
            "call.invite", to="bob", call_id=call_id, media={"audio": True, "video": False}
        )
        await until(lambda: ui.incoming.isVisible(), what="the incoming window")
        click(ui.incoming.answer_audio)
        await alice.next_event("call.accepted")
        await until(lambda: ui.calls, what="the call window")
        window = ui.calls[0]
        description = {"type": "offer", "sdp": "v=0\r\n"}
        await alice.request("rtc.signal", call_id=call_id, description=description)
        ended = await alice.next_event("call.ended")
        assert ended["reason"] == "failed"  # the peer learns it failed
        await until(lambda: window.session.state is CallState.ENDED, what="the call to fail")
        shown = f"The call could not connect. {UNUSABLE_DETAIL}"
        await until(lambda: window.status.text() == shown, what="the reason in the window")
        assert window.status.isVisible()
        await until(lambda: not ui.calls, what="the window to close")

        # Nothing is stuck: a call to the Echo Test connects.
        home = ui.main.home
        await until(lambda: row_of(home.contacts, "echo").isValid(), what="the Echo Test")
        select(home.contacts, "echo")
        click(home.audio_button)
        await until(lambda: ui.calls, what="the echo call window")
        window = ui.calls[0]
        await until(lambda: window.session.state is CallState.CONNECTED, what="connected")
        click(window.hang_up_button)
        await until(lambda: not ui.calls, what="the echo call window to close")
    finally:
        await ui.shutdown()
        await alice.close()
