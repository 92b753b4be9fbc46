"""Benchmarks of real calls: Parley's call engine beside bare aiortc, measured in the same run.

Most figures come in three rows: the **aiortc** baseline, **Parley**, and the
ratio Parley/aiortc. Both kinds of call run in this process, on loopback, with
the same synthetic sources (:class:`~gui.media.pattern.PatternVideoTrack` at
30 fps and :class:`~gui.media.tone.ToneAudioTrack`, both ways) and the same
consumers (:class:`~gui.media.analysis.VideoReceiver` and
:class:`~gui.media.analysis.AudioReceiver`):

* **aiortc**: two ``RTCPeerConnection`` objects with an explicit
  ``RTCConfiguration(iceServers=[])``, one audio and one video track added on
  each, the offer and answer handed over directly; no signaling at all.
* **Parley**: two :class:`~gui.core.signaling_client.SignalingClient` +
  :class:`~gui.core.call_session.CallSession` ends talking through a real
  signaling server in its own process (:mod:`bench.serverproc`); the caller
  invites, the callee answers as soon as ``call.incoming`` arrives.

The figures (goals from the issue):

1. **Set-up**: from the invite (Parley: just before ``CallSession.outgoing``;
   aiortc: just before the connections are created) to the caller's first
   decoded remote video frame, at 640x480; median of the rounds' calls. Goal:
   Parley under 1.3x the baseline.
2. **Video pipeline latency**, from the frame made (the sender track's
   ``sent_at``) to the frame decoded on the other end (the receiver's
   ``latencies``, ``sent_at`` being handed to the consumer ``CallSession``
   made), p50 and p95 of each round's call (both directions), at 640x480 and
   1280x720; the median over the calls, so that one call that another
   process's burst of work landed on does not decide the figure. Goal: within
   10% of the baseline.
3. **Frames per second** received over 30 s at 1280x720 (10 s with
   ``--quick``), each way, in one long call of each kind. Goal: 29 or more
   both ways.
4. **CPU per call**: this process's CPU time over a window, as a percentage
   of one core, median of the rounds' calls (and over the long 720p window).
   The process holds both ends, so one end is half of it. The server process
   is not counted (it is idle once the call is up).
5. **Audio latency**: the tone is muted, then unmuted; from the sender's
   ``sound_started_at`` (the first frame with sound made) to the receiver's
   ``onset_at`` (that sound decoded); median of several, both directions.

The machine is noisy (2 cores, shared), so the kinds of call take turns: each
round makes one 640x480 call of each kind and then one 1280x720 call of each
kind in the other order, and the next round starts with the other kind. Each
round's call measures a short window after a short warm-up (bandwidth
estimation ramps up over the first second). One unrecorded call of each kind
first pays the one-time costs (codec libraries, first imports). Only the long
frame-rate windows run one kind after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack

from bench import Figure, Goal, PartialFailure, percentile
from bench.server import seed
from bench.serverproc import ServerProcess
from gui.core.call_session import CallSession, LocalMedia
from gui.core.signaling_client import SignalingClient
from gui.media.analysis import AudioReceiver, VideoReceiver
from gui.media.pattern import PatternVideoTrack
from gui.media.tone import ToneAudioTrack

BENCH = "calls"
FPS = 30
SETUP_RATIO_GOAL = 1.3
LATENCY_RATIO_GOAL = 1.1
FPS_GOAL = 29.0

BASELINE, PARLEY = "aiortc", "Parley"
SIDES = (BASELINE, PARLEY)
CALLER, CALLEE = "caller", "callee"
ENDS = (CALLER, CALLEE)
#: The usernames of the two Parley ends.
USERS = {CALLER: "alice", CALLEE: "bob"}
#: Each end's tone, so that a receiver could tell them apart.
TONES_HZ = {CALLER: 440.0, CALLEE: 880.0}

Size = tuple[int, int]
VGA: Size = (640, 480)
HD: Size = (1280, 720)


def _progress(text: str) -> None:
    """A progress line on stderr, with the load average (others' work skews the figures)."""
    load = os.getloadavg()[0]
    print(f"[calls] {text} (load {load:.2f})", file=sys.stderr, flush=True)


def _other(end: str) -> str:
    return CALLEE if end == CALLER else CALLER


def _label(size: Size) -> str:
    return f"{size[0]}x{size[1]}"


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 5 ms until it holds; ``TimeoutError`` naming ``what`` after."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.005)


def make_media(end: str, size: Size) -> LocalMedia:
    """The tracks one end sends: the test pattern at ``size`` and 30 fps, and its tone."""
    return LocalMedia(audio=ToneAudioTrack(TONES_HZ[end]), camera=PatternVideoTrack(*size, fps=FPS))


def _camera(media: LocalMedia) -> PatternVideoTrack:
    assert isinstance(media.camera, PatternVideoTrack)
    return media.camera


def _tone(media: LocalMedia) -> ToneAudioTrack:
    assert isinstance(media.audio, ToneAudioTrack)
    return media.audio


# The two kinds of call ---------------------------------------------------------------


class BenchCall:
    """A call between two ends in this process, whichever way it is set up.

    :attr:`media` holds what each end sends; :meth:`video_at` and :meth:`audio_at` give
    what each end receives. :meth:`start` stamps :attr:`started_at` and begins the call.
    """

    side = ""

    def __init__(self, size: Size) -> None:
        self.size = size
        self.media = {end: make_media(end, size) for end in ENDS}
        self.started_at = 0.0

    async def start(self) -> None:
        """Begin the call (stamping :attr:`started_at` first); returns before media flows."""
        raise NotImplementedError

    def video_at(self, end: str) -> VideoReceiver | None:
        """The consumer of the video ``end`` receives, once its remote track exists."""
        raise NotImplementedError

    def audio_at(self, end: str) -> AudioReceiver | None:
        """The consumer of the audio ``end`` receives, once its remote track exists."""
        raise NotImplementedError

    async def close(self) -> None:
        """End the call and stop everything it started (tracks, consumers, connections)."""
        raise NotImplementedError

    async def setup_time(self, timeout: float = 15.0) -> float:
        """Start the call; seconds from :attr:`started_at` to the caller's first remote frame."""
        await self.start()

        def first_frame() -> bool:
            receiver = self.video_at(CALLER)
            return receiver is not None and receiver.first_frame_at is not None

        await wait_until(first_frame, timeout, f"{self.side}: first remote frame")
        receiver = self.video_at(CALLER)
        assert receiver is not None and receiver.first_frame_at is not None
        return receiver.first_frame_at - self.started_at

    async def both_ways(self, timeout: float = 10.0) -> None:
        """Wait until both ends decode video and have an audio consumer."""

        def flowing() -> bool:
            return all(
                (video := self.video_at(end)) is not None
                and video.frames > 0
                and self.audio_at(end) is not None
                for end in ENDS
            )

        await wait_until(flowing, timeout, f"{self.side}: media both ways")

    def stop_media(self) -> None:
        """Stop every track this call made (stopping a stopped track does nothing)."""
        for media in self.media.values():
            media.stop()


class BaselineCall(BenchCall):
    """Bare aiortc: two peer connections, offer and answer handed over directly."""

    side = BASELINE

    def __init__(self, size: Size) -> None:
        super().__init__(size)
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.receivers: dict[str, dict[str, VideoReceiver | AudioReceiver]] = {
            end: {} for end in ENDS
        }

    async def start(self) -> None:
        """Create both connections, add the tracks, exchange offer and answer."""
        self.started_at = time.monotonic()
        for end in ENDS:
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            self.pcs[end] = pc
            media = self.media[end]
            assert media.audio is not None and media.camera is not None
            pc.addTrack(media.audio)
            pc.addTrack(media.camera)
            pc.on("track", self._track_handler(end))
        caller, callee = self.pcs[CALLER], self.pcs[CALLEE]
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)

    def _track_handler(self, end: str) -> Callable[[MediaStreamTrack], None]:
        def on_track(track: MediaStreamTrack) -> None:
            receiver: VideoReceiver | AudioReceiver
            receiver = AudioReceiver(track) if track.kind == "audio" else VideoReceiver(track)
            self.receivers[end][track.kind] = receiver
            receiver.start()

        return on_track

    def video_at(self, end: str) -> VideoReceiver | None:
        """The video consumer of ``end``'s connection."""
        receiver = self.receivers[end].get("video")
        return receiver if isinstance(receiver, VideoReceiver) else None

    def audio_at(self, end: str) -> AudioReceiver | None:
        """The audio consumer of ``end``'s connection."""
        receiver = self.receivers[end].get("audio")
        return receiver if isinstance(receiver, AudioReceiver) else None

    async def close(self) -> None:
        """Stop the consumers, close both connections, stop the tracks."""
        try:
            for receivers in self.receivers.values():
                for receiver in receivers.values():
                    await receiver.stop()
            for pc in self.pcs.values():
                await asyncio.wait_for(pc.close(), 10)
        finally:
            self.stop_media()


