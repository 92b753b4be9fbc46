"""A meeting's chat history, the pure parts: the log each end keeps, whose word is taken for
what, and the ``past`` messages of the data channel (two channels back to back)."""

from __future__ import annotations

import json

from gui.core.meeting_chat import ChatLog, vouched
from gui.core.peer_channel import MAX_MESSAGE_CHARS, ChatMessage, PastChat, PeerChannel
from tests.core.test_peer_parts import FakeChannel


def msg(msg_id: str, at: float, text: str = "hi") -> ChatMessage:
    return ChatMessage(msg_id, text, at, outgoing=False)


def test_the_log_keeps_each_message_once_in_order_of_sending() -> None:
    log = ChatLog(size=3)
    assert log.add("ada", msg("a", 10))
    assert log.add("bob", msg("c", 30))
    assert log.add("cyd", msg("b", 20))  # history arriving after a newer live message
    assert not log.add("ada", msg("a", 10))  # again (a reconnect's replay, a second relay)
    assert [(e.sender, e.message.id) for e in log.past()] == [
        ("ada", "a"),
        ("cyd", "b"),
        ("bob", "c"),
    ]
    assert log.add("ada", msg("d", 40))  # full: the oldest goes
    assert [e.message.id for e in log.past()] == ["b", "c", "d"] and "a" not in log
    assert not log.add("ada", msg("a", 10))  # older than everything kept: not taken back
    assert len(log) == 3


def test_words_of_someone_present_are_taken_from_them_only() -> None:
    present = {"bob", "cyd"}
    by = {name: PastChat(name, msg(name, 1)) for name in ("ada", "bob", "cyd", "eve")}
    assert vouched(by["bob"], "bob", "ada", present)  # bob's own
    assert not vouched(by["cyd"], "bob", "ada", present)  # bob cannot speak for cyd
    assert vouched(by["eve"], "bob", "ada", present)  # eve left: anyone present may tell
    assert vouched(by["ada"], "bob", "ada", present)  # this end's own, back after a restart


def channels() -> tuple[PeerChannel, PeerChannel, list[list[PastChat]], list[str]]:
    got: list[list[PastChat]] = []
    opened: list[str] = []
    a = PeerChannel(on_open=lambda: opened.append("a"))
    b = PeerChannel(on_past=got.append, on_open=lambda: opened.append("b"))
    ca, cb = FakeChannel(), FakeChannel()
    ca.other, cb.other = cb, ca
    a.attach(ca)
    b.attach(cb)
    ca.open()
    cb.open()
    return a, b, got, opened


def test_the_past_crosses_the_channel_in_messages_that_fit() -> None:
    a, b, got, opened = channels()
    assert opened == ["a", "b"]
    past = [PastChat(f"user{n % 3}", msg(f"m{n}", n, '\x00"' * 1000)) for n in range(40)]
    a.send_past(past)
    sent = a.channel.sent  # type: ignore[union-attr]
    assert len(sent) > 1 and all(len(s) <= MAX_MESSAGE_CHARS for s in sent)
    assert [p for batch in got for p in batch] == past
    assert b.dropped_total == 0
    a.send_past([])
    assert len(a.channel.sent) == len(sent)  # type: ignore[union-attr]


def test_bad_past_items_are_dropped_one_by_one() -> None:
    _a, b, got, _ = channels()
    good = {"id": "ok", "from": "bob", "text": "fine", "sent_at": 5}
    items = [
        good,
        {"id": "x", "from": "<b>bob</b>", "text": "t", "sent_at": 1},  # not a username
        {"id": "y", "from": "bob", "text": "", "sent_at": 1},
        {"id": "z" * 65, "from": "bob", "text": "t", "sent_at": 1},
        {"id": "w", "text": "t"},
        "junk",
    ]
    b.receive(json.dumps({"t": "past", "items": items}))
    b.receive(json.dumps({"t": "past", "items": "nope"}))
    assert got == [[PastChat("bob", ChatMessage("ok", "fine", 5.0, outgoing=False))]]
    assert b.dropped["malformed"] == 6
    assert b.channel.sent == []  # type: ignore[union-attr]  # no acks for history


def test_a_meeting_gives_every_link_one_id() -> None:
    a, _, _, _ = channels()
    assert a.send_chat("hello", "same-id").id == "same-id"
    assert a.send_chat("hello").id != "same-id"
