"""The latency the microphone's audio processing adds: Chromium's beside Parley's, in one run.

Browsers run the same WebRTC audio processing module (AEC3, noise suppression, AGC) that
Parley does (gui/media/processing.py). What does turning it on cost a browser's microphone?

**Chromium**: Debian's headless Chromium (Playwright, :mod:`tests.chromium`) captures a
PulseAudio microphone (the private server of :mod:`tests.devices.pulse`: a 440 Hz sine played
into a null sink whose monitor is the default source) with ``getUserMedia``, one track per set
of constraints (:data:`CONFIGS`): echo cancellation, noise suppression and gain control all
on; each of the first two alone; gain control alone (the processed capture, its 10 ms buffers
and resampling, with neither of the parts that delay); all off. Each round opens a fresh
Chromium per page of :data:`PAGES`, whose tracks go in one call to an aiortc peer in this
process. The sine is muted and unmuted (``pactl``): the onset is *made* when a recorder of
the same null sink's monitor receives it, *heard* when the aiortc side decodes it, per track.

Chromium does not only process. With any processing on, it captures in 10 ms buffers at 48
kHz mono; with all off, in the device's own format and buffer (here 44.1 kHz stereo, 1024
frames: ``getSettings().latency`` 0.023). So "all on minus all off" is what a browser user
gets, and "all on minus gain control alone" is the echo canceller and noise suppressor
themselves. Within a page Chromium does not always give a second track of the same device
the processing it asked for (all off after gain control alone shared the gain control's
source), so each processed set has a page of its own; all off beside all on does get a
second, unprocessed capture, and shares the all-on page, where the two are compared onset by
onset too. A white noise played instead of the sine shows what each track does to
it (the noise suppressor's work).

**Parley**: the live calls of :mod:`bench.processing` (a tone bare and through the
processing, onset made to decoded, in calls interleaved with Chromium's rounds).

Run: ``python -m bench --only processing-chromium`` (needs chromium, playwright and
pulseaudio, as the guest and device benchmarks do).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from bench import Figure, Goal, spread
from bench.processing import LIVE, _live_call
from gui.media.analysis import AudioReceiver
from tests.chromium import CHROMIUM, CHROMIUM_ARGS, chromium_missing
from tests.devices.pulse import MIC_FEED, MonitorRecorder, PulseServer, start_pulse

BENCH = "processing-chromium"

#: getUserMedia's constraints per track: (echoCancellation, noiseSuppression, autoGainControl).
CONFIGS: dict[str, tuple[bool, bool, bool]] = {
    "all": (True, True, True),
    "aec": (True, False, False),
    "ns": (False, True, False),
    "agc": (False, False, True),
    "off": (False, False, False),
}
LABELS = {
    "all": "all on",
    "aec": "echo canceller alone",
    "ns": "noise suppression alone",
    "agc": "gain control alone",
    "off": "all off",
}
#: Sample magnitude above which the sine counts as sounding (it plays at about 0.3).
LOUD = 0.05
#: Silence before each onset: longer than any buffer on the way.
SILENCE_S = 0.5

_PAGE = "http://localhost/"
_PEER_JS = """
window.parley = {
  async start(configs) {
    const pc = new RTCPeerConnection({iceServers: []});
    this.pc = pc;
    const settings = [];
    for (const [echo, noise, gain] of configs) {
      const stream = await navigator.mediaDevices.getUserMedia({audio: {
        echoCancellation: echo, noiseSuppression: noise, autoGainControl: gain}});
      const track = stream.getAudioTracks()[0];
      settings.push(track.getSettings());
      pc.addTransceiver(track, {direction: "sendonly", streams: [stream]});
    }
    await pc.setLocalDescription(await pc.createOffer());
    if (pc.iceGatheringState !== "complete") {
      await new Promise((resolve) => pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") resolve();
      }));
    }
    return {sdp: pc.localDescription.sdp, settings};
  },
  async answer(sdp) { await this.pc.setRemoteDescription({type: "answer", sdp}); },
  close() { if (this.pc) this.pc.close(); },
};
"""


async def _made_after(recorder: MonitorRecorder, start: int, timeout: float = 3.0) -> float:
    """When the first loud sample after ``start`` reached the feed's recorder."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pcm = recorder.samples(start)
        loud = np.flatnonzero(np.abs(pcm) > LOUD)
        if loud.size:
            return recorder.arrival_of(start + int(loud[0]))
        await asyncio.sleep(0.02)
    raise TimeoutError("the sine never sounded in the microphone's feed")


