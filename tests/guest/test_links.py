"""Guest links on a real server, over the wire: links, guest sessions, their limits, the page.

The browser's side (the page's media, chat and words) is in ``test_browser.py``; here a raw
client plays the guest, so that every refusal and every event can be checked exactly.
"""

from __future__ import annotations

import asyncio
import hashlib
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed

from signaling.server import SignalingServer
from signaling.server.web import STATIC_FILES
from tests.server.test_calls import OFFER
from tests.server.test_meetings import AV, create
from tests.wire import Json, ServerError, WireClient, new_call_id

GUEST_MEDIA = {"audio": True, "video": True}


def http_base(server: SignalingServer) -> str:
    return server.url.replace("ws://", "http://").removesuffix("/ws")


async def http_get(server: SignalingServer, path: str) -> tuple[int, dict[str, str], bytes]:
    """``GET path`` on the server's port: status, headers, body."""

    def get() -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(http_base(server) + path, timeout=5) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    return await asyncio.to_thread(get)


async def new_link(host: WireClient, **fields: object) -> Json:
    return (await host.request("guest_link.create", **fields))["link"]


async def guest_joins(connect, code: str, name: str = "Ann") -> tuple[WireClient, Json]:
    guest = await connect()
    reply = await guest.request("guest.join", code=code, display_name=name, media=GUEST_MEDIA)
    return guest, reply


async def closed(client: WireClient, timeout: float = 5.0) -> int | None:
    """Wait until the server closed ``client``'s connection; its close code."""
    async with asyncio.timeout(timeout):
        await client.ws.wait_closed()
    return client.ws.close_code


async def in_a_call(friends, connect) -> tuple[WireClient, WireClient, Json, Json]:
    """alice made a link, a guest used it, alice accepted: (alice, guest, link, join reply)."""
    (alice,) = await friends("alice")
    link = await new_link(alice)
    guest, reply = await guest_joins(connect, link["code"])
    incoming = await alice.next_event("call.incoming")
    assert incoming["from"] == reply["user"]
    await alice.request("call.accept", call_id=reply["call_id"])
    await guest.next_event("call.accepted")
    return alice, guest, link, reply


async def test_a_link_holds_a_long_random_code_shown_once(friends) -> None:
    (alice,) = await friends("alice")
    link = await new_link(alice)
    assert link["kind"] == "call" and link["guests"] == 0
    assert len(link["code"]) == 32 and link["path"] == f"/g/{link['code']}"  # 192 bits
    other = await new_link(alice, expires_in=3600)
    assert other["code"] != link["code"] and other["link_id"] != link["link_id"]
    listed = (await alice.request("guest_link.list"))["links"]
    assert [entry["link_id"] for entry in listed] == [other["link_id"], link["link_id"]]
    assert all("code" not in entry and "path" not in entry for entry in listed)


async def test_the_store_keeps_only_a_hash_of_the_code(server, friends) -> None:
    (alice,) = await friends("alice")
    link = await new_link(alice)
    database = server.config.db_path
    with open(database, "rb") as db:
        assert link["code"].encode() not in db.read()
    record = await server.store.guest_link(hashlib.sha256(link["code"].encode()).hexdigest())
    assert record is not None and record.owner == "alice"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"expires_in": 59}, "bad_message"),
        ({"expires_in": 7 * 24 * 3600 + 1}, "bad_message"),
        ({"expires_in": True}, "bad_message"),
        ({"meeting_id": "not-a-uuid"}, "bad_message"),
        ({"meeting_id": "0e0b7a4e-5f0e-4d55-9d5e-0a1b2c3d4e5f"}, "not_found"),
    ],
)
async def test_bad_link_requests_are_refused(friends, fields, code) -> None:
    (alice,) = await friends("alice")
    reply = await alice.call("guest_link.create", **fields)
    assert reply["type"] == "error" and reply["code"] == code


