"""What goes into Parley's PyInstaller bundle: helpers for ``installer/parley.spec``.

The spec is shared by the Linux, Windows and macOS builds; the decisions live here, in plain
Python that the linters and the tests can see:

- :data:`EXCLUDED_MODULES`: Python modules the app never imports, among them the PySide6
  bindings of Qt modules it does not use (the app imports QtCore, QtGui, QtWidgets, QtSvg and
  QtMultimedia, which itself loads QtNetwork).
- :func:`keep_binary`: drops the Qt plugins the app cannot use (embedded-device platforms, the
  on-screen keyboard that drags in Qt Quick's input stack, GTK theming, network-information and
  TLS backends), Qt's translations (the app loads none), and on Linux every library that comes
  from the system (``/usr/lib``, ``/lib``) rather than from Python or a wheel: the ``.deb``
  depends on the distribution's packages for those, so the bundle never carries a second, older
  ``libX11``, ``libglib`` or ``libstdc++`` that could clash with what the desktop loads.
- :func:`strip_binaries`: strips the symbol tables of every library on Linux (30 MB less; a
  self-built Python's ``libpython`` is 29 MB with its debug information, 5 MB without) and
  removes RUNPATHs that name folders of the build machine.
- :func:`finish_folder`: after PyInstaller, the ``parley-cli`` and ``parley-server`` links (Linux
  and macOS; Windows gets three executables instead, see ``installer/launcher.py``).

Qt Quick and Qml stay: Qt Multimedia's FFmpeg plugin, which the app needs for cameras, screen
capture and video frames, links them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

#: The commands the bundle provides; ``parley`` is the real executable.
COMMANDS = ("parley", "parley-cli", "parley-server")

#: Python modules left out of the bundle.
EXCLUDED_MODULES = [
    # Qt bindings the app does not use (PyInstaller follows PySide6's module dependencies).
    "PySide6.QtConcurrent",
    "PySide6.QtDBus",
    "PySide6.QtMultimediaWidgets",
    "PySide6.QtOpenGL",
    "PySide6.QtOpenGLWidgets",
    "PySide6.QtQml",
    "PySide6.QtQuick",
    "PySide6.QtQuickWidgets",
    "PySide6.QtWebEngineCore",
    "PySide6.QtWebEngineWidgets",
    "PySide6.QtPdf",
    "PySide6.QtCharts",
    "PySide6.QtDataVisualization",
    "PySide6.Qt3DCore",
    "PySide6.QtBluetooth",
    "PySide6.QtPositioning",
    "PySide6.QtSensors",
    "PySide6.QtSerialPort",
    "PySide6.QtSql",
    "PySide6.QtTest",
    "PySide6.QtDesigner",
    "PySide6.QtHelp",
    "PySide6.QtUiTools",
    "PySide6.QtXml",
    # Other Qt bindings: qasync probes for them by name; PyInstaller refuses two in one bundle.
    "PyQt5",
    "PyQt6",
    "PySide2",
    # Development and GUI tool kits nothing imports at run time.
    "tkinter",
    "_tkinter",
    "setuptools",
    "pkg_resources",
    "distutils",
    "pydoc",
    "pydoc_data",
    "doctest",
    "pdb",
    "lib2to3",
    "IPython",
    "matplotlib",
    "pytest",
    "hypothesis",
    # Interactive consoles: websockets' own client (python -m websockets) and readline.
    "websockets.cli",
    "websockets.__main__",
    "readline",
]

#: Qt plugins (folder, or folder/file-name stem without ``lib``/``q`` prefixes) left out.
DROPPED_QT_PLUGINS = {
    # Platforms for embedded devices and remote framebuffers; kept: xcb, wayland, offscreen
    # (Linux), windows, cocoa, minimal is dropped too (offscreen does the headless job).
    "platforms/eglfs",
    "platforms/linuxfb",
    "platforms/minimal",
    "platforms/minimalegl",
    "platforms/vnc",
    "platforms/vkkhrdisplay",
    "platforms/direct2d",
    "egldeviceintegrations",
    # wl_shell, a Wayland protocol compositors dropped years ago (xdg-shell replaced it).
    "wayland-shell-integration/wl-shell-plugin",
    "generic",  # evdev/tuio/libinput input for eglfs and linuxfb
    # The on-screen keyboard pulls in Qt Virtual Keyboard and its QML stack.
    "platforminputcontexts/tvirtualkeyboardplugin",
    # GTK 3 theming would load the system's GTK into the process; the app has its own themes.
    "platformthemes/gtk3",
    # Qt's network status and TLS backends: the app's networking is Python's (websockets, ssl).
    "networkinformation",
    "tls",
    # Image formats the app never reads (it draws SVG with QtSvg; PNG is built in).
    "imageformats/tiff",
    "imageformats/webp",
    "imageformats/tga",
    "imageformats/wbmp",
    "imageformats/icns",
    "imageformats/pdf",
    # Qt Quick plugins that come along with QtQuick when something pulls it in.
    "qmltooling",
    "scenegraph",
    "sqldrivers",
    "designer",
    "position",
    "sensors",
    "canbus",
    "webview",
}

#: Qt libraries that only the dropped plugins needed.
DROPPED_QT_LIBRARIES = (
    "Qt6VirtualKeyboard",
    "Qt6EglFSDeviceIntegration",
    "Qt6EglFsKmsSupport",
    "Qt6WlShellIntegration",
    "Qt6Pdf",
    "Qt6WebEngine",
    "Qt6Charts",
    "Qt6DataVisualization",
    "Qt63D",
    "Qt6Bluetooth",
    "Qt6Positioning",
    "Qt6Sensors",
    "Qt6SerialPort",
    "Qt6Sql",
    "Qt6Test",
    "Qt6Designer",
    "Qt6Help",
)

#: Where Linux distributions keep their libraries: the bundle leaves these to the system.
SYSTEM_LIBRARY_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/")


def _plugin_key(dest: str) -> tuple[str, str] | None:
    """``("platforms", "xcb")`` for ``PySide6/Qt/plugins/platforms/libqxcb.so``; else None."""
    parts = PurePosixPath(dest.replace("\\", "/")).parts
    if "plugins" not in parts:
        return None
    index = parts.index("plugins")
    if index == 0 or parts[index - 1] not in ("Qt", "PySide6"):
        return None
    rest = parts[index + 1 :]
    if len(rest) < 2:
        return (rest[0], "") if rest else None
    stem = rest[-1].split(".", 1)[0].removeprefix("lib")
    return rest[0], stem[1:] if stem.startswith("q") else stem


def dropped_plugin(dest: str) -> bool:
    """Whether ``dest`` (a path inside the bundle) is a Qt plugin the app does without."""
    key = _plugin_key(dest)
    if key is None:
        return False
    folder, name = key
    return folder in DROPPED_QT_PLUGINS or f"{folder}/{name}" in DROPPED_QT_PLUGINS


def dropped_qt_library(dest: str) -> bool:
    """Whether ``dest`` is a Qt library only unused modules or dropped plugins need.

    Matches ``libQt6VirtualKeyboard.so.6`` (Linux), ``Qt6VirtualKeyboard.dll`` (Windows) and
    anything inside ``QtVirtualKeyboard.framework`` (macOS).
    """
    for part in PurePosixPath(dest.replace("\\", "/")).parts:
        name = part.removeprefix("lib")
        for prefix in DROPPED_QT_LIBRARIES:
            framework = prefix.replace("Qt6", "Qt", 1)
            if name.startswith(prefix) or (
                part.endswith(".framework") and part.startswith(framework)
            ):
                return True
    return False


def is_translation(dest: str) -> bool:
    """Whether ``dest`` is one of Qt's translation catalogues (the app loads none)."""
    parts = PurePosixPath(dest.replace("\\", "/")).parts
    return "translations" in parts and dest.endswith(".qm")