async def launch_with_microphone(playwright: Any, **options: Any) -> Any:
    """Debian's Chromium, headless, its microphone the private sound server's default source
    (``PULSE_SERVER``) and allowed without asking; ``options`` go to ``launch``."""
    return await playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=[*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream"],
        env=dict(os.environ),
        **options,
    )


async def microphone_page(browser: Any) -> Any:
    """A new page of ``browser`` allowed the microphone at :data:`_PAGE`."""
    context = await browser.new_context()
    await context.grant_permissions(["microphone"], origin=_PAGE.rstrip("/"))
    return await context.new_page()


async def call_from_page(
    page: Any,
    peer: RTCPeerConnection,
    constraints: list[Any],
    receivers: list[AudioReceiver],
    received_ms: float,
    **receiver_options: Any,
) -> list[dict[str, Any]]:
    """The page (with :data:`_PEER_JS`) captures one track per ``constraints`` and offers them
    to ``peer``, which answers; each track is received by an :class:`AudioReceiver` appended
    to ``receivers`` (in the offer's order; they are the caller's to stop). Once every track
    has brought ``received_ms`` of audio (TimeoutError after 20 s), each track's
    getSettings()."""
    offer = await page.evaluate("c => window.parley.start(c)", constraints)

    @peer.on("track")
    def on_track(track: MediaStreamTrack) -> None:  # in the offer's order
        receiver = AudioReceiver(track, **receiver_options)
        receivers.append(receiver)
        receiver.start()

    await peer.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
    await peer.setLocalDescription(await peer.createAnswer())
    await page.evaluate("s => window.parley.answer(s)", peer.localDescription.sdp)
    deadline = time.monotonic() + 20
    while len(receivers) < len(constraints) or min(r.received_ms for r in receivers) < received_ms:
        if time.monotonic() > deadline:
            raise TimeoutError("Chromium's microphone tracks never came")
        await asyncio.sleep(0.05)
    settings: list[dict[str, Any]] = offer["settings"]
    return settings


async def _chromium_page(
    pulse: PulseServer, recorder: MonitorRecorder, names: tuple[str, ...], onsets: int
) -> tuple[dict[str, list[float]], dict[str, dict[str, Any]], dict[str, float]]:
    """One fresh Chromium, one call with a track per name in ``names`` (the constraints of
    :data:`CONFIGS`): per track, onset made to decoded (s) for each onset (NaN when that
    track did not hear it, still sounded 0.1 s into the silence before it, or heard it
    before it was made); each track's getSettings(); and
    the level of a white noise (-30 dBFS) on each track, in dBFS."""
    from playwright.async_api import async_playwright

    delays: dict[str, list[float]] = {name: [] for name in names}
    async with async_playwright() as playwright:
        browser = await launch_with_microphone(playwright)
        peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        receivers: list[AudioReceiver] = []
        try:
            page = await microphone_page(browser)
            # localhost is a secure context (getUserMedia); nothing listens there.
            await page.route(
                f"{_PAGE}**",
                lambda route: route.fulfill(body="<html><body></body></html>",
                                            content_type="text/html"),
            )  # fmt: skip
            await page.goto(_PAGE)
            await page.evaluate(_PEER_JS)
            settings = await call_from_page(
                page, peer, [CONFIGS[name] for name in names], receivers, 2000, onset_threshold=LOUD
            )
            named = dict(zip(names, receivers, strict=True))
            for _ in range(onsets):
                pulse.mute_microphone(True)
                await asyncio.sleep(SILENCE_S)
                for receiver in receivers:
                    receiver.reset_onset()
                await asyncio.sleep(0.1)  # still sounding (a stalled pipeline): not timed
                sounding = {name for name, r in named.items() if r.onset_at is not None}
                for receiver in receivers:
                    receiver.reset_onset()
                start = recorder.position
                pulse.mute_microphone(False)
                made = await _made_after(recorder, start)
                heard_by = time.monotonic() + 2.0
                while time.monotonic() < heard_by and any(r.onset_at is None for r in receivers):
                    await asyncio.sleep(0.02)
                for name, receiver in named.items():
                    heard = receiver.onset_at
                    late = heard - made if heard is not None and name not in sounding else None
                    late = float("nan") if late is None or late < 0 else late
                    delays[name].append(late)
            noise = await _noise_levels(pulse, named)
            await page.evaluate("() => window.parley.close()")
        finally:
            await peer.close()
            for receiver in receivers:
                await receiver.stop()
            await browser.close()
    return delays, dict(zip(names, settings, strict=True)), noise


