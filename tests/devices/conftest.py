"""Real sound devices for the device tests: a private PulseAudio server with virtual devices.

The session starts its own ``pulseaudio`` (:mod:`tests.devices.pulse`: a speaker whose
monitor is recorded, a microphone that hears a 440 Hz tone) before any Qt Multimedia object
exists. The names the tests use from there are imported here for them. Qt Multimedia binds
to one sound server per process, so when other Qt tests are selected too, this folder runs
in a child process of its own (:mod:`tests.own_process`).

Async tests run on a qasync loop over the ``QApplication`` (see ``docs`` /
ENGINEERING.md), so Qt signals and asyncio share one thread as in the app.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import pytest
from PySide6.QtMultimedia import QAudioFormat
from PySide6.QtWidgets import QApplication

from gui.qt_loop import QtEventLoop
from tests.devices.pulse import (
    CLIENT_ENVIRONMENT,
    MIC_FREQUENCY,
    MICROPHONE,
    RECORD_RATE,
    SPEAKER,
    MonitorRecorder,
    PulseError,
    PulseServer,
    start_pulse,
)
from tests.own_process import delegate_folder

#: What the tests import from here.
__all__ = [
    "MICROPHONE",
    "MIC_FREQUENCY",
    "RECORD_RATE",
    "SPEAKER",
    "MonitorRecorder",
    "PulseServer",
]


HERE = Path(__file__).resolve().parent
#: Set in the child process that runs this folder on its own.
CHILD_FLAG = "PARLEY_DEVICE_TESTS_CHILD"
#: Set when this folder's tests were handed to a child process (nothing to start here then).
_delegated = False


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Run this folder in a child process when other selected tests use Qt."""
    global _delegated
    _delegated = delegate_folder(HERE, CHILD_FLAG, items)


def _qasync_loop() -> asyncio.AbstractEventLoop:
    app = QApplication.instance() or QApplication([])
    return QtEventLoop(app)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict:
    """Async tests in this folder run on a qasync loop (Qt and asyncio in one thread)."""
    return {"qasync": _qasync_loop}


@pytest.fixture(scope="session", autouse=True)
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    """The private PulseAudio server, started before any Qt Multimedia object exists.

    Autouse: Qt Multimedia connects to the sound server once per process, at its first use
    (a ``QMediaDevices`` is enough), so the server must exist, and ``PULSE_SERVER`` point
    to it, before any test here touches Qt Multimedia.
    """
    if _delegated:
        yield None  # type: ignore[misc]
        return
    previous = {name: os.environ.get(name) for name in CLIENT_ENVIRONMENT}
    try:
        server = start_pulse(tmp_path_factory.mktemp("pulse"))
    except PulseError as exc:
        pytest.fail(f"device tests: {exc}")
    try:
        yield server
    finally:
        server.stop()
        gc.unfreeze()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(autouse=True)
def _frozen_gc() -> Iterator[None]:
    """Move what exists to the permanent generation, as the app should after start-up.

    In this process a full (gen 2) collection pauses the Qt main thread for 50-65 ms, longer
    than the audio buffers: a pause in the middle of a timing test makes it fail at random.
    After ``gc.freeze()`` the same collections take 4-6 ms.
    """
    if _delegated:
        yield
        return
    gc.freeze()
    yield


@pytest.fixture
def qt_app() -> QApplication:
    """The process's QApplication (offscreen)."""
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    return app


def foreign_format() -> QAudioFormat:
    """44.1 kHz mono float: a device format other than the call's, forced to test conversion."""
    fmt = QAudioFormat()
    fmt.setSampleRate(44100)
    fmt.setChannelCount(1)
    fmt.setSampleFormat(QAudioFormat.SampleFormat.Float)
    return fmt
