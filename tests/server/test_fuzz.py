"""Fuzzing a live server: thousands of random and mutated frames, with the right error for each.

One logged-in connection and one that never logs in receive every kind of bad
frame docs/protocol.md names, while a well-behaved pair of contacts keeps
listing contacts, changing presence and calling each other on the same
server. Each bad frame must get exactly one ``error`` reply with the code the
protocol prescribes, the connection must go on, and the server must never
answer ``internal``.

How the test runs hypothesis against a server on an asyncio loop: the server
(the ``server`` fixture) and the well-behaved pair run on the test's loop;
the fuzzing runs in a worker thread (``asyncio.to_thread``) with a loop of
its own, where ordinary synchronous ``@given`` functions drive two
:class:`WireClient` connections with ``loop.run_until_complete``. That is
plain hypothesis (shrinking, the example database, ``@reproduce_failure``
blobs), and the server really serves both sides at once.

What the server checks, in this order (:func:`expect` mirrors it):

1. a binary frame is ``bad_message`` (no ``re``);
2. a frame that is not a JSON object (unparsable, ``NaN``/``Infinity``,
   nested past the parser's depth limit, not an object) is ``bad_json``
   (no ``re``);
3. an ``id`` that is present but not a string of at most 64 characters
   (or not valid Unicode) is ``bad_message`` with no ``re``;
4. a missing or non-string ``type`` is ``bad_message``;
5. a ``type`` that is not a request of version 1 is ``unknown_type``;
6. (the rate limit: the test server's limits are far above what this sends);
7. anything but ``register``/``login`` before logging in is ``unauthenticated``;
8. a missing, wrongly typed or out-of-range field is ``bad_message``.

From step 4 on, the reply carries ``re`` whenever the frame had a readable ``id``.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st
from websockets.protocol import State

from signaling.server import SignalingServer
from tests.wire import WireClient, new_call_id

pytestmark = pytest.mark.slow

Json = dict[str, Any]

MAX_FRAME_BYTES = 64 * 1024
MAX_ID_CHARS = 64
#: The request types of version 1 (docs/protocol.md, "Requests").
KNOWN_TYPES = frozenset(
    {
        "register",
        "login",
        "logout",
        "contacts.list",
        "contacts.request",
        "contacts.accept",
        "contacts.remove",
        "users.search",
        "presence.set",
        "profile.update",
        "call.invite",
        "call.accept",
        "call.decline",
        "call.cancel",
        "call.hangup",
        "rtc.signal",
        "history.list",
        # Version 1.1: meetings.
        "meeting.create",
        "meeting.invite",
        "meeting.join",
        "meeting.decline",
        "meeting.leave",
        "meeting.end",
        "meeting.media",
    }
)
LOGIN_TYPES = frozenset({"register", "login"})
#: Requests that change nothing the other tests' users could see: a fuzzing
#: connection may send them valid and expect ``ok``.
HARMLESS_TYPES = frozenset({"contacts.list", "users.search", "history.list", "presence.set"})
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
USERNAME_RE = re.compile(r"[a-z0-9._-]{3,32}")
#: Deeper than any JSON parser recursion limit (CPython's is near 1000-1500).
PARSER_BREAKING_DEPTH = 5_000
#: Frames are sent in batches, their replies read back in order.
REPLY_TIMEOUT = 10.0


# The expectation ---------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One frame to send, and whether its fields (after the envelope) are valid."""

    data: str | bytes
    #: Only read when the frame reaches the field checks (step 8).
    fields_valid: bool
    label: str

    def __repr__(self) -> str:
        shown = self.data if len(self.data) <= 300 else self.data[:300]
        return f"Frame({self.label}, {len(self.data)} bytes: {shown!r})"


@dataclass(frozen=True)
class Expected:
    """The reply a frame must get: ``ok``, or ``error`` with ``code``; ``re`` or no ``re``."""

    code: str | None  # None: an ``ok`` reply
    re: str | None
    type: str | None = None  # the request type, when the frame reached step 7


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _readable_id(value: Any) -> bool:
    if type(value) is not str or len(value) > MAX_ID_CHARS:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def expect(frame: Frame, logged_in: bool) -> Expected:
    """The reply the protocol prescribes for ``frame``, in the server's order of checks."""
    if isinstance(frame.data, bytes):
        return Expected("bad_message", None)
    try:
        message = json.loads(frame.data, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return Expected("bad_json", None)
    if type(message) is not dict:
        return Expected("bad_json", None)
    request_id = None
    if "id" in message:
        if not _readable_id(message["id"]):
            return Expected("bad_message", None)
        request_id = message["id"]
    kind = message.get("type")
    if type(kind) is not str:
        return Expected("bad_message", request_id)
    if kind not in KNOWN_TYPES:
        return Expected("unknown_type", request_id)
    if not logged_in and kind not in LOGIN_TYPES:
        return Expected("unauthenticated", request_id, kind)
    if not frame.fields_valid:
        return Expected("bad_message", request_id, kind)
    # The generators only let harmless requests through valid.
    assert kind in HARMLESS_TYPES and logged_in, f"generator bug: {frame!r}"
    return Expected(None, request_id, kind)


# Field specifications, from docs/protocol.md ----------------------------------------


@dataclass(frozen=True)
class Spec:
    """One field of a request: where it is, its kind and its documented limits."""

    path: tuple[str, ...]
    kind: str  # username | usernames | text | uuid | choice | bool | int | object | token
    required: bool = True
    #: rtc.signal's ``description`` and ``candidate``: required when the other is absent.
    payload: bool = False
    min_len: int = 0
    max_len: int | None = None
    #: Control characters are refused (display_name).
    no_control: bool = False
    #: Bounds of an int, or of the length of a list of usernames.
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] = ()


USERNAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._-ABCXYZ"
PRINTABLE = st.characters(categories=("L", "N", "P", "S", "Zs"))

usernames = st.text(USERNAME_CHARS, min_size=3, max_size=32)
passwords = st.text(min_size=8, max_size=80)
tokens = st.text(min_size=1, max_size=64)
display_names = st.text(PRINTABLE, min_size=1, max_size=64).filter(lambda s: s.strip() != "")
queries = st.text(PRINTABLE, min_size=1, max_size=32)
call_ids = st.builds(new_call_id)
medias = st.fixed_dictionaries({"audio": st.booleans(), "video": st.booleans()})
descriptions = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["offer", "answer", "pranswer", "rollback"]),
        "sdp": st.text(max_size=200),
    }
)
candidates = st.fixed_dictionaries(
    {"candidate": st.text(max_size=100)},
    optional={
        "sdpMid": st.text(max_size=8) | st.none(),
        "sdpMLineIndex": st.integers(0, 16) | st.none(),
    },
)


@st.composite
def rtc_payloads(draw: st.DrawFn) -> Json:
    which = draw(st.sampled_from(["description", "candidate", "both"]))
    out: Json = {}
    if which != "candidate":
        out["description"] = draw(descriptions)
    if which != "description":
        out["candidate"] = draw(candidates)
    return out


@dataclass(frozen=True)
class RequestShape:
    """A request type, a strategy for valid fields and the specs of those fields."""

    type: str
    fields: st.SearchStrategy[Json]
    specs: tuple[Spec, ...]


def _fields(**strategies: st.SearchStrategy[Any]) -> st.SearchStrategy[Json]:
    return st.fixed_dictionaries(strategies)


