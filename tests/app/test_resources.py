"""The files in ``resources/`` and their loader ``gui.app.resources``.

Icons render and tint, the style sheets parse and keep text readable, the sounds have the
format the app expects, the generator scripts reproduce what is committed, and the Linux
desktop entry and AppStream metadata pass their validators (``desktop-file-validate`` from the
Debian package ``desktop-file-utils``, ``appstreamcli`` from ``appstream``).
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import importlib.util
import re
import shutil
import subprocess
import sys
import wave
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PySide6.QtCore import QSize, QtMsgType, qInstallMessageHandler
from PySide6.QtGui import QColor, QIcon, QImage
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QListView,
    QMainWindow,
    QMenu,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gui.app import resources

ROOT = Path(__file__).resolve().parents[2]
RES = ROOT / "resources"
CONTROL_ICONS = {
    "mic", "mic-off", "camera", "camera-off", "screen-share", "screen-share-stop", "hang-up",
    "phone", "video-call", "chat", "settings", "add-contact", "search", "more", "close", "check",
    "shield", "signal-bars", "speaker", "echo",
}  # fmt: skip
ALL_SVGS = sorted(p.name for p in (RES / "icons").glob("*.svg"))


@pytest.fixture
def app(qapp: QApplication) -> Iterator[QApplication]:
    """The test QApplication, with the icon cache and the style sheet reset afterwards."""
    yield qapp
    qapp.setStyleSheet("")
    resources.clear_cache()


def _image(icon: QIcon, size: int) -> QImage:
    pixmap = icon.pixmap(size, size)
    assert not pixmap.isNull()
    return pixmap.toImage().convertToFormat(QImage.Format.Format_RGBA8888)


def _pixels(image: QImage) -> np.ndarray:
    """An RGBA8888 image as an (h, w, 4) array (a copy: the image may go away)."""
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes()).copy()
    return data.reshape(height, image.bytesPerLine())[:, : width * 4].reshape(height, width, 4)


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"parley_{name}", RES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- Icons ---------------------------------------------------------------------------------


def test_every_control_icon_is_there() -> None:
    assert set(resources.icon_names()) == CONTROL_ICONS
    assert (RES / "icons" / "app.svg").is_file()


@pytest.mark.parametrize("name", sorted(CONTROL_ICONS))
def test_control_icons_share_one_line_style(name: str) -> None:
    root = ET.parse(RES / "icons" / f"{name}.svg").getroot()
    assert root.get("viewBox") == "0 0 24 24"
    assert root.get("stroke-width") == "2"
    assert root.get("stroke-linecap") == "round"
    assert root.get("stroke-linejoin") == "round"
    assert root.get("fill") == "none"
    assert "currentColor" not in (RES / "icons" / f"{name}.svg").read_text()


@pytest.mark.parametrize("filename", ALL_SVGS)
@pytest.mark.parametrize("size", [16, 24, 64])
def test_every_svg_renders_visible(app: QApplication, filename: str, size: int) -> None:
    pixmap = resources.render_svg(RES / "icons" / filename, size)
    assert pixmap.width() == size and pixmap.height() == size
    alpha = _pixels(pixmap.toImage().convertToFormat(QImage.Format.Format_RGBA8888))[..., 3]
    covered = np.count_nonzero(alpha > 128) / alpha.size
    # Visible, and a drawing rather than a filled square (the app icon is mostly filled).
    assert covered > 0.03, f"{filename} at {size}px is (nearly) transparent"
    assert covered < (0.97 if filename == "app.svg" else 0.6)


def test_tint_replaces_the_colour_and_keeps_the_shape(app: QApplication) -> None:
    red = _pixels(_image(resources.icon("mic", "#ff0000", 48), 48))
    blue = _pixels(_image(resources.icon("mic", QColor(0, 0, 255), 48), 48))
    plain = _pixels(_image(resources.icon("mic", None, 48), 48))
    opaque = red[..., 3] > 200
    assert opaque.any()
    assert (red[opaque][:, :3] == [255, 0, 0]).all()
    assert (blue[opaque][:, :3] == [0, 0, 255]).all()
    assert (plain[opaque][:, :3] == [0, 0, 0]).all()
    np.testing.assert_array_equal(red[..., 3], blue[..., 3])
    np.testing.assert_array_equal(red[..., 3], plain[..., 3])


def test_icon_is_cached_and_has_a_hidpi_pixmap(app: QApplication) -> None:
    first = resources.icon("camera", "#3a76f0")
    assert resources.icon("camera", QColor("#3a76f0")) is first
    assert resources.icon("camera", "#3a76f0", 32) is not first
    assert {(s.width(), s.height()) for s in first.availableSizes()} >= {(24, 24)}
    hidpi = first.pixmap(QSize(24, 24), 2.0)
    assert (hidpi.width(), hidpi.devicePixelRatio()) == (48, 2.0)


def test_icon_errors(app: QApplication) -> None:
    with pytest.raises(FileNotFoundError):
        resources.icon("no-such-icon")
    with pytest.raises(ValueError):
        resources.icon("../themes/light")
    with pytest.raises(ValueError):
        resources.icon("mic", "not a colour")
    with pytest.raises(ValueError):
        resources.icon("mic", size=0)


def test_app_icon_is_colourful_at_every_size(app: QApplication) -> None:
    icon = resources.app_icon()
    sizes = {s.width() for s in icon.availableSizes()}
    assert sizes >= {16, 32, 48, 64, 128, 256, 512}
    pixels = _pixels(_image(icon, 256))
    opaque = pixels[pixels[..., 3] == 255][:, :3].astype(int)
    saturation = opaque.max(axis=1) - opaque.min(axis=1)
    assert np.count_nonzero(saturation > 100) > 0.3 * len(opaque)  # full colour, not a glyph


def test_make_icons_exports_the_hicolor_pngs(app: QApplication, tmp_path: Path) -> None:
    make_icons = _load_script("make_icons")
    written = make_icons.export(tmp_path)
    for size in (16, 32, 48, 64, 128, 256, 512):
        png = tmp_path / f"{size}x{size}" / "apps" / "parley.png"
        assert png in written
        image = QImage(str(png))
        assert (image.width(), image.height()) == (size, size)
        assert image.hasAlphaChannel()
        alpha = _pixels(image.convertToFormat(QImage.Format.Format_RGBA8888))[..., 3]
        assert alpha[0, 0] == 0 and alpha[size // 2, size // 2] == 255  # rounded corners, body
    assert (tmp_path / "scalable" / "apps" / "parley.svg").read_bytes() == (
        RES / "icons" / "app.svg"
    ).read_bytes()


# ---- Style sheets --------------------------------------------------------------------------


def _styled_window() -> QMainWindow:
    """A window with every widget and role the style sheets style."""
    window = QMainWindow()
    body = QWidget()
    layout = QVBoxLayout(body)
    title = QLabel("Parley")
    title.setObjectName("title")
    layout.addWidget(title)
    for role, level in (("banner", None), ("banner", "error"), ("banner", "info"),
                        ("badge", None), ("muted", None), ("error", None)):  # fmt: skip
        label = QLabel(role)
        label.setProperty("role", role)
        if level:
            label.setProperty("level", level)
        layout.addWidget(label)
    layout.addWidget(QPushButton("plain"))
    for button_role in ("primary", "accept", "link", "danger", "control"):
        button = QPushButton(button_role)
        button.setProperty("role", button_role)
        layout.addWidget(button)
    hang_up = QPushButton()
    hang_up.setProperty("role", "danger")
    hang_up.setProperty("shape", "round")
    layout.addWidget(hang_up)
    layout.addWidget(QLineEdit("text"))
    combo = QComboBox()
    combo.addItems(["Online", "Away"])
    layout.addWidget(combo)
    tabs = QTabWidget()
    tabs.addTab(QListView(), "Contacts")
    tabs.addTab(QWidget(), "History")
    layout.addWidget(tabs)
    window.setCentralWidget(body)
    menu = QMenu(window)
    menu.addAction("Settings")
    return window


def _qt_warnings_while(app: QApplication, qss: str) -> list[str]:
    """Qt's warnings while ``qss`` is applied to the app and a full window is polished."""
    messages: list[str] = []

    def handler(kind: QtMsgType, _context: object, message: str) -> None:
        if kind != QtMsgType.QtDebugMsg:
            messages.append(message)

    previous = qInstallMessageHandler(handler)
    try:
        app.setStyleSheet(qss)
        window = _styled_window()
        window.show()
        for widget in window.findChildren(QWidget):
            widget.ensurePolished()
        app.processEvents()
        window.close()
        window.deleteLater()
        app.processEvents()
    finally:
        qInstallMessageHandler(previous)
    return [m for m in messages if "stylesheet" in m.lower() or "style sheet" in m.lower()]


