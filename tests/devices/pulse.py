"""A private PulseAudio server with virtual devices, for the device tests and bench/devices.py.

The server is this process's own (its own runtime directory and socket, ``PULSE_SERVER``
pointing there; nothing else on the machine is touched), with:

* ``parley_test``: a null sink, the speaker. Its ``.monitor`` is recorded all along by
  :class:`MonitorRecorder` (``parec``), so that what was played, and when, can be checked.
* ``parley_mic``: the microphone, a remap of the monitor of a null sink into which
  ``module-sine`` plays a 440 Hz tone.

Both null sinks always have a low-latency reader (the recorder, and a ``parec`` that discards
what it reads): an idle null sink renders in 2-second blocks, which makes Qt's streams start
late and in bursts; a reader at 5 ms latency makes them behave like sound cards.
(``module-sine-source`` cannot serve as the microphone: it delivers 2-second blocks, and Qt
6.12's PulseAudio input, whose ``maxlength`` is one period of 1024 frames, loses them.)

A failure to start is a :class:`PulseError` with one line saying what to do.
"""

from __future__ import annotations

import asyncio
import bisect
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

SPEAKER = "parley_test"
MICROPHONE = "parley_mic"
MIC_FEED = "parley_mic_feed"
MIC_FREQUENCY = 440
RECORD_RATE = 48000

_CONFIG = "\n".join(
    [
        ".fail",
        "load-module module-native-protocol-unix auth-anonymous=1 auth-cookie-enabled=0"
        " socket={socket}",
        "load-module module-null-sink sink_name={speaker}"
        " sink_properties=device.description=ParleyTestSpeaker",
        "load-module module-null-sink sink_name={feed}"
        " sink_properties=device.description=ParleyMicFeed",
        "load-module module-sine sink={feed} frequency={frequency}",
        "load-module module-remap-source master={feed}.monitor source_name={mic}"
        " source_properties=device.description=ParleyTestMic",
        "set-default-sink {speaker}",
        "set-default-source {mic}",
        "",
    ]
)


CLIENT_ENVIRONMENT = ("PULSE_SERVER", "PULSE_COOKIE")
"""What :func:`start_pulse` sets in ``os.environ`` for every client this process starts."""


class PulseError(RuntimeError):
    """pulseaudio is missing or did not start; the message says which."""


class MonitorRecorder:
    """Records a PulseAudio source (mono s16, 48 kHz) with the arrival time of every chunk.

    With ``keep=False`` it only counts samples: a low-latency reader that keeps a null sink
    rendering in small blocks.
    """

    def __init__(self, source: str, keep: bool = True) -> None:
        self.source = source
        self.keep = keep
        self.process = subprocess.Popen(
            [
                "parec",
                f"--device={source}",
                "--raw",
                "--format=s16le",
                f"--rate={RECORD_RATE}",
                "--channels=1",
                "--latency-msec=5",
            ],
            stdout=subprocess.PIPE,
        )
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._ends: list[int] = []  # sample index just past each chunk
        self._arrivals: list[float] = []  # time.monotonic() each chunk was read
        self._total = 0
        self._thread = threading.Thread(target=self._run, name="monitor-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        leftover = b""
        while True:
            data = os.read(fd, 4096)
            if not data:
                return
            now = time.monotonic()
            data = leftover + data
            usable = len(data) - len(data) % 2
            leftover = data[usable:]
            samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.float64) / 32768
            with self._lock:
                self._total += samples.size
                if self.keep:
                    self._chunks.append(samples)
                    self._ends.append(self._total)
                    self._arrivals.append(now)

    @property
    def position(self) -> int:
        """Samples recorded so far."""
        with self._lock:
            return self._total

    def samples(self, start: int, end: int | None = None) -> np.ndarray:
        """Recorded samples ``start:end`` as float in -1..1."""
        with self._lock:
            end = self._total if end is None else min(end, self._total)
            first = bisect.bisect_right(self._ends, start)
            last = bisect.bisect_left(self._ends, end)
            chunks = self._chunks[first : last + 1]
            offset = self._ends[first - 1] if first else 0
        if not chunks or end <= start:
            return np.zeros(0)
        return np.concatenate(chunks)[start - offset : end - offset]

    def arrival_of(self, index: int) -> float:
        """When sample ``index`` reached us: its chunk's arrival minus what followed it."""
        with self._lock:
            chunk = bisect.bisect_right(self._ends, index)
            if chunk == len(self._ends):
                raise IndexError(index)
            return self._arrivals[chunk] - (self._ends[chunk] - 1 - index) / RECORD_RATE

    async def wait_for(self, start: int, count: int, timeout: float = 5.0) -> np.ndarray:
        """Wait until ``count`` samples after ``start`` are recorded, and return them."""
        deadline = time.monotonic() + timeout
        while self.position < start + count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.position - start} of {count} samples recorded")
            await asyncio.sleep(0.02)
        return self.samples(start, start + count)

    def wait_running(self, timeout: float = 10.0) -> None:
        """Block until samples flow: a fresh null sink first renders after up to 2 s."""
        deadline = time.monotonic() + timeout
        while self.position == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing recorded from {self.source}")
            time.sleep(0.02)

    def close(self) -> None:
        """Stop recording."""
        self.process.terminate()
        self.process.wait(timeout=5)
        self._thread.join(timeout=5)


