"""The CPU the microphone's audio processing costs: Chromium's beside Parley's, in one run.

Issue 11 asks for the processing at 3% of one core at most per call. Chromium runs the same
WebRTC audio processing module (AEC3, noise suppression, AGC, high-pass filter) as Parley
(gui/media/processing.py, through LiveKit's binding), so what turning it on costs Chromium on
this machine is the baseline Parley's figure is read against.

**Chromium**: Debian's headless Chromium (Playwright, :mod:`tests.chromium`) captures the
PulseAudio microphone of :mod:`tests.devices.pulse` (a 440 Hz sine through a null sink) with
``getUserMedia``, either with ``echoCancellation``, ``noiseSuppression`` and
``autoGainControl`` all true ("on") or all false ("off"), one track, and sends it to an aiortc
peer in this process; meanwhile the page plays a voice on the default sink (the far end the
echo canceller is handed, as Parley's live call hands its own). After the track has flowed a
few seconds, the CPU time (``utime + stime`` in ``/proc/PID/stat``) of every Chromium process
(browser, zygotes, renderer, GPU, utility processes: all descendants of this process running
Chromium's binary) is read before and after a fixed window; its difference per second is the
page's CPU in % of one core, also split by process type. "On minus off" is what turning the
processing on costs Chromium. Each page is a fresh Chromium, each page's ``getSettings()``
is checked against what it asked for (a page that did not get it is not counted).

The two pages do not only differ by the processing: with any of it on, Chromium captures in 10
ms buffers at 48 kHz mono, and with all off in the device's own format (here 44.1 kHz stereo,
1024 frames), so "on" includes the finer capture and its resampling, as a user gets it. A third
page asks for gain control alone ("agc": the same processed capture, neither the echo canceller
nor the noise suppressor), so "on minus agc" is those two alone. The sound server's CPU over the
same window is printed beside it (it serves the finer buffers).

**Parley**: the live calls of :mod:`bench.processing` (two aiortc peers, a tone sent bare or
through the processing, a voice handed to the echo canceller as the far end), CPU of the whole
call (this process) over a window of the same length, and the CPU inside the processing
stage; "processed minus bare" is what turning it on costs Parley.

Each round runs the five (Chromium on, agc and off, Parley bare and processed), in an order that
turns around every round, so that the machine's load hits all alike.

Run: ``python -m bench --only processing-chromium-cpu`` (needs chromium, playwright and
pulseaudio, as the processing-chromium benchmark does).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import io
import os
import statistics
import time
import wave
from typing import Any

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection

from bench import Figure, Goal, spread
from bench.processing import ALL, _live_call
from bench.processing_chromium import (
    _PAGE,
    _PEER_JS,
    CONFIGS,
    call_from_page,
    chromium_beside_pulse,
    launch_with_microphone,
    microphone_page,
)
from gui.media.analysis import AudioReceiver
from tests.devices.pulse import PulseServer
from tests.media.signals import RATE, speech

BENCH = "processing-chromium-cpu"
#: The Chromium pages compared: their getUserMedia constraints.
#: "agc", gain control alone, has the processed capture (10 ms at 48 kHz mono) without the echo
#: canceller and noise suppressor: "on" minus "agc" is those two alone.
PAGES = {"on": CONFIGS["all"], "agc": CONFIGS["agc"], "off": CONFIGS["off"]}
#: What Chromium's binary is (``/usr/bin/chromium`` is a shell script that runs it).
CHROMIUM_DIR = "/usr/lib/chromium/"
TICKS = os.sysconf("SC_CLK_TCK")
#: After the track first arrives, before the window: getUserMedia's start, the codec's.
SETTLE_S = 3.0

_FAR = "far.wav"
_PLAY_JS = """
async (url) => {
  const audio = new Audio(url);
  audio.loop = true;
  await audio.play();
  window.far = audio;
}
"""


# Processes ---------------------------------------------------------------------------------


def parse_stat(text: str) -> tuple[int, int]:
    """The parent pid and the CPU time (utime + stime, in clock ticks) in a ``/proc/PID/stat``
    line. The command name, in parentheses, may itself hold spaces and parentheses: the fields
    are counted after the last ``)``."""
    fields = text.rpartition(")")[2].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def descendants(parents: dict[int, int], root: int) -> set[int]:
    """Every pid below ``root`` in a ``{pid: parent pid}`` table."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for pid, parent in parents.items():
        children[parent].append(pid)
    found: set[int] = set()
    frontier = [root]
    while frontier:
        for child in children.get(frontier.pop(), ()):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return found


