"""Verification words, the peer channel and quality figures, without a network."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from gui.core.peer_channel import ChatUnavailable, PeerChannel, PeerMediaState
from gui.core.quality import QualityMeter
from gui.core.verification import WORDS, fingerprints_in_sdp, verification_words


def test_words_are_the_same_both_ways_and_differ_for_another_key() -> None:
    a, b, m = "sha-256 AA:BB", "sha-256 CC:DD", "sha-256 EE:FF"
    assert verification_words(a, b) == verification_words(b, a)
    assert len(verification_words(a, b)) == 4
    assert all(w in WORDS for w in verification_words(a, b))
    assert verification_words(a, m) != verification_words(a, b)


def test_fingerprints_are_read_from_sdp() -> None:
    sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=fingerprint:SHA-256 ab:01\r\n"
    assert fingerprints_in_sdp(sdp) == {"sha-256 AB:01"}


class FakeChannel:
    """Stands in for RTCDataChannel: two of them are wired back to back."""

    def __init__(self) -> None:
        self.readyState = "connecting"
        self.handlers: dict = {}
        self.other: FakeChannel | None = None
        self.sent: list[str] = []

    def on(self, event, f=None):
        self.handlers[event] = f

    def open(self) -> None:
        self.readyState = "open"
        self.handlers["open"]()

    def send(self, data: str) -> None:
        self.sent.append(data)
        assert self.other is not None
        self.other.handlers["message"](data)


def pair() -> tuple[PeerChannel, PeerChannel, list, list]:
    got_a: list = []
    got_b: list = []
    a = PeerChannel(on_chat=got_a.append, on_delivered=got_a.append, on_peer_state=got_a.append)
    b = PeerChannel(on_chat=got_b.append, on_delivered=got_b.append, on_peer_state=got_b.append)
    ca, cb = FakeChannel(), FakeChannel()
    ca.other, cb.other = cb, ca
    a.attach(ca)
    b.attach(cb)
    return a, b, got_a, got_b


def test_chat_is_queued_until_open_then_acknowledged() -> None:
    a, b, got_a, got_b = pair()
    sent = a.send_chat("  hello 👋 ")
    assert sent.text == "hello 👋" and sent.id in a.undelivered
    assert got_b == []
    a.channel.open()
    b.channel.open()
    (received,) = got_b
    assert received.text == "hello 👋" and not received.outgoing
    assert got_a == [sent.id] and a.undelivered == {}


def test_state_and_bad_messages() -> None:
    a, b, _, got_b = pair()
    a.channel.open()
    b.channel.open()
    a.send_state(PeerMediaState(audio=False, video=True, screen=False))
    assert got_b == [PeerMediaState(False, True, False)]
    for junk in (
        "nope",
        "[]",
        json.dumps({"t": "chat", "id": 3}),
        b"\x00",
        json.dumps({"t": "state", "audio": "yes"}),
        json.dumps({"t": "weird"}),
    ):
        b.receive(junk)
    assert got_b == [PeerMediaState(False, True, False)]


def test_chat_without_a_data_channel_is_unavailable() -> None:
    with pytest.raises(ChatUnavailable):
        PeerChannel().send_chat("hi")
    a, _, _, _ = pair()
    with pytest.raises(ValueError, match="at most"):
        a.send_chat("x" * 5000)


def stats(**entries):
    return {k: SimpleNamespace(**v) for k, v in entries.items()}


def test_quality_figures_from_two_reports() -> None:
    meter = QualityMeter()
    first = stats(
        a=dict(type="inbound-rtp", kind="audio", packetsReceived=100, packetsLost=0, jitter=480),
        t=dict(type="transport", bytesSent=5000, bytesReceived=1000),
        c=dict(type="remote-inbound-rtp", kind="video", roundTripTime=0.02),
    )
    meter.sample(first, now=10.0, videos=[("camera", 0, 640, 480)])
    second = stats(
        a=dict(type="inbound-rtp", kind="audio", packetsReceived=190, packetsLost=10, jitter=960),
        t=dict(type="transport", bytesSent=255000, bytesReceived=126000),
        c=dict(type="remote-inbound-rtp", kind="video", roundTripTime=0.03),
    )
    sample = meter.sample(second, now=11.0, videos=[("camera", 30, 640, 480)])
    assert sample.bitrate_in_kbps == 1000.0
    assert sample.bitrate_out_kbps == 2000.0
    assert sample.packet_loss_pct == 10.0
    assert sample.jitter_ms == 20.0
    assert sample.rtt_ms == 30.0
    assert sample.videos[0].fps == 30.0 and sample.videos[0].width == 640
    assert sample.grade == "poor"
    assert sample.to_json()["videos"][0]["name"] == "camera"
