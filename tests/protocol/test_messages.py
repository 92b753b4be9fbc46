"""Frame decoding and field validation, without a socket."""

from __future__ import annotations

import json

import pytest

from signaling.protocol.constants import ErrorCode, Presence, RequestType
from signaling.protocol.messages import (
    CallInvite,
    FrameError,
    Login,
    Media,
    ProfileUpdate,
    RtcSignal,
    decode_request,
    encode,
    error_message,
    ok_message,
)

CALL_ID = "123e4567-e89b-12d3-a456-426614174000"


def decode(message: object) -> object:
    return decode_request(json.dumps(message))


def code_of(frame: str | bytes) -> tuple[ErrorCode, str | None]:
    with pytest.raises(FrameError) as info:
        decode_request(frame)
    return info.value.code, info.value.request_id


def test_valid_invite_is_typed_and_normalised() -> None:
    env = decode(
        {
            "type": "call.invite",
            "id": "7",
            "to": "Bob",
            "call_id": CALL_ID.upper(),
            "media": {"audio": True, "video": False},
            "extra": "ignored",
        }
    )
    assert env.type is RequestType.CALL_INVITE
    assert env.id == "7"
    assert env.request == CallInvite("bob", CALL_ID, Media(True, False))


@pytest.mark.parametrize(
    ("frame", "code", "re"),
    [
        (b'{"type":"logout"}', ErrorCode.BAD_MESSAGE, None),
        ("not json", ErrorCode.BAD_JSON, None),
        ("[1, 2]", ErrorCode.BAD_JSON, None),
        ('{"type": "login", "n": NaN}', ErrorCode.BAD_JSON, None),
        ("[" * 100_000 + "]" * 100_000, ErrorCode.BAD_JSON, None),
        ('{"id": 5, "type": "logout"}', ErrorCode.BAD_MESSAGE, None),
        ('{"id": "' + "x" * 65 + '", "type": "logout"}', ErrorCode.BAD_MESSAGE, None),
        ('{"id": "\\ud800", "type": "logout"}', ErrorCode.BAD_MESSAGE, None),
        ('{"id": "a"}', ErrorCode.BAD_MESSAGE, "a"),
        ('{"id": "a", "type": 3}', ErrorCode.BAD_MESSAGE, "a"),
        ('{"id": "a", "type": "dance"}', ErrorCode.UNKNOWN_TYPE, "a"),
        ('{"id": "a", "type": "login"}', ErrorCode.BAD_MESSAGE, "a"),
        (
            '{"id": "a", "type": "register", "username": "ab", "password": "12345678"}',
            ErrorCode.BAD_MESSAGE,
            "a",
        ),
        (
            '{"id": "a", "type": "register", "username": "abc", "password": "1234567"}',
            ErrorCode.BAD_MESSAGE,
            "a",
        ),
        (
            '{"id": "a", "type": "register", "username": "a b", "password": "12345678"}',
            ErrorCode.BAD_MESSAGE,
            "a",
        ),
        (
            '{"id": "a", "type": "profile.update", "display_name": "x\\u0007"}',
            ErrorCode.BAD_MESSAGE,
            "a",
        ),
        (
            '{"id": "a", "type": "profile.update", "display_name": "\\u202eevil"}',
            ErrorCode.BAD_MESSAGE,
            "a",
        ),
        (
            '{"id": "a", "type": "profile.update", "display_name": "   "}',
            ErrorCode.BAD_MESSAGE,
            "a",
        ),
        ('{"id": "a", "type": "presence.set", "status": "in_call"}', ErrorCode.BAD_MESSAGE, "a"),
        ('{"id": "a", "type": "history.list", "limit": 0}', ErrorCode.BAD_MESSAGE, "a"),
        ('{"id": "a", "type": "history.list", "limit": true}', ErrorCode.BAD_MESSAGE, "a"),
        ('{"id": "a", "type": "history.list", "limit": 5.0}', ErrorCode.BAD_MESSAGE, "a"),
        ('{"id": "a", "type": "call.accept", "call_id": "nope"}', ErrorCode.BAD_MESSAGE, "a"),
        (
            '{"id": "a", "type": "call.invite", "to": "bob", "call_id": "'
            + CALL_ID
            + '", "media": {"audio": 1, "video": true}}',
            ErrorCode.BAD_MESSAGE,
            "a",
        ),
        (
            '{"id": "a", "type": "rtc.signal", "call_id": "' + CALL_ID + '"}',
            ErrorCode.BAD_MESSAGE,
            "a",
        ),
        (
            '{"id": "a", "type": "rtc.signal", "call_id": "'
            + CALL_ID
            + '", "description": {"type": "bogus", "sdp": ""}}',
            ErrorCode.BAD_MESSAGE,
            "a",
        ),
        ('{"id": "a", "type": "users.search", "query": ""}', ErrorCode.BAD_MESSAGE, "a"),
    ],
)
def test_bad_frames_get_the_right_code(frame: str | bytes, code: ErrorCode, re: str | None) -> None:
    assert code_of(frame) == (code, re)


