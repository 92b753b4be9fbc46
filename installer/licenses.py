"""Collect the licence texts of everything Parley's bundle ships, for every package.

``python installer/licenses.py OUT`` (run with the interpreter the bundle is built from) writes:

- ``OUT/README.md``: what is in the bundle under which licence, the notes on FFmpeg (PyAV's
  build links the GPL encoders x264 and x265) and Qt (LGPL-3.0, replaceable shared libraries),
  and where the sources are;
- ``OUT/Parley-GPL-3.0-or-later.txt``: the project's own licence (``LICENSE``);
- ``OUT/texts/``: the full GPL-2.0, LGPL-2.1, LGPL-3.0 and Apache-2.0 texts the components
  refer to (copied from ``installer/licenses/``);
- ``OUT/python/<distribution>-<version>/``: every licence file (``LICENSE*``, ``COPYING*``,
  ``NOTICE*``, ``AUTHORS*``) of every Python distribution the app depends on, found through
  ``importlib.metadata``, and Python's own licence.

``--debian-copyright FILE --prefix /usr/lib/parley`` also writes a machine-readable
(DEP-5) ``debian/copyright`` for the ``.deb``, from the same data.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata as metadata
import os
import shutil
import sys
import sysconfig
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
#: Committed copies of licence texts that no distribution ships (from Debian's common-licenses).
TEXTS = Path(__file__).resolve().parent / "licenses"
#: File names (upper-cased prefixes) that hold licence texts in a distribution.
LICENSE_PREFIXES = ("LICENSE", "LICENCE", "COPYING", "NOTICE", "AUTHORS", "COPYRIGHT")

#: SPDX identifiers to the short names of Debian's copyright format.
DEP5_NAMES = {
    "GPL-2.0-or-later": "GPL-2+",
    "GPL-2.0-only": "GPL-2",
    "GPL-3.0-or-later": "GPL-3+",
    "GPL-3.0-only": "GPL-3",
    "LGPL-2.1-or-later": "LGPL-2.1+",
    "LGPL-3.0-only": "LGPL-3",
    "LGPL-3.0-or-later": "LGPL-3+",
    "MIT": "Expat",
    "MIT-0": "MIT-0",
    "BSD-2-Clause": "BSD-2-clause",
    "BSD-3-Clause": "BSD-3-clause",
    "Apache-2.0": "Apache-2.0",
    "ISC": "ISC",
    "PSF-2.0": "PSF-2.0",
    "0BSD": "0BSD",
    "Zlib": "Zlib",
    "CC0-1.0": "CC0-1.0",
}
#: Licences whose text every Debian system has in /usr/share/common-licenses.
COMMON_LICENSES = {
    "GPL-2": "GPL-2",
    "GPL-2+": "GPL-2",
    "GPL-3": "GPL-3",
    "GPL-3+": "GPL-3",
    "LGPL-2.1+": "LGPL-2.1",
    "LGPL-3": "LGPL-3",
    "LGPL-3+": "LGPL-3",
    "Apache-2.0": "Apache-2.0",
    "CC0-1.0": "CC0-1.0",
}
#: Licences found as free text in old metadata, to SPDX.
LEGACY_NAMES = {
    "MIT": "MIT",
    "Apache-2.0": "Apache-2.0",
    "Apache License, Version 2.0": "Apache-2.0",
    "3-Clause BSD License": "BSD-3-Clause",
}

NOTICE = """\
# Third-party software in Parley

Parley is free software under the GNU General Public License, version 3 or later
(`Parley-GPL-3.0-or-later.txt`). The packaged app is one folder holding Python, the Python
libraries below and the native libraries they bring. Each keeps its own licence; the texts are
in this folder. The licence of the whole is GPL-3.0-or-later, which every component permits.

## FFmpeg in PyAV: GPL codecs

PyAV (`av`, BSD-3-Clause) ships its own FFmpeg build ({av_ffmpeg}), in `av.libs`, configured
with `--enable-version3`, which makes FFmpeg itself LGPL-3.0-or-later, and linked with the
encoders **x264 and x265, which are under the GNU GPL version 2 or later**. FFmpeg as shipped
here is therefore distributed under the terms of the **GPL** (version 3, the licence that covers
both). Other libraries in `av.libs`: libvpx, libopus, libdav1d, libwebp, SVT-AV1, libvmaf
(BSD-style), libmp3lame, GnuTLS, Nettle, GMP, libunistring, ALSA's libasound (LGPL), libxcb,
libXau, libdrm, libvpl (MIT-style). Texts: `texts/GPL-2.0.txt`, `texts/LGPL-2.1.txt`,
`texts/LGPL-3.0.txt` and `python/av-*/`.

