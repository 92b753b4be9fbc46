"""The cameras, microphones and speakers Qt Multimedia sees, and their hot-plug.

:class:`DeviceCatalog` wraps one ``QMediaDevices``: it lists devices as plain
:class:`DeviceInfo` values (safe to keep, compare and show), emits a signal with the new
list whenever one changes, and turns an id back into the ``QCameraDevice`` /
``QAudioDevice`` that ``QCamera``, ``QAudioSource`` and ``QAudioSink`` take.

:class:`DeviceWatch` follows one device in a catalog and reports once when it is gone
(unplugged, or its sound-server module unloaded): the tracks use it to tell their owner to
switch to "camera off" or to another microphone.

Known limitation (Qt 6.12, PulseAudio backend): removing a sink or source is not signalled.
Qt drops the device from its internal map without emitting ``audioOutputsChanged`` /
``audioInputsChanged``, and ``QMediaDevices`` keeps listing it until another device of that
kind appears. PulseAudio meanwhile moves the streams that used it to the fallback device,
so playback and capture go on. :class:`DeviceWatch` therefore reports a removed microphone
or speaker only at the next change of that list (``tests/devices/test_catalog.py`` has a
canary test that fails once Qt fixes this).

Everything here lives on the Qt main thread.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal, SignalInstance, Slot
from PySide6.QtMultimedia import QAudioDevice, QCameraDevice, QMediaDevices

logger = logging.getLogger(__name__)


class DeviceKind(enum.Enum):
    """The three kinds of device a call uses."""

    CAMERA = "camera"
    AUDIO_INPUT = "audio_input"
    AUDIO_OUTPUT = "audio_output"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One device as plain data: ``id`` is Qt's device id (a ``QByteArray``) decoded to str."""

    id: str
    description: str
    is_default: bool
    kind: DeviceKind


def device_id(device: QCameraDevice | QAudioDevice) -> str:
    """A Qt device's id as str (the PulseAudio name, the V4L2 path...); ``""`` for a null one."""
    return bytes(device.id().data()).decode("utf-8", "replace")


def _info(device: QCameraDevice | QAudioDevice, kind: DeviceKind) -> DeviceInfo:
    return DeviceInfo(device_id(device), device.description(), device.isDefault(), kind)