class PulseServer:
    """The private PulseAudio server and helpers to change its devices."""

    def __init__(self, runtime: Path) -> None:
        self.runtime = runtime
        self.socket = runtime / "native"
        self.address = f"unix:{self.socket}"
        self.process: subprocess.Popen[bytes] | None = None
        self.recorder: MonitorRecorder | None = None
        self.keepers: list[MonitorRecorder] = []
        self.players: list[subprocess.Popen[bytes]] = []

    def pactl(self, *args: str) -> str:
        """Run ``pactl`` against this server and return its output."""
        done = subprocess.run(
            ["pactl", f"--server={self.address}", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def load_module(self, name: str, *arguments: str) -> int:
        """Load a module; returns its index for :meth:`unload_module`."""
        return int(self.pactl("load-module", name, *arguments).strip())

    def unload_module(self, index: int) -> None:
        """Unload a module loaded with :meth:`load_module`."""
        self.pactl("unload-module", str(index))

    def sine_input(self) -> str:
        """Index of the sink input of ``module-sine`` (the microphone's tone)."""
        for line in self.pactl("list", "short", "sink-inputs").splitlines():
            if "module-sine.c" in line:
                return line.split()[0]
        raise LookupError("module-sine is not playing")

    def mute_microphone(self, muted: bool) -> None:
        """Silence (or bring back) the tone the microphone hears."""
        self.pactl("set-sink-input-mute", self.sine_input(), "1" if muted else "0")

    def play(self, sink: str, samples: np.ndarray, latency_ms: int = 10) -> subprocess.Popen[bytes]:
        """Play float mono 48 kHz ``samples`` into ``sink`` (``pacat``, from a file in the
        server's folder); returns the process, which ends when all is played. A longer
        ``latency_ms`` lets the server hold more of it ahead, so that a starved ``pacat``
        cannot break a short sound in the middle."""
        pcm = np.clip(np.rint(samples * 32767), -32768, 32767).astype("<i2")
        path = self.runtime / f"play-{len(self.players)}.raw"
        path.write_bytes(pcm.tobytes())
        player = subprocess.Popen(
            [
                "pacat",
                f"--server={self.address}",
                f"--device={sink}",
                "--raw",
                "--format=s16le",
                f"--rate={RECORD_RATE}",
                "--channels=1",
                f"--latency-msec={latency_ms}",
                str(path),
            ]
        )
        self.players.append(player)
        return player

    def qt_streams(self) -> list[str]:
        """Names of the streams Qt Multimedia has open (playback and recording)."""
        streams = self.pactl("list", "sink-inputs") + self.pactl("list", "source-outputs")
        return [
            line.split("=", 1)[1].strip().strip('"')
            for line in streams.splitlines()
            if "media.name" in line and "QtmPulseStream" in line
        ]

    def keep_running(self, sink: str) -> MonitorRecorder:
        """Read ``sink``'s monitor at low latency (as a sound card would) until the session ends.

        Returns once the sink renders: before that, Qt's streams on it would start late.
        """
        keeper = MonitorRecorder(f"{sink}.monitor", keep=False)
        self.keepers.append(keeper)
        keeper.wait_running()
        return keeper

    @property
    def monitor(self) -> MonitorRecorder:
        """The recorder of the speaker's monitor."""
        assert self.recorder is not None
        return self.recorder

    def stop(self) -> None:
        """Stop the recorders and the server (idempotent)."""
        if self.recorder is not None:
            self.recorder.close()
        for keeper in self.keepers:
            keeper.close()
        for player in self.players:
            if player.poll() is None:
                player.terminate()
                player.wait(timeout=5)
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_pulse(runtime: Path) -> PulseServer:
    """Start a private PulseAudio in ``runtime`` with the test devices; ``PULSE_SERVER`` then
    points at it (Qt Multimedia reads it once per process, at its first use).

    ``PULSE_COOKIE`` points at a cookie made here, before any client runs. Without it every
    client looks for ``~/.config/pulse/cookie`` and creates it when missing, and the tests give
    processes fresh homes: of two clients starting at once in one, the one that opens the file
    while the other is still writing it prints "Failed to truncate cookie file" on stderr
    (libpulse tries to rewrite a file it opened read-only), a line where a test expects one.
    """
    if shutil.which("pulseaudio") is None or shutil.which("parec") is None:
        raise PulseError("a sound server is needed: apt-get install pulseaudio pulseaudio-utils")
    server = PulseServer(runtime)
    config = runtime / "parley-test.pa"
    config.write_text(
        _CONFIG.format(
            socket=server.socket,
            speaker=SPEAKER,
            feed=MIC_FEED,
            mic=MICROPHONE,
            frequency=MIC_FREQUENCY,
        )
    )
    env = dict(os.environ)
    env.update(PULSE_RUNTIME_PATH=str(runtime), PULSE_STATE_PATH=str(runtime / "state"))
    server.process = subprocess.Popen(
        [
            "pulseaudio",
            "-n",
            f"--file={config}",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--use-pid-file=no",
            "--system=false",
            "--log-target=stderr",
            "--log-level=error",
        ],
        env=env,
        stderr=(runtime / "pulseaudio.log").open("wb"),
    )
    cookie = runtime / "cookie"
    cookie.touch(mode=0o600)
    cookie.write_bytes(os.urandom(256))  # libpulse's cookie length; the server ignores it
    os.environ["PULSE_SERVER"] = server.address
    os.environ["PULSE_COOKIE"] = str(cookie)
    deadline = time.monotonic() + 15
    while True:
        try:
            server.pactl("info")
            break
        except subprocess.CalledProcessError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                log = (runtime / "pulseaudio.log").read_text(errors="replace").strip()
                server.stop()
                raise PulseError(f"pulseaudio did not start: {log or 'no message'}") from None
            time.sleep(0.1)
    server.keep_running(MIC_FEED)
    server.recorder = MonitorRecorder(f"{SPEAKER}.monitor")
    server.recorder.wait_running()
    return server