USERNAME_SPEC = Spec(("username",), "username")
CALL_ID_SPEC = Spec(("call_id",), "uuid")
MEETING_ID_SPEC = Spec(("meeting_id",), "uuid")
MEDIA_SPECS = (
    Spec(("media",), "object"),
    Spec(("media", "audio"), "bool"),
    Spec(("media", "video"), "bool"),
)
#: What rtc.signal relays, for a call and for a meeting alike.
SIGNAL_PAYLOAD_SPECS = (
    Spec(("description",), "object", required=False, payload=True),
    Spec(("description", "type"), "choice", choices=("offer", "answer", "pranswer", "rollback")),
    Spec(("description", "sdp"), "text"),
    Spec(("candidate",), "object", required=False, payload=True),
    Spec(("candidate", "candidate"), "text"),
    Spec(("candidate", "sdpMid"), "text", required=False),
    Spec(("candidate", "sdpMLineIndex"), "int", required=False),
)
meeting_ids = st.builds(new_call_id)
invite_lists = st.lists(usernames, max_size=15)
SHAPES: tuple[RequestShape, ...] = (
    RequestShape(
        "register",
        st.fixed_dictionaries(
            {"username": usernames, "password": passwords},
            optional={"display_name": display_names},
        ),
        (
            USERNAME_SPEC,
            Spec(("password",), "text", min_len=8, max_len=256),
            Spec(("display_name",), "text", required=False, min_len=1, max_len=64, no_control=True),
        ),
    ),
    RequestShape(
        "login",
        _fields(username=usernames, password=passwords),
        (USERNAME_SPEC, Spec(("password",), "text", min_len=8, max_len=256)),
    ),
    RequestShape("login", _fields(token=tokens), (Spec(("token",), "token"),)),
    RequestShape("logout", _fields(), ()),
    RequestShape("contacts.list", _fields(), ()),
    RequestShape("contacts.request", _fields(username=usernames), (USERNAME_SPEC,)),
    RequestShape("contacts.accept", _fields(username=usernames), (USERNAME_SPEC,)),
    RequestShape("contacts.remove", _fields(username=usernames), (USERNAME_SPEC,)),
    RequestShape(
        "users.search",
        _fields(query=queries),
        (Spec(("query",), "text", min_len=1, max_len=32, no_control=True),),
    ),
    RequestShape(
        "presence.set",
        _fields(status=st.sampled_from(["online", "away", "dnd"])),
        (Spec(("status",), "choice", choices=("online", "away", "dnd")),),
    ),
    RequestShape(
        "profile.update",
        _fields(display_name=display_names),
        (Spec(("display_name",), "text", min_len=1, max_len=64, no_control=True),),
    ),
    RequestShape(
        "call.invite",
        _fields(to=usernames, call_id=call_ids, media=medias),
        (Spec(("to",), "username"), CALL_ID_SPEC, *MEDIA_SPECS),
    ),
    *(
        RequestShape(kind, _fields(call_id=call_ids), (CALL_ID_SPEC,))
        for kind in ("call.accept", "call.decline", "call.cancel", "call.hangup")
    ),
    RequestShape(
        "rtc.signal",
        st.builds(
            lambda call_id, payload: {"call_id": call_id, **payload}, call_ids, rtc_payloads()
        ),
        (CALL_ID_SPEC, *SIGNAL_PAYLOAD_SPECS),
    ),
    RequestShape(
        "rtc.signal",
        st.builds(
            lambda meeting_id, to, payload: {"meeting_id": meeting_id, "to": to, **payload},
            meeting_ids,
            usernames,
            rtc_payloads(),
        ),
        (MEETING_ID_SPEC, Spec(("to",), "username"), *SIGNAL_PAYLOAD_SPECS),
    ),
    RequestShape(
        "history.list",
        st.fixed_dictionaries({}, optional={"limit": st.integers(1, 200)}),
        (Spec(("limit",), "int", required=False, low=1, high=200),),
    ),
    RequestShape(
        "meeting.create",
        st.fixed_dictionaries(
            {"meeting_id": meeting_ids, "media": medias},
            optional={"invite": invite_lists, "title": display_names},
        ),
        (
            MEETING_ID_SPEC,
            *MEDIA_SPECS,
            Spec(("invite",), "usernames", required=False, low=0, high=15),
            Spec(("title",), "text", required=False, min_len=1, max_len=64, no_control=True),
        ),
    ),
    RequestShape(
        "meeting.invite",
        _fields(meeting_id=meeting_ids, usernames=st.lists(usernames, min_size=1, max_size=15)),
        (MEETING_ID_SPEC, Spec(("usernames",), "usernames", low=1, high=15)),
    ),
    RequestShape(
        "meeting.join",
        _fields(meeting_id=meeting_ids, media=medias),
        (MEETING_ID_SPEC, *MEDIA_SPECS),
    ),
    *(
        RequestShape(kind, _fields(meeting_id=meeting_ids), (MEETING_ID_SPEC,))
        for kind in ("meeting.decline", "meeting.leave", "meeting.end")
    ),
    RequestShape(
        "meeting.media",
        _fields(
            meeting_id=meeting_ids, audio=st.booleans(), video=st.booleans(), screen=st.booleans()
        ),
        (MEETING_ID_SPEC, *(Spec((name,), "bool") for name in ("audio", "video", "screen"))),
    ),
)


# Invalid values -------------------------------------------------------------------

DROP = object()  # a mutation that removes the field


def nested(depth: int, container: str) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value] if container == "list" else {"x": value}
    return value


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
#: Nested containers a parser reads fine (far from any depth limit): the field checks refuse them.
shallow_nesting = st.builds(nested, st.integers(1, 200), st.sampled_from(["list", "dict"]))
LONE_SURROGATES = ("\ud800", "\udbff", "\udc00", "\udfff")
#: Characters that are not a-z 0-9 . _ - even after lowercasing. (U+212A KELVIN SIGN, which
#: lowercases to "k", has its own test: test_username_outside_its_alphabet_is_refused.)
BAD_USERNAME_CHARS = " !@#$%&*+/:;<=>?[]^`{|}~\\'\"\t\n\x00\x7féäß漢\u00a0\u200b"
#: Control characters, bidirectional overrides and invisible format characters (zero-width
#: space, joiners, marks, word joiner, invisible operators, BOM, soft hyphen, Mongolian vowel
#: separator, Arabic letter mark, a tag character).
CONTROL_CHARS = (
    *("\x00", "\x07", "\x1b", "\x1f", "\x7f", "\x85", "\u202e", "\u2066", "\u2069"),
    *("\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060", "\u2064", "\ufeff"),
    *("\u00ad", "\u180e", "\u061c", "\U000e0041"),
)


def huge_lengths(low: int) -> st.SearchStrategy[int]:
    """Just past a limit, or anywhere up to what still fits in a 64 KiB frame."""
    return st.integers(low, low + 16) | st.integers(low, 60_000)