class AutoAnswer:
    """The callee's side of the Parley calls: answers every ``call.incoming`` at once.

    Before each call, :attr:`media` is set to what the callee will send; the session it
    made is :attr:`session`. A call that arrives with no media ready is declined.
    """

    def __init__(self, client: SignalingClient) -> None:
        self.client = client
        self.media: LocalMedia | None = None
        self.session: CallSession | None = None
        self._unsubscribe = client.on_event(self._on_event)

    def _on_event(self, message: dict[str, Any]) -> None:
        if message.get("type") != "call.incoming":
            return
        media, self.media = self.media, None
        session = CallSession.incoming(self.client, message, media or LocalMedia())
        if media is None:
            session.decline()
            return
        session.accept()
        self.session = session

    def close(self) -> None:
        """Stop answering."""
        self._unsubscribe()


class ParleyCall(BenchCall):
    """Two Parley ends: ``CallSession.outgoing`` on one client, auto-answer on the other."""

    side = PARLEY

    def __init__(self, size: Size, caller: SignalingClient, answerer: AutoAnswer) -> None:
        super().__init__(size)
        self.client = caller
        self.answerer = answerer
        self.sessions: dict[str, CallSession] = {}

    async def start(self) -> None:
        """Invite the callee; it answers on its own."""
        self.answerer.session = None
        self.answerer.media = self.media[CALLEE]
        self.started_at = time.monotonic()
        self.sessions[CALLER] = CallSession.outgoing(self.client, USERS[CALLEE], self.media[CALLER])

    def _session(self, end: str) -> CallSession | None:
        if end == CALLEE and CALLEE not in self.sessions and self.answerer.session is not None:
            self.sessions[CALLEE] = self.answerer.session
        return self.sessions.get(end)

    def video_at(self, end: str) -> VideoReceiver | None:
        """The session's camera-slot consumer (made by ``CallSession`` itself)."""
        session = self._session(end)
        receiver = None if session is None else session.receivers.get("camera")
        return receiver if isinstance(receiver, VideoReceiver) else None

    def audio_at(self, end: str) -> AudioReceiver | None:
        """The session's audio-slot consumer."""
        session = self._session(end)
        receiver = None if session is None else session.receivers.get("audio")
        return receiver if isinstance(receiver, AudioReceiver) else None

    async def close(self) -> None:
        """Hang up and wait for both sessions to end; force them closed if they do not."""
        self._session(CALLEE)
        self.answerer.media = None
        try:
            caller = self.sessions.get(CALLER)
            if caller is not None:
                caller.hang_up()
            for session in self.sessions.values():
                try:
                    await asyncio.wait_for(session.wait_ended(), 10)
                except TimeoutError:
                    _progress(f"Parley: a session did not end within 10 s ({session.state})")
                    for receiver in session.receivers.values():
                        await receiver.stop()
                    await asyncio.wait_for(session.pc.close(), 10)
        finally:
            self.stop_media()