async def _noise_levels(pulse: PulseServer, named: dict[str, AudioReceiver]) -> dict[str, float]:
    """A white noise (-30 dBFS) instead of the sine for 4 s: its level on each track over the
    last 2 s, in dBFS (shows whether the suppressor acts)."""
    pulse.mute_microphone(True)
    noise = np.random.default_rng(7).standard_normal(48000 * 4) * 10 ** (-30 / 20)
    player = pulse.play(MIC_FEED, noise)
    await asyncio.sleep(3.5)
    levels = {}
    for name, receiver in named.items():
        tail = receiver.samples(2.0)
        levels[name] = 10 * float(np.log10(np.mean(np.square(tail)) + 1e-12))
    if player.poll() is None:
        await asyncio.sleep(1.0)
        if player.poll() is None:
            player.terminate()
    pulse.mute_microphone(False)
    return levels


#: The pages of a round, each a fresh Chromium: the tracks it captures, in order. All on and
#: all off share a page (Chromium opens a second, unprocessed capture for the second); the
#: others each have their own, as a second track of a device does not always get the
#: processing it asks for (see the module).
PAGES: tuple[tuple[str, ...], ...] = (("all", "off"), ("aec",), ("ns",), ("agc",))


@contextlib.contextmanager
def chromium_beside_pulse() -> Iterator[PulseServer]:
    """A private PulseAudio for Chromium's microphone (stopped at the end); RuntimeError at
    once when Chromium cannot run here."""
    missing = chromium_missing()
    if missing is not None:
        raise RuntimeError(missing)
    pulse = start_pulse(Path(tempfile.mkdtemp(prefix="parley-bench-pulse-")))
    try:
        yield pulse
    finally:
        pulse.stop()


def run(quick: bool) -> list[Figure]:
    """Measure (see the module) and return the figures."""
    rounds, onsets = (2, 6) if quick else (5, 15)
    with chromium_beside_pulse() as pulse:
        return _measure(pulse, rounds, onsets)


def _measure(pulse: PulseServer, rounds: int, onsets: int) -> list[Figure]:
    recorder = MonitorRecorder(f"{MIC_FEED}.monitor")
    recorder.wait_running()
    run = _Run()
    try:
        for _ in range(rounds):  # interleaved, so that the machine's load hits all alike
            round_ms: dict[str, list[float]] = {}
            for names in PAGES:
                delays, settings, levels = asyncio.run(
                    _chromium_page(pulse, recorder, names, onsets)
                )
                run.settings.update(settings)
                for name in names:
                    ms = [1000 * v for v in delays[name]]
                    round_ms[name] = ms
                    run.chromium[name] += [v for v in ms if not np.isnan(v)]
                    run.unheard[name] += sum(1 for v in ms if np.isnan(v))
                    run.noise[name].append(levels[name])
            pairs = [a - b for a, b in zip(round_ms["all"], round_ms["off"], strict=True)]
            run.paired += [p for p in pairs if not np.isnan(p)]
            for name, base in _DIFFERENCES:
                run.round_added[f"{name}-{base}"].append(
                    float(np.nanmedian(round_ms[name]) - np.nanmedian(round_ms[base]))
                )
            for name, (_, options) in LIVE.items():
                live = asyncio.run(_live_call(options, onsets, 2.0))
                run.parley[name] += [1000 * d for d in live.delays]
            run.load.append(os.getloadavg()[0])
    finally:
        recorder.close()
    return run.figures()