def ascii_of_length(lengths: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return st.builds(lambda n, c: c * n, lengths, st.sampled_from("az09._-"))


@st.composite
def with_inserted(draw: st.DrawFn, base: st.SearchStrategy[str], chars: Any) -> str:
    """``base`` with one character from ``chars`` inserted somewhere."""
    value = draw(base)
    char = draw(st.sampled_from(chars))
    at = draw(st.integers(0, len(value)))
    return value[:at] + char + value[at:]


#: Strings that are not usernames, whatever their case.
bad_usernames = st.one_of(
    st.text(USERNAME_CHARS, max_size=2),
    ascii_of_length(huge_lengths(33)),
    with_inserted(st.text(USERNAME_CHARS, min_size=2, max_size=31), BAD_USERNAME_CHARS),
    with_inserted(usernames, LONE_SURROGATES),
)


@st.composite
def with_bad_item(draw: st.DrawFn, names: st.SearchStrategy[list[str]]) -> list[Any]:
    """A list of usernames with one item that is not one (a bad name, or not a string)."""
    value = draw(names)
    bad = draw(bad_usernames | st.none() | st.integers() | st.booleans() | st.lists(usernames))
    at = draw(st.integers(0, len(value)))
    return [*value[:at], bad, *value[at:]]


@functools.cache
def wrong_types(kind: str) -> st.SearchStrategy[Any]:
    """JSON values of any type but the one ``kind`` needs (``null`` is not among them)."""
    options: list[st.SearchStrategy[Any]] = [
        st.floats(allow_nan=False, allow_infinity=False),
        shallow_nesting,
    ]
    if kind != "usernames":  # a list of anything might be a list of valid usernames
        options.append(st.lists(json_values, max_size=3))
    if kind not in {"username", "text", "uuid", "choice", "token"}:
        options.append(st.text(max_size=20))
    if kind != "bool":
        options.append(st.booleans())
    if kind != "int":
        options.append(st.integers(-(10**30), 10**30))
    if kind != "object":
        options.append(st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    return st.one_of(options)


def invalid_values(spec: Spec, message: Json) -> st.SearchStrategy[Any]:
    """Values that make ``spec``'s field invalid in ``message`` (``DROP`` removes it)."""
    return _invalid_values(spec, is_required(spec, message))


@functools.cache
def _invalid_values(spec: Spec, required: bool) -> st.SearchStrategy[Any]:
    options: list[st.SearchStrategy[Any]] = [wrong_types(spec.kind)]
    if required:
        options.append(st.sampled_from([DROP, None]))  # missing, or null: the same
    if spec.kind in {"text", "token", "username", "uuid", "choice"}:
        base = {
            "username": usernames,
            "uuid": call_ids,
            "choice": st.sampled_from(spec.choices),
            "token": tokens,
        }.get(spec.kind, st.text(PRINTABLE, min_size=spec.min_len, max_size=spec.max_len or 30))
        options.append(with_inserted(base, LONE_SURROGATES))
    if spec.kind == "text" and spec.max_len is not None:
        options.append(ascii_of_length(huge_lengths(spec.max_len + 1)))
    if spec.kind == "text" and spec.min_len > 0:
        options.append(st.text(PRINTABLE, max_size=spec.min_len - 1))
    if spec.kind == "text" and spec.no_control:
        options.append(with_inserted(display_names, CONTROL_CHARS))
    if spec.kind == "username":
        options.append(bad_usernames)
    if spec.kind == "usernames":
        assert spec.low is not None and spec.high is not None
        options += [
            st.lists(usernames, min_size=spec.high + 1, max_size=spec.high + 8),
            with_bad_item(st.lists(usernames, max_size=spec.high - 1)),
        ]
        if spec.low > 0:
            options.append(st.just([]))
    if spec.kind == "uuid":
        options += [
            st.sampled_from(
                [
                    "",
                    "123e4567e89b12d3a456426614174000",
                    "{123e4567-e89b-12d3-a456-426614174000}",
                    "123e4567-e89b-12d3-a456-42661417400",
                    "123e4567-e89b-12d3-a456-4266141740000",
                    "123e4567-e89b-12d3-a456-42661417400g",
                    "123e4567-e89b-12d3-a456-426614174000\n",
                    " 123e4567-e89b-12d3-a456-426614174000",
                    "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
                ]
            ),
            st.text(max_size=40).filter(lambda s: not UUID_RE.fullmatch(s.lower())),
            ascii_of_length(huge_lengths(37)),
        ]
    if spec.kind == "choice":
        near_misses = [c.upper() for c in spec.choices] + [c + " " for c in spec.choices]
        if spec.path == ("status",):
            near_misses += ["in_call", "offline", ""]  # set by the server only
        options += [
            st.sampled_from(near_misses),
            st.text(max_size=20).filter(lambda s: s not in spec.choices),
        ]
    if spec.kind == "int" and spec.low is not None and spec.high is not None:
        options += [
            st.integers(max_value=spec.low - 1),
            st.integers(min_value=spec.high + 1),
            st.sampled_from([spec.low - 1, spec.high + 1, -(10**40), 10**40]),
        ]
    if spec.kind == "object":
        options.append(st.just({}))
    return st.one_of(options)


def is_required(spec: Spec, message: Json) -> bool:
    """Whether dropping the field makes ``message`` invalid."""
    if spec.payload:
        other = "candidate" if spec.path == ("description",) else "description"
        return message.get(other) is None
    return spec.required


def parent_of(message: Json, path: tuple[str, ...]) -> Json | None:
    """The object holding the field at ``path``, if it is there and an object."""
    node: Any = message
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def mutate(message: Json, path: tuple[str, ...], value: Any) -> None:
    parent = parent_of(message, path)
    assert parent is not None
    if value is DROP:
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value


# Envelope mutations -----------------------------------------------------------------

junk_values = json_values | shallow_nesting
valid_ids = st.text(max_size=MAX_ID_CHARS) | ascii_of_length(st.just(MAX_ID_CHARS)) | st.just("")
invalid_ids = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(json_values, max_size=3),
    st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    shallow_nesting,
    ascii_of_length(huge_lengths(MAX_ID_CHARS + 1)),
    st.text(min_size=MAX_ID_CHARS + 1, max_size=MAX_ID_CHARS + 40),
    with_inserted(st.text(max_size=MAX_ID_CHARS - 1), LONE_SURROGATES),
)
non_string_types = st.one_of(
    st.just(DROP),
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.sampled_from(sorted(KNOWN_TYPES)), max_size=2),
    st.dictionaries(
        st.sampled_from(["type", "name"]), st.sampled_from(sorted(KNOWN_TYPES)), max_size=2
    ),
    shallow_nesting,
)
unknown_types = st.one_of(
    st.sampled_from(
        [
            "",
            "Login",
            "CONTACTS.LIST",
            "contacts.list ",
            " logout",
            "call_invite",
            "call.invite.",
            "contacts",
            "call",
            # Server events are not requests.
            "ok",
            "error",
            "presence",
            "contact",
            "call.incoming",
            "call.ringing",
            "call.accepted",
            "call.ended",
            "meeting.invited",
            "meeting.joined",
            "meeting.left",
            "meeting.declined",
            "meeting.ended",
            "meeting",
            "meeting.create ",
            "Meeting.join",
        ]
    ),
    st.text(max_size=40).filter(lambda s: s not in KNOWN_TYPES),
    ascii_of_length(huge_lengths(41)),
    with_inserted(st.sampled_from(sorted(KNOWN_TYPES)), LONE_SURROGATES),
)


