"""Real sound devices for the device tests: a private PulseAudio server with virtual devices.

The session starts its own ``pulseaudio`` (nothing else on the machine is touched: its own
runtime directory and socket, ``PULSE_SERVER`` pointing there) with:

* ``parley_test``: a null sink, the speaker. Its ``.monitor`` is recorded all session long
  by :class:`MonitorRecorder` (``parec``), so tests can check what was played and when.
* ``parley_mic``: the microphone, a remap of the monitor of a null sink into which
  ``module-sine`` plays a 440 Hz tone.

Both null sinks always have a low-latency reader (the recorder, and a ``parec`` that discards
what it reads): an idle null sink renders in 2-second blocks, which makes Qt's streams start
late and in bursts; a reader at 5 ms latency makes them behave like sound cards.
(``module-sine-source`` cannot serve as the microphone: it delivers 2-second blocks, and Qt
6.12's PulseAudio input, whose ``maxlength`` is one period of 1024 frames, loses them.)

Async tests run on a qasync loop over the ``QApplication`` (see ``docs`` /
ENGINEERING.md), so Qt signals and asyncio share one thread as in the app.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import qasync
from PySide6.QtWidgets import QApplication

SPEAKER = "parley_test"
MICROPHONE = "parley_mic"
MIC_FEED = "parley_mic_feed"
MIC_FREQUENCY = 440
RECORD_RATE = 48000

_CONFIG = "\n".join(
    [
        ".fail",
        "load-module module-native-protocol-unix auth-anonymous=1 socket={socket}",
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


def _qasync_loop() -> asyncio.AbstractEventLoop:
    app = QApplication.instance() or QApplication([])
    return qasync.QEventLoop(app)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict:
    """Async tests in this folder run on a qasync loop (Qt and asyncio in one thread)."""
    return {"qasync": _qasync_loop}


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


def _start(runtime: Path) -> PulseServer:
    if shutil.which("pulseaudio") is None or shutil.which("parec") is None:
        pytest.fail("device tests need: apt-get install pulseaudio pulseaudio-utils libpulse0")
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
    os.environ["PULSE_SERVER"] = server.address
    deadline = time.monotonic() + 15
    while True:
        try:
            server.pactl("info")
            break
        except subprocess.CalledProcessError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                log = (runtime / "pulseaudio.log").read_text(errors="replace")
                pytest.fail(f"pulseaudio did not start:\n{log}")
            time.sleep(0.1)
    server.keep_running(MIC_FEED)
    server.recorder = MonitorRecorder(f"{SPEAKER}.monitor")
    server.recorder.wait_running()
    return server


def _stop(server: PulseServer) -> None:
    if server.recorder is not None:
        server.recorder.close()
    for keeper in server.keepers:
        keeper.close()
    if server.process is not None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="session", autouse=True)
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    """The private PulseAudio server, started before any Qt Multimedia object exists.

    Autouse: Qt Multimedia connects to the sound server once per process, at its first use
    (a ``QMediaDevices`` is enough), so the server must exist, and ``PULSE_SERVER`` point
    to it, before any test here touches Qt Multimedia.
    """
    previous = os.environ.get("PULSE_SERVER")
    server = _start(tmp_path_factory.mktemp("pulse"))
    try:
        yield server
    finally:
        _stop(server)
        gc.unfreeze()
        if previous is None:
            os.environ.pop("PULSE_SERVER", None)
        else:
            os.environ["PULSE_SERVER"] = previous


@pytest.fixture(autouse=True)
def _frozen_gc() -> Iterator[None]:
    """Move what exists to the permanent generation, as the app should after start-up.

    In this process a full (gen 2) collection pauses the Qt main thread for 50-65 ms, longer
    than the audio buffers: a pause in the middle of a timing test makes it fail at random.
    After ``gc.freeze()`` the same collections take 4-6 ms.
    """
    gc.freeze()
    yield


@pytest.fixture
def qt_app() -> QApplication:
    """The process's QApplication (offscreen)."""
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    return app
