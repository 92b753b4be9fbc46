"""The acoustic loop of a laptop without a headset, in software, on this folder's PulseAudio.

A "room" is a null sink (the speaker) whose monitor is remapped as a source (the microphone
that hears it): whatever the callee plays comes straight back into its microphone.

* Two ``parley-cli`` processes: the caller sends a 1000 Hz tone; the callee answers with
  ``--speaker`` on the room's sink and ``--audio mic:`` on the room's microphone. The caller
  must get its own tone back at least 25 dB weaker than in the same run with the callee's
  processing switched off (``--no-audio-processing``).
* The app as the callee's end of such a loop: the speaker and the microphone are switched to
  a second room mid-call (the call window's device menu), and the echo is still removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication

from gui.app.ui import ParleyUi
from gui.media.processing import ProcessedAudioTrack
from signaling.server import SignalingServer
from tests.cli.procs import CliProcess, Launcher
from tests.devices.app_call import call_from_the_app
from tests.devices.conftest import PulseServer
from tests.devices.pulse import MonitorRecorder
from tests.waiting import until
from tests.wire import befriend

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("isolated_home")]

PASSWORD = "correct horse"
TONE = 1000


@dataclass
class Room:
    """A speaker (null sink) and the microphone that hears it (its monitor, remapped)."""

    sink: str
    microphone: str
    speaker_name: str
    microphone_name: str


@pytest.fixture(scope="module")
def rooms(pulse: PulseServer) -> Iterator[list[Room]]:
    made, modules = [], []
    for letter in "AB":
        sink, speaker_name = f"parley_room_{letter.lower()}", f"RoomSpeaker{letter}"
        microphone, microphone_name = f"{sink}_mic", f"RoomMic{letter}"
        modules.append(
            pulse.load_module(
                "module-null-sink",
                f"sink_name={sink}",
                f"sink_properties=device.description={speaker_name}",
            )
        )
        modules.append(
            pulse.load_module(
                "module-remap-source",
                f"master={sink}.monitor",
                f"source_name={microphone}",
                f"source_properties=device.description={microphone_name}",
            )
        )
        pulse.keep_running(sink)  # renders in small blocks, as a sound card would
        made.append(Room(sink, microphone, speaker_name, microphone_name))
    try:
        yield made
    finally:
        for module in reversed(modules):
            pulse.unload_module(module)


def loop_call(launcher: Launcher, room: Room, processing: bool) -> tuple[CliProcess, CliProcess]:
    """A call from ``cara`` (a 1000 Hz tone) to ``cleo`` in ``room``; both ends finished."""
    callee = launcher.cli(
        "cleo", "answer", "--video", "none", "--wait", "60",
        "--audio", f"mic:{room.microphone_name}", "--speaker", room.speaker_name,
        *([] if processing else ["--no-audio-processing"]),
        password=PASSWORD, name=f"cleo-{processing}",
    )  # fmt: skip
    callee.wait_event("speaker", 30)
    caller = launcher.cli(
        "cara", "call", "cleo", "--video", "none", "--audio", f"tone:{TONE}",
        "--duration", "8", password=PASSWORD, name=f"cara-{processing}",
    )  # fmt: skip
    assert caller.finish(60) == 0, caller.describe()
    assert callee.finish(30) == 0, callee.describe()
    return caller, callee


async def test_the_callee_sends_back_no_echo_of_the_callers_tone(
    rooms: list[Room], server: SignalingServer
) -> None:
    for client in await befriend(server.url, "cara", "cleo"):
        await client.close()
    launcher = Launcher(server.url)
    try:
        room = rooms[0]
        heard = {}
        for processing in (False, True):
            caller, callee = await asyncio.to_thread(loop_call, launcher, room, processing)
            heard[processing] = caller.summary
            played = callee.summary
            assert played["speaker_frames_played"] > 200, played  # the loop was closed
            print(f"processing {processing}: caller got {heard[processing]}, callee {played}")
            if processing:
                assert played["echo_reference_ms"] > 5000  # the speaker fed the canceller
    finally:
        launcher.cleanup()
    off, on = heard[False], heard[True]
    assert abs(off["audio_peak_hz"] - TONE) < 5  # without processing the tone comes back
    assert off["audio_level_db"] > -40
    removed = off["audio_level_db"] - on["audio_level_db"]
    print(f"echo of the tone: {off['audio_level_db']} dBFS without processing, "
          f"{on['audio_level_db']} dBFS with it: {removed:.1f} dB removed")  # fmt: skip
    assert removed >= 25


def room_levels(
    recorder: MonitorRecorder, track: ProcessedAudioTrack, seconds: float = 2.0
) -> list[float]:
    """How far below what the room's speaker played (the microphone's input) the processed
    microphone stayed in each 100 ms of the last ``seconds``, in dB.

    Per 100 ms, not on average: under load the sound server now and then plays silence the
    app never handed it, or the microphone loses samples, and the echo moves against the
    canceller's reference without warning. The chunk or two that straddle such a move pass
    before the canceller has learnt the new path (tests/media: it learns it from the next two
    chunks), and one such 10 ms chunk weighs -20 dB in an average over a second: the
    average measures how busy the machine is. Each 100 ms shows how the canceller does."""
    played = recorder.samples(recorder.position - round(48000 * seconds))
    played_db = 10 * np.log10(np.mean(played**2) + 1e-12)
    history = list(track.processor.meter.history)[-round(100 * seconds) :]
    windows = [history[i : i + 10] for i in range(0, len(history) - 9, 10)]
    return [
        float(played_db - 10 * np.log10(np.mean([10 ** (level / 10) for _, level, _ in w]) + 1e-12))
        for w in windows
    ]


async def settled_levels(
    recorder: MonitorRecorder, track: ProcessedAudioTrack, deadline_s: float
) -> list[float]:
    """:func:`room_levels` of the last 2 s once the canceller has converged in the room: at
    least 3 of every 4 100 ms remove 25 dB. The first 2 s are never judged, as they hold what
    the track did before (another room, or no tone yet); past ``deadline_s`` the last figures
    are returned as they are, for the test to fail on.

    Polled rather than slept for: how long the tone takes to reach the room after the call is
    up, or after a switch, depends on how busy the machine is, not on the canceller."""
    start = time.monotonic()
    await asyncio.sleep(2.5)
    while True:
        levels = room_levels(recorder, track)
        if np.percentile(levels, 25) >= 25 or time.monotonic() - start > deadline_s:
            return levels
        await asyncio.sleep(0.5)


def describe(removed: list[float]) -> str:
    quartile, median = np.percentile(removed, [25, 50])
    return (
        f"{quartile:.1f} dB (quartile), {median:.1f} (median), {min(removed):.1f} (worst of"
        f" {len(removed)} x 100 ms)"
    )


async def test_switching_speaker_and_microphone_mid_call_keeps_the_echo_away(
    qt_app: QApplication, pulse: PulseServer, rooms: list[Room], server: SignalingServer
) -> None:
    for client in await befriend(server.url, "mona", "theo"):
        await client.request("logout")
        await client.close()
    first, second = rooms
    recorders = {room.sink: MonitorRecorder(f"{room.sink}.monitor") for room in rooms}
    launcher = Launcher(server.url)
    ui = ParleyUi(qt_app, "mona", server.url)
    settings = ui.profile.settings
    settings.keep_signed_in = False
    settings.microphone_id, settings.speaker_id = first.microphone, first.sink
    try:
        peer = launcher.cli(
            "theo", "answer", "--video", "none", "--audio", f"tone:{TONE}", "--wait", "60",
            password=PASSWORD,
        )  # fmt: skip
        await until(
            lambda: ui.media.catalog.audio_input(second.microphone) is not None, 10, "the rooms"
        )
        session = await call_from_the_app(ui, "mona", "theo", PASSWORD)
        window = ui.calls[0]
        track = session.media.audio
        assert isinstance(track, ProcessedAudioTrack)
        # The tone reaches room A and the canceller converges: 2 s after the call is up on an
        # idle machine; seen to take 4 s and more in a full run, where the peer's tone starts late.
        before = await settled_levels(recorders[first.sink], track, 20)
        window._fill_devices()
        for action in window.devices_menu.actions():
            if action.text() in (second.speaker_name, second.microphone_name):
                action.trigger()
        new_track = session.media.audio
        assert isinstance(new_track, ProcessedAudioTrack) and new_track is not track
        assert new_track.processor is track.processor  # one processor for the whole call
        assert ui.media.speaker is not None and ui.media.speaker.device_id == second.sink
        # The tone now plays in room B, heard by room B's microphone, and the canceller relearns
        # room B. Under load the app was once seen to stall 3.5 s right after the switch (the
        # settings' fsync on the loop, since moved off it: the test below).
        after = await settled_levels(recorders[second.sink], new_track, 20)
        tones = new_track.processor.tones
        assert tones is not None
        followed = [(round(t.frequency, 2), t.calm) for t in tones.tones]
        ui.controller.hang_up()
        await until(lambda: peer.proc.poll() is not None, 20, "parley-cli to exit")
    finally:
        await ui.shutdown()
        launcher.cleanup()
        for recorder in recorders.values():
            recorder.close()
    print(f"echo removed in room A: {describe(before)}; in room B after switching:"
          f" {describe(after)}; tones followed (Hz, calm chunks): {followed}")  # fmt: skip
    # The canceller works in each room, within 20 s: at least 3 of every 4 100 ms remove 25 dB
    # (a move of the echo costs one window now; two or three before it was relearnt from 2
    # chunks).
    assert np.percentile(before, 25) >= 25 and np.percentile(after, 25) >= 25


def test_unknown_device_names_are_bad_arguments(rooms: list[Room]) -> None:
    """A name that is no device: exit 2, one line naming the devices there are."""
    launcher = Launcher("ws://127.0.0.1:9/ws")  # never reached: devices are checked first
    try:
        runs = [
            launcher.raw_cli("--server", launcher.url, "--user", "x", "--password", "p",
                             "answer", *argv, name=argv[-1])
            for argv in (["--speaker", "Nowhere"], ["--audio", "mic:Nowhere"])
        ]  # fmt: skip
        for child, word in zip(runs, ("sound output", "microphone"), strict=True):
            assert child.finish(60) == 2, child.describe()
            lines = child.stderr.splitlines()
            assert len(lines) == 1, lines
            assert lines[0].startswith(f"parley-cli: error: there is no {word} named 'Nowhere'")
            assert "RoomSpeakerA" in lines[0] or "RoomMicA" in lines[0]
    finally:
        launcher.cleanup()


class StuckSettingsFile:
    """The settings file's temporary copy as a FIFO that nobody reads for ``stuck_s``: a
    write to it blocks in ``open()`` until then, as the fsync of a busy disk can for seconds
    (up to 0.6 s measured here at load 28; once, by all signs, 3.5 s). Then a reader holds
    it open and drains it, so that every write goes through (and fails at its fsync: a
    FIFO has none)."""

    def __init__(self, path: Path, stuck_s: float) -> None:
        self.path = path
        os.mkfifo(path)
        self._release, self._stop = threading.Event(), threading.Event()
        #: ``time.monotonic()`` when the writes were let through: a loop blocked on one makes
        #: no turn before this.
        self.released_at: float | None = None
        self._thread = threading.Thread(target=self._drain, args=(stuck_s,), daemon=True)
        self._thread.start()

    def _drain(self, stuck_s: float) -> None:
        self._release.wait(stuck_s)
        self.released_at = time.monotonic()
        descriptor = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            while not self._stop.wait(0.05):
                with contextlib.suppress(BlockingIOError):
                    os.read(descriptor, 65536)
        finally:
            os.close(descriptor)

    def release(self) -> None:
        """Unblock the writes now (they fail at their fsync), before ``stuck_s``."""
        self._release.set()

    def close(self) -> None:
        self._release.set()
        self._stop.set()
        self._thread.join(5)
        self.path.unlink(missing_ok=True)


async def record_turns(turns: list[float]) -> None:
    """Append ``time.monotonic()`` at each turn of the event loop (10 ms sleeps), until
    cancelled."""
    while True:
        await asyncio.sleep(0.01)
        turns.append(time.monotonic())


async def test_a_device_switch_mid_call_never_stops_the_event_loop(
    qt_app: QApplication, pulse: PulseServer, rooms: list[Room], server: SignalingServer
) -> None:
    # Once, under load, the app's loop made no turn for 3.5 s right after a device switch
    # and the speaker lost 1.2 s. Each switch saves the choice in the settings file, which
    # ends with an fsync, on the loop's thread. Here that write is held up for 6 s.
    for client in await befriend(server.url, "mona", "theo"):
        await client.request("logout")
        await client.close()
    first, second = rooms
    launcher = Launcher(server.url)
    ui = ParleyUi(qt_app, "mona", server.url)
    settings = ui.profile.settings
    settings.keep_signed_in = False
    settings.microphone_id, settings.speaker_id = first.microphone, first.sink
    stuck: StuckSettingsFile | None = None
    try:
        peer = launcher.cli(
            "theo", "answer", "--video", "none", "--audio", f"tone:{TONE}", "--wait", "60",
            password=PASSWORD,
        )  # fmt: skip
        await until(
            lambda: ui.media.catalog.audio_input(second.microphone) is not None, 10, "the rooms"
        )
        session = await call_from_the_app(ui, "mona", "theo", PASSWORD)
        window = ui.calls[0]
        await asyncio.sleep(1)
        track = session.media.audio
        path = ui.profile.settings_path
        stuck = StuckSettingsFile(path.with_name(path.name + ".tmp"), stuck_s=6)
        turns: list[float] = []
        recording = asyncio.ensure_future(record_turns(turns))
        await asyncio.sleep(0.5)
        switched = time.monotonic()
        window._fill_devices()
        for action in window.devices_menu.actions():
            if action.text() in (second.speaker_name, second.microphone_name):
                action.trigger()
        await until(lambda: stuck.released_at is not None, 20, "the settings file let go")
        recording.cancel()
        assert stuck.released_at is not None
        during = [switched, *(t for t in turns if switched < t < stuck.released_at)]
        worst = max(b - a for a, b in itertools.pairwise([*during, stuck.released_at]))
        print(
            f"{len(during) - 1} loop turns in the {stuck.released_at - switched:.1f} s the "
            f"settings file was stuck; largest gap {1000 * worst:.0f} ms"
        )
        # A loop blocked on the write makes no turn until the file is let go; a loop merely
        # short of a core (load 20: 10-25 turns a second) makes dozens. The gap itself is
        # the machine's: a loaded one can keep a process from running for over a second.
        assert len(during) - 1 >= 10
        assert session.media.audio is not track
        assert ui.media.speaker is not None and ui.media.speaker.device_id == second.sink
        assert ui.media.speaker.frames_fed > 0
        assert settings.speaker_id == second.sink
        ui.controller.hang_up()
        await until(lambda: peer.proc.poll() is not None, 20, "parley-cli to exit")
        stuck.release()
        assert ui.profile.settings_written(10)  # they end (each failed: a FIFO has no fsync)
    finally:
        if stuck is not None:
            stuck.release()
            ui.profile.settings_written(10)
            stuck.close()
        await ui.shutdown()
        launcher.cleanup()