async def baseline_setup_once(size: Size = (320, 240)) -> float:
    """One bare aiortc call: seconds to the first remote frame; everything stopped after."""
    call = BaselineCall(size)
    try:
        return await call.setup_time()
    finally:
        await call.close()


# Measurements on a running call --------------------------------------------------------


@dataclass(slots=True)
class Window:
    """What one call did over a measurement window."""

    seconds: float
    #: Frame made to frame decoded, both directions pooled, in ms.
    latencies_ms: list[float]
    #: Frames per second received, by receiving end.
    fps: dict[str, float]
    #: This process's CPU time over the window, in % of one core (both ends of the call).
    cpu_percent: float


async def measure_window(call: BenchCall, seconds: float) -> Window:
    """Frames, latencies and CPU over ``seconds`` of a call whose video flows both ways."""
    receivers: dict[str, VideoReceiver] = {}
    for end in ENDS:
        receiver = call.video_at(end)
        assert receiver is not None
        receiver.sent_at = _camera(call.media[_other(end)]).sent_at
        receiver.latencies.clear()
        receivers[end] = receiver
    frames = {end: r.frames for end, r in receivers.items()}
    cpu_start, wall_start = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu_end, wall_end = time.process_time(), time.monotonic()
    elapsed = wall_end - wall_start
    latencies = [1000 * s for r in receivers.values() for s in r.latencies]
    return Window(
        seconds=elapsed,
        latencies_ms=latencies,
        fps={end: (r.frames - frames[end]) / elapsed for end, r in receivers.items()},
        cpu_percent=100 * (cpu_end - cpu_start) / elapsed,
    )