def test_error_message_names_the_field() -> None:
    with pytest.raises(FrameError) as info:
        decode({"type": "call.invite", "to": "bob", "call_id": CALL_ID, "media": {"audio": True}})
    assert "media.video" in info.value.message


def test_login_by_token_or_password() -> None:
    assert decode({"type": "login", "token": "t"}).request == Login(None, None, "t")
    assert decode({"type": "login", "username": "Ann", "password": "p" * 8}).request == Login(
        "ann", "p" * 8, None
    )


def test_rtc_signal_keeps_only_validated_fields() -> None:
    env = decode(
        {
            "type": "rtc.signal",
            "call_id": CALL_ID,
            "candidate": {"candidate": "candidate:1 1 UDP 1 127.0.0.1 9 typ host", "x": 1},
        }
    )
    assert isinstance(env.request, RtcSignal)
    assert env.request.payload() == {
        "candidate": {
            "candidate": "candidate:1 1 UDP 1 127.0.0.1 9 typ host",
            "sdpMid": None,
            "sdpMLineIndex": None,
        }
    }


def test_presence_choices() -> None:
    env = decode({"type": "presence.set", "status": "dnd"})
    assert env.request.status is Presence.DND


def test_replies_have_re_only_when_id_was_readable() -> None:
    assert ok_message(None) == {"type": "ok"}
    assert ok_message("1", user={"username": "a"})["re"] == "1"
    reply = error_message("2", ErrorCode.RATE_LIMITED, "slow", retry_after=3)
    assert reply == {
        "type": "error",
        "re": "2",
        "code": "rate_limited",
        "message": "slow",
        "retry_after": 3,
    }
    assert json.loads(encode({"type": "ok", "x": "é"})) == {"type": "ok", "x": "é"}


#: Invisible characters that make one name look like another ("Ada" and "A\u200bda").
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\u2063", "\ufeff"]
INVISIBLE += ["\u00ad", "\u180e", "\u061c", "\U000e0041"]


@pytest.mark.parametrize("char", INVISIBLE)
@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"type": "profile.update"}, "display_name"),
        ({"type": "register", "username": "ada", "password": "12345678"}, "display_name"),
        ({"type": "users.search"}, "query"),
        (
            {
                "type": "meeting.create",
                "meeting_id": CALL_ID,
                "media": {"audio": True, "video": False},
            },
            "title",
        ),
    ],
)
def test_invisible_format_characters_are_refused_in_names(
    char: str, message: dict[str, object], field: str
) -> None:
    """A zero-width or format character in a name, a title or a search is bad_message, named."""
    with pytest.raises(FrameError) as info:
        decode({**message, "id": "n", field: f"A{char}da"})
    assert info.value.code is ErrorCode.BAD_MESSAGE
    assert field in str(info.value)


def test_names_in_any_script_with_emoji_stay_allowed() -> None:
    """The rule refuses invisible characters only: accents, other scripts and plain emoji pass."""
    for name in ("Zoë", "Ада", "أدا", "李华", "Ada 🎉", "O'Brien-Smith"):
        env = decode_request(json.dumps({"type": "profile.update", "display_name": name}))
        assert env.request == ProfileUpdate(name)
