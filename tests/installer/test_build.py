"""The packaged app, built for real: ``installer/build-linux``, then the ``.deb`` and the tarball.

These tests run the build (minutes), so they carry the ``build`` marker: skip them locally with
``pytest -m "not build"``; CI runs them always. ``PARLEY_REUSE_BUILD=1`` reuses the packages in
``dist/`` when they are newer than every source file (for working on these tests).

The ``.deb`` is unpacked into a temporary root and everything runs from there, with a minimal
environment (no PYTHONPATH, no virtual environment, a fresh home) and outside the source tree,
so the programs can only use what the package carries and what the system has. Figures (sizes,
start-up times) are written to ``build/installer-figures.json`` and printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from signaling import __version__
from tests.installer.helpers import ROOT, isolated_env
from tests.xvfb import Xvfb

pytestmark = [
    pytest.mark.build,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux packages"),
]

FIGURES = ROOT / "build" / "installer-figures.json"
MIB = 1024 * 1024


@dataclass(frozen=True)
class Built:
    """What ``installer/build-linux`` made."""

    deb: Path
    tarball: Path
    bundle: Path
    build_seconds: float | None


def _sources_newer_than(path: Path) -> bool:
    built = path.stat().st_mtime
    for folder in ("gui", "signaling", "installer", "resources"):
        for source in (ROOT / folder).rglob("*"):
            generated = "hicolor" in source.parts or "__pycache__" in source.parts
            if source.is_file() and not generated and source.stat().st_mtime > built:
                return True
    return (ROOT / "pyproject.toml").stat().st_mtime > built


@pytest.fixture(scope="module")
def built() -> Built:
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    deb = ROOT / "dist" / f"parley_{__version__}_{arch}.deb"
    tarball = ROOT / "dist" / f"parley-{__version__}-linux-{os.uname().machine}.tar.gz"
    seconds = None
    reuse = os.environ.get("PARLEY_REUSE_BUILD") == "1"
    if not (reuse and deb.is_file() and tarball.is_file() and not _sources_newer_than(deb)):
        began = time.monotonic()
        result = subprocess.run(
            [str(ROOT / "installer" / "build-linux")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=1700,
        )
        seconds = time.monotonic() - began
        assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-10000:]
    assert deb.is_file() and tarball.is_file()
    return Built(deb, tarball, ROOT / "build" / "dist" / "parley", seconds)


@pytest.fixture(scope="module")
def root(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``.deb`` unpacked: the files as ``dpkg -i`` would install them."""
    target = tmp_path_factory.mktemp("deb-root")
    subprocess.run(["dpkg-deb", "-x", str(built.deb), str(target)], check=True)
    return target


@pytest.fixture(scope="module")
def figures() -> Iterator[dict[str, object]]:
    found: dict[str, object] = {}
    yield found
    FIGURES.parent.mkdir(exist_ok=True)
    previous = json.loads(FIGURES.read_text()) if FIGURES.is_file() else {}
    FIGURES.write_text(json.dumps({**previous, **found}, indent=2) + "\n")
    print("\ninstaller figures:", json.dumps(found, indent=2))