async def test_a_guest_calls_the_owner_and_the_socket_closes_after(friends, connect) -> None:
    alice, guest, _, reply = await in_a_call(friends, connect)
    assert reply["guest"] is True
    assert reply["user"]["display_name"] == "Guest: Ann"
    assert reply["user"]["username"].startswith("guest-")
    assert reply["peer"] == {"username": "alice", "display_name": "alice"}
    call_id = reply["call_id"]
    await guest.request("rtc.signal", call_id=call_id, description=OFFER)
    relayed = await alice.next_event("rtc.signal")
    assert relayed["from"] == reply["user"]["username"] and relayed["description"] == OFFER
    await alice.request("rtc.signal", call_id=call_id, description={**OFFER, "type": "answer"})
    assert (await guest.next_event("rtc.signal"))["from"] == "alice"
    await alice.request("call.hangup", call_id=call_id)
    assert (await guest.next_event("call.ended"))["reason"] == "hangup"
    assert await closed(guest) == 1000
    history = (await alice.request("history.list"))["calls"]
    assert history[0]["peer"] == reply["user"]["username"] and history[0]["direction"] == "in"


async def test_a_guest_hanging_up_is_closed_too(friends, connect) -> None:
    alice, guest, _, reply = await in_a_call(friends, connect)
    await guest.request("call.hangup", call_id=reply["call_id"])
    assert (await alice.next_event("call.ended"))["reason"] == "hangup"
    assert await closed(guest) == 1000


async def test_a_guest_whose_connection_drops_ends_the_call_at_once(friends, connect) -> None:
    alice, guest, _, _ = await in_a_call(friends, connect)
    await guest.close()
    # No 30 s grace (guests cannot return): within 15 s, which only the grace exceeds.
    ended = await alice.next_event("call.ended", timeout=15)
    assert ended["reason"] == "hangup"


async def test_an_offline_owner_ends_the_call_and_the_guest_is_told(friends, connect) -> None:
    (alice,) = await friends("alice")
    link = await new_link(alice)
    await alice.close()
    guest, _ = await guest_joins(connect, link["code"])
    assert (await guest.next_event("call.ended"))["reason"] == "offline"
    assert await closed(guest) == 1000


FORBIDDEN: list[tuple[str, Json]] = [
    ("users.search", {"query": "al"}),
    ("contacts.list", {}),
    ("contacts.request", {"username": "bob"}),
    ("presence.set", {"status": "away"}),
    ("profile.update", {"display_name": "Alice"}),
    ("call.invite", {"to": "bob", "call_id": "0e0b7a4e-5f0e-4d55-9d5e-0a1b2c3d4e5f", "media": AV}),
    ("meeting.create", {"meeting_id": "0e0b7a4e-5f0e-4d55-9d5e-0a1b2c3d4e5f", "media": AV}),
    ("guest_link.create", {}),
    ("guest_link.list", {}),
    ("history.list", {}),
    ("logout", {}),
    ("guest.join", {"code": "x" * 32, "display_name": "Again", "media": AV}),
]


async def test_a_guest_is_refused_everything_but_its_call(friends, connect) -> None:
    alice, guest, _, reply = await in_a_call(friends, connect)
    before = (await alice.request("contacts.list"))["contacts"]
    for kind, fields in FORBIDDEN:
        answer = await guest.call(kind, **fields)
        assert (answer["type"], answer["code"]) == ("error", "forbidden"), kind
    # Nothing changed: the call goes on, the host's contacts are the same, signals flow.
    assert (await alice.request("contacts.list"))["contacts"] == before
    await alice.request("rtc.signal", call_id=reply["call_id"], description=OFFER)
    assert (await guest.next_event("rtc.signal"))["description"] == OFFER
    assert (await alice.request("guest_link.list"))["links"][0]["guests"] == 1
    assert guest.ws.close_code is None


async def test_guests_are_nobody_users_can_find_befriend_or_become(friends, connect, user) -> None:
    _, _, _, reply = await in_a_call(friends, connect)
    bob = await user("bob")
    name = reply["user"]["username"]
    assert (await bob.request("users.search", query="guest"))["users"] == []
    assert (await bob.call("contacts.request", username=name))["code"] == "not_found"
    newcomer = await connect()
    assert (await newcomer.call("login", username=name, password="whatever123"))[
        "code"
    ] == "bad_credentials"
    assert (await newcomer.call("register", username="guest-0123456789ab", password="x" * 8))[
        "code"
    ] == "taken"