# Frames ---------------------------------------------------------------------------


RESERVED_KEYS = frozenset(
    {"id", "type"} | {spec.path[0] for shape in SHAPES for spec in shape.specs}
)
#: Names of extra fields, which the server ignores.
junk_keys = st.text(max_size=12).filter(lambda k: k not in RESERVED_KEYS)


def dump(message: Json, ascii_only: bool) -> str:
    """The frame text; lone surrogates can only travel as ``\\uXXXX`` escapes."""
    try:
        text = json.dumps(message, ensure_ascii=ascii_only)
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(message, ensure_ascii=True)
    return text


@st.composite
def request_frames(draw: st.DrawFn, *, logged_in: bool) -> Frame:
    """A valid request of a random type, then made invalid in one to three places.

    The connection's state decides what may stay valid: a logged-in connection
    sends only harmless requests valid (they get ``ok``); one that never logs
    in sends anything but ``register``/``login`` valid (``unauthenticated``).
    """
    shape = draw(st.sampled_from(SHAPES))
    message: Json = {"type": shape.type, **draw(shape.fields)}
    labels = [shape.type]
    request_id = draw(st.none() | valid_ids)
    if request_id is not None:
        message["id"] = request_id
    for _ in range(draw(st.integers(0, 2))):  # unknown extra fields are ignored
        message[draw(junk_keys)] = draw(junk_values)

    may_stay_valid = shape.type in HARMLESS_TYPES if logged_in else shape.type not in LOGIN_TYPES
    mutable = [s for s in shape.specs if parent_of(message, s.path) is not None]
    envelope = draw(
        st.sampled_from(["none", "none", "none", "none", "bad_id", "bad_type", "unknown_type"])
    )
    if envelope == "none" and not mutable and not may_stay_valid:
        envelope = draw(st.sampled_from(["bad_id", "bad_type", "unknown_type"]))
    least = 0 if (envelope != "none" or may_stay_valid) else 1
    count = draw(st.integers(least, 2)) if mutable else 0

    for _ in range(count):
        mutable = [s for s in shape.specs if parent_of(message, s.path) is not None]
        spec = draw(st.sampled_from(mutable))
        value = draw(invalid_values(spec, message))
        mutate(message, spec.path, value)
        shown = "drop" if value is DROP else type(value).__name__
        labels.append(f"{'.'.join(spec.path)}={shown}")
    if envelope == "bad_id":
        message["id"] = draw(invalid_ids)
        labels.append("bad id")
    elif envelope == "bad_type":
        mutate(message, ("type",), draw(non_string_types))
        labels.append("type not a string")
    elif envelope == "unknown_type":
        message["type"] = draw(unknown_types)
        labels.append("unknown type")
    data = dump(message, draw(st.booleans()))
    assume(len(data.encode("utf-8", "surrogatepass")) <= MAX_FRAME_BYTES)
    return Frame(data, fields_valid=count == 0, label=" ".join(labels))


