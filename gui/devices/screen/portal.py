"""Knowing when a screen cast through the desktop portal ends outside the app.

Qt's PipeWire capture (Qt 6.8+) reports the end of a share only when the portal closes its
session (``org.freedesktop.portal.Session.Closed``, which GNOME's and KDE's sharing indicators
cause). When the stream itself goes away without that signal (xdg-desktop-portal-wlr closes
the session without one; the compositor or PipeWire can end the stream; the PipeWire node is
destroyed), Qt notes it internally and says nothing: the share would freeze on its last picture
for good while the button still says "Stop sharing".

:class:`PortalStreamWatch` watches the PipeWire graph with ``pw-dump --monitor`` (from
PipeWire's own tools, installed wherever the PipeWire daemon is) in a ``QProcess``: it finds
this process's screen-capture stream (a ``Stream/Input/Video`` node with the role ``Screen``
whose client is this process) and the source node that feeds it, and emits :attr:`ended`
once that source node is removed. Where ``pw-dump`` is missing, :meth:`start` returns False
and only the portal's signal is heard.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from typing import Any

from PySide6.QtCore import QObject, QProcess, Signal, Slot

logger = logging.getLogger(__name__)

#: How long stopping the watcher may take before it is killed.
STOP_WAIT_MS = 1000


class PortalStreamWatch(QObject):
    """Emits :attr:`ended` once when the PipeWire source of this process's screen capture is
    removed. ``pid`` is the process whose capture is watched (this one by default)."""

    ended = Signal()

    def __init__(self, pid: int | None = None) -> None:
        super().__init__()
        self.pid = os.getpid() if pid is None else pid
        self.process: QProcess | None = None
        self._buffer = ""
        self._decoder = json.JSONDecoder()
        self._nodes: dict[int, dict[str, Any]] = {}
        self._clients: dict[int, dict[str, Any]] = {}
        self._links: dict[int, tuple[int, int]] = {}
        #: Source nodes seen feeding this process's capture.
        self.sources: set[int] = set()
        self._done = False

    def start(self) -> bool:
        """Start watching; False when ``pw-dump`` is not there."""
        program = shutil.which("pw-dump")
        if program is None:
            logger.info("pw-dump is missing: a share ended outside the app goes unnoticed")
            return False
        process = QProcess(self)
        process.setProgram(program)
        process.setArguments(["--monitor", "--no-colors"])
        process.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
        process.readyReadStandardOutput.connect(self._read)
        process.start()
        self.process = process
        return True

    def stop(self) -> None:
        """Stop watching (idempotent)."""
        self._done = True
        process, self.process = self.process, None
        if process is None:
            return
        process.readyReadStandardOutput.disconnect(self._read)
        if process.state() != QProcess.ProcessState.NotRunning:
            process.terminate()
            if not process.waitForFinished(STOP_WAIT_MS):
                process.kill()
                process.waitForFinished(STOP_WAIT_MS)
        process.deleteLater()

    # Reading pw-dump ----------------------------------------------------------------------

    def _read(self) -> None:
        if self.process is None:
            return
        self._buffer += bytes(self.process.readAllStandardOutput().data()).decode(
            "utf-8", "replace"
        )
        self.feed("")

    def feed(self, text: str) -> None:
        """Take more of ``pw-dump``'s output (whole JSON arrays, one per change)."""
        self._buffer += text
        while True:
            start = self._buffer.find("[")
            if start < 0:
                self._buffer = ""
                return
            try:
                objects, end = self._decoder.raw_decode(self._buffer, start)
            except json.JSONDecodeError:
                self._buffer = self._buffer[start:]
                return  # the rest of the array has not come yet
            self._buffer = self._buffer[end:]
            if isinstance(objects, list):
                self._update([o for o in objects if isinstance(o, dict)])

    def _update(self, objects: list[dict[str, Any]]) -> None:
        removed: set[int] = set()
        for item in objects:
            ident = item.get("id")
            if not isinstance(ident, int):
                continue
            info = item.get("info")
            if info is None:
                removed.add(ident)
                self._nodes.pop(ident, None)
                self._clients.pop(ident, None)
                self._links.pop(ident, None)
                continue
            kind = str(item.get("type", ""))
            props = info.get("props") or {}
            if kind.endswith(":Node"):
                self._nodes[ident] = {**self._nodes.get(ident, {}), **props}
            elif kind.endswith(":Client"):
                self._clients[ident] = {**self._clients.get(ident, {}), **props}
            elif kind.endswith(":Link"):
                out_node, in_node = info.get("output-node-id"), info.get("input-node-id")
                if isinstance(out_node, int) and isinstance(in_node, int):
                    self._links[ident] = (out_node, in_node)
        self.sources |= self._feeding_us()
        if removed & self.sources and not self._done:
            self._done = True
            logger.info("the screen cast's PipeWire source %s was removed", removed & self.sources)
            self.ended.emit()

    def _ours(self, props: dict[str, Any]) -> bool:
        client = self._clients.get(_int(props.get("client.id")), {})
        pids = {_int(client.get(k)) for k in ("application.process.id", "pipewire.sec.pid")}
        return (
            props.get("media.class") == "Stream/Input/Video"
            and props.get("media.role") == "Screen"
            and self.pid in pids
        )

    def _feeding_us(self) -> set[int]:
        consumers = {ident for ident, props in self._nodes.items() if self._ours(props)}
        sources = {out for out, into in self._links.values() if into in consumers}
        for ident in consumers:
            for key in ("target.object", "node.target"):
                target = _int(self._nodes[ident].get(key))
                if target in self._nodes:
                    sources.add(target)
        return sources


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1


class PortalRequestWatch(QObject):
    """Emits :attr:`refused` (the portal's response code) when one of this process's portal
    requests answers other than 0: 1 is "the user cancelled" (the system's dialog closed),
    2 "ended another way" (permission refused, nothing to share).

    Qt 6.12 only warns when the portal answers so ("Failed to capture screen via pipewire,
    perhaps because user cancelled the operation") and never reports an error: the capture
    would wait for frames that never come. The responses come on the process's session-bus
    connection, the one Qt's capture uses; this listens there as Qt does (any request path).
    """

    refused = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self._connected = False

    def start(self) -> bool:
        """Listen; False when the session bus cannot be reached."""
        from PySide6.QtDBus import QDBusConnection

        bus = QDBusConnection.sessionBus()
        self._connected = bus.isConnected() and bus.connect(  # type: ignore[call-overload]
            _DESKTOP, "", _REQUEST, "Response", self, _ON_RESPONSE
        )
        return self._connected

    def stop(self) -> None:
        """Stop listening (idempotent)."""
        if not self._connected:
            return
        from PySide6.QtDBus import QDBusConnection

        self._connected = False
        QDBusConnection.sessionBus().disconnect(  # type: ignore[call-overload]
            _DESKTOP, "", _REQUEST, "Response", self, _ON_RESPONSE
        )

    @Slot("uint", "QVariantMap")
    def on_response(self, code: int, results: dict[str, Any]) -> None:
        """A portal request's answer (``code`` 0: granted)."""
        if code != 0 and self._connected:
            logger.info("a portal request answered %d", code)
            self.refused.emit(int(code))


_DESKTOP = "org.freedesktop.portal.Desktop"
#: Qt's SLOT() code for on_response. PySide6 6.12 takes it as text, although its type stubs
#: say bytes (bytes are refused at run time: "called with wrong argument values").
_ON_RESPONSE = "1on_response(uint,QVariantMap)"
_REQUEST = "org.freedesktop.portal.Request"
