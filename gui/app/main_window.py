"""The main window: who you are, your contacts with their presence, requests, and call history."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QSize, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListView,
    QMainWindow,
    QMenu,
    QPushButton,
    QStackedWidget,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui.app.controller import AppController
from gui.app.guest_link import guest_link_action
from gui.app.meeting_invite import ContactPicker
from gui.app.models import PRESENCE_TEXT, Role, UsersModel, initials
from gui.app.plain import plain_label, plain_tooltip
from gui.app.resources import app_icon, icon
from gui.app.sign_in import SignInView
from gui.app.widgets import Avatar, PersonDelegate

#: The keyboard shortcuts of the main window (also listed in docs/shortcuts.md).
SHORTCUTS = {
    "search": "Ctrl+F",
    "video_call": "Ctrl+Return",
    "audio_call": "Ctrl+Shift+Return",
    "settings": "Ctrl+,",
    "quit": "Ctrl+Q",
}


def _list_view(model: object, name: str) -> QListView:
    view = QListView()
    view.setModel(model)  # type: ignore[arg-type]
    view.setItemDelegate(PersonDelegate(view))
    view.setAccessibleName(name)
    view.setUniformItemSizes(True)
    view.setSelectionMode(QListView.SelectionMode.SingleSelection)
    view.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
    return view


class HomeView(QWidget):
    """What a signed-in user sees: header, search, contacts, requests and history."""

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller

        self.avatar = Avatar(40)
        self.name = plain_label()
        self.name.setObjectName("userName")
        self.presence = QComboBox()
        self.presence.setAccessibleName("Your presence")
        for status in ("online", "away", "dnd"):
            self.presence.addItem(PRESENCE_TEXT[status], status)
        self.presence.activated.connect(self._presence_chosen)
        self.menu_button = QToolButton()
        self.menu_button.setIcon(icon("more", "#6b7280"))
        self.menu_button.setAccessibleName("Menu")
        self.menu_button.setToolTip("Menu")
        self.menu_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.menu = QMenu(self)
        self.menu_button.setMenu(self.menu)
        header = QHBoxLayout()
        header.addWidget(self.avatar)
        who = QVBoxLayout()
        who.addWidget(self.name)
        who.addWidget(self.presence)
        header.addLayout(who)
        header.addStretch()
        header.addWidget(self.menu_button)

        self.banner = QLabel()
        self.banner.setProperty("role", "banner")
        self.banner.setAccessibleName("Connection status")
        self.banner.setWordWrap(True)
        self.banner.hide()

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search people to add…")
        self.search.setAccessibleName("Search people")
        self.search.setClearButtonEnabled(True)
        self.search.addAction(icon("search", "#6b7280"), QLineEdit.ActionPosition.LeadingPosition)
        self.results_model = UsersModel()
        self.results = _list_view(self.results_model, "Search results")
        self.results.setMaximumHeight(170)
        self.results.hide()
        self.add_button = QPushButton("Add contact")
        self.add_button.setIcon(icon("add-contact", "#ffffff"))
        self.add_button.setProperty("role", "primary")
        self.add_button.hide()
        self.add_button.clicked.connect(self._add_selected)
        self.results.doubleClicked.connect(lambda _: self._add_selected())
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(250)
        self._search_timer.timeout.connect(self._run_search)
        self.search.textChanged.connect(lambda _: self._search_timer.start())
        controller.searchResults.connect(self._show_results)

        self.contacts = _list_view(controller.contact_list, "Contacts")
        self.contacts.doubleClicked.connect(lambda index: self._call(index, video=True))
        self.requests = _list_view(controller.requests, "Contact requests")
        self.history = _list_view(controller.history, "Call history")
        self.history.doubleClicked.connect(lambda index: self._call(index, video=True))

        self.video_button = QPushButton("Video call")
        self.video_button.setIcon(icon("video-call", "#ffffff"))
        self.video_button.setProperty("role", "primary")
        self.video_button.setToolTip(f"Video call ({SHORTCUTS['video_call']})")
        self.video_button.clicked.connect(lambda: self._call_selected(video=True))
        self.audio_button = QPushButton("Audio call")
        self.audio_button.setIcon(icon("phone", "#3a76f0"))
        self.audio_button.setToolTip(f"Audio call ({SHORTCUTS['audio_call']})")
        self.audio_button.clicked.connect(lambda: self._call_selected(video=False))
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self._remove_selected)
        self.meeting_button = QPushButton("New meeting")
        self.meeting_button.setIcon(icon("add-contact", "#3a76f0"))
        self.meeting_button.setToolTip("Start a meeting and choose contacts to invite")
        self.meeting_button.clicked.connect(self._new_meeting)
        self.meeting_picker: ContactPicker | None = None
        contact_actions = QHBoxLayout()
        contact_actions.addWidget(self.video_button)
        contact_actions.addWidget(self.audio_button)
        contact_actions.addWidget(self.meeting_button)
        contact_actions.addStretch()
        contact_actions.addWidget(self.remove_button)
        contacts_page = QWidget()
        contacts_layout = QVBoxLayout(contacts_page)
        contacts_layout.setContentsMargins(0, 6, 0, 0)
        contacts_layout.addWidget(self.contacts)
        contacts_layout.addLayout(contact_actions)

        self.accept_button = QPushButton("Accept")
        self.accept_button.setProperty("role", "primary")
        self.accept_button.clicked.connect(self._accept_selected)
        self.decline_button = QPushButton("Decline")
        self.decline_button.clicked.connect(self._decline_selected)
        request_actions = QHBoxLayout()
        request_actions.addStretch()
        request_actions.addWidget(self.decline_button)
        request_actions.addWidget(self.accept_button)
        requests_page = QWidget()
        requests_layout = QVBoxLayout(requests_page)
        requests_layout.setContentsMargins(0, 6, 0, 0)
        requests_layout.addWidget(self.requests)
        requests_layout.addLayout(request_actions)

        self.tabs = QTabWidget()
        self.tabs.addTab(contacts_page, "Contacts")
        self.tabs.addTab(requests_page, "Requests")
        self.tabs.addTab(self.history, "History")
        self.tabs.setDocumentMode(True)

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.banner)
        layout.addWidget(self.search)
        layout.addWidget(self.results)
        layout.addWidget(self.add_button)
        layout.addWidget(self.tabs)

        controller.requests.rowsInserted.connect(self._count_requests)
        controller.requests.rowsRemoved.connect(self._count_requests)
        controller.requests.modelReset.connect(self._count_requests)
        controller.missedCallsChanged.connect(self._count_missed)
        controller.linkStateChanged.connect(self.show_link_state)
        controller.signedIn.connect(self.set_user)

    def set_user(self, user: dict[str, str]) -> None:
        """Show who is signed in."""
        name = user.get("display_name") or user.get("username", "")
        self.name.setText(name)
        self.name.setToolTip(plain_tooltip(f"@{user.get('username', '')}"))
        self.avatar.set_person(initials(name), user.get("username", ""), "online")
        self.presence.setCurrentIndex(0)

    def show_link_state(self, state: str) -> None:
        """A banner while the connection to the server is lost and being retried."""
        if state == "reconnecting":
            self.banner.setText("Connection to the server lost. Reconnecting…")
            self.banner.show()
        elif state == "online":
            self.banner.hide()
        elif state == "offline" and self.controller.user is not None:
            self.banner.setText("Not connected to the server.")
            self.banner.show()

    def _count_requests(self) -> None:
        count = self.controller.requests.rowCount()
        self.tabs.setTabText(1, f"Requests ({count})" if count else "Requests")

    def _count_missed(self, count: int) -> None:
        self.tabs.setTabText(2, f"History ({count} missed)" if count else "History")

    def _presence_chosen(self, position: int) -> None:
        status = self.presence.itemData(position)
        self.avatar.set_person(self.avatar.initials, self.avatar.key, status)
        self.controller.spawn(self.controller.set_presence(status))

    def _run_search(self) -> None:
        text = self.search.text().strip()
        if not text:
            self._show_results([])
            return
        self.controller.spawn(self.controller.search(text))

    def _show_results(self, users: list[dict[str, str]]) -> None:
        known = {c.username for c in self.controller.contacts.contacts()}
        self.results_model.reset([u for u in users if u.get("username") not in known])
        visible = bool(self.search.text().strip())
        self.results.setVisible(visible)
        self.add_button.setVisible(visible and self.results_model.rowCount() > 0)
        if self.results_model.rowCount():
            self.results.setCurrentIndex(self.results_model.index(0, 0))

    def _add_selected(self) -> None:
        index = self.results.currentIndex()
        if index.isValid():
            self.controller.spawn(self.controller.add_contact(index.data(Role.USERNAME)))
            self.search.clear()

    def _selected(self, view: QListView) -> str | None:
        index = view.currentIndex()
        return index.data(Role.USERNAME) if index.isValid() else None

    def _call(self, index: QModelIndex, video: bool) -> None:
        username = index.data(Role.USERNAME)
        if username and index.data(Role.STATUS) in (None, "accepted"):
            self.controller.place_call(username, video)

    def _call_selected(self, video: bool) -> None:
        view = self.history if self.tabs.currentIndex() == 2 else self.contacts
        index = view.currentIndex()
        if index.isValid():
            self._call(index, video)

    def _new_meeting(self) -> None:
        """Choose contacts, then start a meeting that invites them."""
        self.meeting_picker = ContactPicker(
            self.controller.contacts, action="Start meeting", parent=self
        )
        self.meeting_picker.chosen.connect(lambda names: self.controller.start_meeting(names))
        self.meeting_picker.open()  # never exec(): no nested event loop under qasync

    def _remove_selected(self) -> None:
        username = self._selected(self.contacts)
        if username:
            self.controller.spawn(self.controller.remove_contact(username))

    def _accept_selected(self) -> None:
        username = self._selected(self.requests)
        if username:
            self.controller.spawn(self.controller.accept_contact(username))

    def _decline_selected(self) -> None:
        username = self._selected(self.requests)
        if username:
            self.controller.spawn(self.controller.remove_contact(username))


class MainWindow(QMainWindow):
    """Sign-in screen, then the home view; quitting or closing follows the tray setting."""

    quitRequested = Signal()
    settingsRequested = Signal()

    def __init__(self, controller: AppController) -> None:
        super().__init__()
        self.controller = controller
        self.keep_in_tray = False
        self.setWindowTitle("Parley")
        self.setWindowIcon(app_icon())
        self.resize(QSize(420, 680))
        self.stack = QStackedWidget()
        self.sign_in = SignInView(controller)
        self.home = HomeView(controller)
        self.stack.addWidget(self.sign_in)
        self.stack.addWidget(self.home)
        self.setCentralWidget(self.stack)
        self.status = self.statusBar()
        self.status.setSizeGripEnabled(False)

        self.quit_action = QAction("Quit", self)
        self.quit_action.setShortcut(QKeySequence(SHORTCUTS["quit"]))
        self.quit_action.triggered.connect(self.quitRequested.emit)
        self.addAction(self.quit_action)
        self.settings_action = QAction("Settings…", self)
        self.settings_action.setShortcut(QKeySequence(SHORTCUTS["settings"]))
        self.settings_action.triggered.connect(self.settingsRequested.emit)
        self.addAction(self.settings_action)
        self.rename_action = QAction("Change display name…", self)
        self.rename_action.triggered.connect(self._rename)
        self.sign_out_action = QAction("Sign out", self)
        self.sign_out_action.triggered.connect(lambda: controller.spawn(controller.sign_out()))
        self.guest_link_action = guest_link_action(self, controller)
        for action in (
            self.guest_link_action,
            self.rename_action,
            self.settings_action,
            self.sign_out_action,
            self.quit_action,
        ):
            self.home.menu.addAction(action)
        search = QAction(self)
        search.setShortcut(QKeySequence(SHORTCUTS["search"]))
        search.triggered.connect(self.home.search.setFocus)
        self.addAction(search)
        video = QAction(self)
        video.setShortcut(QKeySequence(SHORTCUTS["video_call"]))
        video.triggered.connect(lambda: self.home._call_selected(video=True))
        self.addAction(video)
        audio = QAction(self)
        audio.setShortcut(QKeySequence(SHORTCUTS["audio_call"]))
        audio.triggered.connect(lambda: self.home._call_selected(video=False))
        self.addAction(audio)

        controller.signedIn.connect(lambda user: self.stack.setCurrentWidget(self.home))
        controller.signedOut.connect(self._signed_out)
        controller.notice.connect(lambda text: self.status.showMessage(text, 5000))
        controller.failed.connect(self._failed)

    def _signed_out(self, reason: str) -> None:
        self.stack.setCurrentWidget(self.sign_in)
        if reason:
            self.sign_in.show_error(reason)

    def _failed(self, text: str) -> None:
        if self.stack.currentWidget() is self.home:
            self.status.showMessage(text, 6000)

    def _rename(self) -> None:
        current = (self.controller.user or {}).get("display_name", "")
        dialog = QInputDialog(self)
        dialog.setWindowTitle("Display name")
        dialog.setLabelText("How others see you:")
        dialog.setTextValue(current)
        dialog.textValueSelected.connect(
            lambda name: (
                name.strip() and self.controller.spawn(self.controller.set_display_name(name))
            )
        )
        dialog.open()  # never exec(): no nested event loop under qasync

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing hides to the tray when that is on; otherwise it quits."""
        if self.keep_in_tray:
            event.ignore()
            self.hide()
            return
        event.ignore()
        self.quitRequested.emit()