def _text_frame(label: str) -> Callable[[str], Frame]:
    return lambda data: Frame(data, fields_valid=False, label=label)


def _is_object_reaching_fields(text: str) -> bool:
    """Whether a random text is a JSON object whose envelope is fine (then its fields matter)."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and value.get("type") in KNOWN_TYPES


@st.composite
def with_constant(draw: st.DrawFn) -> Frame:
    """A request with a ``NaN``, ``Infinity`` or ``-Infinity`` literal somewhere in it."""
    shape = draw(st.sampled_from(SHAPES))
    message: Json = {"type": shape.type, "id": "nan", **draw(shape.fields)}
    key = draw(st.sampled_from([*message, "extra"]))
    literal = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
    message[key] = "@CONSTANT@"
    data = json.dumps(message).replace('"@CONSTANT@"', literal)
    return Frame(data, fields_valid=False, label=f"{literal} in {key}")


@st.composite
def too_deep(draw: st.DrawFn) -> Frame:
    """Nesting past the parser's depth limit: lists (2 bytes a level) or objects (6)."""
    container = draw(st.sampled_from(["list", "dict"]))
    top = 30_000 if container == "list" else 10_000
    depth = draw(st.integers(PARSER_BREAKING_DEPTH, top))
    opening, closing = ("[", "]") if container == "list" else ('{"a":', "}")
    body = opening * depth + "0" + closing * depth
    if draw(st.booleans()):  # inside an otherwise fine request
        body = '{"type": "users.search", "id": "deep", "query": ' + body + "}"
    return Frame(body, fields_valid=False, label=f"{container} nested {depth} deep")


raw_frames = st.one_of(
    # Not JSON at all.
    st.text(max_size=200)
    .filter(lambda t: not _is_object_reaching_fields(t))
    .map(_text_frame("random text")),
    st.sampled_from(
        [
            "",
            " ",
            "{",
            "}",
            "nul",
            "tru",
            "{'type': 'contacts.list'}",
            '{"type": "contacts.list",}',
            '{"type": "contacts.list"} {}',
            '{"type": "contacts.list"}x',
            '{type: "contacts.list"}',
            '{"type": "contacts.list", "id": "a"',
            '{"type": "users.search", "query": "\\x41"}',
            '{"type": "users.search", "query": "a\nb"}',  # raw control character in a string
            '{"type": "users.search", "query": "\\ud800\\"}',
            "\ufeff{}",
        ]
    ).map(_text_frame("broken JSON")),
    # JSON, but not an object.
    json_values.filter(lambda v: not isinstance(v, dict))
    .map(json.dumps)
    .map(_text_frame("JSON not an object")),
    st.lists(st.builds(lambda: {"type": "contacts.list"}), min_size=1, max_size=3)
    .map(json.dumps)
    .map(_text_frame("array of requests")),
    with_constant(),
    too_deep(),
    # A number longer than the parser reads (RFC 8259 section 9 lets it limit numbers):
    # the frame cannot be parsed, so it is bad_json like any other.
    st.integers(4_301, 60_000)
    .map(lambda n: '{"type": "history.list", "id": "big", "limit": ' + "7" * n + "}")
    .map(_text_frame("number too long to parse")),
    # Binary frames, whatever is in them (valid requests included).
    st.binary(max_size=300).map(lambda b: Frame(b, fields_valid=False, label="binary")),
    st.sampled_from(
        [
            {"type": "contacts.list", "id": "b1"},
            {"type": "logout", "id": "b2"},
            {"type": "history.list"},
        ]
    ).map(lambda m: Frame(json.dumps(m).encode(), fields_valid=False, label="binary request")),
    st.integers(1_000, 60_000).map(
        lambda n: Frame(b"\xff" * n, fields_valid=False, label="big binary")
    ),
)


def mostly(
    main: st.SearchStrategy[Frame], other: st.SearchStrategy[Frame]
) -> st.SearchStrategy[Frame]:
    """``main`` four times in five, else ``other``.

    (``main | other`` would weigh every branch of ``other``'s ``one_of`` like ``main``.)
    """
    return st.integers(0, 4).flatmap(lambda n: other if n == 0 else main)


batches_logged_in = st.lists(
    mostly(request_frames(logged_in=True), raw_frames), min_size=1, max_size=8
)
batches_unauthenticated = st.lists(
    mostly(request_frames(logged_in=False), raw_frames), min_size=1, max_size=8
)
raw_batches = st.lists(raw_frames, min_size=1, max_size=8)

FUZZ_SETTINGS = settings(
    deadline=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)


# The fuzzing side, in its own thread and loop ------------------------------------------


