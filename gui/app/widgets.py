"""Small shared pieces of the windows: avatars, presence dots, the contact row painter, buttons."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QAction, QColor, QFont, QKeySequence, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from gui.app.models import ChatModel, Role
from gui.app.plain import set_plain

PRESENCE_COLORS = {
    "online": "#2fb344",
    "away": "#f59f00",
    "dnd": "#d63939",
    "in_call": "#3a76f0",
    "offline": "#9aa0a6",
}
AVATAR_COLORS = ["#3a76f0", "#7048e8", "#0ca678", "#e8590c", "#d6336c", "#1098ad", "#5c7cfa"]


def avatar_color(key: str) -> QColor:
    """A stable colour per person (the same on every computer)."""
    digest = hashlib.sha256(key.encode()).digest()
    return QColor(AVATAR_COLORS[digest[0] % len(AVATAR_COLORS)])


def paint_avatar(
    painter: QPainter,
    rect: QRect,
    initials: str,
    key: str,
    presence: str | None = None,
) -> None:
    """A coloured circle with initials, and a presence dot at the bottom right."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(avatar_color(key))
    painter.drawEllipse(rect)
    font = QFont(painter.font())
    font.setPixelSize(max(8, int(rect.height() * 0.4)))
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QColor("white"))
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, initials)
    if presence is not None:
        dot = max(8, rect.width() // 4)
        dot_rect = QRect(rect.right() - dot + 2, rect.bottom() - dot + 2, dot, dot)
        painter.setBrush(QColor(PRESENCE_COLORS.get(presence, "#9aa0a6")))
        painter.setPen(QColor(QApplication.palette().color(QPalette.ColorRole.Base)))
        painter.drawEllipse(dot_rect)
    painter.restore()


class Avatar(QWidget):
    """An avatar as a widget (caller on the incoming-call window, peer with its camera off)."""

    def __init__(self, size: int = 64, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.initials = "?"
        self.key = ""
        self.presence: str | None = None
        self.setFixedSize(size, size)

    def set_person(self, initials: str, key: str, presence: str | None = None) -> None:
        """Who to show."""
        self.initials, self.key, self.presence = initials, key, presence
        self.setAccessibleName(f"Avatar of {key}")
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        """Draw the circle."""
        painter = QPainter(self)
        paint_avatar(
            painter, self.rect().adjusted(1, 1, -1, -1), self.initials, self.key, self.presence
        )
        painter.end()


class PersonDelegate(QStyledItemDelegate):
    """Paints a contact or history row: avatar with presence, name, and a grey second line."""

    ROW_HEIGHT = 56

    def __init__(self, parent: QWidget | None = None, *, show_presence: bool = True) -> None:
        super().__init__(parent)
        self.show_presence = show_presence

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        """Rows of a fixed, comfortable height."""
        return QSize(option.rect.width(), self.ROW_HEIGHT)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        """Draw one row."""
        painter.save()
        style = option.widget.style() if option.widget else QApplication.style()
        option_copy = QStyleOptionViewItem(option)
        self.initStyleOption(option_copy, index)
        option_copy.text = ""
        style.drawControl(
            QStyle.ControlElement.CE_ItemViewItem, option_copy, painter, option.widget
        )
        rect = option.rect
        size = 40
        avatar = QRect(rect.left() + 10, rect.top() + (rect.height() - size) // 2, size, size)
        presence = index.data(Role.PRESENCE) if self.show_presence else None
        status = index.data(Role.STATUS)
        if status in ("incoming", "outgoing"):
            presence = None
        paint_avatar(
            painter,
            avatar,
            index.data(Role.INITIALS) or "?",
            index.data(Role.USERNAME) or "",
            presence,
        )
        text_left = avatar.right() + 12
        name_rect = QRect(text_left, rect.top() + 9, rect.right() - text_left - 8, 20)
        sub_rect = QRect(text_left, rect.top() + 29, rect.right() - text_left - 8, 18)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        palette = option.palette
        name_font = QFont(option.font)
        name_font.setBold(True)
        painter.setFont(name_font)
        missed = bool(index.data(Role.MISSED))
        color = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        painter.setPen(QColor("#d63939") if missed and not selected else color)
        name = index.data(Qt.ItemDataRole.DisplayRole) or ""
        painter.drawText(
            name_rect,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            painter.fontMetrics().elidedText(name, Qt.TextElideMode.ElideRight, name_rect.width()),
        )
        painter.setFont(option.font)
        sub = index.data(Role.SUBTITLE) or ""
        sub_color = QColor(color)
        sub_color.setAlphaF(0.65)
        painter.setPen(QColor("#d63939") if missed and not selected else sub_color)
        painter.drawText(
            sub_rect,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            painter.fontMetrics().elidedText(sub, Qt.TextElideMode.ElideRight, sub_rect.width()),
        )
        painter.restore()


def control_button(
    icon_name: str,
    tooltip: str,
    *,
    role: str = "control",
    checkable: bool = False,
    size: int = 48,
) -> QPushButton:
    """A round call-control button with an icon, an accessible name and a tooltip."""
    from gui.app.resources import icon

    button = QPushButton()
    button.setProperty("role", role)
    button.setProperty("shape", "round")
    button.setIcon(icon(icon_name, "#ffffff", 24))
    button.setIconSize(QSize(24, 24))
    button.setFixedSize(size, size)
    button.setCheckable(checkable)
    button.setToolTip(tooltip)
    button.setAccessibleName(tooltip.split(" (")[0])
    button.setCursor(Qt.CursorShape.PointingHandCursor)
    return button


def media_controls(
    shortcuts: Mapping[str, str],
) -> tuple[QPushButton, QPushButton, QPushButton, QPushButton]:
    """The microphone, camera, screen-share (disabled until sharing is known to work) and
    chat toggles of a call or a meeting, their tooltips naming their ``shortcuts``."""
    mic = control_button("mic", f"Mute ({shortcuts['microphone']})", checkable=True)
    camera = control_button("camera", f"Turn camera off ({shortcuts['camera']})", checkable=True)
    screen = control_button("screen-share", f"Share screen ({shortcuts['screen']})", checkable=True)
    screen.setEnabled(False)
    chat = control_button("chat", f"Chat ({shortcuts['chat']})", checkable=True)
    return mic, camera, screen, chat


def add_shortcuts(
    window: QWidget, shortcuts: Mapping[str, str], handlers: Mapping[str, Callable[[], object]]
) -> None:
    """One action on ``window`` per entry of ``handlers``: its key is ``shortcuts[name]``."""
    for name, handler in handlers.items():
        action = QAction(window)
        action.setShortcut(QKeySequence(shortcuts[name]))
        action.triggered.connect(handler)
        window.addAction(action)


class ChatPanel(QWidget):
    """The chat beside a call's or a meeting's video: messages, a field and Send.

    The owner sends (``input.returnPressed`` and ``send.clicked``) and fills ``model``.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatPanel")
        self.setFixedWidth(280)
        self.model = ChatModel()
        self.view = QListView()
        self.view.setModel(self.model)
        self.view.setAccessibleName("Chat messages")
        self.view.setWordWrap(True)
        self.input = QLineEdit()
        self.input.setPlaceholderText("Message")
        self.input.setAccessibleName("Chat message")
        self.input.setMaxLength(4000)
        self.send = QPushButton("Send")
        self.send.setAccessibleName("Send message")
        #: One plain line above the messages (what is not shown, and why); hidden when empty.
        self.notice = QLabel()
        self.notice.setObjectName("chatNotice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Chat"))
        layout.addWidget(self.notice)
        layout.addWidget(self.view)
        entry = QHBoxLayout()
        entry.addWidget(self.input)
        entry.addWidget(self.send)
        layout.addLayout(entry)

    def show_notice(self, text: str) -> None:
        """One plain line above the messages, e.g. why earlier messages are not shown."""
        set_plain(self.notice, text)
        self.notice.setAccessibleName(text)
        self.notice.show()
