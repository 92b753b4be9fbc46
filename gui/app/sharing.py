"""A window that shares the whole screen leaves it: no hall of mirrors.

While this end shares its whole screen, the window it is in minimises itself (when the
system lets it; with no window manager nothing minimises) and its sharing note says
whether it really left the screen: a window that is minimised is no longer exposed. The
call window and the meeting window both use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QLabel, QWidget

#: What the note says while sharing the whole screen.
SHARE_NOTE = {
    "minimised": "You are sharing your screen. This window is minimised so it does not appear "
    "in the share.",
    "shown": "You are sharing your screen. Minimise this window so it does not appear in the "
    "share.",
}


def share_note(track: Any) -> tuple[str, bool]:
    """What the sharing note says of a ``ScreenTrack`` just started, and whether it shares
    the whole screen (the window then leaves it: :class:`OutOfTheShare`). What the system's
    picker chose is not known here: no minimising then."""
    from gui.devices.screen import ScreenSource

    if track.support.system_picker:
        return "You are sharing what you chose in the system's dialog.", False
    if isinstance(track.source, ScreenSource):
        return SHARE_NOTE["shown"], True
    return f"You are sharing “{track.source.label}”.", False


class OutOfTheShare(QObject):
    """Minimises ``window`` while ``sharing()`` the whole screen, and words ``note``."""

    def __init__(self, window: QWidget, note: QLabel, sharing: Callable[[], bool]) -> None:
        super().__init__(window)
        self.window = window
        self.note = note
        self._sharing = sharing
        self.active = False
        # Whether the minimise request was honoured is known only once the window manager
        # acted (with none, the window stays on the screen being shared).
        self._check = QTimer(self)
        self._check.setSingleShot(True)
        self._check.setInterval(500)
        self._check.timeout.connect(self._word)
        # The minimise waits for the picker's window to be gone: when it closes, the focus
        # goes back to this window, and a window manager that gets that activation after the
        # minimise request brings the window straight back.
        self._later = QTimer(self)
        self._later.setSingleShot(True)
        self._later.setInterval(300)
        self._later.timeout.connect(self._minimise)
        window.installEventFilter(self)

    def start(self) -> None:
        """The whole screen is shared from now on."""
        self.active = True
        self.note.setText(SHARE_NOTE["shown"])
        self._later.start()

    def stop(self) -> None:
        """The share stopped (or is of a window, or of what a system picker chose)."""
        self.active = False
        self._check.stop()
        self._later.stop()
        if self.window.isMinimized():
            self.window.showNormal()

    def _minimise(self) -> None:
        if not (self.active and self._sharing()):
            return
        handle = self.window.windowHandle()
        if handle is not None:
            handle.removeEventFilter(self)  # once, however many shares
            handle.installEventFilter(self)
        self.window.showMinimized()
        self._check.start()

    def _word(self) -> None:
        if not (self.active and self._sharing()):
            return
        handle = self.window.windowHandle()
        hidden = self.window.isMinimized() and handle is not None and not handle.isExposed()
        self.note.setText(SHARE_NOTE["minimised" if hidden else "shown"])

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Minimised, restored, left or back on screen: word the note again."""
        if self.active and event.type() in (QEvent.Type.WindowStateChange, QEvent.Type.Expose):
            self._check.start()
        return False


__all__ = ["SHARE_NOTE", "OutOfTheShare", "share_note"]
