"""The sign-in and registration screen."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.app.controller import AppController
from gui.app.plain import plain_label


class SignInView(QWidget):
    """Server address, username, password; sign in or create an account."""

    submitted = Signal()

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.registering = False
        self.setObjectName("signIn")

        from gui.app.resources import app_icon

        logo = QLabel()
        logo.setPixmap(app_icon().pixmap(72, 72))
        logo.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title = QLabel("Welcome to Parley")
        self.title.setObjectName("title")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.subtitle = QLabel()
        self.subtitle.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.subtitle.setProperty("role", "muted")

        self.server = QLineEdit()
        self.server.setPlaceholderText("Built-in server on this computer")
        self.server.setAccessibleName("Server address")
        self.server.setText(controller.configured_server or "")
        self.username = QLineEdit()
        self.username.setAccessibleName("Username")
        self.username.setPlaceholderText("e.g. ada")
        self.username.setMaxLength(32)
        self.username.setText(controller.profile.settings.last_username or "")
        self.password = QLineEdit()
        self.password.setAccessibleName("Password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setMaxLength(256)
        self.display_name = QLineEdit()
        self.display_name.setAccessibleName("Display name")
        self.display_name.setPlaceholderText("How others see you (optional)")
        self.display_name.setMaxLength(64)
        self.keep = QCheckBox("Keep me signed in")
        self.keep.setChecked(controller.profile.settings.keep_signed_in)

        form = QFormLayout()
        form.addRow("Server", self.server)
        form.addRow("Username", self.username)
        form.addRow("Password", self.password)
        self.display_name_label = QLabel("Display name")
        form.addRow(self.display_name_label, self.display_name)
        self.form = form

        self.error = plain_label()
        self.error.setProperty("role", "error")
        self.error.setWordWrap(True)
        self.error.setAccessibleName("Error")
        self.error.hide()

        self.submit = QPushButton("Sign in")
        self.submit.setProperty("role", "primary")
        self.submit.setDefault(True)
        self.submit.clicked.connect(self._submit)
        self.switch = QPushButton("Create an account")
        self.switch.setFlat(True)
        self.switch.setProperty("role", "link")
        self.switch.clicked.connect(self._toggle_mode)
        self.server_hint = QLabel()
        self.server_hint.setProperty("role", "muted")
        self.server_hint.setWordWrap(True)

        buttons = QHBoxLayout()
        buttons.addWidget(self.switch)
        buttons.addStretch()
        buttons.addWidget(self.submit)

        card = QWidget()
        card.setObjectName("card")
        card.setMinimumWidth(340)
        card.setMaximumWidth(420)
        inner = QVBoxLayout(card)
        inner.addWidget(logo)
        inner.addWidget(self.title)
        inner.addWidget(self.subtitle)
        inner.addSpacing(12)
        inner.addLayout(form)
        inner.addWidget(self.keep)
        inner.addWidget(self.error)
        inner.addLayout(buttons)
        inner.addWidget(self.server_hint)
        outer = QHBoxLayout(self)
        outer.addStretch()
        column = QVBoxLayout()
        column.addStretch()
        column.addWidget(card)
        column.addStretch()
        outer.addLayout(column)
        outer.addStretch()

        for field in (self.server, self.username, self.password, self.display_name):
            field.returnPressed.connect(self._submit)
        controller.failed.connect(self.show_error)
        controller.busyChanged.connect(self._busy)
        controller.serverReady.connect(
            lambda url: self.server_hint.setText(f"Built-in server running at {url}")
        )
        self._set_mode(registering=False)

    def _toggle_mode(self) -> None:
        self._set_mode(not self.registering)

    def _set_mode(self, registering: bool) -> None:
        self.registering = registering
        self.display_name.setVisible(registering)
        self.display_name_label.setVisible(registering)
        self.submit.setText("Create account" if registering else "Sign in")
        self.switch.setText("I have an account" if registering else "Create an account")
        self.title.setText("Create your account" if registering else "Welcome to Parley")
        self.subtitle.setText(
            "Pick a username: your contacts find you by it."
            if registering
            else "Sign in to call your contacts."
        )
        self.error.hide()

    def show_error(self, text: str) -> None:
        """Show why signing in failed."""
        if not self.isVisible():
            return
        self.error.setText(text)
        self.error.show()

    def _busy(self, busy: bool) -> None:
        for widget in (
            self.server,
            self.username,
            self.password,
            self.display_name,
            self.submit,
            self.switch,
            self.keep,
        ):
            widget.setEnabled(not busy)
        if busy:
            self.submit.setText("Creating…" if self.registering else "Signing in…")
        else:
            self.submit.setText("Create account" if self.registering else "Sign in")

    def _submit(self) -> None:
        username = self.username.text().strip()
        password = self.password.text()
        if not username or not password:
            self.show_error("Enter your username and password.")
            return
        if self.registering and len(password) < 8:
            self.show_error("Choose a password of at least 8 characters.")
            return
        self.error.hide()
        self.submitted.emit()
        self.controller.spawn(
            self.controller.sign_in(
                self.server.text(),
                username,
                password,
                register=self.registering,
                display_name=self.display_name.text().strip() or None,
                keep=self.keep.isChecked(),
            )
        )
