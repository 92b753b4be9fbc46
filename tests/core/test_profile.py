"""Profiles, settings files, saved sessions and the embedded server, on real files and sockets."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from gui import embedded
from gui.core.profile import Profile, SavedSession, Settings
from gui.embedded import EmbeddedServer, find_running
from tests.wire import WireClient


def test_profiles_are_kept_apart(tmp_path: Path) -> None:
    alice, bob = Profile("alice", root=tmp_path), Profile("bob", root=tmp_path)
    alice.settings.theme = "dark"
    alice.save_settings()
    assert Profile("alice", root=tmp_path).settings.theme == "dark"
    assert Profile("bob", root=tmp_path).settings.theme == "system"
    assert alice.embedded_db_path != bob.embedded_db_path
    with pytest.raises(ValueError):
        Profile("../etc", root=tmp_path)


def test_a_broken_settings_file_keeps_what_is_valid(tmp_path: Path) -> None:
    profile = Profile("p", root=tmp_path)
    profile.settings_path.parent.mkdir(parents=True)
    profile.settings_path.write_text(
        json.dumps(
            {
                "theme": "purple",
                "notifications": "yes",
                "embedded_port": 99999,
                "server_url": "ws://example.org/ws",
                "start_in_tray": True,
                "ice_servers": [{"urls": ["stun:stun.example.org"]}],
                "unknown": 1,
            }
        )
    )
    settings = Profile("p", root=tmp_path).settings
    assert settings.theme == "system" and settings.notifications is True
    assert settings.embedded_port == 8765
    assert settings.server_url == "ws://example.org/ws" and settings.start_in_tray is True
    assert settings.ice_servers[0].urls == ["stun:stun.example.org"]
    profile.settings_path.write_text("{not json")
    assert Profile("p", root=tmp_path).settings == Settings()


def test_audio_processing_is_on_by_default_and_each_part_is_kept(tmp_path: Path) -> None:
    profile = Profile("p", root=tmp_path)
    settings = profile.settings
    assert settings.echo_cancellation and settings.noise_suppression
    assert settings.high_pass_filter and settings.auto_gain_control
    settings.noise_suppression = False
    profile.save_settings()
    assert Profile("p", root=tmp_path).settings.noise_suppression is False
    profile.settings_path.write_text(json.dumps({"echo_cancellation": "off"}))
    assert Profile("p", root=tmp_path).settings.echo_cancellation is True  # not a boolean


def test_settings_saved_soon_land_in_order_and_a_plain_save_comes_after(tmp_path: Path) -> None:
    profile = Profile("p", root=tmp_path)
    for theme in ("dark", "light", "dark", "light"):  # each its own thread, in this order
        profile.settings.theme = theme
        profile.save_settings_soon()
    assert profile.settings_written(10)
    assert Profile("p", root=tmp_path).settings.theme == "light"
    profile.settings.theme = "dark"
    profile.save_settings_soon()
    profile.settings.theme = "system"
    profile.save_settings()  # waits for the write started before it
    assert Profile("p", root=tmp_path).settings.theme == "system"
    assert profile.settings_written(0)


def test_saved_session_goes_to_a_private_file_without_a_keyring(tmp_path: Path) -> None:
    store = Profile("p", root=tmp_path).credentials()
    assert store.where == "file"  # no Secret Service on these machines
    assert store.load() is None
    store.save(SavedSession("ws://127.0.0.1:1/ws", "alice", "secret-token"))
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert store.load() == SavedSession("ws://127.0.0.1:1/ws", "alice", "secret-token")
    store.path.write_text("garbage")
    assert store.load() is None
    store.clear()
    assert not store.path.exists()


async def test_embedded_server_starts_advertises_and_is_found(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(embedded, "discovery_path", lambda: tmp_path / "run" / "embedded.json")
    first = Profile("first", root=tmp_path)
    first.settings.embedded_port = 0
    server = EmbeddedServer(first)
    url = await server.start()
    assert url.startswith("ws://127.0.0.1:")
    assert await find_running() == url
    client = await WireClient.open(url)
    await client.register("alice")
    await client.close()
    assert first.embedded_db_path.exists()
    await server.stop()
    assert await find_running() is None


async def test_a_taken_port_falls_back_to_a_free_one(tmp_path: Path, monkeypatch) -> None:
    import socket

    monkeypatch.setattr(embedded, "discovery_path", lambda: tmp_path / "embedded.json")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        profile = Profile("p", root=tmp_path)
        profile.settings.embedded_port = busy.getsockname()[1]
        server = EmbeddedServer(profile)
        url = await server.start()
        assert str(profile.settings.embedded_port) not in url
        await server.stop()
