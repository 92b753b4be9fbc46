"""Version 1.1's meeting requests: decoding and field validation, without a socket."""

from __future__ import annotations

import json

import pytest

from signaling.protocol.constants import ErrorCode
from signaling.protocol.messages import (
    FrameError,
    Media,
    MeetingAction,
    MeetingCreate,
    MeetingInvite,
    MeetingJoin,
    MeetingMedia,
    MeetingSignal,
    RtcSignal,
    decode_request,
)

MEETING_ID = "123e4567-e89b-12d3-a456-426614174000"
AV = {"audio": True, "video": True}
OFFER = {"type": "offer", "sdp": "v=0"}


def decode(message: object) -> object:
    return decode_request(json.dumps(message)).request


def refused(message: dict) -> str:
    """The ``bad_message`` text for ``message`` (which must be refused with it)."""
    with pytest.raises(FrameError) as info:
        decode_request(json.dumps({"id": "x", **message}))
    assert info.value.code is ErrorCode.BAD_MESSAGE and info.value.request_id == "x"
    return info.value.message


def test_create_is_typed_lowercased_and_deduplicated() -> None:
    request = decode(
        {
            "type": "meeting.create",
            "meeting_id": MEETING_ID.upper(),
            "media": {"audio": True, "video": False},
            "invite": ["Bob", "carol", "bob"],
            "title": "Standup",
        }
    )
    assert request == MeetingCreate(MEETING_ID, Media(True, False), ("bob", "carol"), "Standup")
    bare = decode({"type": "meeting.create", "meeting_id": MEETING_ID, "media": AV})
    assert bare == MeetingCreate(MEETING_ID, Media(True, True), (), None)
    empty = decode({"type": "meeting.create", "meeting_id": MEETING_ID, "media": AV, "invite": []})
    assert isinstance(empty, MeetingCreate) and empty.invite == ()


def test_each_request_type() -> None:
    base = {"meeting_id": MEETING_ID}
    assert decode({"type": "meeting.invite", **base, "usernames": ["dave"]}) == MeetingInvite(
        MEETING_ID, ("dave",)
    )
    assert decode({"type": "meeting.join", **base, "media": AV}) == MeetingJoin(
        MEETING_ID, Media(True, True)
    )
    for kind in ("meeting.decline", "meeting.leave", "meeting.end"):
        assert decode({"type": kind, **base}) == MeetingAction(MEETING_ID)
    media = decode({"type": "meeting.media", **base, "audio": False, "video": True, "screen": True})
    assert media == MeetingMedia(MEETING_ID, False, True, True)
    assert isinstance(media, MeetingMedia)
    assert media.state() == {"audio": False, "video": True, "screen": True}


def test_rtc_signal_for_a_meeting_names_its_recipient() -> None:
    signal = decode(
        {"type": "rtc.signal", "meeting_id": MEETING_ID, "to": "Bob", "description": OFFER}
    )
    assert signal == MeetingSignal(MEETING_ID, "bob", OFFER, None)
    assert isinstance(signal, MeetingSignal) and signal.payload() == {"description": OFFER}
    # A call's signal is unchanged, and a stray 'to' beside 'call_id' is ignored.
    call = decode({"type": "rtc.signal", "call_id": MEETING_ID, "to": "bob", "description": OFFER})
    assert call == RtcSignal(MEETING_ID, OFFER, None)


@pytest.mark.parametrize(
    ("message", "names"),
    [
        ({"type": "meeting.create", "media": AV}, "meeting_id"),
        ({"type": "meeting.create", "meeting_id": "nope", "media": AV}, "meeting_id"),
        ({"type": "meeting.create", "meeting_id": MEETING_ID}, "media"),
        (
            {"type": "meeting.create", "meeting_id": MEETING_ID, "media": AV, "invite": "bob"},
            "invite",
        ),
        (
            {"type": "meeting.create", "meeting_id": MEETING_ID, "media": AV, "invite": ["b"]},
            "invite[0]",
        ),
        (
            {"type": "meeting.create", "meeting_id": MEETING_ID, "media": AV, "invite": [7]},
            "invite[0]",
        ),
        (
            {
                "type": "meeting.create",
                "meeting_id": MEETING_ID,
                "media": AV,
                "invite": [f"user{i}" for i in range(16)],
            },
            "invite",
        ),
        (
            {"type": "meeting.create", "meeting_id": MEETING_ID, "media": AV, "title": ""},
            "title",
        ),
        (
            {"type": "meeting.create", "meeting_id": MEETING_ID, "media": AV, "title": "  "},
            "title",
        ),
        (
            {"type": "meeting.create", "meeting_id": MEETING_ID, "media": AV, "title": "a\u202e"},
            "title",
        ),
        (
            {"type": "meeting.create", "meeting_id": MEETING_ID, "media": AV, "title": "t" * 65},
            "title",
        ),
        ({"type": "meeting.invite", "meeting_id": MEETING_ID, "usernames": []}, "usernames"),
        ({"type": "meeting.invite", "meeting_id": MEETING_ID}, "usernames"),
        ({"type": "meeting.join", "meeting_id": MEETING_ID, "media": {"audio": 1}}, "media.audio"),
        ({"type": "meeting.leave"}, "meeting_id"),
        (
            {"type": "meeting.media", "meeting_id": MEETING_ID, "audio": True, "video": True},
            "screen",
        ),
        (
            {
                "type": "meeting.media",
                "meeting_id": MEETING_ID,
                "audio": True,
                "video": 0,
                "screen": False,
            },
            "video",
        ),
        ({"type": "rtc.signal", "meeting_id": MEETING_ID, "description": OFFER}, "to"),
        ({"type": "rtc.signal", "meeting_id": MEETING_ID, "to": "bob"}, "description"),
        (
            {
                "type": "rtc.signal",
                "meeting_id": MEETING_ID,
                "call_id": MEETING_ID,
                "to": "bob",
                "description": OFFER,
            },
            "not both",
        ),
        ({"type": "rtc.signal", "to": "bob", "description": OFFER}, "call_id"),
    ],
)
def test_bad_fields_are_named(message: dict, names: str) -> None:
    assert names in refused(message)
