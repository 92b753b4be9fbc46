"""Call quality figures, one small record a second, from ``getStats()`` and the receivers.

aiortc's report has ``inbound-rtp``, ``outbound-rtp``, ``remote-inbound-rtp``
and ``transport`` entries only, and counts bytes only per transport: bitrates
(everything on the wire) and loss are differences between two reports;
jitter comes in RTP clock units (48 kHz audio, 90 kHz video) and is turned
into milliseconds; frame rate and resolution of received video come
from the receivers, which aiortc's stats do not describe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

CLOCK_RATES = {"audio": 48000, "video": 90000}


@dataclass(frozen=True, slots=True)
class ReceivedVideo:
    """What one received video looks like now."""

    name: str
    fps: float
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class MediaPath:
    """The candidate pair a call's media takes (``gui.core.ice.selected_path`` reads it)."""

    #: ``True`` when a TURN server relays the media (either side's).
    relayed: bool
    #: How this end's packets leave: ``udp``, or ``tcp``/``tls`` to its TURN server.
    transport: str
    #: The candidate types of the pair: ``host``, ``srflx``, ``prflx``, ``relay``.
    local: str
    remote: str

    @property
    def label(self) -> str:
        """``Direct (UDP)``, ``Relayed (TCP)``..."""
        return f"{'Relayed' if self.relayed else 'Direct'} ({self.transport.upper()})"

    def to_json(self) -> dict[str, Any]:
        """Plain values, the label included."""
        return {**asdict(self), "label": self.label}


@dataclass(frozen=True, slots=True)
class QualitySample:
    """One second of a call, as numbers."""

    bitrate_in_kbps: float
    bitrate_out_kbps: float
    packet_loss_pct: float
    jitter_ms: float | None
    rtt_ms: float | None
    videos: list[ReceivedVideo] = field(default_factory=list)
    #: The camera as this end sends it now (after adapting to the network), and what its
    #: encoder aims at (kb/s); None when not sending.
    send_width: int | None = None
    send_height: int | None = None
    send_target_kbps: float | None = None
    #: The path the media takes; None until connected.
    path: MediaPath | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain values for ``{"event": "stats", ...}`` lines and the window."""
        data = asdict(self)
        data["path"] = self.path.to_json() if self.path is not None else None
        return data

    @property
    def grade(self) -> str:
        """``good``, ``fair`` or ``poor``: what a signal-bars indicator shows."""
        loss, rtt, jitter = self.packet_loss_pct, self.rtt_ms or 0.0, self.jitter_ms or 0.0
        if loss >= 10 or rtt > 600 or jitter > 100:
            return "poor"
        if loss > 2 or rtt > 250 or jitter > 40:
            return "fair"
        return "good"


@dataclass(slots=True)
class _Totals:
    at: float
    bytes_in: int
    bytes_out: int
    packets_in: int
    lost: int


class QualityMeter:
    """Turns successive stats reports into :class:`QualitySample` values."""

    def __init__(self) -> None:
        self._previous: _Totals | None = None
        self._frames: dict[str, tuple[float, int]] = {}

    def sample(
        self,
        report: Mapping[str, Any],
        now: float,
        videos: Iterable[tuple[str, int, int, int]] = (),
    ) -> QualitySample:
        """Fold one report in; ``videos`` holds (name, frames so far, width, height) each."""
        totals = _Totals(now, 0, 0, 0, 0)
        jitters: list[float] = []
        rtts: list[float] = []
        for stats in report.values():
            kind = getattr(stats, "type", None)
            if kind == "transport":
                totals.bytes_in += getattr(stats, "bytesReceived", 0) or 0
                totals.bytes_out += getattr(stats, "bytesSent", 0) or 0
            elif kind == "inbound-rtp":
                totals.packets_in += stats.packetsReceived or 0
                totals.lost += max(0, stats.packetsLost or 0)
                rate = CLOCK_RATES.get(stats.kind)
                if stats.jitter is not None and rate:
                    jitters.append(stats.jitter / rate * 1000)
            elif kind == "remote-inbound-rtp" and stats.roundTripTime is not None:
                rtts.append(stats.roundTripTime * 1000)
        previous, self._previous = self._previous, totals
        if previous is None or now <= previous.at:
            rate_in = rate_out = loss = 0.0
        else:
            span = now - previous.at
            rate_in = (totals.bytes_in - previous.bytes_in) * 8 / span / 1000
            rate_out = (totals.bytes_out - previous.bytes_out) * 8 / span / 1000
            got = totals.packets_in - previous.packets_in
            lost = totals.lost - previous.lost
            loss = 100.0 * lost / (got + lost) if got + lost > 0 else 0.0
        received = []
        for name, frames, width, height in videos:
            before = self._frames.get(name)
            self._frames[name] = (now, frames)
            fps = 0.0
            if before is not None and now > before[0]:
                fps = (frames - before[1]) / (now - before[0])
            received.append(ReceivedVideo(name, round(fps, 1), width, height))
        return QualitySample(
            bitrate_in_kbps=round(max(0.0, rate_in), 1),
            bitrate_out_kbps=round(max(0.0, rate_out), 1),
            packet_loss_pct=round(max(0.0, loss), 2),
            jitter_ms=round(max(jitters), 1) if jitters else None,
            rtt_ms=round(sum(rtts) / len(rtts), 1) if rtts else None,
            videos=received,
        )
