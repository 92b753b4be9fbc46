"""``parley --self-test``: prove, without a window, that this installation can hold a call.

It checks what a packaged build could lack and what a call needs, in order, and stops at the
first failure:

1. ``qt``: the Qt modules the app uses load (QtCore, QtGui, QtWidgets, QtSvg, QtMultimedia; the
   last needs the system's ``libpulse0`` on Linux), and Qt finds its native platform plugin
   (``xcb``, ``windows`` or ``cocoa``) and its FFmpeg multimedia backend. Nothing is created:
   no ``QApplication``, no window.
2. ``resources``: the app's resources folder (icons, style sheets, sounds) is there.
3. ``codecs``: PyAV's FFmpeg has the encoders and decoders calls use (VP8, Opus, H.264).
4. ``echo``: the microphone's audio processing (WebRTC's, through LiveKit's native library)
   loads and removes a simulated echo of a voice-like sound.
5. ``server``: a signaling server like the built-in one starts on 127.0.0.1 (free port,
   database in a temporary folder).
6. ``sign-up``: two in-process clients register and become contacts.
7. ``call``: the first calls the second, who answers; both send the moving test pattern and a
   tone (440 Hz one way, 880 Hz the other) over aiortc and reach ``connected`` with matching
   verification words.
8. ``video`` and ``audio``: each end decodes numbered frames of the right size, in order, and
   hears the other end's pitch.
9. ``chat``: a message each way over the data channel, both acknowledged.
10. ``hang-up``: the call ends on both sides, everything stops.

Before the call, one ``info`` line (not a check) says whether screen sharing would work on this
desktop: X11, or Wayland with the desktop portal, its screen-cast backend and PipeWire (what is
missing, if anything, in the words the share button would use).

It prints one line per check and a verdict, and returns 0 when all passed, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO

from signaling import __version__

if TYPE_CHECKING:
    import av

    from gui.core.call_session import CallSession, LocalMedia
    from gui.core.signaling_client import SignalingClient
    from signaling.server import SignalingServer

#: The whole self-test gives up after this many seconds.
TIMEOUT_S = 90.0
#: Each wait for something to arrive gives up after this many seconds.
WAIT_S = 20.0
#: The test pattern's size and rate: small, so that a slow machine keeps up.
VIDEO_SIZE = (320, 240)
VIDEO_FPS = 15
#: Pitches of the caller's and the callee's tones.
CALLER_HZ, CALLEE_HZ = 440.0, 880.0
#: Frames each end must decode, and milliseconds of audio each end must hear.
MIN_FRAMES = 20
MIN_AUDIO_MS = 1500.0
#: How far off the heard pitch may be.
PITCH_TOLERANCE_HZ = 5.0
#: What the two ends say to each other.
CHAT_TO_CALLEE = "hello from the Parley self-test"
CHAT_TO_CALLER = "received, thank you"


class CheckFailed(Exception):
    """A check did not pass; the message says what was seen."""


@dataclass(slots=True)
class Check:
    """One line of the report."""

    name: str
    passed: bool = False
    detail: str = ""
    seconds: float = 0.0


class Report:
    """Collects the checks and prints each as it ends."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.checks: list[Check] = []
        self.started = time.monotonic()

    @contextlib.contextmanager
    def check(self, name: str) -> Iterator[Check]:
        """Run the body as check ``name``; an exception fails it (and is raised again)."""
        check = Check(name)
        self.checks.append(check)
        begun = time.monotonic()
        try:
            yield check
        except BaseException as exc:
            check.seconds = time.monotonic() - begun
            check.detail = _describe(exc)
            self._line(check)
            raise
        check.seconds = time.monotonic() - begun
        check.passed = True
        self._line(check)

    def _line(self, check: Check) -> None:
        status = "ok  " if check.passed else "FAIL"
        print(
            f"  {status}  {check.name:<10} {check.detail} ({check.seconds:.2f} s)",
            file=self.out,
            flush=True,
        )

    @property
    def passed(self) -> bool:
        """Whether every check ran and passed."""
        return bool(self.checks) and all(c.passed for c in self.checks)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CheckFailed):
        return str(exc)
    if isinstance(exc, TimeoutError | asyncio.CancelledError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def _where() -> str:
    """Where the running program comes from: a bundle's folder or the source checkout."""
    bundle = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and bundle is not None:
        return f"bundle {Path(sys.executable).resolve().parent}"
    return f"source {Path(__file__).resolve().parents[2]}"


# Environment checks ------------------------------------------------------------------------


#: The native Qt platform plugin each system needs, by ``sys.platform`` prefix.
NATIVE_PLATFORM = {"linux": "xcb", "win32": "windows", "darwin": "cocoa"}


def _plugin_names(folder: Path) -> list[str]:
    """Plugin names in a Qt plugin folder: ``libqxcb.so`` and ``qxcb.dll`` both give ``xcb``."""
    names = set()
    for path in folder.glob("*"):
        if path.suffix not in (".so", ".dll", ".dylib"):
            continue
        name = path.stem.removeprefix("lib")
        names.add(name[1:] if name.startswith("q") else name)
    return sorted(names)


def check_qt() -> str:
    """Load the Qt modules the app uses and find the plugins it needs; no application made."""
    try:
        import PySide6
        from PySide6 import QtGui, QtMultimedia, QtSvg, QtWidgets  # noqa: F401
        from PySide6.QtCore import QCoreApplication, QLibraryInfo, qVersion
    except ImportError as exc:
        raise CheckFailed(f"cannot load Qt: {exc}") from exc
    folders = [Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath))]
    folders += [Path(p) for p in QCoreApplication.libraryPaths()]
    platforms: set[str] = set()
    multimedia: set[str] = set()
    for folder in dict.fromkeys(folders):
        platforms.update(_plugin_names(folder / "platforms"))
        multimedia.update(_plugin_names(folder / "multimedia"))
    native = next((v for k, v in NATIVE_PLATFORM.items() if sys.platform.startswith(k)), None)
    if native is not None and native not in platforms:
        raise CheckFailed(
            f"no '{native}' platform plugin (found: {', '.join(sorted(platforms)) or 'none'})"
        )
    backends = sorted(m.removesuffix("mediaplugin") for m in multimedia)
    if not any("ffmpeg" in m for m in multimedia):
        raise CheckFailed(f"no FFmpeg multimedia plugin (found: {', '.join(backends) or 'none'})")
    return (
        f"PySide6 {PySide6.__version__}, Qt {qVersion()}; platforms {', '.join(sorted(platforms))};"
        f" multimedia {', '.join(backends)}"
    )


