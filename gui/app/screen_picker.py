"""The screen-share picker: every screen and window, with live thumbnails.

Thumbnails refresh every second while the picker is open. Where the platform
cannot capture (Wayland without the desktop portal, for instance) the picker
says so plainly and offers nothing to click, instead of sending a black
picture; where the system shows its own picker (the portal), one button hands
over to it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListView,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.devices.screen import (
    CaptureSource,
    ScreenSource,
    capture_supported,
    list_sources,
    make_thumbnail,
)

Index = QModelIndex | QPersistentModelIndex
THUMBNAIL = QSize(240, 135)


class SourcesModel(QAbstractListModel):
    """What can be shared, each with its current thumbnail."""

    SOURCE = Qt.ItemDataRole.UserRole + 1

    def __init__(self) -> None:
        super().__init__()
        self._sources: list[CaptureSource] = []
        self._thumbnails: list[QPixmap] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        """Number of screens and windows."""
        return 0 if parent.isValid() else len(self._sources)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Label, thumbnail or the source itself."""
        if not index.isValid() or not 0 <= index.row() < len(self._sources):
            return None
        source = self._sources[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return source.label
        if role == Qt.ItemDataRole.DecorationRole:
            return self._thumbnails[index.row()]
        if role == self.SOURCE:
            return source
        return None

    def refresh(self) -> None:
        """List the sources again and take new thumbnails."""
        sources = list_sources()
        thumbnails = [self._thumbnail(source) for source in sources]
        if [s.label for s in sources] != [s.label for s in self._sources]:
            self.beginResetModel()
            self._sources, self._thumbnails = sources, thumbnails
            self.endResetModel()
            return
        self._sources, self._thumbnails = sources, thumbnails
        if sources:
            self.dataChanged.emit(self.index(0, 0), self.index(len(sources) - 1, 0))

    @staticmethod
    def _thumbnail(source: CaptureSource) -> QPixmap:
        image = make_thumbnail(source, THUMBNAIL.width())
        if image.isNull():
            image = QImage(THUMBNAIL, QImage.Format.Format_RGB32)
            image.fill(Qt.GlobalColor.darkGray)
        return QPixmap.fromImage(
            image.scaled(
                THUMBNAIL,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation,
            )
        )


class ScreenPicker(QDialog):
    """Choose a screen or a window; ``chosen`` carries the source. Shown, never exec'd."""

    chosen = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Share your screen — Parley")
        self.support = capture_supported()
        self.model = SourcesModel()
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setIconSize(THUMBNAIL)
        self.view.setGridSize(QSize(THUMBNAIL.width() + 24, THUMBNAIL.height() + 48))
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setWordWrap(True)
        self.view.setAccessibleName("Screens and windows")
        self.view.doubleClicked.connect(lambda _: self._share())
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.share = QPushButton("Share")
        self.share.setProperty("role", "primary")
        self.buttons.addButton(self.share, QDialogButtonBox.ButtonRole.AcceptRole)
        self.share.clicked.connect(self._share)
        self.buttons.rejected.connect(self.close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addWidget(self.view)
        layout.addWidget(self.buttons)
        self.resize(820, 520)
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.model.refresh)
        if not self.support.supported:
            self.note.setText(f"Screen sharing does not work here: {self.support.reason}")
            self.note.setProperty("role", "error")
            self.view.hide()
            self.share.setEnabled(False)
        elif self.support.system_picker:
            self.note.setText("Your system will ask which screen or window to share.")
            self.view.hide()
        else:
            self.note.setText("Choose what the other person sees.")

    def showEvent(self, event: Any) -> None:
        """Live thumbnails while open."""
        super().showEvent(event)
        if self.support.supported and not self.support.system_picker:
            self.model.refresh()
            if self.model.rowCount():
                self.view.setCurrentIndex(self.model.index(0, 0))
            self._timer.start()

    def hideEvent(self, event: Any) -> None:
        """No thumbnails behind a closed picker."""
        self._timer.stop()
        super().hideEvent(event)

    def _share(self) -> None:
        if not self.support.supported:
            return
        index = self.view.currentIndex()
        source = index.data(SourcesModel.SOURCE) if index.isValid() else None
        if source is None:
            screens = [s for s in list_sources() if isinstance(s, ScreenSource)]
            source = screens[0] if screens else None
        self.close()
        self.chosen.emit(source)
