"""Several addresses of one service: reading them, and which one the client tries next (pure)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from gui.core.profile import Profile
from gui.core.servers import (
    ServerChoice,
    parse_servers,
    server_address,
    server_argument,
    server_list,
)
from gui.core.signaling_client import TlsRefused

A, B, C = "ws://a:1/ws", "ws://b:2/ws", "wss://c:3/ws"


def test_an_address_is_completed_or_refused_with_a_reason() -> None:
    assert server_address("a:1") == A
    assert server_address(" ws://a:1 ") == A
    assert server_address("wss://c:3/ws/") == "wss://c:3/ws/"
    assert server_address("wss://c:3/") == C
    for text, reason in [
        ("http://a:1/ws", "not a ws:// or wss:// address"),
        ("ws://:1/ws", "names no server"),
        ("ws://a:port/ws", "no valid port number"),
        ("ws://a:0/ws", "no valid port number"),
        ("  ", "empty"),
    ]:
        with pytest.raises(ValueError, match=reason):
            server_address(text)
    with pytest.raises(argparse.ArgumentTypeError, match="not a ws://"):
        server_argument("ftp://a/ws")


def test_typed_lists_one_per_line_or_separated_and_the_bad_line_named() -> None:
    assert parse_servers("") == [] and parse_servers(" \n\n ") == []
    assert parse_servers(f"a:1\n\n{B}\n{C}\n{A}") == [A, B, C]
    assert parse_servers("a:1, b:2 c:3") == [A, B, "ws://c:3/ws"]
    with pytest.raises(ValueError, match=r"^line 2: 'http://b/ws' is not a ws:// or wss://"):
        parse_servers("a:1\nhttp://b/ws")
    with pytest.raises(ValueError, match=r"^'x:y' has no valid port"):
        parse_servers("x:y")
    assert server_list([A, "a:1", B]) == [A, B]


def test_the_last_good_one_first_then_the_others_in_order() -> None:
    choice = ServerChoice.of([A, B, C])
    assert choice.order() == [A, B, C] and choice.several
    choice.good(C)
    assert choice.order() == [C, A, B]
    choice.good("ws://elsewhere/ws")  # not one of them: nothing changes
    assert choice.order() == [C, A, B]
    assert ServerChoice.of([A, B], last_good=B).order() == [B, A]
    assert ServerChoice.of([A, B], last_good="ws://gone/ws").order() == [A, B]
    assert ServerChoice.of(A).order() == [A] and not ServerChoice.of(A).several
    assert ServerChoice.of([A, A, B]).urls == [A, B]
    with pytest.raises(ValueError, match="no server"):
        ServerChoice.of([])


def test_a_refused_server_is_skipped_without_blocking_the_others() -> None:
    choice = ServerChoice.of([A, B, C], last_good=A)
    refusal = TlsRefused("the server's certificate has expired", untrusted=False)
    choice.refuse(A, refusal)
    assert choice.order() == [B, C] and not choice.all_refused
    choice.refuse(B, refusal)
    choice.refuse(C, refusal)
    assert choice.order() == [] and choice.all_refused
    choice.retry_all()  # the user connects again: every one is tried again
    assert choice.order() == [A, B, C]
    choice.refuse(B, refusal)
    choice.good(B)  # it worked after all (the user trusted its certificate)
    assert choice.order() == [B, A, C]


def test_profiles_keep_a_list_and_read_the_single_server_of_before(tmp_path: Path) -> None:
    profile = Profile("p", root=tmp_path)
    assert profile.settings.server_urls == [] and profile.settings.server_url is None
    profile.settings_path.parent.mkdir(parents=True)
    profile.settings_path.write_text(json.dumps({"server_url": "ws://example.org:8765"}))
    settings = Profile("p", root=tmp_path).settings
    assert settings.server_urls == ["ws://example.org:8765/ws"]
    settings.server_urls = [A, B]
    profile.settings = settings
    profile.save_settings()
    saved = json.loads(profile.settings_path.read_text())
    assert saved["server_urls"] == [A, B] and saved["server_url"] == A  # older versions
    assert Profile("p", root=tmp_path).settings.server_urls == [A, B]
    profile.settings_path.write_text(json.dumps({"server_urls": [A, "http://x/"]}))
    assert Profile("p", root=tmp_path).settings.server_urls == []  # ignored, logged
    settings.server_url = None
    assert settings.server_urls == []
