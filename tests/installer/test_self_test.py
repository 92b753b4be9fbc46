"""``parley --self-test`` from the source tree, and the pure parts of the installer scripts.

Cheap enough for every run; the packaged build itself is tested in ``test_build.py``.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from gui.app import self_test
from tests.installer.helpers import ROOT, installer_module, isolated_env

CHECKS = (
    "qt",
    "resources",
    "codecs",
    "echo",
    "server",
    "sign-up",
    "call",
    "video",
    "audio",
    "chat",
    "hang-up",
)


def test_self_test_from_source_passes_without_a_window(tmp_path: Path) -> None:
    # A platform plugin that does not exist: creating any Q(Gui)Application would abort.
    env = isolated_env(tmp_path, QT_QPA_PLATFORM="no-such-platform", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "gui", "--self-test"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Parley 0.1.0 self-test:") and f"source {ROOT}" in lines[0]
    for name in CHECKS:
        assert any(line.split()[:2] == ["ok", name] for line in lines), (name, result.stdout)
    assert lines[-1].startswith("self-test passed: 11 checks")
    assert "Traceback" not in result.stderr


def test_a_failed_check_stops_the_test_and_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> str:
        raise self_test.CheckFailed("PyAV's FFmpeg lacks libvpx (encoder)")

    monkeypatch.setattr(self_test, "check_codecs", broken)
    out = io.StringIO()
    assert self_test.run_self_test(out) == 1
    text = out.getvalue()
    assert "  FAIL  codecs     PyAV's FFmpeg lacks libvpx (encoder)" in text
    assert "server" not in text  # nothing after the failure ran
    assert text.splitlines()[-1].startswith("self-test FAILED at 'codecs': 2 checks passed")


def test_main_dispatches_self_test_without_qt_application(monkeypatch: pytest.MonkeyPatch) -> None:
    from gui.app import main as app_main

    seen = []
    monkeypatch.setattr(self_test, "run_self_test", lambda: seen.append(True) or 0)
    assert app_main.main(["--self-test"]) == 0
    assert seen == [True]
    assert "--self-test" in app_main.build_parser().format_help()


def test_negotiated_codecs_reads_the_first_payload_of_each_section() -> None:
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 96 0\r\na=rtpmap:96 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 97 99\r\na=rtpmap:99 H264/90000\r\na=rtpmap:97 VP8/90000\r\n"
        "m=video 0 UDP/TLS/RTP/SAVPF 97\r\na=rtpmap:97 VP8/90000\r\n"
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
    )
    assert self_test.negotiated_codecs(sdp) == ["opus", "VP8"]


def test_plugin_names_read_every_system_s_file_names(tmp_path: Path) -> None:
    for name in (
        "libqxcb.so",
        "qwindows.dll",
        "libqcocoa.dylib",
        "libffmpegmediaplugin.so",
        "x.txt",
    ):
        (tmp_path / name).touch()
    assert self_test._plugin_names(tmp_path) == ["cocoa", "ffmpegmediaplugin", "windows", "xcb"]
    assert self_test._plugin_names(tmp_path / "missing") == []


@pytest.mark.parametrize(
    ("argv0", "command"),
    [
        ("parley", "parley"),
        ("/usr/bin/parley-cli", "parley-cli"),
        ("../lib/parley/parley-server", "parley-server"),
        ("C:\\Program Files\\Parley\\PARLEY-CLI.EXE", "parley-cli"),
        ("Parley.exe", "parley"),
        ("/Applications/Parley.app/Contents/MacOS/parley", "parley"),
    ],
)
def test_launcher_picks_the_command_by_name(argv0: str, command: str) -> None:
    launcher = installer_module("launcher")
    assert launcher.command_name(argv0.replace("\\", "/")) == command


def test_launcher_entry_points_are_the_console_scripts() -> None:
    launcher = installer_module("launcher")
    from gui.app.main import main as app_main
    from gui.cli import main as cli_main
    from gui.server import main as server_main

    assert launcher.entry_point("parley") is app_main
    assert launcher.entry_point("parley-cli") is cli_main
    assert launcher.entry_point("parley-server") is server_main


@pytest.mark.parametrize(
    ("dest", "dropped"),
    [
        ("PySide6/Qt/plugins/platforms/libqxcb.so", False),
        ("PySide6/Qt/plugins/platforms/libqwayland.so", False),
        ("PySide6/Qt/plugins/platforms/libqoffscreen.so", False),
        ("PySide6/Qt/plugins/platforms/libqeglfs.so", True),
        ("PySide6/Qt/plugins/platforms/libqvnc.so", True),
        ("PySide6/Qt/plugins/multimedia/libffmpegmediaplugin.so", False),
        ("PySide6/Qt/plugins/platforminputcontexts/libqtvirtualkeyboardplugin.so", True),
        ("PySide6/Qt/plugins/platforminputcontexts/libcomposeplatforminputcontextplugin.so", False),
        ("PySide6/Qt/plugins/platformthemes/libqgtk3.so", True),
        ("PySide6/Qt/plugins/platformthemes/libqxdgdesktopportal.so", False),
        ("PySide6/Qt/plugins/imageformats/libqsvg.so", False),
        ("PySide6/Qt/plugins/imageformats/libqtiff.so", True),
        ("PySide6/Qt/plugins/tls/libqopensslbackend.so", True),
        ("PySide6\\plugins\\platforms\\qdirect2d.dll", True),
        ("PySide6\\plugins\\platforms\\qwindows.dll", False),
        ("numpy/_core/_multiarray_umath.cpython-312-x86_64-linux-gnu.so", False),
    ],
)
def test_bundle_drops_the_unused_qt_plugins(dest: str, dropped: bool) -> None:
    bundle = installer_module("bundle")
    assert bundle.dropped_plugin(dest) is dropped


def test_bundle_keeps_what_the_app_needs_and_leaves_system_libraries_to_depends() -> None:
    bundle = installer_module("bundle")
    assert bundle.dropped_qt_library("PySide6/Qt/lib/libQt6VirtualKeyboard.so.6")
    assert bundle.dropped_qt_library("PySide6\\Qt6VirtualKeyboard.dll")
    assert bundle.dropped_qt_library("PySide6/Qt/lib/QtVirtualKeyboard.framework/Versions/A/X")
    for needed in ("libQt6Multimedia.so.6", "libQt6Quick.so.6", "libQt6Network.so.6"):
        assert not bundle.dropped_qt_library(f"PySide6/Qt/lib/{needed}")
    assert bundle.is_translation("PySide6/Qt/translations/qtbase_de.qm")
    assert bundle.is_system_library("/usr/lib/x86_64-linux-gnu/libX11.so.6", "linux")
    assert not bundle.is_system_library("/usr/lib/x86_64-linux-gnu/libX11.so.6", "darwin")
    assert not bundle.is_system_library("/usr/lib/libpython3.12.so.1.0", "linux")
    assert not bundle.is_system_library(f"{ROOT}/build/venv/lib/x.so", "linux")
    toc = [
        ("libX11.so.6", "/usr/lib/x86_64-linux-gnu/libX11.so.6", "BINARY"),
        ("PySide6/Qt/lib/libQt6Core.so.6", f"{ROOT}/x/libQt6Core.so.6", "BINARY"),
    ]
    assert [entry[0] for entry in bundle.trim(toc, "linux")] == ["PySide6/Qt/lib/libQt6Core.so.6"]


def test_bundle_resources_leave_out_scripts_and_generated_icons() -> None:
    bundle = installer_module("bundle")
    pairs = bundle.resource_datas(ROOT)
    names = {Path(source).relative_to(ROOT / "resources").as_posix() for source, _ in pairs}
    assert {"icons/app.svg", "themes/dark.qss", "sounds/ringtone.wav", "parley.desktop"} <= names
    assert not any(n.endswith((".py", ".md")) or n.startswith("icons/hicolor") for n in names)
    assert all(dest.startswith("resources") for _, dest in pairs)


def test_licenses_cover_every_runtime_distribution(tmp_path: Path) -> None:
    licenses = installer_module("licenses")
    found = licenses.collect(tmp_path / "licenses")
    names = {c.name.lower().replace("_", "-") for c in found}
    assert {"av", "aiortc", "pyside6-essentials", "pyside6-addons", "numpy", "qasync"} <= names
    assert "pytest" not in names and "parley" not in names
    readme = (tmp_path / "licenses" / "README.md").read_text()
    assert "x264 and x265" in readme and "GNU LGPL version 3" in readme
    for text in ("GPL-2.0.txt", "LGPL-2.1.txt", "LGPL-3.0.txt"):
        assert (tmp_path / "licenses" / "texts" / text).stat().st_size > 5000
    assert (
        (tmp_path / "licenses" / "Parley-GPL-3.0-or-later.txt")
        .read_text()
        .startswith((ROOT / "LICENSE").read_text()[:200])
    )
    av = next(c for c in found if c.name.lower() == "av")
    assert (tmp_path / "licenses" / "python" / av.folder / "licenses" / "LICENSE.txt").is_file()
    copyright_ = licenses.debian_copyright(found, "usr/lib/parley", "/usr/lib/parley/_internal/l")
    stanzas = copyright_.split("\n\n")
    assert stanzas[0].startswith("Format: https://www.debian.org/doc/packaging-manuals/")
    assert all(s.startswith(("Files:", "License:", "Format:")) for s in stanzas)
    declared = {
        line.split(": ", 1)[1]
        for s in stanzas
        for line in s.splitlines()[:1]
        if line.startswith("License: ")
    }
    used = {
        word
        for s in stanzas
        if s.startswith("Files:")
        for line in s.splitlines()
        if line.startswith("License: ")
        for word in line.split(": ", 1)[1].split()
        if word not in ("and", "or")
    }
    assert used <= declared, used - declared


def test_manual_pages_follow_the_parsers() -> None:
    manpages = installer_module("manpages")
    from gui.cli import build_parser

    text = manpages.page("parley-cli", build_parser(), "0.1.0", "2026-01-01")
    assert text.startswith('.TH PARLEY\\-CLI 1 "2026-01-01" "Parley 0.1.0"')
    assert "\\fB\\-\\-server\\fR \\fIURL\\fR" in text
    assert ".SS answer" in text and "\\-\\-accept\\-after" in text
    assert manpages.roff(".dot") == "\\&.dot"