class DeviceCatalog(QObject):
    """Lists of cameras, audio inputs and audio outputs, kept current by ``QMediaDevices``.

    Signals carry the complete new list (``list[DeviceInfo]``) of the kind that changed.
    Lookups (:meth:`camera`, :meth:`audio_input`, :meth:`audio_output`) return the current
    Qt device for an id, or ``None`` once it has gone.
    """

    cameras_changed = Signal(list)
    audio_inputs_changed = Signal(list)
    audio_outputs_changed = Signal(list)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._devices = QMediaDevices(self)
        self._devices.videoInputsChanged.connect(self._on_cameras)
        self._devices.audioInputsChanged.connect(self._on_audio_inputs)
        self._devices.audioOutputsChanged.connect(self._on_audio_outputs)

    # Lists ----------------------------------------------------------------------

    def cameras(self) -> list[DeviceInfo]:
        """The cameras present now."""
        return [_info(d, DeviceKind.CAMERA) for d in QMediaDevices.videoInputs()]

    def audio_inputs(self) -> list[DeviceInfo]:
        """The microphones (audio sources) present now; PulseAudio monitors are not listed."""
        return [_info(d, DeviceKind.AUDIO_INPUT) for d in QMediaDevices.audioInputs()]

    def audio_outputs(self) -> list[DeviceInfo]:
        """The speakers (audio sinks) present now."""
        return [_info(d, DeviceKind.AUDIO_OUTPUT) for d in QMediaDevices.audioOutputs()]

    def devices(self, kind: DeviceKind) -> list[DeviceInfo]:
        """The devices of one kind present now."""
        if kind is DeviceKind.CAMERA:
            return self.cameras()
        if kind is DeviceKind.AUDIO_INPUT:
            return self.audio_inputs()
        return self.audio_outputs()

    def changed_signal(self, kind: DeviceKind) -> SignalInstance:
        """The signal emitted with the new list when devices of ``kind`` change."""
        if kind is DeviceKind.CAMERA:
            return self.cameras_changed
        if kind is DeviceKind.AUDIO_INPUT:
            return self.audio_inputs_changed
        return self.audio_outputs_changed

    # Lookups --------------------------------------------------------------------

    def camera(self, id_: str) -> QCameraDevice | None:
        """The camera with this id, or None when it is not (or no longer) there."""
        return next((d for d in QMediaDevices.videoInputs() if device_id(d) == id_), None)

    def audio_input(self, id_: str) -> QAudioDevice | None:
        """The audio input with this id, or None."""
        return next((d for d in QMediaDevices.audioInputs() if device_id(d) == id_), None)

    def audio_output(self, id_: str) -> QAudioDevice | None:
        """The audio output with this id, or None."""
        return next((d for d in QMediaDevices.audioOutputs() if device_id(d) == id_), None)

    @staticmethod
    def default_camera() -> QCameraDevice:
        """The system's default camera (a null device when there is none)."""
        return QMediaDevices.defaultVideoInput()

    @staticmethod
    def default_audio_input() -> QAudioDevice:
        """The system's default microphone (a null device when there is none)."""
        return QMediaDevices.defaultAudioInput()

    @staticmethod
    def default_audio_output() -> QAudioDevice:
        """The system's default speaker (a null device when there is none)."""
        return QMediaDevices.defaultAudioOutput()

    # QMediaDevices signals ------------------------------------------------------

    @Slot()
    def _on_cameras(self) -> None:
        self.cameras_changed.emit(self.cameras())

    @Slot()
    def _on_audio_inputs(self) -> None:
        self.audio_inputs_changed.emit(self.audio_inputs())

    @Slot()
    def _on_audio_outputs(self) -> None:
        self.audio_outputs_changed.emit(self.audio_outputs())


class DeviceWatch(QObject):
    """Calls ``on_gone(reason)`` once when the device ``id_`` leaves the catalog's list.

    A device that comes back later does not revive the watch: whoever owns the track makes a
    new one for it. :meth:`close` disconnects (idempotent).
    """

    def __init__(
        self,
        catalog: DeviceCatalog,
        kind: DeviceKind,
        id_: str,
        on_gone: Callable[[str], None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.catalog = catalog
        self.kind = kind
        self.id = id_
        self.gone = False
        self._on_gone = on_gone
        self._signal = catalog.changed_signal(kind)
        self._signal.connect(self._on_list)
        self._connected = True

    @Slot(list)
    def _on_list(self, devices: list[DeviceInfo]) -> None:
        if self.gone or any(d.id == self.id for d in devices):
            return
        self.gone = True
        self.close()
        self._on_gone(f"{self.kind.value} {self.id!r} was removed")

    def close(self) -> None:
        """Stop watching."""
        if self._connected:
            self._connected = False
            self._signal.disconnect(self._on_list)


class LossReporter:
    """For device tracks (pyee emitters): say once, asynchronously, that the device is gone.

    Sets ``lost_reason`` and emits ``"lost"`` (reason) on the next turn of the loop, so a
    reason found while the track is being built still reaches handlers attached right after.
    """

    #: How the device is named in the log ("camera", "microphone").
    device_word = "device"
    device_id: str
    lost_reason: str | None
    if TYPE_CHECKING:  # provided by the track (MediaStreamTrack, a pyee emitter)

        @property
        def readyState(self) -> str:
            """``live`` or ``ended``."""

        def emit(self, event: str, *args: object) -> bool:
            """Emit a pyee event."""

    def _report_lost(self, reason: str) -> None:
        if self.lost_reason is not None or self.readyState != "live":
            return
        self.lost_reason = reason
        logger.warning("%s %r lost: %s", self.device_word, self.device_id, reason)
        QTimer.singleShot(0, lambda: self._emit_lost(reason))

    def _emit_lost(self, reason: str) -> None:
        if self.readyState == "live":
            self.emit("lost", reason)
