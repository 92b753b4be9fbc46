"""A headless Wayland desktop for the tests and the benchmarks: sway, a D-Bus session bus,
PipeWire with WirePlumber, and the desktop portal with its wlroots backend.

sway refuses to run as root, so the whole desktop runs as an unprivileged user (``nobody``
unless ``PARLEY_WAYLAND_USER`` names another) with its own 0700 ``XDG_RUNTIME_DIR``, home and
configuration under one temporary folder, as a person's login session would. The programs
that use the desktop (the app, ``parley-cli``) run as that user too, through :meth:`popen`
(``subprocess`` switches user and group before ``exec``) with :meth:`python` as their
interpreter and :attr:`env` as their environment.

* **sway**: ``WLR_BACKENDS=headless WLR_RENDERER=pixman``, one output ``HEADLESS-1`` of the
  size asked for, no borders, and one rule: a window titled "Parley screen test pattern"
  floats at (200, 120), so a test knows where its pattern is on the screen.
* **D-Bus**: a private session bus from a configuration of our own, on which nothing is
  activatable, whatever the machine has installed: every service is started here, as a child
  of this process (activated ones would be orphans that nobody reaps), and without the portal
  (``portal=False``) there is none.
* **PipeWire** and **WirePlumber**, as the user.
* **The portal**: ``xdg-desktop-portal`` with ``xdg-desktop-portal-wlr`` configured with
  ``chooser_type=none`` and ``output_name=HEADLESS-1``: a screen cast gets that output with
  no person to choose. Debian's xdg-desktop-portal-wlr 0.7.0 refuses every screen cast
  without a GPU (upstream issue #289); ``tests/wayland/build-xdpw`` builds the same version
  with the one check relaxed, which this module runs (see :func:`xdpw_binary`).

The interpreter: the user must be able to run Python. When the project's virtual environment
points at an interpreter the user cannot reach (pyenv under a 0700 ``/root``), the session
makes a copy of that interpreter's program, library and standard library out of hard links
(same file system: no space, no time) in its folder, and runs it with the virtual
environment's ``site-packages`` added (see :meth:`python`).

Everything is stopped by :meth:`stop` (idempotent), children of our processes first (the
services the bus started), and the folder removed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.stopping import StopsOnExit, terminate

ROOT = Path(__file__).resolve().parents[2]
#: Where tests/wayland/build-xdpw installs the screen-cast-capable portal backend.
XDPW_BUILT = Path("/usr/local/libexec/parley-tests/xdg-desktop-portal-wlr")
XDPW_SYSTEM = Path("/usr/libexec/xdg-desktop-portal-wlr")
PORTAL = Path("/usr/libexec/xdg-desktop-portal")
PERMISSION_STORE = Path("/usr/libexec/xdg-permission-store")
#: The title that sway floats at PATTERN_AT (see tests/screen/helpers.py's PatternWindow).
PATTERN_TITLE = "Parley screen test pattern"
PATTERN_AT = (200, 120)
START_TIMEOUT_S = 20.0

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""

_SWAY_CONFIG = """output HEADLESS-1 resolution {width}x{height} position 0 0
default_border none
default_floating_border none
focus_follows_mouse no
for_window [title="^{title}"] floating enable, move position {x} {y}
"""

_XDPW_CONFIG = """[screencast]
chooser_type=none
output_name=HEADLESS-1
max_fps=30
"""


#: A chooser that chooses nothing: the portal refuses every screen cast, as when a person
#: cancels the system's dialog.
_XDPW_REFUSING = """[screencast]
chooser_type=simple
chooser_cmd=/bin/false
"""


class WaylandError(RuntimeError):
    """Something the desktop needs is missing or did not start; the message says what."""


def xdpw_binary() -> Path:
    """The xdg-desktop-portal-wlr to run: ``PARLEY_XDPW``, else the one build-xdpw made."""
    chosen = os.environ.get("PARLEY_XDPW")
    if chosen:
        return Path(chosen)
    if XDPW_BUILT.exists():
        return XDPW_BUILT
    raise WaylandError(
        "screen casts on a headless sway need xdg-desktop-portal-wlr built by "
        "tests/wayland/build-xdpw (Debian's 0.7.0 refuses them without a GPU): run "
        "tests/wayland/build-xdpw as root (installer/bootstrap does)"
    )


def _need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None and not Path(p).exists()]
    if missing:
        raise WaylandError(
            f"a Wayland desktop needs {', '.join(missing)}: run installer/bootstrap "
            "(sway, dbus-daemon, pipewire, wireplumber, xdg-desktop-portal, "
            "xdg-desktop-portal-wlr)"
        )


class WaylandSession(StopsOnExit):
    """A headless Wayland desktop of ``size``, as ``user``; ``portal=False`` leaves the portal
    (and anything else the bus could start) out. Use as a context manager or call
    :meth:`stop`."""

    def __init__(
        self,
        size: tuple[int, int] = (1280, 720),
        *,
        portal: bool = True,
        refuse_share: bool = False,
        user: str | None = None,
    ) -> None:
        _need("sway", "dbus-daemon", "pipewire", "wireplumber")
        if portal:
            _need(str(PORTAL))
        self.size = size
        self.portal = portal
        self.refuse_share = refuse_share
        self.user = user or os.environ.get("PARLEY_WAYLAND_USER", "nobody")
        try:
            account = pwd.getpwnam(self.user)
        except KeyError:
            raise WaylandError(f"there is no user {self.user!r} to run the desktop as") from None
        self.uid, self.gid = account.pw_uid, account.pw_gid
        if self.uid == 0:
            raise WaylandError("sway refuses to run as root: name another user")
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.folder = Path(tempfile.mkdtemp(prefix="parley-wayland-"))
        self.folder.chmod(0o755)
        self.runtime = self.folder / "run"
        self.home = self.folder / "home"
        self.logs = self.folder / "logs"
        self._python: list[str] | None = None
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    # Setting up ------------------------------------------------------------------------

    def _mine(self, path: Path, mode: int = 0o755) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.uid, self.gid)
        path.chmod(mode)
        return path

    def _write(self, path: Path, text: str) -> Path:
        path.write_text(text)
        os.chown(path, self.uid, self.gid)
        path.chmod(0o644)
        return path

    def _start(self) -> None:
        self._mine(self.runtime, 0o700)
        self._mine(self.home)
        self._mine(self.logs)
        config = self._mine(self.home / ".config")
        for sub in (".local/share", ".local/state", ".cache"):
            self._mine(self.home / sub)
        self.env: dict[str, str] = {
            "HOME": str(self.home),
            "USER": self.user,
            "LOGNAME": self.user,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_CONFIG_HOME": str(config),
            "XDG_DATA_HOME": str(self.home / ".local/share"),
            "XDG_STATE_HOME": str(self.home / ".local/state"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_SESSION_TYPE": "wayland",
            "XDG_CURRENT_DESKTOP": "sway",
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={self.runtime / 'bus'}",
        }
        self._start_bus()
        self._start_sway()
        self._spawn("pipewire", ["pipewire"])
        self._wait_for(lambda: (self.runtime / "pipewire-0").exists(), "PipeWire's socket")
        self._spawn("wireplumber", ["wireplumber"])
        self._wait_for(self._wireplumber_ready, "WirePlumber to join PipeWire")
        if self.portal:
            self._start_portal()

    def _start_bus(self) -> None:
        conf = self._write(
            self.folder / "bus.conf", _BUS_CONFIG.format(socket=self.runtime / "bus")
        )
        self._spawn("dbus-daemon", ["dbus-daemon", f"--config-file={conf}", "--nofork"])
        self._wait_for(lambda: (self.runtime / "bus").exists(), "the D-Bus session bus")

    def _start_sway(self) -> None:
        width, height = self.size
        conf = self._write(
            self.folder / "sway.conf",
            _SWAY_CONFIG.format(
                width=width,
                height=height,
                title=PATTERN_TITLE,
                x=PATTERN_AT[0],
                y=PATTERN_AT[1],
            ),
        )
        self._spawn(
            "sway",
            ["sway", "-c", str(conf)],
            WLR_BACKENDS="headless",
            WLR_RENDERER="pixman",
            WLR_LIBINPUT_NO_DEVICES="1",
        )

        def socket() -> bool:
            names = [p.name for p in self.runtime.glob("wayland-*") if p.suffix != ".lock"]
            if names:
                self.env["WAYLAND_DISPLAY"] = sorted(names)[0]
            return bool(names)

        self._wait_for(socket, "sway's Wayland socket")
        swaysock = next(self.runtime.glob("sway-ipc.*.sock"), None)
        if swaysock is not None:
            self.env["SWAYSOCK"] = str(swaysock)

    def _start_portal(self) -> None:
        xdpw_config = self._mine(Path(self.env["XDG_CONFIG_HOME"]) / "xdg-desktop-portal-wlr")
        self._write(xdpw_config / "config", _XDPW_REFUSING if self.refuse_share else _XDPW_CONFIG)
        self._spawn("xdpw", [str(xdpw_binary()), "-l", "DEBUG"])
        self._wait_for(
            lambda: self.bus_has("org.freedesktop.impl.portal.desktop.wlr"),
            "xdg-desktop-portal-wlr on the bus",
        )
        if PERMISSION_STORE.exists():
            self._spawn("permission-store", [str(PERMISSION_STORE)])
            self._wait_for(
                lambda: self.bus_has("org.freedesktop.impl.portal.PermissionStore"),
                "the portal's permission store",
            )
        self._spawn("portal", [str(PORTAL), "--verbose"])
        self._wait_for(lambda: self.bus_has("org.freedesktop.portal.Desktop"), "the desktop portal")

    def _wireplumber_ready(self) -> bool:
        result = self.run(["pw-cli", "ls", "Client"], timeout=10)
        return "wireplumber" in result.stdout.lower()

    def _wait_for(self, ready: Any, what: str, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, process in self.processes:
                if process.poll() is not None:
                    raise WaylandError(
                        f"{name} exited with status {process.returncode} while waiting for "
                        f"{what}: {self.log(name)[-2000:]}"
                    )
            if time.monotonic() > deadline:
                raise WaylandError(f"no {what} within {timeout:g} s")
            time.sleep(0.05)

    # Running things as the user ----------------------------------------------------------

    def popen(
        self, argv: Sequence[str], *, log: str | None = None, **kwargs: Any
    ) -> subprocess.Popen[Any]:
        """Start ``argv`` as the desktop's user with :attr:`env` (plus ``env=`` additions);
        stdout and stderr to ``logs/LOG.log`` when ``log`` is given."""
        env = {**self.env, **kwargs.pop("env", {})}
        if log is not None:
            out = open(self.logs / f"{log}.log", "ab")  # noqa: SIM115 - the child keeps it
            kwargs.setdefault("stdout", out)
            kwargs.setdefault("stderr", subprocess.STDOUT)
        try:
            return subprocess.Popen(list(argv), env=env, **self.as_user(), **kwargs)
        finally:
            if log is not None:
                out.close()

    def as_user(self) -> dict[str, Any]:
        """What ``subprocess`` (or asyncio's) needs to start a program as the desktop's user,
        in its home, in a session of its own."""
        return {
            "user": self.uid,
            "group": self.gid,
            "extra_groups": [],
            "cwd": self.home,
            "start_new_session": True,
        }

    def run(
        self, argv: Sequence[str], timeout: float = 30, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as the user to the end; its output as text."""
        process = self.popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
        return subprocess.CompletedProcess(list(argv), process.returncode, out, "")

    def _spawn(self, name: str, argv: list[str], **env: str) -> None:
        self.processes.append((name, self.popen(argv, log=name, env=env)))

    def log(self, name: str) -> str:
        """What the session's program ``name`` (or a :meth:`popen` log) has written so far."""
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def bus_has(self, name: str) -> bool:
        """Whether ``name`` has an owner on the session's bus."""
        result = self.run(
            [
                "dbus-send",
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                f"string:{name}",
            ],
            timeout=10,
        )
        return "boolean true" in result.stdout

    def python(self) -> list[str]:
        """The command that starts this project's Python as the user, before ``-m MODULE``."""
        if self._python is None:
            self._python = self._make_python()
        return list(self._python)

    def _make_python(self) -> list[str]:
        site = sysconfig.get_paths()["purelib"]
        boot = (
            "import runpy, site, sys; "
            f"site.addsitedir({site!r}); sys.path.insert(0, {str(ROOT)!r}); "
            "del sys.argv[0]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
        )
        executable = os.path.realpath(sys.executable)
        if self.run(["test", "-x", executable]).returncode == 0:
            return [executable, "-c", boot]
        # The interpreter is out of the user's reach: hard links to it in our folder.
        base = Path(sys.base_prefix)
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        copy = self.folder / "python"
        (copy / "bin").mkdir(parents=True)
        (copy / "lib").mkdir()
        os.link(executable, copy / "bin" / version)
        for library in (base / "lib").glob("libpython*.so*"):
            os.link(library, copy / "lib" / library.name)
        skip = {"test", "site-packages", "idlelib", "tkinter", "ensurepip", "__pycache__"}
        stdlib = base / "lib" / version
        for entry in stdlib.iterdir():
            if entry.name in skip or entry.name.startswith("config-"):
                continue
            target = copy / "lib" / version / entry.name
            if entry.is_dir():
                shutil.copytree(entry, target, copy_function=os.link)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(entry, target)
        (copy / "lib" / version / "site-packages").mkdir()
        self.env["LD_LIBRARY_PATH"] = str(copy / "lib")
        return [str(copy / "bin" / version), "-c", boot]

    # The end -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything (children of our processes first) and remove the folder."""
        ours = {p.pid for _, p in self.processes}
        for pid in [*_descendants(ours), *self._strays(ours)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for _, process in reversed(self.processes):
            terminate(process, 5)
        self.processes.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _strays(self, ours: set[int]) -> list[int]:
        """Processes of this session's user with this session's runtime folder in their
        environment that are not ours (started by a program of the session and orphaned)."""
        marker = f"XDG_RUNTIME_DIR={self.runtime}".encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in ours:
                continue
            try:
                if os.stat(f"/proc/{entry}").st_uid != self.uid:
                    continue
                with open(f"/proc/{entry}/environ", "rb") as environ:
                    if marker in environ.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
        return found


def _descendants(roots: set[int]) -> list[int]:
    """Every process below ``roots`` (deepest last), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
    found: list[int] = []
    frontier = set(roots)
    while frontier:
        children = {pid for pid, parent in parents.items() if parent in frontier}
        children -= set(found) | roots
        found.extend(sorted(children))
        frontier = children
    return found