async def test_revoking_a_link_removes_its_guest(friends, connect) -> None:
    alice, guest, link, _ = await in_a_call(friends, connect)
    await alice.request("guest_link.revoke", link_id=link["link_id"])
    assert (await guest.next_event("guest.removed"))["reason"] == "revoked"
    assert await closed(guest) == 1000
    assert (await alice.next_event("call.ended"))["reason"] == "hangup"
    assert (await alice.request("guest_link.list"))["links"] == []
    again = await connect()
    refused = await again.call("guest.join", code=link["code"], display_name="Ann", media=AV)
    assert refused["code"] == "not_found" and "revoked" in refused["message"]


async def test_only_the_owner_revokes(friends) -> None:
    alice, bob = await friends("alice", "bob")
    link = await new_link(alice)
    assert (await bob.call("guest_link.revoke", link_id=link["link_id"]))["code"] == "not_found"
    assert (await bob.call("guest_link.revoke", link_id="nothex"))["code"] == "bad_message"


async def test_the_host_removes_a_guest_from_a_call(friends, connect) -> None:
    alice, guest, _, reply = await in_a_call(friends, connect)
    await alice.request("guest.remove", username=reply["user"]["username"])
    assert (await guest.next_event("guest.removed"))["reason"] == "removed"
    assert await closed(guest) == 1000
    assert (await alice.next_event("call.ended"))["reason"] == "hangup"


async def test_a_meeting_link_admits_guests_to_that_meeting(friends, connect) -> None:
    alice, bob, carol = await friends("alice", "bob", "carol")
    meeting_id, _ = await create(alice, bob)
    await bob.request("meeting.join", meeting_id=meeting_id, media=AV)
    await alice.next_event("meeting.joined")
    assert (await carol.call("guest_link.create", meeting_id=meeting_id))["code"] == "forbidden"
    link = await new_link(bob, meeting_id=meeting_id)
    assert link["kind"] == "meeting" and link["meeting_id"] == meeting_id
    guest, reply = await guest_joins(connect, link["code"], "Zoë")
    name = reply["user"]["username"]
    assert [p["username"] for p in reply["meeting"]["participants"]] == ["alice", "bob", name]
    for member in (alice, bob):
        joined = await member.next_event("meeting.joined")
        assert joined["participant"]["display_name"] == "Guest: Zoë"
    await guest.request("rtc.signal", meeting_id=meeting_id, to="alice", description=OFFER)
    assert (await alice.next_event("rtc.signal"))["from"] == name
    await guest.request(
        "meeting.media", meeting_id=meeting_id, audio=False, video=True, screen=True
    )
    assert (await bob.next_event("meeting.media"))["screen"] is True
    refused = await guest.call("meeting.end", meeting_id=meeting_id)
    assert refused["code"] == "forbidden"
    refused = await guest.call("meeting.invite", meeting_id=meeting_id, usernames=["carol"])
    assert refused["code"] == "forbidden"
    # bob made the link, but alice is the host: either may send the guest away.
    await alice.request("guest.remove", username=name)
    assert (await guest.next_event("guest.removed"))["reason"] == "removed"
    assert await closed(guest) == 1000
    for member in (alice, bob):
        left = await member.next_event("meeting.left")
        assert (left["username"], left["reason"]) == (name, "removed")


async def test_a_guest_leaving_a_meeting_is_closed_and_the_end_closes_the_rest(
    friends, connect
) -> None:
    alice, bob = await friends("alice", "bob")
    meeting_id, _ = await create(alice, bob)
    link = await new_link(alice, meeting_id=meeting_id)
    first, _ = await guest_joins(connect, link["code"], "One")
    second, _ = await guest_joins(connect, link["code"], "Two")
    await first.request("meeting.leave", meeting_id=meeting_id)
    assert await closed(first) == 1000
    assert (await alice.next_event("meeting.left"))["reason"] == "left"
    await alice.request("meeting.end", meeting_id=meeting_id)
    assert (await second.next_event("meeting.ended"))["reason"] == "ended"
    assert await closed(second) == 1000
    late = await connect()
    refused = await late.call("guest.join", code=link["code"], display_name="Late", media=AV)
    assert refused["code"] == "not_found" and "ended" in refused["message"]