async def audio_latency(
    tone: ToneAudioTrack, receiver: AudioReceiver, silence: float = 0.4
) -> float | None:
    """Mute ``tone``, let silence reach ``receiver``, unmute: seconds from sound made to heard.

    ``None`` when the receiver still heard sound after the silence, or heard something
    before the tone came back (neither should happen on loopback).
    """
    tone.muted = True
    await asyncio.sleep(silence)
    receiver.reset_onset()
    await asyncio.sleep(0.1)
    if receiver.onset_at is not None:
        return None
    before = tone.sound_started_at
    tone.muted = False
    await wait_until(
        lambda: tone.sound_started_at != before and receiver.onset_at is not None,
        3.0,
        "tone onset",
    )
    started, heard = tone.sound_started_at, receiver.onset_at
    assert started is not None and heard is not None
    return heard - started if heard >= started else None


# The run ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    """How much a run measures."""

    #: Rounds of one call of each kind at 640x480, then at 1280x720.
    rounds: int
    #: Seconds after the first frame before a round's window starts (bandwidth estimation).
    warmup_s: float
    vga_window_s: float
    #: Tone onsets measured in each 640x480 call, alternating directions.
    audio_per_call: int
    hd_window_s: float
    #: The 1280x720 calls that must hold the frame rate: warm-up, then window.
    hold_warmup_s: float
    hold_s: float

    @classmethod
    def for_run(cls, quick: bool) -> Plan:
        """The full run (under 3 minutes) or the quick one (under a minute)."""
        if quick:
            return cls(rounds=3, warmup_s=0.5, vga_window_s=1.5, audio_per_call=1,
                       hd_window_s=1.5, hold_warmup_s=1.0, hold_s=10.0)  # fmt: skip
        return cls(rounds=5, warmup_s=1.5, vga_window_s=3.0, audio_per_call=2,
                   hd_window_s=2.5, hold_warmup_s=1.0, hold_s=30.0)  # fmt: skip


@dataclass(slots=True)
class SideResults:
    """Everything measured for one kind of call."""

    setup_s: list[float] = field(default_factory=list)
    #: The rounds' windows, by frame size.
    windows: dict[Size, list[Window]] = field(default_factory=dict)
    #: The long 1280x720 window (frames/s held).
    hold: list[Window] = field(default_factory=list)
    audio_s: list[float] = field(default_factory=list)


CallFactory = Callable[[str, Size], BenchCall]


