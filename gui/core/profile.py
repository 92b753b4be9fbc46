"""A profile: one person's settings and saved sign-in, kept apart from every other profile.

``--profile NAME`` picks one, so two instances of the app can run side by
side on one computer (two people, or a person testing a call with
themselves). Settings are a JSON file in the user configuration directory;
a broken or partly wrong file never stops the app: what cannot be read falls
back to its default, and the problem is logged.

The saved session token goes to the system keyring where there is one, and
otherwise to a file only the user can read (mode 0600).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from gui.core.servers import server_list

log = logging.getLogger("parley.profile")

PROFILE_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,40}")
THEMES = ("system", "light", "dark")
KEYRING_SERVICE = "parley"


def _atomic_write(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` so that a crash leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


@dataclass(slots=True)
class IceServerSetting:
    """A STUN or TURN server as the settings keep it."""

    urls: list[str]
    username: str | None = None
    credential: str | None = None


@dataclass(slots=True)
class Settings:
    """Everything a user can set, with the defaults a new user gets."""

    #: The service's addresses (several instances of one service), tried the last good one
    #: first; empty: no server configured, so the app runs (or finds) the embedded one.
    #: Profiles written before kept one ``server_url``: it is read as a list of one.
    server_urls: list[str] = field(default_factory=list)
    #: A PEM certificate to trust for wss:// besides the system's (a self-signed LAN server).
    trust_cert: str | None = None
    #: Let other computers on the network use the embedded server.
    share_on_lan: bool = False
    #: Port the embedded server listens on (another free one is used if taken).
    embedded_port: int = 8765
    ice_servers: list[IceServerSetting] = field(default_factory=list)
    theme: str = "system"
    start_in_tray: bool = False
    notifications: bool = True
    camera_id: str | None = None
    microphone_id: str | None = None
    speaker_id: str | None = None
    #: Use the test pattern and tone instead of devices (for people without a camera).
    synthetic_media: bool = False
    #: The microphone's processing, each part on by default as in a browser: what a laptop
    #: without a headset needs (gui/media/processing.py).
    echo_cancellation: bool = True
    noise_suppression: bool = True
    high_pass_filter: bool = True
    auto_gain_control: bool = True
    keep_signed_in: bool = True
    last_username: str | None = None

    @property
    def server_url(self) -> str | None:
        """The first configured server (``None``: the built-in one)."""
        return self.server_urls[0] if self.server_urls else None

    @server_url.setter
    def server_url(self, url: str | None) -> None:
        self.server_urls = [url] if url else []

    @classmethod
    def from_json(cls, data: object) -> Settings:
        """Settings from parsed JSON, keeping every valid field and defaulting the rest."""
        settings = cls()
        if not isinstance(data, dict):
            log.warning("settings file is not a JSON object; using defaults")
            return settings
        if "server_urls" not in data and isinstance(data.get("server_url"), str):
            data = {**data, "server_urls": [data["server_url"]]}  # a profile from before
        for spec in fields(cls):
            if spec.name not in data:
                continue
            value = data[spec.name]
            try:
                setattr(settings, spec.name, _checked(spec.name, value))
            except (TypeError, ValueError) as exc:
                log.warning("ignoring setting %s: %s", spec.name, exc)
        return settings

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values (with ``server_url``, the first server, for older versions)."""
        return {**asdict(self), "server_url": self.server_url}


def _checked(name: str, value: Any) -> Any:
    """Validate one setting read from the file."""
    default = getattr(Settings(), name)
    if name == "ice_servers":
        if not isinstance(value, list):
            raise TypeError("must be a list")
        servers = []
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("urls"), list):
                raise TypeError("each ICE server needs a list of urls")
            urls = [u for u in item["urls"] if isinstance(u, str)]
            servers.append(IceServerSetting(urls, item.get("username"), item.get("credential")))
        return servers
    if name == "theme" and value not in THEMES:
        raise ValueError(f"must be one of {', '.join(THEMES)}")
    if name == "server_urls":
        if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
            raise TypeError("must be a list of addresses")
        return server_list(value)
    if name == "trust_cert" and value is not None and not isinstance(value, str):
        raise TypeError("must be a file name")
    if name == "embedded_port" and not (isinstance(value, int) and 0 <= value <= 65535):
        raise ValueError("must be a port number")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError("must be true or false")
        return value
    if value is not None and not isinstance(value, str | int):
        raise TypeError("has the wrong type")
    return value