def control(deb: Path) -> dict[str, str]:
    text = subprocess.run(
        ["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    fields: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if line.startswith(" ") and name:
            fields[name] += "\n" + line
        else:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return fields


def run(program: Path, *args: str, home: Path, timeout: float = 120, **env: str):
    return subprocess.run(
        [str(program), *args],
        cwd=home,
        env=isolated_env(home, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# The package -------------------------------------------------------------------------------


def test_deb_metadata_and_size(built: Built, root: Path, figures: dict[str, object]) -> None:
    fields = control(built.deb)
    assert fields["Package"] == "parley" and fields["Version"] == __version__
    depends = {re.sub(r" \(.*\)", "", d).strip() for d in fields["Depends"].split(",")}
    # What Qt needs on a fresh system: X11/xcb, EGL/GL, fonts, D-Bus, sound, Wayland.
    for package in (
        "libc6",
        "libxcb-cursor0",
        "libxcb-icccm4",
        "libxkbcommon-x11-0",
        "libegl1",
        "libgl1",
        "libfontconfig1",
        "libdbus-1-3",
        "libpulse0",
        "libwayland-client0",
        "libssl3",
    ):
        assert package in depends, (package, fields["Depends"])
    assert "pipewire-pulse | pulseaudio" in fields["Recommends"]
    # Screen sharing on Wayland: Qt loads libpipewire-0.3 at run time and talks to the portal.
    assert "libpipewire-0.3-0" in fields["Recommends"]
    assert "xdg-desktop-portal" in fields["Recommends"].split(", ")
    deb_size = built.deb.stat().st_size
    tar_size = built.tarball.stat().st_size
    installed = int(fields["Installed-Size"]) * 1024
    figures.update(
        deb_mib=round(deb_size / MIB, 1),
        tarball_mib=round(tar_size / MIB, 1),
        installed_mib=round(installed / MIB, 1),
        bundle_mib=round(
            sum(
                f.stat().st_size
                for f in built.bundle.rglob("*")
                if f.is_file() and not f.is_symlink()
            )
            / MIB,
            1,
        ),
    )
    if built.build_seconds is not None:
        figures["build_seconds"] = round(built.build_seconds)
    assert deb_size < 150 * MIB


def test_layout_follows_the_desktop_conventions(root: Path) -> None:
    for command in ("parley", "parley-cli", "parley-server"):
        link = root / "usr" / "bin" / command
        assert link.is_symlink() and os.readlink(link) == f"../lib/parley/{command}"
        assert link.resolve().is_file()
        assert (root / "usr" / "share" / "man" / "man1" / f"{command}.1.gz").is_file()
    share = root / "usr" / "share"
    assert (share / "applications" / "parley.desktop").is_file()
    assert (share / "metainfo" / "org.parley.Parley.metainfo.xml").is_file()
    for size in (16, 32, 48, 64, 128, 256, 512):
        assert (share / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "parley.png").is_file()
    assert (share / "icons" / "hicolor" / "scalable" / "apps" / "parley.svg").is_file()
    copyright_ = (share / "doc" / "parley" / "copyright").read_text()
    assert "GPL-3+" in copyright_ and "x264 and x265" in copyright_
    licenses = root / "usr" / "lib" / "parley" / "_internal" / "licenses"
    assert "x264 and x265" in (licenses / "README.md").read_text()
    assert (licenses / "texts" / "LGPL-3.0.txt").is_file()
    assert list((licenses / "python").glob("av-*/licenses/LICENSE.txt"))
    # Nothing from the build machine's system is bundled (Depends covers it).
    internal = root / "usr" / "lib" / "parley" / "_internal"
    assert not list(internal.glob("libX11.so*")) and not list(internal.glob("libglib-2.0.so*"))
    assert not (internal / "PySide6" / "Qt" / "translations").exists()


def test_desktop_entry_and_appstream_validate(root: Path) -> None:
    share = root / "usr" / "share"
    desktop = subprocess.run(
        ["desktop-file-validate", str(share / "applications" / "parley.desktop")],
        capture_output=True,
        text=True,
    )
    assert desktop.returncode == 0 and not desktop.stdout.strip(), desktop.stdout
    appstream = subprocess.run(
        [
            "appstreamcli",
            "validate",
            "--no-net",
            str(share / "metainfo" / "org.parley.Parley.metainfo.xml"),
        ],
        capture_output=True,
        text=True,
    )
    assert appstream.returncode == 0, appstream.stdout + appstream.stderr


def test_lintian_reports_no_error_or_warning(built: Built) -> None:
    report = (ROOT / "build" / "lintian.txt").read_text()
    problems = [line for line in report.splitlines() if line.startswith(("E: ", "W: "))]
    assert problems == [], "\n".join(problems)


# The programs, from the unpacked package ------------------------------------------------------


def test_versions_and_help(root: Path, tmp_path: Path) -> None:
    bin_ = root / "usr" / "bin"
    for command in ("parley", "parley-cli", "parley-server"):
        result = run(bin_ / command, "--version", home=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"{command} {__version__}"
    helped = run(bin_ / "parley-cli", "--help", home=tmp_path)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: parley-cli")


def test_self_test_passes_from_the_unpacked_deb(root: Path, tmp_path: Path) -> None:
    result = run(root / "usr" / "bin" / "parley", "--self-test", home=tmp_path, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    bundle = root / "usr" / "lib" / "parley"
    assert lines[0].endswith(f"bundle {bundle}"), lines[0]  # not the source tree
    assert f"{bundle}/_internal/resources" in result.stdout
    assert "platforms offscreen, wayland, xcb; multimedia ffmpeg" in result.stdout
    assert lines[-1].startswith("self-test passed: 11 checks"), result.stdout
    assert str(ROOT) not in result.stdout + result.stderr


def test_server_serves_from_the_unpacked_deb(root: Path, tmp_path: Path) -> None:
    server = subprocess.Popen(
        [
            str(root / "usr" / "bin" / "parley-server"),
            "--port",
            "0",
            "--db",
            str(tmp_path / "s.db"),
        ],
        cwd=tmp_path,
        env=isolated_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        match = re.search(r"ws://127\.0\.0\.1:(\d+)/ws", line)
        assert match, line + server.stderr.read() if server.stderr else line
        with urllib.request.urlopen(f"http://127.0.0.1:{match[1]}/healthz", timeout=10) as reply:
            assert reply.read() == b"ok\n"
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    assert server.returncode == 0


# Start-up time: the installed app against the source tree --------------------------------------


def time_to_window(command: list[str], home: Path, cwd: Path, **env: str) -> float:
    """Seconds from starting ``command -v`` to its log line "main window shown"; then quit it."""
    shutil.rmtree(home, ignore_errors=True)
    environment = isolated_env(home, **env)
    began = time.monotonic()
    app = subprocess.Popen(
        [*command, "-v"], cwd=cwd, env=environment, stderr=subprocess.PIPE, text=True
    )
    shown = None
    seen = []
    try:
        assert app.stderr is not None
        for line in app.stderr:
            seen.append(line)
            if "main window shown" in line:
                shown = time.monotonic() - began
                break
        time.sleep(0.3)
    finally:
        app.send_signal(signal.SIGTERM)
        rest = app.communicate(timeout=60)[1]
    assert shown is not None, "".join(seen) + rest
    assert app.returncode == 0, "".join(seen) + rest
    assert "Traceback" not in "".join(seen) + rest
    return shown


def test_installed_app_starts_as_fast_as_from_source(
    root: Path, tmp_path: Path, figures: dict[str, object]
) -> None:
    installed = [str(root / "usr" / "bin" / "parley")]
    source = [sys.executable, "-m", "gui"]
    bundle_times, source_times = [], []
    for _ in range(3):  # alternate, so that neither gets a warmer cache
        bundle_times.append(
            time_to_window(installed, tmp_path / "home", tmp_path, QT_QPA_PLATFORM="offscreen")
        )
        source_times.append(
            time_to_window(
                source, tmp_path / "home", ROOT, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT)
            )
        )
    bundle_median, source_median = statistics.median(bundle_times), statistics.median(source_times)
    figures.update(
        window_installed_s=round(bundle_median, 3),
        window_source_s=round(source_median, 3),
        window_installed_runs=[round(t, 3) for t in bundle_times],
        window_source_runs=[round(t, 3) for t in source_times],
    )
    assert bundle_median < source_median * 1.5 + 0.3, (bundle_times, source_times)


@pytest.fixture
def xvfb_display() -> Iterator[str]:
    with Xvfb(1280, 720) as server:  # XvfbError says what is missing
        yield server.display


def test_window_opens_on_x11_with_the_system_libraries(
    root: Path, tmp_path: Path, xvfb_display: str, figures: dict[str, object]
) -> None:
    seconds = time_to_window(
        [str(root / "usr" / "bin" / "parley")],
        tmp_path / "home",
        tmp_path,
        QT_QPA_PLATFORM="xcb",
        DISPLAY=xvfb_display,
    )
    figures["window_installed_xcb_s"] = round(seconds, 3)


# The tarball -----------------------------------------------------------------------------------


def test_tarball_runs_in_place_and_installs(built: Built, tmp_path: Path) -> None:
    with tarfile.open(built.tarball) as archive:
        archive.extractall(tmp_path / "x", filter="tar")
    (folder,) = (tmp_path / "x").iterdir()
    assert folder.name == built.tarball.name.removesuffix(".tar.gz")
    assert "libpulse0" in (folder / "README").read_text()
    result = run(folder / "parley", "--version", home=tmp_path / "home")
    assert result.stdout.strip() == f"parley {__version__}", result.stderr
    prefix = tmp_path / "prefix"
    home = tmp_path / "home"
    installed = run(folder / "install.sh", "--prefix", str(prefix), home=home)
    assert installed.returncode == 0, installed.stderr
    assert run(prefix / "bin" / "parley-server", "--version", home=home).returncode == 0
    desktop = (prefix / "share" / "applications" / "parley.desktop").read_text()
    assert f"Exec={prefix}/bin/parley" in desktop  # the prefix is not on the PATH
    assert (prefix / "share" / "icons" / "hicolor" / "48x48" / "apps" / "parley.png").is_file()
    removed = run(folder / "install.sh", "--prefix", str(prefix), "--uninstall", home=home)
    assert removed.returncode == 0, removed.stderr
    assert not (prefix / "lib" / "parley").exists() and not (prefix / "bin" / "parley").exists()