def is_system_library(source: str | os.PathLike[str], platform: str = sys.platform) -> bool:
    """On Linux: whether a library the analysis found is the distribution's (left to Depends).

    The interpreter's own ``libpython`` is always kept, whoever installed it.
    """
    if not platform.startswith("linux"):
        return False
    real = os.path.realpath(source)
    if Path(real).name.startswith("libpython"):
        return False
    return real.startswith(SYSTEM_LIBRARY_DIRS)


def keep_binary(dest: str, source: str, platform: str = sys.platform) -> bool:
    """Whether the file ``source``, bound for ``dest`` in the bundle, is kept."""
    return not (
        dropped_plugin(dest)
        or dropped_qt_library(dest)
        or is_translation(dest)
        or is_system_library(source, platform)
    )


TocEntry = tuple[str, str, str]


def trim(toc: Iterable[TocEntry], platform: str = sys.platform) -> list[TocEntry]:
    """The entries of a PyInstaller TOC (``(dest, source, kind)``) that the bundle keeps."""
    return [entry for entry in toc if keep_binary(entry[0], entry[1], platform)]


def _is_elf(path: Path) -> bool:
    with path.open("rb") as stream:
        return stream.read(4) == b"\x7fELF"


def _absolute_runpath(path: Path) -> bool:
    """Whether an ELF file's RPATH/RUNPATH names a folder of the build machine (not $ORIGIN)."""
    try:
        dynamic = subprocess.run(
            ["readelf", "-d", "-W", str(path)], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    for line in dynamic.splitlines():
        if "(RUNPATH)" in line or "(RPATH)" in line:
            value = line.split("[", 1)[-1].rstrip("]")
            if any(entry.startswith("/") for entry in value.split(":")):
                return True
    return False


def strip_binaries(toc: Iterable[TocEntry], workdir: Path) -> list[TocEntry]:
    """On Linux, replace every ELF library of the bundle by a stripped copy (``--strip-unneeded``).

    Saves about 30 MB (the interpreter's own ``libpython`` alone shrinks from 29 MB to 5 MB when
    Python was built with debug information, as pyenv does). Libraries whose RUNPATH names a
    folder of the build machine (pyenv's ``/root/.pyenv/versions/X/lib``) lose it too
    (``chrpath -d``): inside the bundle the loader finds them by ``$ORIGIN`` or PyInstaller's
    search path, and a path of the build machine must not be searched on the user's.
    A file ``strip`` cannot handle is kept as it was. Without ``strip``, nothing changes.
    """
    entries = list(toc)
    if not sys.platform.startswith("linux") or shutil.which("strip") is None:
        return entries
    chrpath = shutil.which("chrpath")
    out = workdir / "stripped"
    result = []
    for dest, source, kind in entries:
        path = Path(source)
        if kind in ("BINARY", "EXTENSION") and path.is_file() and _is_elf(path):
            target = out / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            target.chmod(0o644)
            stripped = subprocess.run(
                ["strip", "--strip-unneeded", str(target)], capture_output=True, check=False
            )
            if chrpath is not None and _absolute_runpath(target):
                subprocess.run([chrpath, "-d", str(target)], capture_output=True, check=False)
            if stripped.returncode == 0:
                source = str(target)
        result.append((dest, source, kind))
    return result


def resource_datas(root: Path) -> list[tuple[str, str]]:
    """``(source, dest folder)`` pairs for the app's resources (not their generator scripts)."""
    folder = root / "resources"
    pairs = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or path.suffix in (".py", ".md") or path.name.startswith("."):
            continue
        if relative.parts[:2] == ("icons", "hicolor"):  # desktop-theme PNGs: packages only
            continue
        pairs.append((str(path), str(PurePosixPath("resources") / relative.parent.as_posix())))
    return pairs


def macos_minimum_version(
    wheels: Iterable[Iterable[str]] | None = None, machine: str | None = None
) -> str | None:
    """The oldest macOS every installed wheel supports on this machine (``LSMinimumSystemVersion``).

    Each wheel's tags (``cp312-cp312-macosx_14_0_arm64``) for this architecture (or
    ``universal2``) give the oldest system it runs on; the app needs the newest of those.
    ``wheels`` defaults to the tags of every installed distribution.
    """
    import platform

    machine = machine or platform.machine()
    if wheels is None:
        import importlib.metadata

        wheels = [
            [
                line.split(":", 1)[1].strip()
                for line in (dist.read_text("WHEEL") or "").splitlines()
                if line.startswith("Tag:")
            ]
            for dist in importlib.metadata.distributions()
        ]
    needed: tuple[int, int] | None = None
    for tags in wheels:
        versions = []
        for tag in tags:
            found = re.search(r"macosx_(\d+)_(\d+)_(\w+)$", tag)
            if found and found[3] in (machine, "universal2"):
                versions.append((int(found[1]), int(found[2])))
        if versions:
            oldest = min(versions)
            needed = oldest if needed is None else max(needed, oldest)
    return f"{needed[0]}.{needed[1]}" if needed else None


def finish_folder(folder: Path, platform: str = sys.platform) -> None:
    """Add the ``parley-cli`` and ``parley-server`` links next to ``parley`` (not on Windows)."""
    if platform.startswith("win"):
        return
    for command in COMMANDS[1:]:
        link = folder / command
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("parley")