async def measure_call(
    call: BenchCall,
    results: SideResults,
    *,
    warmup: float,
    window: float,
    audio: int = 0,
    record_setup: bool = False,
    hold: bool = False,
) -> None:
    """One call: set-up time, a window of video figures, then ``audio`` tone onsets.

    The window goes to :attr:`SideResults.hold` when ``hold``, else to the round windows.
    """
    try:
        setup = await call.setup_time()
        await call.both_ways()
        if record_setup:
            results.setup_s.append(setup)
        if window > 0:
            await asyncio.sleep(warmup)
            measured = await measure_window(call, window)
            if hold:
                results.hold.append(measured)
            else:
                results.windows.setdefault(call.size, []).append(measured)
        for k in range(audio):
            sender = ENDS[k % 2]
            receiver = call.audio_at(_other(sender))
            assert receiver is not None
            seconds = await audio_latency(_tone(call.media[sender]), receiver)
            if seconds is not None:
                results.audio_s.append(seconds)
    finally:
        await call.close()


def _order(number: int) -> tuple[str, ...]:
    """Which kind of call goes first at step ``number``: they take turns."""
    return SIDES if number % 2 == 0 else SIDES[::-1]


async def measure_all(
    plan: Plan, new_call: CallFactory
) -> tuple[dict[str, SideResults], list[str]]:
    """Warm-up calls, the interleaved rounds, then the long 720p windows.

    Round ``n`` makes the 640x480 calls in one order and the 1280x720 calls in the other
    (aiortc, Parley, Parley, aiortc), and the next round starts with the other kind, so
    neither kind always runs just after the other.
    """
    results = {side: SideResults() for side in SIDES}
    errors: list[str] = []

    async def attempt(what: str, side: str, size: Size, **kwargs: Any) -> None:
        try:
            await measure_call(new_call(side, size), results[side], **kwargs)
        except Exception as exc:
            traceback.print_exc()
            errors.append(f"{what} ({side}): {exc!r}")

    _progress("warming up: one call of each kind")
    for side in SIDES:
        await attempt("warm-up", side, (320, 240), warmup=0, window=0)
    for number in range(plan.rounds):
        what = f"round {number + 1} of {plan.rounds}"
        _progress(f"{what}: 640x480 {' then '.join(_order(number))}, "
                  f"1280x720 {' then '.join(_order(number + 1))}")  # fmt: skip
        for side in _order(number):
            await attempt(f"{what}, 640x480", side, VGA, warmup=plan.warmup_s,
                          window=plan.vga_window_s, audio=plan.audio_per_call,
                          record_setup=True)  # fmt: skip
        for side in _order(number + 1):
            await attempt(f"{what}, 1280x720", side, HD, warmup=plan.warmup_s,
                          window=plan.hd_window_s)  # fmt: skip
    for side in _order(plan.rounds):
        _progress(f"1280x720 held for {plan.hold_s:.0f} s: {side}")
        await attempt("1280x720 held", side, HD, warmup=plan.hold_warmup_s,
                      window=plan.hold_s, hold=True)  # fmt: skip
    return results, errors


@contextlib.asynccontextmanager
async def parley_ends(workdir: Path) -> AsyncIterator[CallFactory]:
    """A signaling server in its own process and the two logged-in ends, as a call factory."""
    tokens = await seed(
        workdir / "calls.db", list(USERS.values()), [(USERS[CALLER], USERS[CALLEE])]
    )
    async with ServerProcess(workdir / "calls.db", workdir / "server.log") as server:
        clients: list[SignalingClient] = []
        answerer: AutoAnswer | None = None
        try:
            for end in ENDS:
                client = SignalingClient(server.url)
                clients.append(client)
                await client.connect()
                await client.login(token=tokens[USERS[end]])
            caller_client, callee_client = clients
            answerer = AutoAnswer(callee_client)
            answering = answerer

            def new_call(side: str, size: Size) -> BenchCall:
                if side == BASELINE:
                    return BaselineCall(size)
                return ParleyCall(size, caller_client, answering)

            yield new_call
        finally:
            if answerer is not None:
                answerer.close()
            for client in clients:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.close(), 10)


# Figures ---------------------------------------------------------------------------------


