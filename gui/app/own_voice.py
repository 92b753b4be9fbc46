"""This end's own voice, as the call and meeting windows show it.

Both read the processed microphone's :class:`~gui.media.processing.VoiceMeter` (the
microphone is read all the time, muted or not):

* :func:`own_level`: how loud this end is now (linear RMS, 0..1, the scale of
  :meth:`~gui.media.analysis.AudioReceiver.rms`), for the speaking ring on one's own tile,
  decided by the same :class:`~gui.core.meeting_tiles.SpeakingDetector` as the others' rings.
* :class:`MutedHint`: "You are muted" over the stage when a muted person talks for a second
  (voice, not a steady sound: the meter's voice activity; only what they said after muting),
  gone after a few quiet seconds or on unmute, as the popular meeting apps do.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiortc.mediastreams import MediaStreamTrack
from PySide6.QtCore import QRect, QTimer
from PySide6.QtWidgets import QLabel, QWidget

from gui.media.processing import ProcessedAudioTrack, VoiceMeter

#: "You are muted" shows after this much voice (s) within the last 2 s, muted, and goes
#: after this long without any.
MUTED_VOICE_S = 1.0
MUTED_QUIET_S = 3.0
#: The meter's newest chunk older than this (s): the microphone gives nothing, so silence.
STALE_S = 0.5


def meter_of(track: MediaStreamTrack | None) -> VoiceMeter | None:
    """The voice meter of a microphone track (``None``: not a processed microphone)."""
    return track.processor.meter if isinstance(track, ProcessedAudioTrack) else None


def heard_lately(meter: VoiceMeter, now: float | None = None) -> bool:
    """Whether the meter got audio within ``STALE_S`` (a microphone that stopped is silent)."""
    if not meter.history:
        return False
    return (time.monotonic() if now is None else now) - meter.history[-1][0] <= STALE_S


def own_level(meter: VoiceMeter | None, seconds: float, now: float | None = None) -> float:
    """The loudest 10 ms of the last ``seconds`` as linear RMS (0..1); 0 when the meter heard
    nothing lately."""
    if meter is None or not heard_lately(meter, now):
        return 0.0
    level_db = meter.level_db(seconds)
    return 0.0 if level_db <= -100.0 else float(10.0 ** (level_db / 20.0))


class MutedHint(QLabel):
    """A banner that says "You are muted" while a muted person talks.

    ``track``: this end's microphone now (its meter is read every 200 ms while muted);
    ``over``: whether the call or meeting is over (the hint then goes); ``shown``: called
    when the hint appears, so the window places it.
    """

    def __init__(
        self,
        shortcut: str,
        parent: QWidget,
        track: Callable[[], MediaStreamTrack | None],
        over: Callable[[], bool],
        shown: Callable[[], None],
    ) -> None:
        super().__init__(f"You are muted. Unmute ({shortcut}) to be heard.", parent)
        self.setProperty("role", "banner")
        self.setAccessibleName("You are muted")
        self.hide()
        self._track = track
        self._over = over
        self._shown = shown
        self._watch = QTimer(self)
        self._watch.setInterval(200)
        self._watch.timeout.connect(self.check)
        self._muted_at = 0.0

    def set_muted(self, muted: bool) -> None:
        """Listen for voice while muted (from now: the words just before muting do not
        count); unmuted, the person is heard: no hint."""
        if muted:
            self._muted_at = time.monotonic()
            self._watch.start()
        else:
            self._watch.stop()
            self.hide()

    def check(self) -> None:
        """Muted and talking for a second: say so; quiet for a while, or over: not."""
        meter = meter_of(self._track())
        if meter is None or self._over() or not heard_lately(meter):
            self.hide()
        elif meter.voice_seconds(2.0, since=self._muted_at) >= MUTED_VOICE_S:
            if not self.isVisible():
                self.show()
                self._shown()
        elif meter.voice_seconds(MUTED_QUIET_S) == 0:
            self.hide()

    def place(self, area: QRect) -> None:
        """Centred near the bottom of ``area`` (the stage's free space), above the rest."""
        self.adjustSize()
        self.move(area.center().x() - self.width() // 2, area.bottom() - self.height() - 24)
        self.raise_()

    def stop(self) -> None:
        """The window closes."""
        self._watch.stop()


__all__ = [
    "MUTED_QUIET_S",
    "MUTED_VOICE_S",
    "MutedHint",
    "heard_lately",
    "meter_of",
    "own_level",
]