def role_of(argv: list[str]) -> str:
    """A Chromium process's part, from its command line: the browser (no ``--type``), the
    renderer, the GPU process, a zygote, or a utility process by service (``audio``,
    ``network``, ``storage``...)."""
    options = dict(arg[2:].partition("=")[::2] for arg in argv if arg.startswith("--"))
    kind = options.get("type")
    if kind is None:
        return "browser"
    if kind == "utility":
        service = options.get("utility-sub-type", "")
        return f"utility: {service.split('.')[0] or 'other'}"
    return kind


@dataclasses.dataclass(frozen=True)
class TreeSample:
    """The CPU ticks of each Chromium process below this one, and each one's role."""

    ticks: dict[int, int]
    roles: dict[int, str]

    @classmethod
    def take(cls, root: int | None = None) -> TreeSample:
        """Read /proc now (the processes below ``root``, this process by default)."""
        parents, ticks = {}, {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    parents[int(entry)], ticks[int(entry)] = parse_stat(stat.read())
            except OSError:  # gone meanwhile
                continue
        roles = {}
        for pid in descendants(parents, os.getpid() if root is None else root):
            try:
                if not os.readlink(f"/proc/{pid}/exe").startswith(CHROMIUM_DIR):
                    continue
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    # A zygote's child rewrites its title as one string: split at spaces too.
                    argv = cmdline.read().decode(errors="replace").replace("\0", " ").split()
            except OSError:
                continue
            roles[pid] = role_of(argv)
        return cls({pid: ticks[pid] for pid in roles}, roles)


def cpu_by_role(before: TreeSample, after: TreeSample, seconds: float) -> dict[str, float]:
    """% of one core each role used between two samples. A process started between them counts
    whole; one that ended between them is lost (:func:`ended` says how many)."""
    out: dict[str, float] = collections.defaultdict(float)
    for pid, ticks in after.ticks.items():
        out[after.roles[pid]] += 100 * (ticks - before.ticks.get(pid, 0)) / TICKS / seconds
    return dict(out)


def ended(before: TreeSample, after: TreeSample) -> int:
    """How many processes of ``before`` are gone in ``after`` (their last CPU time is lost)."""
    return len(set(before.ticks) - set(after.ticks))


def _process_cpu(pid: int) -> float:
    """CPU seconds of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
        return parse_stat(stat.read())[1] / TICKS


# Chromium ----------------------------------------------------------------------------------


@dataclasses.dataclass
class _Page:
    """One Chromium page's window: its CPU by role, the sound server's, what it got."""

    by_role: dict[str, float]
    pulse: float
    settings: dict[str, Any]
    #: Audio received by the aiortc side per second of the window (about 1000 ms).
    received_ms_per_s: float
    #: RMS (dBFS) of the far end on the speaker's monitor during the window.
    far_dbfs: float
    #: Chromium processes that ended during the window (their CPU is not counted).
    ended: int

    @property
    def total(self) -> float:
        return sum(self.by_role.values())


def _far_wav() -> bytes:
    voice = np.clip(speech(10, 5, pitch=(160, 240)) * 32767, -32768, 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(voice.tobytes())
    return out.getvalue()


async def _chromium_page(
    pulse: PulseServer, constraints: tuple[bool, bool, bool], window_s: float, far: bytes
) -> _Page:
    """A fresh Chromium capturing with ``constraints``, sending to an aiortc peer and playing
    the far end; its CPU over ``window_s`` once the track flows."""
    from playwright.async_api import Route, async_playwright

    async with async_playwright() as playwright:
        # Playwright mutes Chromium by default: the far end must play.
        browser = await launch_with_microphone(playwright, ignore_default_args=["--mute-audio"])
        peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        receivers: list[AudioReceiver] = []
        try:
            page = await microphone_page(browser)

            async def serve(route: Route) -> None:
                if route.request.url.endswith(_FAR):
                    await route.fulfill(body=far, content_type="audio/wav")
                else:
                    await route.fulfill(body="<html><body></body></html>",
                                        content_type="text/html")  # fmt: skip

            await page.route(f"{_PAGE}**", serve)  # localhost: a secure context
            await page.goto(_PAGE)
            await page.evaluate(_PEER_JS)
            await page.evaluate(_PLAY_JS, f"{_PAGE}{_FAR}")
            settings = await call_from_page(page, peer, [constraints], receivers, 1000 * SETTLE_S)
            receiver = receivers[0]
            speaker = pulse.monitor.position
            assert pulse.process is not None
            pulse_cpu, received = _process_cpu(pulse.process.pid), receiver.received_ms
            before, wall = TreeSample.take(), time.monotonic()
            await asyncio.sleep(window_s)
            after, elapsed = TreeSample.take(), time.monotonic() - wall
            pulse_cpu = 100 * (_process_cpu(pulse.process.pid) - pulse_cpu) / elapsed
            received_per_s = (receiver.received_ms - received) / elapsed
            played = pulse.monitor.samples(speaker)
            far_dbfs = 10 * float(np.log10(np.mean(np.square(played)) + 1e-12))
            await page.evaluate("() => { window.far.pause(); window.parley.close(); }")
        finally:
            await peer.close()
            for receiver in receivers:
                await receiver.stop()
            await browser.close()
    return _Page(
        cpu_by_role(before, after, elapsed),
        pulse_cpu,
        settings[0],
        received_per_s,
        far_dbfs,
        ended(before, after),
    )


def got_what_it_asked(settings: dict[str, Any], constraints: tuple[bool, bool, bool]) -> bool:
    """Whether a track's ``getSettings()`` has the processing its constraints asked for."""
    names = ("echoCancellation", "noiseSuppression", "autoGainControl")
    return all(
        settings.get(name) is wanted for name, wanted in zip(names, constraints, strict=True)
    )


# The run -----------------------------------------------------------------------------------


@dataclasses.dataclass
class _Run:
    """What a run gathered, round by round (% of one core), and its figures."""

    chromium: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(list)
    )
    roles: dict[str, dict[str, list[float]]] = dataclasses.field(
        default_factory=lambda: {name: collections.defaultdict(list) for name in PAGES}
    )
    pulse: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(list)
    )
    received: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(list)
    )
    far: list[float] = dataclasses.field(default_factory=list)
    settings: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    refused: dict[str, int] = dataclasses.field(default_factory=lambda: collections.Counter())
    #: Chromium's on minus off, Parley's processed minus bare, Parley's stage, per round.
    chromium_added: list[float] = dataclasses.field(default_factory=list)
    pulse_added: list[float] = dataclasses.field(default_factory=list)
    #: Chromium's on minus gain control alone, per round.
    module_added: list[float] = dataclasses.field(default_factory=list)
    parley: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(list)
    )
    parley_added: list[float] = dataclasses.field(default_factory=list)
    stage: list[float] = dataclasses.field(default_factory=list)
    load: list[float] = dataclasses.field(default_factory=lambda: [os.getloadavg()[0]])
    window_s: float = 0.0
    #: Chromium processes that ended within a window, over the run.
    ended: int = 0

    def add_round(
        self, pages: dict[str, _Page], bare: float, processed: float, stage: float
    ) -> None:
        """One round's measurements."""
        refused = False
        for name, page in pages.items():
            self.settings.setdefault(name, page.settings)
            self.received[name].append(page.received_ms_per_s)
            self.ended += page.ended
            if not got_what_it_asked(page.settings, PAGES[name]):
                self.refused[name] += 1
                refused = True
        self.far += [page.far_dbfs for page in pages.values()]
        if not refused:
            for name, page in pages.items():
                self.chromium[name].append(page.total)
                self.pulse[name].append(page.pulse)
                for role, value in page.by_role.items():
                    self.roles[name][role].append(value)
            self.chromium_added.append(pages["on"].total - pages["off"].total)
            self.module_added.append(pages["on"].total - pages["agc"].total)
            self.pulse_added.append(pages["on"].pulse - pages["off"].pulse)
        self.parley["bare"].append(bare)
        self.parley["processed"].append(processed)
        self.parley_added.append(processed - bare)
        self.stage.append(stage)
        self.load.append(os.getloadavg()[0])

    def figures(self) -> list[Figure]:
        load = self.load
        out = [
            Figure(BENCH, f"load average (1 min) during the run, min {min(load):.1f}, "
                   f"max {max(load):.1f}; median", statistics.median(load), ""),
            Figure(BENCH, "window over which CPU is read, per page and per call",
                   self.window_s, "s"),
            Figure(BENCH, "Chromium processes that ended within a window (CPU not counted)",
                   self.ended, "processes"),
        ]  # fmt: skip
        for name in PAGES:
            track = self.settings.get(name, {})
            out += [
                Figure(BENCH, f"Chromium, processing {name}: getSettings() echoCancellation "
                       f"{track.get('echoCancellation')}, noiseSuppression "
                       f"{track.get('noiseSuppression')}, autoGainControl "
                       f"{track.get('autoGainControl')}; capture {track.get('sampleRate')} Hz "
                       f"{track.get('channelCount')} ch; pages that did not get what they "
                       "asked (not counted)", self.refused[name], "pages"),
                Figure(BENCH, f"Chromium, processing {name}: audio received per second of "
                       f"the window, median ({spread(self.received[name])})",
                       _median(self.received[name]), "ms"),
                Figure(BENCH, f"Chromium, processing {name}: CPU of all its processes, median "
                       f"({spread(self.chromium[name])})", _median(self.chromium[name]),
                       "% of a core"),
            ]  # fmt: skip
        out.append(
            Figure(BENCH, f"Chromium: far end played on the speaker during the window, median "
                   f"({spread(self.far)})", _median(self.far), "dBFS")
        )  # fmt: skip
        roles = sorted(set(self.roles["on"]) | set(self.roles["off"]))
        for role in roles:
            on, off = self.roles["on"][role], self.roles["off"][role]
            if not any(on) and not any(off):  # idle all along (zygotes, storage...)
                continue
            out.append(
                Figure(BENCH, f"Chromium, {role}: CPU on / off, medians {_median(on):.2f} / "
                       f"{_median(off):.2f}; difference", _median(on) - _median(off),
                       "% of a core")
            )  # fmt: skip
        out += [
            Figure(BENCH, f"Chromium: CPU added by the processing, on minus off round by "
                   f"round, median ({spread(self.chromium_added)})",
                   _median(self.chromium_added), "% of a core"),
            Figure(BENCH, f"Chromium: echo canceller + noise suppressor, on minus gain control "
                   f"alone (the same processed capture) round by round, median "
                   f"({spread(self.module_added)})", _median(self.module_added), "% of a core"),
            Figure(BENCH, f"sound server (PulseAudio) meanwhile, on minus off, median "
                   f"({spread(self.pulse_added)}; off {_median(self.pulse['off']):.2f})",
                   _median(self.pulse_added), "% of a core"),
        ]  # fmt: skip
        for name in ("bare", "processed"):
            values = self.parley[name]
            out.append(
                Figure(BENCH, f"Parley: CPU of an audio call (both ends), {name}, median "
                       f"({spread(values)})", _median(values), "% of a core")
            )  # fmt: skip
        out += [
            Figure(BENCH, f"Parley: CPU added by the processing, processed minus bare round "
                   f"by round, median ({spread(self.parley_added)})",
                   _median(self.parley_added), "% of a core", Goal.at_most(3)),
            Figure(BENCH, f"Parley: CPU inside the processing stage (both directions), median "
                   f"({spread(self.stage)})", _median(self.stage), "% of a core",
                   Goal.at_most(3)),
        ]  # fmt: skip
        chromium = _median(self.chromium_added)
        for label, values in (("processed minus bare", self.parley_added), ("stage", self.stage)):
            ratios = [p / c for p, c in zip(values, self.chromium_added, strict=False) if c]
            out.append(
                Figure(BENCH, f"ratio: Parley's {label} / Chromium's on minus off, medians "
                       f"(round by round: {spread(ratios, 2)})",
                       _median(values) / chromium if chromium else float("nan"), "")
            )  # fmt: skip
        module = _median(self.module_added)
        out.append(
            Figure(BENCH, "ratio: Parley's stage / Chromium's echo canceller + noise suppressor "
                   "(on minus gain control alone), medians",
                   _median(self.stage) / module if module else float("nan"), "")
        )  # fmt: skip
        return [dataclasses.replace(f, value=float(f.value)) for f in out]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(quick: bool) -> list[Figure]:
    """Measure (see the module) and return the figures."""
    rounds, window_s = (2, 4.0) if quick else (6, 12.0)
    far = _far_wav()
    result = _Run(window_s=window_s)
    with chromium_beside_pulse() as pulse:
        for number in range(rounds):
            # Chromium on, off, Parley bare, processed; the other way round every other round.
            order = ["on", "agc", "off", "bare", "processed"]
            if number % 2:
                order.reverse()
            pages: dict[str, _Page] = {}
            calls: dict[str, tuple[float, float]] = {}
            for name in order:
                if name in PAGES:
                    pages[name] = asyncio.run(_chromium_page(pulse, PAGES[name], window_s, far))
                else:
                    options = ALL if name == "processed" else None
                    live = asyncio.run(_live_call(options, 0, window_s))
                    calls[name] = (live.cpu, live.stage_cpu)
            result.add_round(pages, calls["bare"][0], *calls["processed"])
    return result.figures()