def check_resources() -> str:
    """The resources folder holds what the windows load."""
    try:
        from gui.app.resources import resources_dir
    except ImportError as exc:
        raise CheckFailed(f"cannot load the resources module: {exc}") from exc
    folder = resources_dir()
    needed = ["icons/app.svg", "icons/hang-up.svg", "themes/light.qss", "themes/dark.qss"]
    needed += [f"sounds/{name}.wav" for name in ("ringtone", "message", "hangup")]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise CheckFailed(f"{folder}: missing {', '.join(missing)}")
    icons = len(list((folder / "icons").glob("*.svg")))
    return f"{folder} ({icons} icons, 2 themes, 3 sounds)"


#: (codec name, mode) pairs PyAV must have: what aiortc encodes and decodes with.
CODECS: tuple[tuple[str, Literal["r", "w"]], ...] = (
    ("libvpx", "w"),
    ("vp8", "r"),
    ("libopus", "w"),
    ("opus", "r"),
    ("libx264", "w"),
    ("h264", "r"),
)


def check_codecs() -> str:
    """PyAV loads and its FFmpeg has the call codecs."""
    try:
        import av
        from av.codec import Codec
    except ImportError as exc:
        raise CheckFailed(f"cannot load PyAV: {exc}") from exc
    missing = []
    for name, mode in CODECS:
        try:
            Codec(name, mode)
        except Exception:
            missing.append(f"{name} ({'encoder' if mode == 'w' else 'decoder'})")
    if missing:
        raise CheckFailed(f"PyAV's FFmpeg lacks {', '.join(missing)}")
    ffmpeg = getattr(av, "ffmpeg_version_info", "?")
    return f"PyAV {av.__version__}, FFmpeg {ffmpeg}: VP8, Opus, H.264"