Source: FFmpeg and these libraries are built by the PyAV project's `pyav-ffmpeg` scripts
(https://github.com/PyAV-Org/pyav-ffmpeg); the PyAV source is at https://pypi.org/project/av/
(version {av_version}). Parley's own source is at the project's repository; on request the
Parley developers provide the complete corresponding source of this build.

## Qt and PySide6: LGPL-3.0

Qt ({qt_version}) and its Python binding PySide6 are offered under LGPL-3.0-only, GPL-2.0-only or
GPL-3.0-only; Parley uses them under the **GNU LGPL version 3** (`texts/LGPL-3.0.txt`, which
builds on the GPL in `Parley-GPL-3.0-or-later.txt`). They are shipped as separate shared
libraries (`PySide6/Qt/lib`, `PySide6/`, `shiboken6/`), which you may replace with your own
build of the same version. Qt Multimedia carries its own FFmpeg build (LGPL-2.1-or-later,
`texts/LGPL-2.1.txt`). Qt's source: https://download.qt.io/official_releases/qt/ ; PySide6's:
https://download.qt.io/official_releases/QtForPython/ . Qt Core uses ICU (Unicode licence).

## Python

The Python interpreter ({python}) is under the PSF License (`python/Python-*/LICENSE.txt`).

## Python libraries

| Distribution | Version | Licence | Files |
| --- | --- | --- | --- |
"""


@dataclass(slots=True)
class Component:
    """One Python distribution in the bundle."""

    name: str
    version: str
    license: str
    files: list[Path] = field(default_factory=list)
    top_level: list[str] = field(default_factory=list)

    @property
    def folder(self) -> str:
        """The folder under ``python/`` that holds its licence files."""
        return f"{self.name}-{self.version}"


def runtime_distributions(root: str = "parley") -> list[metadata.Distribution]:
    """``root`` and everything it requires at run time (no extras), each once, sorted."""
    found: dict[str, metadata.Distribution] = {}
    pending = [root]
    while pending:
        name = pending.pop()
        key = name.lower().replace("_", "-")
        if key in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[key] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return sorted(found.values(), key=lambda d: d.metadata["Name"].lower())


def license_of(dist: metadata.Distribution) -> str:
    """The SPDX expression of a distribution's licence, from its metadata."""
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return str(expression)
    text = (meta.get("License") or "").strip()
    if text in LEGACY_NAMES:
        return LEGACY_NAMES[text]
    for classifier in meta.get_all("Classifier") or []:
        if classifier.startswith("License :: OSI Approved :: "):
            name = classifier.rsplit("::", 1)[1].strip()
            return {"MIT License": "MIT", "BSD License": "BSD-3-Clause"}.get(name, name)
    return text.splitlines()[0] if text else "see the licence files"


def license_files(dist: metadata.Distribution) -> list[Path]:
    """The licence files a distribution installed (its ``.dist-info`` and ``licenses/``)."""
    files = []
    for entry in dist.files or []:
        parts = entry.parts
        if not parts or not parts[0].endswith(".dist-info"):
            continue
        if entry.name.upper().startswith(LICENSE_PREFIXES) or "licenses" in parts[1:-1]:
            path = Path(str(entry.locate()))
            if path.is_file() and path.suffix not in (".pyc", ".py"):
                files.append(path)
    if not files:  # some wheels (livekit) keep theirs beside the code instead
        for entry in dist.files or []:
            if entry.name.upper().startswith(LICENSE_PREFIXES[:3]):
                path = Path(str(entry.locate()))
                if path.is_file() and path.suffix not in (".pyc", ".py"):
                    files.append(path)
    # Licence texts first, then notices and author lists.
    return sorted(files, key=lambda p: (not p.name.upper().startswith(LICENSE_PREFIXES[:3]), p))


def components() -> list[Component]:
    """The Python distributions of the bundle, with licence and files (Parley excluded)."""
    tops: dict[str, list[str]] = {}
    for top, names in metadata.packages_distributions().items():
        for name in names:
            tops.setdefault(name.lower().replace("_", "-"), []).append(top)
    result = []
    for dist in runtime_distributions():
        name = dist.metadata["Name"]
        if name.lower() == "parley":
            continue
        result.append(
            Component(
                name=name,
                version=dist.version,
                license=license_of(dist),
                files=license_files(dist),
                top_level=sorted(tops.get(name.lower().replace("_", "-"), [])),
            )
        )
    return result


def _python_license() -> Path | None:
    for candidate in (
        Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt",
        Path(sys.base_prefix) / "LICENSE.txt",
        Path(sys.base_prefix) / "LICENSE",
    ):
        if candidate.is_file():
            return candidate
    return None


def _versions() -> dict[str, str]:
    """Versions quoted in the notice (best effort: '?' when a library cannot tell)."""
    found = {"av_version": "?", "av_ffmpeg": "FFmpeg", "qt_version": "Qt"}
    found["python"] = f"Python {sys.version.split()[0]}"
    with contextlib.suppress(Exception):  # the notice still says what the component is
        found["av_version"] = metadata.version("av")
        import av

        found["av_ffmpeg"] = f"FFmpeg {getattr(av, 'ffmpeg_version_info', '?')}"
    with contextlib.suppress(Exception):
        from PySide6.QtCore import qVersion

        found["qt_version"] = f"Qt {qVersion()}"
    return found


def collect(out: Path, root: Path = ROOT) -> list[Component]:
    """Write the licence folder ``out`` (replacing it); returns the components listed."""
    if out.exists():
        shutil.rmtree(out)
    (out / "texts").mkdir(parents=True)
    shutil.copy2(root / "LICENSE", out / "Parley-GPL-3.0-or-later.txt")
    for text in sorted(TEXTS.glob("*.txt")):
        shutil.copy2(text, out / "texts" / text.name)
    found = components()
    rows = []
    for component in found:
        folder = out / "python" / component.folder
        folder.mkdir(parents=True)
        names = []
        for path in component.files:
            relative = _relative_in_dist_info(path)
            target = folder / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            names.append(relative.as_posix())
        listed = ", ".join(f"`{n}`" for n in names[:3]) + (" ..." if len(names) > 3 else "")
        rows.append(
            f"| {component.name} | {component.version} | {component.license} | "
            f"{listed or 'see notes'} |"
        )
    python_license = _python_license()
    if python_license is not None:
        folder = out / "python" / f"Python-{sys.version.split()[0]}"
        folder.mkdir(parents=True)
        shutil.copy2(python_license, folder / "LICENSE.txt")
    notice = NOTICE.format(**_versions()) + "\n".join(rows) + "\n"
    (out / "README.md").write_text(notice, encoding="utf-8")
    return found


def _relative_in_dist_info(path: Path) -> Path:
    """``licenses/LICENSE`` for ``.../numpy-2.5.dist-info/licenses/LICENSE``."""
    parts = path.parts
    for index, part in enumerate(parts):
        if part.endswith(".dist-info"):
            return Path(*parts[index + 1 :])
    return Path(path.name)


# Debian copyright file ----------------------------------------------------------------------


def _dep5_license(expression: str) -> str:
    """An SPDX expression in DEP-5 words: ``BSD-3-Clause AND MIT`` -> ``BSD-3-clause and Expat``."""
    words = []
    for token in expression.replace("(", " ( ").replace(")", " ) ").split():
        if token in ("AND", "OR"):
            words.append(token.lower())
        else:
            words.append(DEP5_NAMES.get(token, token))
    return " ".join(words)


def _license_names(expression: str) -> list[str]:
    return [w for w in expression.split() if w not in ("and", "or", "(", ")")]


def debian_copyright(found: Iterable[Component], prefix: str, out_dir: str) -> str:
    """A DEP-5 ``copyright`` for the ``.deb``: who owns what under which licence.

    ``prefix`` is where the bundle is installed without the leading slash (``usr/lib/parley``)
    and ``out_dir`` where the collected texts end up, for the references.
    """
    internal = f"{prefix}/_internal"
    stanzas = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        "Upstream-Name: Parley\n"
        "Comment: The app is a PyInstaller bundle: Python and the libraries below, each under\n"
        f" its own licence. Full texts and notes are in {out_dir}/ (README.md first).",
        f"Files: *\nCopyright: {_year()} The Parley developers\nLicense: GPL-3+",
        f"Files: {internal}/av/* {internal}/av.libs/*\n"
        "Copyright: PyAV contributors; the FFmpeg developers; x264 and x265 authors; others\n"
        "License: BSD-3-clause and LGPL-3+ and GPL-2+\n"
        "Comment: PyAV's FFmpeg build links the GPL encoders x264 and x265, so FFmpeg as\n"
        " shipped here is distributed under the GPL. Details in README.md of the licence folder.",
        f"Files: {internal}/PySide6/* {internal}/shiboken6/*\n"
        "Copyright: The Qt Company Ltd. and other contributors\n"
        "License: LGPL-3\n"
        "Comment: Qt and PySide6, used under the LGPL-3.0 (also offered under GPL-2.0 and\n"
        " GPL-3.0). Qt Multimedia's own FFmpeg build is LGPL-2.1+.",
        f"Files: {internal}/libpython* {internal}/base_library.zip {internal}/python3*\n"
        "Copyright: Python Software Foundation\n"
        "License: PSF-2.0",
    ]
    used = {"GPL-3+", "BSD-3-clause", "LGPL-3+", "GPL-2+", "LGPL-3", "PSF-2.0"}
    where: dict[str, list[str]] = {"BSD-3-clause": [], "PSF-2.0": []}
    #: Files patterns -> (licence, copyright holders): distributions sharing a namespace
    #: package (jaraco.*) share one stanza.
    grouped: dict[str, tuple[str, list[str]]] = {}
    for component in found:
        key = component.name.lower().replace("_", "-")
        if key == "av":
            where["BSD-3-clause"].append(component.folder)
        if key in ("av", "pyside6-essentials", "pyside6-addons", "shiboken6"):
            continue  # in the stanzas above
        tops = [top for top in component.top_level if not top.startswith("__")]
        patterns = [f"{internal}/{top}/*" for top in tops if not top.startswith("_")]
        patterns += [f"{internal}/{top}*" for top in tops if top.startswith("_")]
        if key == "numpy":
            patterns.append(f"{internal}/numpy.libs/*")
        if not patterns:
            continue
        license_ = _dep5_license(component.license)
        for name in _license_names(license_):
            used.add(name)
            where.setdefault(name, []).append(component.folder)
        entry = grouped.setdefault(" ".join(patterns), (license_, []))
        entry[1].append(f"the {component.name} authors ({out_dir}/python/{component.folder}/)")
    for patterns, (license_, holders) in grouped.items():
        copyright_ = "\n ".join(holders)
        stanzas.append(f"Files: {patterns}\nCopyright: {copyright_}\nLicense: {license_}")
    python_license = _python_license()
    if python_license is not None:
        where["PSF-2.0"].append(f"Python-{sys.version.split()[0]}")
    for name in sorted(used):
        if name in COMMON_LICENSES:
            body = (
                "On Debian systems, the complete text of this licence is in\n"
                f"/usr/share/common-licenses/{COMMON_LICENSES[name]}."
            )
        else:
            folders = "\n".join(f"{out_dir}/python/{f}/" for f in where.get(name, []))
            body = "The complete text, with each copyright holder's notice, is in\n" + (
                folders or f"{out_dir}/."
            )
        stanzas.append(f"License: {name}\n{_dep5_text(body)}")
    return "\n\n".join(stanzas) + "\n"


def _year() -> int:
    """The copyright year: that of ``SOURCE_DATE_EPOCH`` (reproducible builds), else this year."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC) if epoch else None
    return (when or datetime.datetime.now(datetime.UTC)).year


def _dep5_text(body: str) -> str:
    """Free text as a DEP-5 continuation: each line indented, blank lines as ``.``."""
    lines = []
    for line in body.splitlines():
        stripped = line.rstrip()
        lines.append(f" {stripped}" if stripped else " .")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: collect into OUT, and optionally write the Debian copyright file."""
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or "").split("\n")[0])
    parser.add_argument("out", type=Path, help="folder to (re)create")
    parser.add_argument("--debian-copyright", type=Path, metavar="FILE")
    parser.add_argument("--prefix", default="usr/lib/parley", help="install path of the bundle")
    args = parser.parse_args(argv)
    found = collect(args.out)
    if args.debian_copyright is not None:
        prefix = args.prefix.strip("/")
        text = debian_copyright(found, prefix, f"/{prefix}/_internal/licenses")
        args.debian_copyright.write_text(text, encoding="utf-8")
    print(f"licenses: {len(found)} distributions, texts in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