async def test_a_full_meeting_refuses_a_guest(make_server, connect) -> None:
    server = await make_server(meeting_capacity=2)
    from tests.wire import befriend

    alice, bob = await befriend(server.url, "alice", "bob")
    meeting_id, _ = await create(alice, bob)
    await bob.request("meeting.join", meeting_id=meeting_id, media=AV)
    link = await new_link(alice, meeting_id=meeting_id)
    guest = await WireClient.open(server.url)
    refused = await guest.call("guest.join", code=link["code"], display_name="Ann", media=AV)
    assert refused["code"] == "meeting_full"
    # The connection is not a guest's: it may still log in as anyone.
    assert (await guest.call("contacts.list"))["code"] == "unauthenticated"
    for client in (alice, bob, guest):
        await client.close()


async def test_an_expired_link_admits_nobody_and_its_page_says_so(server, friends, connect) -> None:
    (alice,) = await friends("alice")
    link = await new_link(alice, expires_in=60)
    hub = server.hub
    assert hub is not None
    real = hub.clock
    hub.clock = lambda: real() + 61
    try:
        guest = await connect()
        refused = await guest.call("guest.join", code=link["code"], display_name="Ann", media=AV)
        assert refused["code"] == "not_found" and "expired" in refused["message"]
        status, _, body = await http_get(server, link["path"])
        assert status == 410 and b"This link has expired" in body
        assert (await alice.request("guest_link.list"))["links"] == []
    finally:
        hub.clock = real


async def test_pages_say_what_became_of_a_link(server, friends) -> None:
    (alice,) = await friends("alice")
    link = await new_link(alice)
    status, headers, body = await http_get(server, link["path"])
    assert status == 200 and b"Join a call with alice" in body
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert headers["Referrer-Policy"] == "no-referrer"
    assert b"<script>" not in body and b" on" not in body.replace(b" one", b"")  # no inline code
    status, _, body = await http_get(server, "/g/" + "A" * 32)
    assert status == 404 and b"This link does not exist" in body
    status, _, body = await http_get(server, "/g/<script>")
    assert status == 404
    await alice.request("guest_link.revoke", link_id=link["link_id"])
    status, _, body = await http_get(server, link["path"])
    assert status == 410 and b"This link was revoked" in body


async def test_the_page_is_small_and_its_files_are_served(server) -> None:
    weight = 0
    for name, content_type in STATIC_FILES.items():
        status, headers, body = await http_get(server, f"/g/static/{name}")
        assert status == 200 and headers["Content-Type"] == content_type
        weight += len(body)
    status, _, page = await http_get(server, "/g/" + "A" * 32)
    assert weight + len(page) < 100_000
    assert (await http_get(server, "/g/static/../app.py"))[0] == 404
    assert (await http_get(server, "/g/static/guest.html"))[0] == 404


async def test_unknown_codes_are_rate_limited_per_address(server, connect) -> None:
    guest = await connect()
    codes = []
    for _ in range(20):
        reply = await guest.call("guest.join", code="B" * 32, display_name="X", media=AV)
        codes.append(reply["code"])
    assert set(codes) == {"not_found"}
    limited = await guest.call("guest.join", code="B" * 32, display_name="X", media=AV)
    assert limited["code"] == "rate_limited" and limited["retry_after"] >= 1
    status, headers, _ = await http_get(server, "/g/" + "C" * 32)
    assert status == 429 and int(headers["Retry-After"]) >= 1


async def test_joins_through_one_link_are_rate_limited(friends, connect) -> None:
    (alice,) = await friends("alice")
    link = await new_link(alice)
    for _ in range(10):
        guest, reply = await guest_joins(connect, link["code"])
        await guest.request("call.cancel", call_id=reply["call_id"])
        await closed(guest)
    late = await connect()
    limited = await late.call("guest.join", code=link["code"], display_name="Ann", media=AV)
    assert limited["code"] == "rate_limited"


@pytest.mark.parametrize(
    "fields",
    [
        {"display_name": "", "media": AV},
        {"display_name": "   ", "media": AV},
        {"display_name": "x" * 49, "media": AV},
        {"display_name": "a\u202eb", "media": AV},
        {"display_name": "Ann"},
    ],
)
async def test_bad_guest_names_are_refused(friends, connect, fields) -> None:
    (alice,) = await friends("alice")
    link = await new_link(alice)
    guest = await connect()
    reply = await guest.call("guest.join", code=link["code"], **fields)
    assert reply["code"] == "bad_message"


