"""Whether "Add person" can turn a call into a meeting, and the reason shown when not."""

from __future__ import annotations

from gui.core.escalation import why_not_movable
from signaling.protocol.constants import ECHO_USERNAME


def test_a_contact_on_a_server_with_meetings_can_be_moved() -> None:
    assert why_not_movable("bob", {"meetings", "sfu"}) is None


def test_a_server_without_meetings_says_so() -> None:
    assert why_not_movable("bob", set()) == "This server does not hold meetings"


def test_the_echo_test_joins_no_meeting() -> None:
    assert why_not_movable(ECHO_USERNAME, {"meetings"}) == "The Echo Test cannot join a meeting"


def test_a_browser_guest_gets_a_meeting_link_instead() -> None:
    why = why_not_movable("guest-3f2a9c0d1e2b", {"meetings"})
    assert why is not None and "meeting link" in why