class Profile:
    """Where one profile's files live, and its settings."""

    def __init__(self, name: str = "default", root: Path | None = None) -> None:
        if not PROFILE_NAME_RE.fullmatch(name):
            raise ValueError("a profile name is 1 to 40 letters, digits, '.', '_' or '-'")
        self.name = name
        base_config = root / "config" if root else Path(platformdirs.user_config_dir("parley"))
        base_data = root / "data" if root else Path(platformdirs.user_data_dir("parley"))
        self.config_dir = base_config / "profiles" / name
        self.data_dir = base_data / "profiles" / name
        self.settings_path = self.config_dir / "settings.json"
        self.settings = self.load_settings()
        #: The last write started by save_settings_soon (None when none is under way).
        self._writing: threading.Thread | None = None

    @property
    def embedded_db_path(self) -> Path:
        """The embedded server's database, in this profile's data directory."""
        return self.data_dir / "server.db"

    def load_settings(self) -> Settings:
        """Read the settings file (defaults when missing or unreadable)."""
        try:
            text = self.settings_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Settings()
        except OSError as exc:
            log.warning("cannot read %s: %s; using defaults", self.settings_path, exc)
            return Settings()
        try:
            return Settings.from_json(json.loads(text))
        except ValueError:
            log.warning("%s is not valid JSON; using defaults", self.settings_path)
            return Settings()

    def save_settings(self) -> None:
        """Write the settings (atomically), after any write save_settings_soon started."""
        self.settings_written()
        _atomic_write(self.settings_path, json.dumps(self.settings.to_json(), indent=2))

    def save_settings_soon(self) -> None:
        """Write the settings as they are now, on a thread of its own, after the writes
        started before (so the last choice wins); Python's exit waits for it.

        For choices made mid-call (a device switched): the write ends with an fsync, and on
        a busy disk an fsync can take seconds, during which the event loop that carries
        the call's audio would make no turn.
        """
        text = json.dumps(self.settings.to_json(), indent=2)
        previous = self._writing

        def write() -> None:
            if previous is not None:
                previous.join()
            try:
                _atomic_write(self.settings_path, text)
            except OSError as exc:
                log.warning("cannot write %s: %s", self.settings_path, exc)

        self._writing = threading.Thread(target=write, name="parley-settings-write")
        self._writing.start()

    def settings_written(self, timeout: float | None = None) -> bool:
        """Wait for the writes save_settings_soon started; whether they are all done."""
        writing = self._writing
        if writing is None:
            return True
        writing.join(timeout)
        if writing.is_alive():
            return False
        if self._writing is writing:
            self._writing = None
        return True

    def credentials(self) -> CredentialStore:
        """Where this profile's session token is kept."""
        return CredentialStore(
            self.config_dir / "credentials.json", f"{KEYRING_SERVICE}:{self.name}"
        )


@dataclass(frozen=True, slots=True)
class SavedSession:
    """What "keep me signed in" remembers."""

    server_url: str
    username: str
    token: str


class CredentialStore:
    """The saved session token: in the system keyring when it has one, else in a 0600 file."""

    def __init__(self, path: Path, service: str) -> None:
        self.path = path
        self.service = service

    @staticmethod
    def _keyring() -> Any | None:
        """The system keyring, or ``None`` where there is none (a server, a bare desktop)."""
        try:
            import keyring
            from keyring.backends import fail
        except ImportError:
            return None
        backend = keyring.get_keyring()
        if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
            return None
        return keyring

    @property
    def where(self) -> str:
        """``keyring`` or ``file``: for the settings window."""
        return "keyring" if self._keyring() else "file"

    def save(self, session: SavedSession) -> None:
        """Remember a session (replacing the previous one)."""
        record = json.dumps(asdict(session))
        ring = self._keyring()
        if ring is not None:
            try:
                ring.set_password(self.service, "session", record)
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                return
            except Exception as exc:  # a locked or broken keyring: fall back to the file
                log.warning("keyring refused the token (%s); using a private file", exc)
        _atomic_write(self.path, record, mode=0o600)

    def load(self) -> SavedSession | None:
        """The remembered session, if any and readable."""
        record: str | None = None
        ring = self._keyring()
        if ring is not None:
            with contextlib.suppress(Exception):
                record = ring.get_password(self.service, "session")
        if record is None:
            try:
                record = self.path.read_text(encoding="utf-8")
            except OSError:
                return None
        try:
            data = json.loads(record)
            return SavedSession(str(data["server_url"]), str(data["username"]), str(data["token"]))
        except (ValueError, KeyError, TypeError):
            log.warning("the saved session is unreadable; sign in again")
            return None

    def clear(self) -> None:
        """Forget the session (sign out)."""
        ring = self._keyring()
        if ring is not None:
            with contextlib.suppress(Exception):
                ring.delete_password(self.service, "session")
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