#: Differences of medians reported (track, minus track).
_DIFFERENCES = (("all", "off"), ("all", "agc"), ("aec", "agc"), ("ns", "agc"), ("agc", "off"))
_DIFFERENCE_LABELS = {
    "all-off": "all on minus all off (what a browser user gets)",
    "all-agc": "echo canceller + noise suppression (all on minus gain control alone: the same "
    "processed capture)",
    "aec-agc": "echo canceller (alone minus gain control alone)",
    "ns-agc": "noise suppression (alone minus gain control alone)",
    "agc-off": "the processed capture itself (gain control alone minus all off)",
}


def _by_name() -> dict[str, list[float]]:
    return collections.defaultdict(list)


@dataclasses.dataclass
class _Run:
    """What a run gathered (ms, dBFS), and its figures."""

    chromium: dict[str, list[float]] = dataclasses.field(default_factory=_by_name)
    unheard: dict[str, int] = dataclasses.field(default_factory=lambda: collections.Counter())
    noise: dict[str, list[float]] = dataclasses.field(default_factory=_by_name)
    settings: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: All on minus all off, onset by onset (the same page).
    paired: list[float] = dataclasses.field(default_factory=list)
    round_added: dict[str, list[float]] = dataclasses.field(default_factory=_by_name)
    parley: dict[str, list[float]] = dataclasses.field(default_factory=_by_name)
    load: list[float] = dataclasses.field(default_factory=lambda: [os.getloadavg()[0]])

    def figures(self) -> list[Figure]:
        load = self.load
        out = [Figure(BENCH, f"load average (1 min) during the run, min {min(load):.1f}, "
                      f"max {max(load):.1f}; median", statistics.median(load), "")]  # fmt: skip
        for name in CONFIGS:
            track, values = self.settings.get(name, {}), self.chromium[name]
            out += [
                Figure(BENCH, f"Chromium, {LABELS[name]}: capture {track.get('sampleRate')} Hz "
                       f"{track.get('channelCount')} ch, getSettings().latency",
                       1000 * float(track.get("latency", float("nan"))), "ms"),
                Figure(BENCH, f"Chromium, {LABELS[name]}: onset made to decoded "
                       f"({spread(values)}; not timed: {self.unheard[name]}, unheard or "
                       "not silent before)",
                       statistics.median(values), "ms"),
                Figure(BENCH, f"Chromium, {LABELS[name]}: a -30 dBFS white noise arrives at "
                       f"({spread(self.noise[name])})", statistics.median(self.noise[name]),
                       "dBFS"),
            ]  # fmt: skip
        medians = {name: statistics.median(self.chromium[name]) for name in CONFIGS}
        for name, base in _DIFFERENCES:
            key = f"{name}-{base}"
            out.append(
                Figure(BENCH, f"Chromium: latency added, {_DIFFERENCE_LABELS[key]}, difference "
                       f"of medians (round by round: {spread(self.round_added[key])})",
                       medians[name] - medians[base], "ms")
            )  # fmt: skip
        out.append(
            Figure(BENCH, f"Chromium: all on minus all off onset by onset, one page, median "
                   f"({spread(self.paired)})", statistics.median(self.paired), "ms")
        )  # fmt: skip
        bare = self.parley["bare"]
        out.append(Figure(BENCH, f"Parley, bare aiortc: onset made to decoded ({spread(bare)})",
                          statistics.median(bare), "ms"))  # fmt: skip
        for name, (label, _) in LIVE.items():
            if name == "bare":
                continue
            values = self.parley[name]
            out += [
                Figure(BENCH, f"Parley, {label}: onset made to decoded ({spread(values)})",
                       statistics.median(values), "ms"),
                Figure(BENCH, f"Parley: latency added, {label} (difference of medians)",
                       statistics.median(values) - statistics.median(bare), "ms",
                       Goal.at_most(10)),
            ]  # fmt: skip
        parley = statistics.median(self.parley["processed"]) - statistics.median(bare)
        chromium = medians["all"] - medians["agc"]
        out.append(
            Figure(BENCH, f"ratio: Parley's processing ({parley:.1f} ms) / Chromium's echo "
                   f"canceller + noise suppression ({chromium:.1f} ms)",
                   parley / chromium if chromium else float("nan"), "")
        )  # fmt: skip
        return [Figure(f.bench, f.figure, float(f.value), f.unit, f.goal) for f in out]