def test_a_broken_style_sheet_is_reported(app: QApplication) -> None:
    """The check below can fail: Qt does warn about a style sheet it cannot parse."""
    warnings = _qt_warnings_while(app, "QPushButton { color: #fff; ")
    assert any("Could not parse application stylesheet" in m for m in warnings)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_style_sheet_parses(app: QApplication, theme: str) -> None:
    qss = resources.stylesheet(theme)
    assert 'QPushButton[role="danger"]' in qss
    assert _qt_warnings_while(app, qss) == []


def test_unknown_theme() -> None:
    with pytest.raises(ValueError, match="unknown theme"):
        resources.stylesheet("blue")


_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_COMMENT = re.compile(r"/\*.*?\*/", re.S)


def _rules(theme: str) -> list[tuple[str, dict[str, str]]]:
    text = _COMMENT.sub("", (RES / "themes" / f"{theme}.qss").read_text())
    rules = []
    for selector, body in _RULE.findall(text):
        props = {}
        for declaration in body.split(";"):
            if ":" in declaration:
                key, value = declaration.split(":", 1)
                props[key.strip()] = value.strip()
        rules.append((" ".join(selector.split()), props))
    return rules


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_text_contrast_is_wcag_aa(theme: str) -> None:
    """Every rule that sets a text colour on an opaque background: 4.5:1 at least."""
    checked = 0
    for selector, props in _rules(theme):
        colour, background = props.get("color", ""), props.get("background-color", "")
        if ":disabled" in selector or not (colour.startswith("#") and background.startswith("#")):
            continue
        ratio = _contrast(colour, background)
        assert ratio >= 4.5, f"{theme}: {selector}: {colour} on {background} is {ratio:.2f}:1"
        checked += 1
    assert checked >= 25


