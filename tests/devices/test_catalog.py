"""DeviceCatalog and DeviceWatch against a real PulseAudio server, with real hot-plug."""

from __future__ import annotations

from PySide6.QtMultimedia import QAudioDevice
from pytestqt.qtbot import QtBot

from gui.devices import DeviceCatalog, DeviceInfo, DeviceKind, DeviceWatch
from tests.devices.conftest import MICROPHONE, SPEAKER, PulseServer


def test_lists_the_virtual_speaker_and_microphone(qtbot: QtBot) -> None:
    catalog = DeviceCatalog()
    outputs = {d.id: d for d in catalog.audio_outputs()}
    inputs = {d.id: d for d in catalog.audio_inputs()}
    assert outputs[SPEAKER] == DeviceInfo(
        SPEAKER, "ParleyTestSpeaker", is_default=True, kind=DeviceKind.AUDIO_OUTPUT
    )
    assert inputs[MICROPHONE] == DeviceInfo(
        MICROPHONE, "ParleyTestMic", is_default=True, kind=DeviceKind.AUDIO_INPUT
    )
    # Qt hides PulseAudio monitor sources: they are not microphones.
    assert not any(i.endswith(".monitor") for i in inputs)
    assert all(isinstance(c, DeviceInfo) for c in catalog.cameras())
    assert catalog.devices(DeviceKind.AUDIO_OUTPUT) == catalog.audio_outputs()


def test_looks_devices_up_by_id(qtbot: QtBot) -> None:
    catalog = DeviceCatalog()
    speaker = catalog.audio_output(SPEAKER)
    microphone = catalog.audio_input(MICROPHONE)
    assert isinstance(speaker, QAudioDevice)
    assert isinstance(microphone, QAudioDevice)
    assert bytes(speaker.id().data()).decode() == SPEAKER
    assert speaker.mode() == QAudioDevice.Mode.Output
    assert microphone.mode() == QAudioDevice.Mode.Input
    assert catalog.audio_output("no-such-device") is None
    assert catalog.audio_input(SPEAKER) is None  # a sink is not an input
    assert catalog.camera("no-such-camera") is None
    assert bytes(catalog.default_audio_output().id().data()).decode() == SPEAKER


def test_hot_plugged_output_appears(qtbot: QtBot, pulse: PulseServer) -> None:
    catalog = DeviceCatalog()
    with qtbot.waitSignal(catalog.audio_outputs_changed, timeout=5000) as added:
        module = pulse.load_module(
            "module-null-sink",
            "sink_name=parley_hotplug",
            "sink_properties=device.description=HotPlugged",
        )
    try:
        listed = {d.id: d for d in added.args[0]}
        assert listed["parley_hotplug"].description == "HotPlugged"
        assert not listed["parley_hotplug"].is_default
        assert catalog.audio_output("parley_hotplug") is not None
    finally:
        pulse.unload_module(module)


def test_qt_does_not_signal_audio_device_removal_on_pulseaudio(
    qtbot: QtBot, pulse: PulseServer
) -> None:
    """Canary for a Qt 6.12 limitation the device code works around.

    Qt's PulseAudio backend drops a removed sink or source from its map without emitting
    ``audioOutputsChanged``/``audioInputsChanged``, and ``QMediaDevices`` keeps listing it
    until some other device of that kind appears. (PulseAudio meanwhile moves the streams
    that used it to the fallback device, so playback and capture go on.) If this test fails,
    Qt has fixed it: DeviceWatch then reports removed audio devices at once.
    """
    catalog = DeviceCatalog()
    with qtbot.waitSignal(catalog.audio_outputs_changed, timeout=5000):
        module = pulse.load_module("module-null-sink", "sink_name=parley_unplugged")
    changes: list[list[DeviceInfo]] = []
    catalog.audio_outputs_changed.connect(changes.append)
    pulse.unload_module(module)
    qtbot.wait(1000)
    assert changes == []
    assert "parley_unplugged" in {d.id for d in catalog.audio_outputs()}
    # The next device to appear brings the list up to date.
    with qtbot.waitSignal(catalog.audio_outputs_changed, timeout=5000):
        other = pulse.load_module("module-null-sink", "sink_name=parley_plugged")
    pulse.unload_module(other)
    assert "parley_unplugged" not in {d.id for d in changes[-1]}


def test_device_watch_reports_a_removed_input_once(qtbot: QtBot, pulse: PulseServer) -> None:
    catalog = DeviceCatalog()
    module = pulse.load_module(
        "module-remap-source", f"master={SPEAKER}.monitor", "source_name=parley_watched"
    )
    qtbot.waitUntil(lambda: catalog.audio_input("parley_watched") is not None, timeout=5000)
    reasons: list[str] = []
    watch = DeviceWatch(catalog, DeviceKind.AUDIO_INPUT, "parley_watched", reasons.append)
    pulse.unload_module(module)
    # Qt notices the removal when the list next changes (see the canary test above).
    others = [
        pulse.load_module(
            "module-remap-source", f"master={SPEAKER}.monitor", f"source_name=parley_other{i}"
        )
        for i in range(2)
    ]
    qtbot.waitUntil(lambda: reasons != [], timeout=5000)
    for other in others:
        pulse.unload_module(other)
    qtbot.wait(300)
    assert reasons == ["audio_input 'parley_watched' was removed"]
    assert watch.gone


def test_device_watch_follows_the_catalog_signal(qtbot: QtBot) -> None:
    """The camera path: no camera can be unplugged here, so the catalog's signal is emitted."""
    catalog = DeviceCatalog()
    reasons: list[str] = []
    watch = DeviceWatch(catalog, DeviceKind.CAMERA, "/dev/video0", reasons.append)
    present = DeviceInfo("/dev/video0", "Webcam", True, DeviceKind.CAMERA)
    catalog.cameras_changed.emit([present])
    assert reasons == []
    catalog.cameras_changed.emit([])
    catalog.cameras_changed.emit([])
    assert reasons == ["camera '/dev/video0' was removed"]
    watch.close()
    watch.close()
