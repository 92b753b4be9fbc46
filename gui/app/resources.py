"""Finds and loads the files in ``resources/``: icons, the app icon, style sheets and sounds.

The folder is found in a source checkout (``<project>/resources``), in a PyInstaller bundle
(``sys._MEIPASS/resources``), or wherever ``PARLEY_RESOURCES`` points (for system packages).

Control icons are one-colour line drawings (``resources/icons/<name>.svg``, black strokes).
Qt's SVG renderer ignores CSS ``color``/``currentColor``, so :func:`icon` tints instead: it
renders the SVG with ``QSvgRenderer`` and paints the colour over it with
``CompositionMode_SourceIn``, which keeps the drawing's alpha and replaces its colour. One SVG
thus serves every theme and state. Results are cached per (name, colour, size).

Everything that makes a ``QPixmap`` needs a ``QGuiApplication`` (or ``QApplication``) first.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

#: Environment variable that, when set, names the resources folder (packagers' override).
RESOURCES_ENV = "PARLEY_RESOURCES"
#: The themes :func:`stylesheet` knows.
THEMES = ("light", "dark")
#: Sizes at which :func:`app_icon` provides pixmaps.
APP_ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def resources_dir() -> Path:
    """The resources folder: ``$PARLEY_RESOURCES``, the PyInstaller bundle's, or the checkout's."""
    override = os.environ.get(RESOURCES_ENV)
    if override:
        return Path(override)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle is not None:
        return Path(bundle) / "resources"
    # gui/app/resources.py -> project root is two folders above gui/.
    return Path(__file__).resolve().parents[2] / "resources"


def resource_path(*parts: str) -> Path:
    """The path of ``resources/<parts...>`` (not checked for existence)."""
    return resources_dir().joinpath(*parts)


def _checked_name(name: str) -> str:
    """``name`` if it is a plain file name (no folders, no parent references)."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"not a resource name: {name!r}")
    return name


def icon_path(name: str) -> Path:
    """The SVG of control icon ``name`` (``"mic"`` or ``"mic.svg"``); FileNotFoundError if none."""
    name = _checked_name(name)
    path = resource_path("icons", name if name.endswith(".svg") else f"{name}.svg")
    if not path.is_file():
        raise FileNotFoundError(f"no icon {name!r} in {path.parent}")
    return path


def icon_names() -> list[str]:
    """The names of all control icons (without ``.svg``), sorted; the app icon is not one."""
    return sorted(p.stem for p in resource_path("icons").glob("*.svg") if p.stem != "app")


def render_svg(path: Path, size: int, color: QColor | None = None, ratio: float = 1.0) -> QPixmap:
    """Render the SVG at ``path`` into a ``size`` x ``size`` pixmap, tinted with ``color``.

    ``ratio`` is the device pixel ratio: the pixmap has ``size * ratio`` pixels and reports
    ``size`` logical pixels. The drawing keeps its aspect ratio and is centred.
    """
    renderer = QSvgRenderer(str(path))
    if not renderer.isValid():
        raise ValueError(f"cannot read SVG {path}")
    pixels = max(1, round(size * ratio))
    image = QImage(pixels, pixels, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    box = renderer.viewBoxF().size()
    box.scale(QSize(pixels, pixels).toSizeF(), Qt.AspectRatioMode.KeepAspectRatio)
    target = QRectF(
        (pixels - box.width()) / 2, (pixels - box.height()) / 2, box.width(), box.height()
    )
    renderer.render(painter, target)
    if color is not None:
        # Keep the drawing's coverage (alpha), replace its colour.
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceIn)
        painter.fillRect(image.rect(), color)
    painter.end()
    pixmap = QPixmap.fromImage(image)
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


def _as_color(color: QColor | str | None) -> QColor | None:
    if color is None:
        return None
    result = QColor(color)
    if not result.isValid():
        raise ValueError(f"not a colour: {color!r}")
    return result


def icon(name: str, color: QColor | str | None = None, size: int = 24) -> QIcon:
    """Control icon ``name`` (e.g. ``"mic-off"``) tinted with ``color``, ``size`` px square.

    ``color`` is a ``QColor`` or anything ``QColor`` accepts (``"#3a76f0"``, ``"white"``);
    ``None`` keeps the drawing's own colour (black). The icon holds pixmaps for device pixel
    ratios 1 and 2. Cached: the same arguments return the same (shared) icon.
    """
    if size <= 0:
        raise ValueError(f"icon size must be positive, not {size}")
    tint = _as_color(color)
    key = tint.name(QColor.NameFormat.HexArgb) if tint is not None else None
    return _icon(name, key, size)


@functools.cache
def _icon(name: str, color_key: str | None, size: int) -> QIcon:
    _drop_cache_on_quit()
    path = icon_path(name)
    tint = QColor(color_key) if color_key is not None else None
    result = QIcon()
    for ratio in (1.0, 2.0):
        result.addPixmap(render_svg(path, size, tint, ratio))
    return result


@functools.cache
def app_icon() -> QIcon:
    """The app's full-colour icon (``icons/app.svg``), with pixmaps from 16 to 512 px."""
    _drop_cache_on_quit()
    path = icon_path("app")
    result = QIcon()
    for size in APP_ICON_SIZES:
        result.addPixmap(render_svg(path, size))
    return result


def stylesheet(theme: str) -> str:
    """The Qt style sheet of ``theme`` (``"light"`` or ``"dark"``); ValueError for others."""
    if theme not in THEMES:
        raise ValueError(f"unknown theme {theme!r}; expected one of {', '.join(THEMES)}")
    return resource_path("themes", f"{theme}.qss").read_text(encoding="utf-8")


def sound_path(name: str) -> Path:
    """The WAV file of sound ``name`` (``"ringtone"`` or ``"ringtone.wav"``).

    Raises FileNotFoundError when there is no such sound.
    """
    name = _checked_name(name)
    path = resource_path("sounds", name if name.endswith(".wav") else f"{name}.wav")
    if not path.is_file():
        raise FileNotFoundError(f"no sound {name!r} in {path.parent}")
    return path


@functools.cache
def _drop_cache_on_quit() -> None:
    """Once: clear the cache when the application quits, so no pixmap outlives it."""
    app = QCoreApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(clear_cache)


def clear_cache() -> None:
    """Forget cached icons (after the resources folder changed, e.g. in tests)."""
    _icon.cache_clear()
    app_icon.cache_clear()
