"""Export the app icon (``icons/app.svg``) as the PNGs a Linux icon theme wants.

Run with a Python that has PySide6 (no screen needed)::

    python resources/make_icons.py                 # into resources/icons/hicolor/
    python resources/make_icons.py --output DIR    # into DIR (e.g. <prefix>/share/icons/hicolor)

It writes ``<N>x<N>/apps/parley.png`` for N in 16, 32, 48, 64, 128, 256 and 512, plus
``scalable/apps/parley.svg`` (a copy of the SVG). The PNGs are generated files: they are not
committed (``resources/.gitignore``); the installer runs this script when it builds a package.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no screen needed; set before Qt loads

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "icons" / "app.svg"
SIZES = (16, 32, 48, 64, 128, 256, 512)
ICON_NAME = "parley"


def render(svg: Path, size: int) -> QImage:
    """The SVG rendered into a transparent ``size`` x ``size`` image."""
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"make_icons: cannot read {svg}")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    return image


def export(output: Path, svg: Path = SOURCE) -> list[Path]:
    """Write every PNG size and the scalable SVG under ``output``; returns the files written."""
    written = []
    for size in SIZES:
        path = output / f"{size}x{size}" / "apps" / f"{ICON_NAME}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not render(svg, size).save(str(path)):  # PNG, from the suffix
            raise SystemExit(f"make_icons: cannot write {path}")
        written.append(path)
    scalable = output / "scalable" / "apps" / f"{ICON_NAME}.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(svg, scalable)
    written.append(scalable)
    return written


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and export the icons."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=HERE / "icons" / "hicolor",
        help="hicolor theme folder to write into (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    for path in export(args.output):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
