"""The video receiver's repair of lost packets: ask again, and give up on a frame in time.

What aiortc 1.16's video receiver does with a lost packet (read in ``rtcrtpreceiver.py``
and ``jitterbuffer.py``, and measured in the lab, ``bench/network_impaired.py``):

- Its ``NackGenerator`` sends a NACK only when a new gap appears; the NACK lists every
  packet still missing, and a packet is forgotten once it is 128 packets behind the newest.
  A lost retransmission is asked for again only if another packet happens to be lost
  meanwhile, and not at all once the sender's repair governor refused it as too recent.
- Its jitter buffer (512 packets) releases frames only in order. A packet that never
  comes holds back every frame behind it until 512 packets have piled up (8 s of a 640x480
  camera), then the buffer is emptied and a key frame asked for (PLI). Under 5% random loss
  in the lab, one missing packet held the video back 0.6 to 2.7 s at a time (1 to 7 s of
  freeze a minute); browsers ask again once per round trip and ask for a key frame within a
  fraction of a second.

So each video receiver of a link gets a :class:`ReceiveRepair` (:func:`repair_receivers`,
which hooks aiortc without forking it, as ``adaptation.py`` does for senders):

- :class:`LossRepair` decides, purely (no clock, no aiortc): a packet still missing is
  asked for again every round trip (at least :data:`LossRepair.MIN_INTERVAL`, so that the
  sender's governor, which resends a packet at most once per round trip, does not refuse
  it), at most :data:`LossRepair.MAX_NACKS` times; the packet that holds the jitter buffer
  back is given up after :meth:`LossRepair.deadline` (a few round trips, 0.3 to 1.5 s) once
  it was asked for :data:`LossRepair.MIN_ASKS` times; key frames are asked for at most every
  :data:`LossRepair.KEYFRAME_GAP`.
- Giving up (VP8, H.264) skips the jitter buffer past the lost packet to the first key frame
  it holds (or its newest frame), asks for a key frame, and lets no frame reach the decoder
  until a key frame comes (frames that refer to what was lost would decode to garbage), as
  browsers do; after :data:`LossRepair.KEYFRAME_WAIT` without one, decoding resumes anyway.
  Other codecs only lose the frame the packet was part of.

``PARLEY_RECEIVE_REPAIR=observe`` in the environment leaves aiortc's behaviour alone and only
counts and logs the stalls (the baseline of the figures in docs/performance.md); ``off``
does not hook anything.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiortc.utils import uint16_add, uint16_gt

from gui.media.decode_guard import vp8_key_frame_size

log = logging.getLogger("parley.repair")


@dataclass(slots=True)
class _Hole:
    """One missing packet: when it was first missed, last asked for, and how often."""

    missed_at: float
    asked_at: float
    asks: int


class LossRepair:
    """What to ask for again, and when to give up on a missing packet (pure)."""

    #: Times a packet is asked for, aiortc's first NACK included (WebRTC's NACK module: 10).
    MAX_NACKS = 10
    #: Times a packet is asked for before it may be given up.
    MIN_ASKS = 3
    #: The shortest wait between two NACKs of one packet (seconds).
    MIN_INTERVAL = 0.05
    #: The wait between NACKs in round trips (a little more than one: the sender's governor
    #: refuses a packet it resent less than a round trip ago).
    NACK_RTTS = 1.25
    #: The deadline of a packet that holds frames back: this many round trips, plus
    #: DEADLINE_SLACK, between DEADLINE_MIN and DEADLINE_MAX (seconds).
    DEADLINE_RTTS = 3.0
    DEADLINE_SLACK = 0.15
    DEADLINE_MIN = 0.3
    DEADLINE_MAX = 1.5
    #: Key frames are asked for at most this often (seconds): a little more than one takes to
    #: come on a 2-core machine under load (the sender's governor sends one every 0.3 s at most).
    KEYFRAME_GAP = 0.5
    #: Seconds without a key frame after which frames are decoded anyway.
    KEYFRAME_WAIT = 3.0

    def __init__(self) -> None:
        self.rtt_s = 0.1
        self.holes: dict[int, _Hole] = {}
        self._keyframe_at = float("-inf")

    @property
    def interval(self) -> float:
        """Seconds between two NACKs of one packet."""
        return max(self.MIN_INTERVAL, self.NACK_RTTS * self.rtt_s)

    @property
    def deadline(self) -> float:
        """Seconds a missing packet may hold frames back."""
        wait = self.DEADLINE_RTTS * self.rtt_s + self.DEADLINE_SLACK
        return min(self.DEADLINE_MAX, max(self.DEADLINE_MIN, wait))

    def asked(self, missing: Iterable[int], now: float) -> None:
        """A NACK listing ``missing`` went out at ``now`` (aiortc's own: it lists them all)."""
        for seq in missing:
            hole = self.holes.get(seq)
            if hole is None:
                self.holes[seq] = _Hole(now, now, 1)
            else:
                hole.asked_at, hole.asks = now, hole.asks + 1

    def arrived(self, seq: int) -> None:
        """Packet ``seq`` came (late or not)."""
        self.holes.pop(seq, None)

    def forget_before(self, seq: int) -> list[int]:
        """Packets before ``seq`` are no longer wanted; returns them."""
        gone = [s for s in self.holes if uint16_gt(seq, s)]
        for s in gone:
            del self.holes[s]
        return gone

    def due(self, now: float) -> list[int]:
        """The packets to ask for again now, in order (counted as asked)."""
        out = []
        for seq, hole in self.holes.items():
            if hole.asks < self.MAX_NACKS and now - hole.asked_at >= self.interval:
                hole.asked_at, hole.asks = now, hole.asks + 1
                out.append(seq)
        return sorted(out)

    def expired(self, seq: int, now: float) -> bool:
        """Whether the missing packet ``seq``, which holds frames back, is past its deadline
        and was asked for MIN_ASKS times, the last a round trip ago (a packet not known as
        missing, e.g. one aiortc forgot, counts from ``now``). Asking counts as well as time:
        a process that got no CPU for a second (a loaded machine) has asked for nothing
        meanwhile, and what it asked for before may be waiting in its socket."""
        hole = self.holes.get(seq)
        if hole is None:
            self.holes[seq] = hole = _Hole(now, now, 0)
        return (
            now - hole.missed_at >= self.deadline
            and hole.asks >= self.MIN_ASKS
            and now - hole.asked_at >= self.interval
        )

    def keyframe(self, now: float) -> bool:
        """Whether a key frame may be asked for now (then it counts as asked)."""
        if now - self._keyframe_at < self.KEYFRAME_GAP:
            return False
        self._keyframe_at = now
        return True


#: Codecs whose key frames :func:`is_keyframe` knows.
KEYFRAME_CODECS = ("VP8", "H264")


def is_keyframe(codec: str, data: bytes) -> bool | None:
    """Whether an encoded frame is a key frame (None: this codec is not known here)."""
    if codec == "VP8":
        return vp8_key_frame_size(data) is not None
    if codec == "H264":  # Annex B: an IDR slice (5) or a sequence parameter set (7)
        at = data.find(b"\x00\x00\x01")
        while at != -1 and at + 3 < len(data):
            if data[at + 3] & 0x1F in (5, 7):
                return True
            at = data.find(b"\x00\x00\x01", at + 3)
        return False
    return None


_PRIVATE = "_RTCRtpReceiver__"


class ReceiveRepair:
    """One aiortc video receiver, its jitter buffer's ``add`` wrapped (see the module's note)."""

    def __init__(
        self, receiver: Any, act: bool = True, clock: Callable[[], float] | None = None
    ) -> None:
        self.receiver = receiver
        self.act = act
        self.clock = clock or asyncio.get_running_loop().time
        self.plan = LossRepair()
        self._buffer = getattr(receiver, _PRIVATE + "jitter_buffer")
        self._nacks = getattr(receiver, _PRIVATE + "nack_generator")
        self._codecs: Mapping[int, Any] = getattr(receiver, _PRIVATE + "codecs")
        self._add = self._buffer.add
        self._buffer.add = self.add
        self._newest: int | None = None
        self._drop_timestamp: int | None = None
        self._awaiting: tuple[str, float] | None = None  # codec, since when
        self._tasks: set[asyncio.Task[None]] = set()
        self._stall: tuple[int, float] | None = None  # the packet frames wait for, since when
        #: Counters, for the logs and the figures.
        self.renacks = 0
        self.given_up = 0
        self.keyframes_asked = 0
        self.frames_dropped = 0
        self.stalls = 0  # frames held back 500 ms or more by a missing packet
        self.stalled_s = 0.0
        self.idle_s = 0.0  # waits of 500 ms or more between two packets
        self._packet_at: float | None = None
        self.broken = False

    def add(self, packet: Any) -> tuple[bool, Any]:
        """What aiortc calls with each video packet (retransmissions unwrapped):
        ``(ask for a key frame, a complete encoded frame or None)``. A fault of the repair's
        own turns it off for this receiver (logged once); aiortc's buffer goes on alone."""
        if self.broken:
            return self._add(packet)
        now = self.clock()
        try:
            self._before(packet, now)
        except Exception:
            self._fail()
            return self._add(packet)
        pli, frame = self._add(packet)
        try:
            return self._after(packet, pli, frame, now)
        except Exception:
            self._fail()
            return pli, frame

    def _fail(self) -> None:
        self.broken = True
        log.exception("video receiver repair failed; aiortc's jitter buffer goes on alone")

    def _before(self, packet: Any, now: float) -> None:
        """Note the packet, and the NACK aiortc sent for a new gap."""
        seq = packet.sequence_number
        if self._packet_at is not None and now - self._packet_at >= 0.5:
            self.idle_s += now - self._packet_at  # the sender, the path, or this process
        self._packet_at = now
        if self._newest is None or uint16_gt(seq, self._newest):
            self._newest = seq
        plan = self.plan
        plan.arrived(seq)
        missing = self._nacks.missing if self._nacks is not None else ()
        if any(s not in plan.holes for s in missing):
            plan.asked(missing, now)  # aiortc saw a new gap and listed them all in a NACK

    def _after(self, packet: Any, pli: bool, frame: Any, now: float) -> tuple[bool, Any]:
        """Hold back what must not be decoded, give up in time, ask again."""
        plan = self.plan
        if len(plan.holes) > 64:
            self._forget_passed()  # left behind by aiortc's own resets
        codec = self._codecs.get(packet.payload_type)
        name = codec.name if codec is not None else ""
        if frame is not None and self.act:
            frame = self._admit(frame, name, now)
        blocking = self._blocking()
        self._watch_stall(blocking, now)
        if blocking is not None and self.act and plan.expired(blocking, now):
            self._give_up(blocking, name, now)
            pli = True
        if self._awaiting is not None and not pli:
            pli = plan.keyframe(now)  # the key frame asked for may have been lost
            self.keyframes_asked += pli
        if self.act:
            due = [s for s in plan.due(now) if s != packet.sequence_number]
            if due:
                self.renacks += len(due)
                self._send_nack(packet.ssrc, due)
        return pli, frame

    def _admit(self, frame: Any, codec: str, now: float) -> Any:
        """The frame, or None when it must not reach the decoder."""
        if self._awaiting is None and frame.timestamp != self._drop_timestamp:
            return frame  # nothing held back: the frame's bytes are not read
        key = is_keyframe(codec, frame.data)
        if frame.timestamp == self._drop_timestamp:
            self._drop_timestamp = None
            if not key:  # a whole key frame after the lost packet is kept
                self.frames_dropped += 1
                return None
        if self._awaiting is None:
            return frame
        if key is not False or now - self._awaiting[1] >= self.plan.KEYFRAME_WAIT:
            self._awaiting = None
            return frame
        self.frames_dropped += 1
        return None

    def _blocking(self) -> int | None:
        """The missing packet that holds frames back in the jitter buffer (None: none is)."""
        buffer = self._buffer
        origin, newest = buffer._origin, self._newest
        if origin is None or newest is None:
            return None
        packets, capacity = buffer._packets, buffer.capacity
        for count in range(capacity):
            seq = uint16_add(origin, count)
            if packets[seq % capacity] is None:
                return seq if uint16_gt(newest, seq) else None
        return None

    def _watch_stall(self, blocking: int | None, now: float) -> None:
        """Time how long frames are held back by each missing packet (for the logs)."""
        stall = self._stall
        if stall is not None and stall[0] == blocking:
            return
        if stall is not None:
            held = now - stall[1]
            if held >= 0.5:
                self.stalls += 1
                self.stalled_s += held
                log.info("video held back %.0f ms by packet %d", held * 1000, stall[0])
        self._stall = None if blocking is None else (blocking, now)

    def _give_up(self, seq: int, codec: str, now: float) -> None:
        """Skip the jitter buffer past the missing packet ``seq`` and wait for a key frame."""
        buffer = self._buffer
        buffer.remove(uint16_add(seq, -buffer._origin) + 1)
        if codec in KEYFRAME_CODECS:
            # What piled up behind the packet refers to it: on to a key frame at once (the
            # buffer would release the frames one per packet that arrives).
            buffer.remove(self._to_keyframe(codec))
            self._awaiting = (codec, now)
        else:  # the frame that follows may have lost its beginning with the packet
            after = buffer._packets[buffer._origin % buffer.capacity]
            self._drop_timestamp = after.timestamp if after is not None else None
        hole = self.plan.holes.get(seq)
        self._forget_passed()
        self.given_up += 1
        self.plan.keyframe(now)
        self.keyframes_asked += 1
        log.info(
            "video: packet %d given up after %.0f ms and %d NACKs (round trip %.0f ms), "
            "key frame asked",
            seq,
            (now - hole.missed_at) * 1000 if hole else 0,
            hole.asks if hole else 0,
            self.plan.rtt_s * 1000,
        )

    def _forget_passed(self) -> None:
        """Stop asking for packets the jitter buffer has gone past (aiortc would list them in
        every NACK until they are 128 behind)."""
        origin = self._buffer._origin
        if origin is None:
            return
        self.plan.forget_before(origin)
        if self._nacks is not None:
            self._nacks.missing = {s for s in self._nacks.missing if not uint16_gt(origin, s)}

    def _to_keyframe(self, codec: str) -> int:
        """Packets from the jitter buffer's start to the first one of a key frame in it, or
        else to the first one of the newest frame."""
        buffer, newest = self._buffer, self._newest
        if newest is None:
            return 0
        origin, packets, capacity = buffer._origin, buffer._packets, buffer.capacity
        start, timestamp = 0, None
        for count in range(min(capacity, uint16_add(newest, -origin) + 1)):
            packet = packets[(origin + count) % capacity]
            if packet is None:
                continue
            if is_keyframe(codec, getattr(packet, "_data", b"")):
                return count
            if packet.timestamp != timestamp:
                start, timestamp = count, packet.timestamp
        return start

    def _send_nack(self, ssrc: int, seqs: list[int]) -> None:
        task = asyncio.ensure_future(self.receiver._send_rtcp_nack(ssrc, seqs))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _mode() -> str:
    return os.environ.get("PARLEY_RECEIVE_REPAIR", "on").strip().lower()


_ATTR = "_parley_repair"


def repair_receivers(transceivers: Iterable[Any], rtt_s: float | None) -> list[ReceiveRepair]:
    """Each video receiver's repair (made at the first call), told the round trip now."""
    mode = _mode()
    out = []
    for transceiver in transceivers:
        receiver = transceiver.receiver
        if transceiver.kind != "video" or mode in ("off", "0"):
            continue
        repair = getattr(receiver, _ATTR, None)
        if repair is None:
            if getattr(receiver, _PRIVATE + "jitter_buffer", None) is None:
                continue  # not aiortc's receiver as read here: leave it alone
            repair = ReceiveRepair(receiver, act=mode != "observe")
            setattr(receiver, _ATTR, repair)
        if rtt_s is not None and rtt_s > 0:
            repair.plan.rtt_s = rtt_s
        out.append(repair)
    return out


def round_trip(report: Mapping[str, Any]) -> float | None:
    """The longest round trip (seconds) the peer's receiver reports give, or None."""
    times = [
        s.roundTripTime
        for s in report.values()
        if getattr(s, "type", None) == "remote-inbound-rtp" and s.roundTripTime
    ]
    return max(times) if times else None


def repair_counts(transceivers: Iterable[Any]) -> dict[str, float] | None:
    """The video receivers' repairs' counters, summed (None: no receiver was repaired)."""
    repairs = [getattr(t.receiver, _ATTR, None) for t in transceivers]
    found = [r for r in repairs if isinstance(r, ReceiveRepair)]
    if not found:
        return None
    names = ("renacks", "given_up", "keyframes_asked", "frames_dropped", "stalls")
    out: dict[str, float] = {name: sum(getattr(r, name) for r in found) for name in names}
    out["stalled_ms"] = round(sum(r.stalled_s for r in found) * 1000)
    out["idle_ms"] = round(sum(r.idle_s for r in found) * 1000)
    out["faults"] = sum(r.broken for r in found)  # repairs turned off by a fault of their own
    return out