def _ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else float("nan")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _triple(
    name: str, values: dict[str, float], unit: str, goal: Goal | None = None
) -> Iterator[Figure]:
    """Baseline, Parley, and Parley/baseline (the goal applies to the ratio)."""
    yield Figure(BENCH, f"{name}: {BASELINE}", values[BASELINE], unit)
    yield Figure(BENCH, f"{name}: {PARLEY}", values[PARLEY], unit)
    yield Figure(BENCH, f"{name}: {PARLEY}/{BASELINE}",
                 _ratio(values[PARLEY], values[BASELINE]), "x", goal)  # fmt: skip


def figures(results: dict[str, SideResults], plan: Plan) -> list[Figure]:
    """The table: each figure for aiortc, for Parley, and their ratio."""
    out: list[Figure] = []
    setup = {side: 1000 * _median(results[side].setup_s) for side in SIDES}
    calls = min(len(results[side].setup_s) for side in SIDES)
    out += _triple(f"set-up to 1st remote frame, 640x480, median of {calls}", setup, "ms",
                   Goal.below(SETUP_RATIO_GOAL))  # fmt: skip

    def per_call(side: str, size: Size, q: float) -> float:
        """The median over the rounds' calls of each call's ``q``-th percentile."""
        windows = results[side].windows.get(size, [])
        return _median([percentile(w.latencies_ms, q) for w in windows if w.latencies_ms])

    for size in (VGA, HD):
        count = min(len(results[side].windows.get(size, [])) for side in SIDES)
        for q in (50, 95):
            values = {side: per_call(side, size, q) for side in SIDES}
            out += _triple(f"video latency made->decoded {_label(size)} p{q}, median of {count}",
                           values, "ms", Goal.at_most(LATENCY_RATIO_GOAL))  # fmt: skip

    hd = {side: results[side].hold for side in SIDES}
    for end in ENDS:
        direction = f"{_other(end)}->{end}"
        for side in SIDES:
            fps = hd[side][0].fps[end] if hd[side] else float("nan")
            goal = Goal.at_least(FPS_GOAL) if side == PARLEY else None
            out.append(Figure(BENCH, f"frames/s 1280x720 over {plan.hold_s:.0f} s, "
                              f"{direction}: {side}", fps, "frames/s", goal))  # fmt: skip
    slowest = {side: min(hd[side][0].fps.values()) if hd[side] else float("nan") for side in SIDES}
    out.append(Figure(BENCH, f"frames/s 1280x720, slower way: {PARLEY}/{BASELINE}",
                      _ratio(slowest[PARLEY], slowest[BASELINE]), "x"))  # fmt: skip

    def cpu_of(windows: dict[str, list[Window]]) -> dict[str, float]:
        return {side: _median([w.cpu_percent for w in windows[side]]) for side in SIDES}

    for size in (VGA, HD):
        cpu = cpu_of({side: results[side].windows.get(size, []) for side in SIDES})
        out += _triple(f"CPU per call (both ends) {_label(size)}", cpu, "% of a core")
        out.append(Figure(BENCH, f"CPU per end {_label(size)}: {PARLEY}", cpu[PARLEY] / 2,
                          "% of a core"))  # fmt: skip
    held = cpu_of(hd)
    out += _triple(f"CPU per call (both ends) 1280x720 over {plan.hold_s:.0f} s", held,
                   "% of a core")  # fmt: skip

    audio = {side: 1000 * _median(results[side].audio_s) for side in SIDES}
    heard = min(len(results[side].audio_s) for side in SIDES)
    out += _triple(f"audio latency tone made->decoded, median of {heard}", audio, "ms")
    return out


async def run_async(quick: bool) -> list[Figure]:
    """Start the server and the two ends, measure both kinds of call, stop everything."""
    plan = Plan.for_run(quick)
    with tempfile.TemporaryDirectory(prefix="parley-bench-calls-") as tmp:
        async with parley_ends(Path(tmp)) as new_call:
            results, errors = await measure_all(plan, new_call)
    out = figures(results, plan)
    if errors:
        raise PartialFailure(out, errors)
    return out


def run(quick: bool) -> list[Figure]:
    """Measure calls: Parley beside bare aiortc (``quick``: fewer calls, shorter windows)."""
    return asyncio.run(run_async(quick))