def check_reply(reply: Json, want: Expected, frame: Frame) -> None:
    where = f"{frame!r} got {reply}"
    if want.code is None:
        assert reply["type"] == "ok", where
    else:
        assert reply["type"] == "error", where
        assert reply["code"] == want.code, where
        assert isinstance(reply["message"], str) and reply["message"], where
        assert set(reply) <= {"type", "re", "code", "message"}, where
    if want.re is None:
        assert "re" not in reply, where
    else:
        assert reply.get("re") == want.re, where
    if want.code is None and want.type == "contacts.list":
        echo = [c for c in reply["contacts"] if c["username"] == "echo"]
        assert echo and echo[0]["status"] == "accepted", where
    if want.code is None and want.type == "users.search":
        assert len(reply["users"]) <= 20, where
        assert all(set(u) == {"username", "display_name"} for u in reply["users"]), where
    if want.code is None and want.type == "history.list":
        assert reply["calls"] == [], where  # the fuzzing user never made a call
        assert reply["meetings"] == [], where  # nor was in a meeting


class Fuzzer:
    """Two connections on a private loop: ``authed`` logged in, ``anon`` never."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self.codes: Counter[str] = Counter()
        self.frames = 0
        self.authed: WireClient
        self.anon: WireClient

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return self.loop.run_until_complete(coro)

    async def open(self) -> None:
        self.authed = await WireClient.open(self.url)
        await self.authed.register("fuzzer")
        self.anon = await WireClient.open(self.url)

    async def exchange(self, frames: list[Frame], logged_in: bool) -> None:
        """Send a batch at once, then check the replies, which come back in order."""
        client = self.authed if logged_in else self.anon
        for frame in frames:
            await client.send(frame.data)
        replies = [await client.next_event(timeout=REPLY_TIMEOUT) for _ in frames]
        for frame, reply in zip(frames, replies, strict=True):
            note(repr(frame))
            want = expect(frame, logged_in)
            check_reply(reply, want, frame)
            self.frames += 1
            if want.code is not None:
                self.codes[want.code] += 1

    async def still_serving(self) -> None:
        """After everything, both connections are open and answer."""
        for client in (self.authed, self.anon):
            assert client.ws.state is State.OPEN, client.ws.close_code
            assert client.events.empty(), client.drain()
        reply = await self.authed.request("contacts.list")
        assert [c["username"] for c in reply["contacts"]] == ["echo"]
        reply = await self.anon.call("contacts.list")
        assert reply["code"] == "unauthenticated"
        self.codes["unauthenticated"] += 1
        await self.anon.register("fuzzer2")  # the battered connection can still log in
        await self.anon.request("contacts.list")

    async def close(self) -> None:
        for name in ("authed", "anon"):
            client = getattr(self, name, None)
            if client is not None:
                await client.close()


def fuzz(url: str) -> Fuzzer:
    """Run every hypothesis fuzz against ``url``; returns the tallies. Runs in a worker thread."""
    fuzzer = Fuzzer(url)
    try:
        fuzzer.run(fuzzer.open())

        @settings(FUZZ_SETTINGS, max_examples=700)
        @given(batches_logged_in)
        def logged_in_connection(frames: list[Frame]) -> None:
            fuzzer.run(fuzzer.exchange(frames, logged_in=True))

        @settings(FUZZ_SETTINGS, max_examples=250)
        @given(raw_batches)
        def raw_frames_on_logged_in_connection(frames: list[Frame]) -> None:
            fuzzer.run(fuzzer.exchange(frames, logged_in=True))

        @settings(FUZZ_SETTINGS, max_examples=350)
        @given(batches_unauthenticated)
        def connection_never_logged_in(frames: list[Frame]) -> None:
            fuzzer.run(fuzzer.exchange(frames, logged_in=False))

        logged_in_connection()
        raw_frames_on_logged_in_connection()
        connection_never_logged_in()
        fuzzer.run(fuzzer.still_serving())
    finally:
        fuzzer.run(fuzzer.close())
        fuzzer.loop.close()
    return fuzzer


# The well-behaved pair, on the server's loop ----------------------------------------


async def wait_presence(client: WireClient, username: str, presence: str) -> None:
    async with asyncio.timeout(10):
        while True:
            event = await client.next_event("presence")
            if event["username"] == username and event["presence"] == presence:
                return


async def keep_working(carol: WireClient, dave: WireClient, stop: asyncio.Event) -> int:
    """List contacts, change presence and make a whole call, again and again; returns the rounds."""
    statuses = itertools.cycle(["away", "dnd", "online"])
    for rounds, status in enumerate(statuses):
        if stop.is_set() and rounds >= 3:
            return rounds
        contacts = {c["username"]: c for c in (await carol.request("contacts.list"))["contacts"]}
        assert contacts["dave"]["status"] == "accepted"
        assert contacts["dave"]["presence"] == "online"

        await carol.request("presence.set", status=status)
        await wait_presence(dave, "carol", status)

        call_id = new_call_id()
        await carol.request(
            "call.invite",
            to="dave",
            call_id=call_id,
            media={"audio": True, "video": rounds % 2 == 0},
        )
        incoming = await dave.next_event("call.incoming")
        assert incoming["call_id"] == call_id and incoming["from"]["username"] == "carol"
        assert (await carol.next_event("call.ringing"))["call_id"] == call_id
        await dave.request("call.accept", call_id=call_id)
        assert (await carol.next_event("call.accepted"))["call_id"] == call_id
        offer = {"type": "offer", "sdp": f"v=0 round {rounds}"}
        await carol.request("rtc.signal", call_id=call_id, description=offer)
        signal = await dave.next_event("rtc.signal")
        assert signal["from"] == "carol" and signal["description"] == offer
        await dave.request("call.hangup", call_id=call_id)
        for client in (carol, dave):
            ended = await client.next_event("call.ended")
            assert ended == {"type": "call.ended", "call_id": call_id, "reason": "hangup"}
        history = (await carol.request("history.list", limit=1))["calls"]
        assert history[0]["call_id"] == call_id and history[0]["reason"] == "hangup"
        await asyncio.sleep(0.02)
    raise AssertionError("unreachable")


# Closing cases and metrics ------------------------------------------------------------


async def closed_with(client: WireClient) -> int | None:
    async with asyncio.timeout(5):
        await client.ws.wait_closed()
    return client.ws.close_code


async def get_metrics(server: SignalingServer) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(5):
        response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return body.decode()


def error_counts(metrics: str) -> dict[str, int]:
    pattern = re.compile(r'^parley_errors_total\{code="([a-z_]+)"\} (\d+)$', re.MULTILINE)
    return {code: int(count) for code, count in pattern.findall(metrics)}


# The test ------------------------------------------------------------------------------


# The server pings every connection every 20 s, and websockets draws the ping payload from the
# ``random`` module: on the server's thread, while hypothesis draws examples on the fuzzing
# thread, which hypothesis then takes for a strategy using ``random``.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
async def test_fuzzed_frames_get_the_right_error_while_others_keep_working(
    server: SignalingServer, friends: Any, connect: Any
) -> None:
    carol, dave = await friends("carol", "dave")
    stop = asyncio.Event()
    well_behaved = asyncio.create_task(keep_working(carol, dave, stop))
    try:
        fuzzer = await asyncio.to_thread(fuzz, server.url)
    finally:
        stop.set()
        rounds = await well_behaved

    assert fuzzer.frames >= 3_000, fuzzer.frames
    assert rounds >= 3
    codes = fuzzer.codes
    for code in ("bad_json", "bad_message", "unknown_type", "unauthenticated"):
        assert codes[code] >= 100, codes

    # Everyone is still answered.
    for client in (carol, dave):
        await client.request("contacts.list")
        assert client.ws.state is State.OPEN

    # A frame of exactly 64 KiB is read and answered (not logged in); one byte more closes.
    big = await connect()
    prefix, suffix = '{"type": "users.search", "id": "big", "query": "', '"}'
    fill = MAX_FRAME_BYTES - len(prefix) - len(suffix)
    await big.send(prefix + "q" * fill + suffix)
    reply = await big.next_event()
    assert reply["code"] == "unauthenticated" and reply["re"] == "big", reply
    codes["unauthenticated"] += 1
    await big.send(prefix + "q" * (fill + 1) + suffix)
    assert await closed_with(big) == 1009

    # A text frame that is not UTF-8 closes with 1007, whatever the bytes.
    for raw in (b'{"type": "contacts.list", "id": "\xff"}', b'{"type": "\xed\xa0\x80"}'):
        broken = await connect()
        await broken.ws.send(raw, text=True)
        assert await closed_with(broken) == 1007

    # The server counted every error it sent, and none was ``internal``.
    assert "internal" not in codes
    counted = error_counts(await get_metrics(server))
    assert counted.get("internal", 0) == 0, counted
    assert counted == dict(codes), (counted, codes)
    for client in (carol, dave):
        await client.request("contacts.list")


# Found while fuzzing by hand -------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["\u212aarl", "\u212a\u212a\u212a", "mi\u212ae"], ids=["Karl", "KKK", "miKe"]
)
async def test_username_outside_its_alphabet_is_refused(connect: Any, name: str) -> None:
    """U+212A KELVIN SIGN lowercases to an ASCII "k", but it is not one of a-z 0-9 . _ -.

    docs/protocol.md: a username is 3 to 32 characters of ``a-z 0-9 . _ -``, compared
    lowercase; anything else is ``bad_message``, not another spelling of ``karl``.
    """
    anonymous = await connect()
    reply = await anonymous.call("register", username=name, password="correct horse")
    assert reply["type"] == "error" and reply["code"] == "bad_message", reply
    reply = await anonymous.call("login", username=name, password="correct horse")
    assert reply["type"] == "error" and reply["code"] == "bad_message", reply

    karl = await connect()
    await karl.register(name.lower())  # what the server would take the name for
    other = await connect()
    await other.register("someone")
    for kind, fields in (
        ("contacts.request", {"username": name}),
        (
            "call.invite",
            {"to": name, "call_id": new_call_id(), "media": {"audio": True, "video": False}},
        ),
    ):
        reply = await other.call(kind, **fields)
        assert reply["type"] == "error" and reply["code"] == "bad_message", reply
    assert karl.drain() == []