def test_themes_style_the_same_things() -> None:
    assert [s for s, _ in _rules("light")] == [s for s, _ in _rules("dark")]


# ---- Sounds --------------------------------------------------------------------------------

SOUNDS = {  # name: (shortest s, longest s, largest file in bytes)
    "ringtone": (2.3, 2.7, 150_000),
    "message": (0.05, 0.4, 30_000),
    "hangup": (0.3, 0.9, 40_000),
}


def _samples(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path), "rb") as sound:
        params = sound.getparams()
        frames = sound.readframes(sound.getnframes())
    return params, np.frombuffer(frames, dtype="<i2")


@pytest.mark.parametrize("name", sorted(SOUNDS))
def test_sound_format(name: str) -> None:
    shortest, longest, largest = SOUNDS[name]
    path = resources.sound_path(name)
    assert path == resources.sound_path(f"{name}.wav") == RES / "sounds" / f"{name}.wav"
    assert path.stat().st_size < largest
    params, samples = _samples(path)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 22050)
    assert params.comptype == "NONE"
    assert shortest <= params.nframes / params.framerate <= longest
    peak = np.abs(samples.astype(int)).max()
    assert 0.3 * 32767 < peak < 32767  # audible, never clipped
    assert abs(int(samples[0])) < 200 and abs(int(samples[-1])) < 200  # no click at either end


def test_sound_errors() -> None:
    with pytest.raises(FileNotFoundError):
        resources.sound_path("no-such-sound")
    with pytest.raises(ValueError):
        resources.sound_path("../parley.desktop")


def test_make_sounds_reproduces_the_committed_files(tmp_path: Path) -> None:
    _load_script("make_sounds").main(["--output", str(tmp_path)])
    for name in SOUNDS:
        committed_params, committed = _samples(RES / "sounds" / f"{name}.wav")
        made_params, made = _samples(tmp_path / f"{name}.wav")
        assert made_params == committed_params
        # Equal but for rounding in the last bit (libm differences between machines).
        assert np.abs(made.astype(int) - committed.astype(int)).max() <= 1


# ---- Finding the folder --------------------------------------------------------------------


def test_resource_path_in_a_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(resources.RESOURCES_ENV, raising=False)
    monkeypatch.delattr(sys, "_MEIPASS", raising=False)
    assert resources.resource_path() == RES
    assert resources.resource_path("themes", "dark.qss") == RES / "themes" / "dark.qss"


def test_resource_path_in_a_pyinstaller_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(resources.RESOURCES_ENV, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources.resource_path("sounds") == tmp_path / "resources" / "sounds"


def test_resource_path_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "_MEIPASS", "/nowhere", raising=False)
    monkeypatch.setenv(resources.RESOURCES_ENV, str(tmp_path))
    assert resources.resource_path("icons") == tmp_path / "icons"


# ---- Linux desktop integration -------------------------------------------------------------


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: apt-get install {package}")
    return path


def test_desktop_entry_is_valid() -> None:
    desktop = RES / "parley.desktop"
    done = subprocess.run(
        [_tool("desktop-file-validate", "desktop-file-utils"), str(desktop)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and done.stdout.strip() == "", done.stdout + done.stderr
    entry = dict(line.split("=", 1) for line in desktop.read_text().splitlines() if "=" in line)
    assert entry["Icon"] == _load_script("make_icons").ICON_NAME
    assert entry["Exec"].split()[0] == "parley"
    assert entry["Terminal"] == "false"
    # Qt's X11 window class is the application name set in gui/app/main.py ("Parley").
    assert entry["StartupWMClass"] == "Parley"
    assert "VideoConference" in entry["Categories"].split(";")


def test_appstream_metadata_is_valid() -> None:
    metainfo = RES / "org.parley.Parley.metainfo.xml"
    done = subprocess.run(
        [_tool("appstreamcli", "appstream"), "validate", "--no-net", str(metainfo)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    root = ET.parse(metainfo).getroot()
    assert root.findtext("id") == "org.parley.Parley"
    assert root.findtext("project_license") == "GPL-3.0-or-later"
    assert root.findtext("metadata_license") == "CC0-1.0"
    assert root.findtext("launchable") == "parley.desktop"