def check_echo() -> str:
    """The audio processing loads, and a second of echo (chirps through a 30 ms, -6 dB path)
    comes out at least 10 dB weaker: what a build without LiveKit's library cannot do."""
    import numpy as np

    from gui.media.processing import RATE, AudioProcessor, ProcessingOptions

    processor = AudioProcessor(ProcessingOptions(True, False, False, False))
    if processor.unavailable is not None:
        raise CheckFailed(processor.unavailable)
    t = np.arange(RATE // 5) / RATE
    chirp = np.sin(2 * np.pi * (300 + 4000 * t) * t) * np.hanning(t.size)
    far = np.tile(np.concatenate([chirp, np.zeros(RATE // 10)]), 8)[: 2 * RATE] * 8000
    echo = np.concatenate([np.zeros(RATE * 30 // 1000), far * 0.5])[: far.size]
    heard, left = 0.0, 0.0
    for start in range(0, far.size, 960):
        block = slice(start, start + 960)
        processor.played(far[block].astype(np.int16).reshape(-1, 1), RATE, 0.0)
        frame = av_frame(echo[block])
        out = processor.process(frame)
        if out is not None and start >= RATE:  # the second second: converged
            heard += float(np.sum(echo[block] ** 2))
            left += float(np.sum(out.to_ndarray().reshape(-1, 2)[:, 0].astype(float) ** 2))
    removed = 10 * np.log10(heard / max(left, 1.0))
    if removed < 10:
        raise CheckFailed(f"the echo canceller removed only {removed:.0f} dB of an echo")
    return f"WebRTC's echo canceller: {removed:.0f} dB of an echo removed"


#: How each capture path is named in the self-test's screen line.
CAPTURE_PATHS = {
    "pipewire": "Wayland, through the desktop portal and PipeWire; the system asks what to share",
    "x11": "X11",
    "windows": "Windows",
    "macos": "macOS",
}


def describe_screen_capture() -> str:
    """Whether screen sharing would work on this desktop, in one line (not a check: a
    computer without a desktop, or without the portal, still holds calls)."""
    try:
        from gui.devices.screen.support import capture_outlook

        support = capture_outlook()
    except Exception as exc:  # the line informs; it must not fail the self-test
        return f"cannot tell whether screen sharing would work: {_describe(exc)}"
    if support.supported:
        path = CAPTURE_PATHS.get(support.backend, support.backend)
        return f"screen sharing would work here ({path})"
    return f"screen sharing would not work here: {support.reason}"


def av_frame(samples: object) -> av.AudioFrame:
    """Mono float samples (int16 units) as the microphone's s16 stereo 48 kHz frame."""
    import av
    import numpy as np

    pcm = np.repeat(np.asarray(samples).astype(np.int16), 2).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
    frame.sample_rate = 48000
    return frame


# The call -------------------------------------------------------------------------------------


def negotiated_codecs(sdp: str) -> list[str]:
    """The codec chosen for each media section of an SDP answer (first payload type), in order."""
    chosen: list[str] = []
    for section in sdp.split("\r\nm=")[1:]:
        lines = section.replace("\r\n", "\n").split("\n")
        fields = lines[0].split()
        if len(fields) < 4 or fields[0] not in ("audio", "video") or fields[1] == "0":
            continue
        payload = fields[3]
        for line in lines[1:]:
            if line.startswith(f"a=rtpmap:{payload} "):
                name = line.split(" ", 1)[1].split("/", 1)[0]
                if name not in chosen:
                    chosen.append(name)
                break
    return chosen


async def _until(predicate: Callable[[], bool], what: str) -> None:
    """Wait until ``predicate()`` holds; CheckFailed naming ``what`` after ``WAIT_S`` seconds."""
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise CheckFailed(f"no {what} after {WAIT_S:.0f} s")
        await asyncio.sleep(0.05)


def _media(hz: float) -> LocalMedia:
    from gui.core.call_session import LocalMedia
    from gui.media.pattern import PatternVideoTrack
    from gui.media.tone import ToneAudioTrack

    return LocalMedia(
        audio=ToneAudioTrack(hz), camera=PatternVideoTrack(*VIDEO_SIZE, fps=VIDEO_FPS)
    )


class CallTest:
    """The networked half of the self-test: server, two clients, a call between them."""

    def __init__(self, report: Report, folder: Path) -> None:
        self.report = report
        self.folder = folder
        self.server: SignalingServer | None = None
        self.clients: list[SignalingClient] = []
        self.sessions: list[CallSession] = []

    async def run(self) -> None:
        """Every networked check, in order; raises at the first failure."""
        try:
            await self._checks()
        finally:
            await self._clean_up()

    async def _checks(self) -> None:
        from signaling.server import ServerConfig, SignalingServer

        with self.report.check("server") as check:
            config = ServerConfig(host="127.0.0.1", port=0, db_path=self.folder / "parley.db")
            self.server = SignalingServer(config)
            await self.server.start()
            check.detail = f"listening on {self.server.url}"

        with self.report.check("sign-up") as check:
            caller = await self._client("selftest-caller")
            callee = await self._client("selftest-callee")
            await caller.request("contacts.request", username="selftest-callee")
            await callee.request("contacts.accept", username="selftest-caller")
            check.detail = "2 accounts registered, contacts of each other"

        with self.report.check("call") as check:
            out, into = await self._place_call(caller, callee)
            check.detail = await self._connected(out, into)

        with self.report.check("video") as check:
            check.detail = await self._video(out, into)

        with self.report.check("audio") as check:
            check.detail = await self._audio(out, into)

        with self.report.check("chat") as check:
            check.detail = await self._chat(out, into)

        with self.report.check("hang-up") as check:
            out.hang_up()
            async with asyncio.timeout(WAIT_S):
                await out.wait_ended()
                await into.wait_ended()
            reasons = {out.machine.reason, into.machine.reason}
            if reasons != {"hangup"}:
                raise CheckFailed(f"the call ended with {', '.join(map(str, reasons))}")
            check.detail = "both ends ended the call, tracks and connections stopped"

    async def _client(self, name: str) -> SignalingClient:
        from gui.core.signaling_client import SignalingClient

        assert self.server is not None
        client = SignalingClient(self.server.url)
        self.clients.append(client)
        await client.connect()
        await client.register(name, "self-test password")
        return client

    async def _place_call(
        self, caller: SignalingClient, callee: SignalingClient
    ) -> tuple[CallSession, CallSession]:
        from gui.core.call_session import CallSession

        ringing: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()

        def on_event(message: dict[str, object]) -> None:
            if message.get("type") == "call.incoming" and not ringing.done():
                ringing.set_result(message)

        unsubscribe = callee.on_event(on_event)
        try:
            out = CallSession.outgoing(caller, "selftest-callee", _media(CALLER_HZ))
            self.sessions.append(out)
            event = await asyncio.wait_for(ringing, WAIT_S)
        except TimeoutError:
            raise CheckFailed("the callee's phone never rang") from None
        finally:
            unsubscribe()
        into = CallSession.incoming(callee, event, _media(CALLEE_HZ))
        self.sessions.append(into)
        into.accept()
        return out, into

    async def _connected(self, out: CallSession, into: CallSession) -> str:
        from gui.core.call_machine import CallState

        begun = time.monotonic()
        await _until(
            lambda: out.state is CallState.CONNECTED and into.state is CallState.CONNECTED,
            "connection",
        )
        took = time.monotonic() - begun
        if out.sas is None or out.sas != into.sas:
            raise CheckFailed(f"verification words differ: {out.sas} / {into.sas}")
        answer = out.pc.remoteDescription
        codecs = negotiated_codecs(answer.sdp) if answer is not None else []
        return (
            f"connected in {took:.2f} s over {', '.join(codecs) or '?'}, "
            f"matching verification words ({' '.join(out.sas)})"
        )

    async def _video(self, out: CallSession, into: CallSession) -> str:
        from gui.media.analysis import VideoReceiver

        def receiver(session: CallSession) -> VideoReceiver | None:
            found = session.receivers.get("camera")
            return found if isinstance(found, VideoReceiver) else None

        def enough() -> bool:
            return all(
                (r := receiver(s)) is not None and r.numbered >= MIN_FRAMES for s in (out, into)
            )

        await _until(enough, f"{MIN_FRAMES} decoded frames at both ends")
        parts = []
        for label, session in (("caller", out), ("callee", into)):
            video = receiver(session)
            assert video is not None
            if (video.width, video.height) != VIDEO_SIZE:
                raise CheckFailed(f"the {label} got {video.width}x{video.height} frames")
            if video.decreases:
                raise CheckFailed(f"the {label} got frames out of order")
            parts.append(f"{label} decoded {video.numbered} numbered frames")
        return f"{'; '.join(parts)} ({VIDEO_SIZE[0]}x{VIDEO_SIZE[1]}, VP8)"

    async def _audio(self, out: CallSession, into: CallSession) -> str:
        from gui.media.analysis import AudioReceiver

        def receiver(session: CallSession) -> AudioReceiver | None:
            found = session.receivers.get("audio")
            return found if isinstance(found, AudioReceiver) else None

        def enough() -> bool:
            return all(
                (r := receiver(s)) is not None and r.received_ms >= MIN_AUDIO_MS
                for s in (out, into)
            )

        await _until(enough, f"{MIN_AUDIO_MS / 1000:.1f} s of audio at both ends")
        parts = []
        for label, session, expected in (("caller", out, CALLEE_HZ), ("callee", into, CALLER_HZ)):
            audio = receiver(session)
            assert audio is not None
            heard = audio.peak_hz()
            if heard is None or abs(heard - expected) > PITCH_TOLERANCE_HZ:
                raise CheckFailed(f"the {label} heard {heard} Hz, not {expected:.0f} Hz")
            parts.append(f"{label} heard {heard:.0f} Hz in {audio.received_ms / 1000:.1f} s")
        return "; ".join(parts)

    async def _chat(self, out: CallSession, into: CallSession) -> str:
        await _until(lambda: out.channel.is_open and into.channel.is_open, "open data channel")
        heard_by_callee: list[str] = []
        heard_by_caller: list[str] = []
        into.on("chat", lambda message: heard_by_callee.append(message.text))
        out.on("chat", lambda message: heard_by_caller.append(message.text))
        begun = time.monotonic()
        out.send_chat(CHAT_TO_CALLEE)
        into.send_chat(CHAT_TO_CALLER)
        await _until(
            lambda: (
                bool(heard_by_callee and heard_by_caller)
                and not out.channel.undelivered
                and not into.channel.undelivered
            ),
            "chat messages and acknowledgements",
        )
        took = time.monotonic() - begun
        if heard_by_callee != [CHAT_TO_CALLEE] or heard_by_caller != [CHAT_TO_CALLER]:
            raise CheckFailed(f"wrong messages: {heard_by_callee} / {heard_by_caller}")
        return f"one message each way, delivered and acknowledged in {took * 1000:.0f} ms"

    async def _clean_up(self) -> None:
        """Stop whatever was started, also after a failure; never raises."""
        for session in self.sessions:
            with contextlib.suppress(Exception):
                if not session.machine.ended:
                    session.hang_up()
        for session in self.sessions:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.wait_ended(), 5)
        for client in self.clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 5)
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.stop(), 5)


async def _run_async(report: Report, folder: Path, limit_s: float) -> None:
    async with asyncio.timeout(limit_s):
        await CallTest(report, folder).run()


def run_self_test(out: TextIO | None = None, timeout: float = TIMEOUT_S) -> int:
    """Run every check, print the report on ``out`` (stdout), return 0 if all passed, else 1."""
    out = out or sys.stdout
    report = Report(out)
    print(
        f"Parley {__version__} self-test: {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, {_where()}",
        file=out,
        flush=True,
    )
    try:
        for name, step in (
            ("qt", check_qt),
            ("resources", check_resources),
            ("codecs", check_codecs),
            ("echo", check_echo),
        ):
            with report.check(name) as check:
                check.detail = step()
        print(f"  info  {'screen':<10} {describe_screen_capture()}", file=out, flush=True)
        with tempfile.TemporaryDirectory(prefix="parley-self-test-") as folder:
            asyncio.run(_run_async(report, Path(folder), timeout))
    except Exception as exc:
        if all(c.passed for c in report.checks):  # else the failed check printed its line
            print(f"  FAIL  {_describe(exc)}", file=out, flush=True)
    except KeyboardInterrupt:
        print("self-test interrupted", file=out, flush=True)
        return 1
    took = time.monotonic() - report.started
    passed = sum(c.passed for c in report.checks)
    if report.passed:
        print(f"self-test passed: {passed} checks in {took:.1f} s", file=out, flush=True)
        return 0
    failed = next((c for c in report.checks if not c.passed), None)
    where = f" at '{failed.name}'" if failed is not None else ""
    print(f"self-test FAILED{where}: {passed} checks passed, {took:.1f} s", file=out, flush=True)
    return 1