async def test_nothing_logs_a_code(server, friends, connect, caplog) -> None:
    caplog.set_level("INFO")  # the server logs at INFO (websockets at WARNING: logs.py)
    (alice,) = await friends("alice")
    link = await new_link(alice)
    await http_get(server, link["path"])
    guest, reply = await guest_joins(connect, link["code"])
    await guest.request("call.cancel", call_id=reply["call_id"])
    with pytest.raises((ConnectionClosed, ServerError, TimeoutError)):
        await guest.next_event("nothing", timeout=2)
    assert link["code"] not in caplog.text


def test_the_page_has_the_apps_word_list() -> None:
    """The page derives the words as gui/core/verification.py does, from the same 256 words."""
    import re
    from importlib import resources

    from gui.core.verification import WORDS

    script = (resources.files("signaling.server.web") / "static" / "words.js").read_text()
    listed = script.split("Object.freeze([", 1)[1].split("]);", 1)[0]
    assert tuple(re.findall(r'"([a-z]+)"', listed)) == WORDS
    assert '"parley-sas-v1\\n' in script or "`parley-sas-v1\\n" in script


async def test_a_guest_gets_the_ice_servers_a_user_would(make_server, connect) -> None:
    """With STUN/TURN configured (``--turn``), the join reply carries them, TURN credentials too."""
    turn = pytest.importorskip("signaling.server.turn")
    settings = turn.IceSettings(turn_urls=("turn:127.0.0.1:3478",), secret="s3cret")
    server = await make_server(ice=settings)
    from tests.wire import befriend

    (alice,) = await befriend(server.url, "alice")
    link = await new_link(alice)
    guest = await WireClient.open(server.url)
    reply = await guest.request("guest.join", code=link["code"], display_name="Ann", media=AV)
    (relay,) = reply["ice_servers"]
    assert relay["urls"] == ["turn:127.0.0.1:3478"] and relay["credential"]
    assert relay["username"].endswith(reply["user"]["username"]) and reply["ice_ttl"] > 0
    await guest.request("call.cancel", call_id=reply["call_id"])
    for client in (alice, guest):
        await client.close()


def test_the_page_labels_every_control_and_has_no_inline_code() -> None:
    """Every input and select has a label; no inline script, style or event handler (CSP)."""
    from html.parser import HTMLParser
    from importlib import resources

    page = (resources.files("signaling.server.web") / "static" / "guest.html").read_text()

    class Controls(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.labelled: set[str] = set()
            self.controls: list[str] = []
            self.inline: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = dict(attrs)
            if tag == "label" and values.get("for"):
                self.labelled.add(str(values["for"]))
            if tag in ("input", "select", "textarea"):
                self.controls.append(str(values.get("id")))
            if tag == "style" or (tag == "script" and not values.get("src")):
                self.inline.append(tag)
            self.inline += [name for name in values if name == "style" or name.startswith("on")]

    parser = Controls()
    parser.feed(page)
    assert parser.controls and set(parser.controls) <= parser.labelled
    assert parser.inline == []


async def test_a_meeting_link_is_listed_while_its_meeting_lasts(friends) -> None:
    alice, bob = await friends("alice", "bob")
    meeting_id, _ = await create(alice, bob)
    await new_link(alice, meeting_id=meeting_id)
    call_link = await new_link(alice)
    assert len((await alice.request("guest_link.list"))["links"]) == 2
    await alice.request("meeting.end", meeting_id=meeting_id)
    listed = (await alice.request("guest_link.list"))["links"]
    assert [link["link_id"] for link in listed] == [call_link["link_id"]]


async def test_a_call_with_a_guest_does_not_become_a_meeting(friends, connect) -> None:
    """The guest page cannot carry its call on into a meeting: the host is told to send a
    meeting link instead, and the call goes on."""
    alice, guest, _, reply = await in_a_call(friends, connect)
    with pytest.raises(ServerError) as refused:
        await alice.request(
            "meeting.create", meeting_id=new_call_id(), media=AV, from_call=reply["call_id"]
        )
    assert refused.value.code == "unsupported" and "guest" in str(refused.value)
    await alice.request("rtc.signal", call_id=reply["call_id"], description=OFFER)
    assert (await guest.next_event("rtc.signal"))["from"] == "alice"  # the call goes on
    await alice.request("call.hangup", call_id=reply["call_id"])
    assert (await guest.next_event("call.ended"))["reason"] == "hangup"
