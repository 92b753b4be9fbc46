"""Rooms a crashed parley-server left in Janus, found and destroyed.

A server that is SIGKILLed (or loses its machine) never destroys its meetings' rooms, and
Janus keeps a room until someone does: its participants' handles time out, the room stays.
So every room this server makes is marked, and a server that connects to a Janus (at start,
and each time it connects again) destroys the marked rooms that are its deployment's and that
no meeting of its own holds.

- **The mark.** A room's ``description`` is ``parley:DEPLOYMENT:MEETING_ID``
  (:func:`room_description`). ``DEPLOYMENT`` names the deployment the server belongs to: by
  default a digest of its database (the SQLite file on this host, or the PostgreSQL
  server and database name, :func:`deployment_of`), so that every server of one service (its
  instances sharing one database) has the same one and servers of other services sharing the
  same Janus have another; ``--sfu-deployment NAME`` sets it.
- **The secret.** Janus destroys a room only with its secret, which died with the server
  that made it; so the secret is derived from the admin secret and the room's id
  (:func:`room_secret`, HMAC-SHA256): any server holding the admin secret can destroy a room
  it finds, and nobody else can (clients never reach Janus anyway).
- **The rule.** A room is destroyed when its mark names this deployment and its id is not
  the room of a meeting in progress in this server's meeting table, nor a room being made
  (``keep``). A room of another deployment, or one without Parley's mark, is never touched.
  The server whose table holds the deployment's meetings is the one that sweeps: with a
  single server that is the server; with several instances sharing the hub's state (issue
  12), only the one holding it may run the relay and so the sweep. A room that moved to
  another Janus when its first one went away is left on the first with the same mark and a
  room id the meeting no longer holds, so the sweep on reconnection takes it too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from signaling.server.logs import log_event
from signaling.server.sfu.janus import JanusError, JanusGone, JanusInstance
from signaling.server.store import is_postgres_url

#: Every room Parley makes has a description that starts with this.
PREFIX = "parley:"


def deployment_of(db_path: Path | str) -> str:
    """The default deployment name: a digest of where the server's database is (the host and
    file for SQLite, the server, port and database for PostgreSQL; never a password)."""
    text = str(db_path)
    if is_postgres_url(text):
        parts = urlsplit(text)
        where = f"pg:{parts.hostname or ''}:{parts.port or 5432}:{parts.path.lstrip('/')}"
    else:
        where = f"sqlite:{socket.gethostname()}:{Path(text).expanduser().resolve()}"
    return hashlib.sha256(where.encode()).hexdigest()[:16]


def room_description(deployment: str, meeting_id: str) -> str:
    """The mark of a room made for ``meeting_id`` by a server of ``deployment``."""
    return f"{PREFIX}{deployment}:{meeting_id}"


def room_secret(admin_secret: str, room_id: str) -> str:
    """The room's secret, which any server holding the admin secret can work out again."""
    digest = hmac.new(admin_secret.encode(), f"parley-room:{room_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()[:18]).decode()


async def sweep(
    janus: JanusInstance,
    admin_secret: str,
    deployment: str,
    keep: Callable[[], set[str]],
) -> list[str]:
    """Destroy the rooms on ``janus`` marked with ``deployment`` whose id is not in ``keep()``
    (asked after listing, so a room made meanwhile is kept); returns the ids destroyed.
    Raises :class:`JanusError` if Janus cannot list its rooms."""
    mark = f"{PREFIX}{deployment}:"
    session = await janus.session()
    destroyed = []
    try:
        handle = await session.attach()
        data, _ = await handle.message({"request": "list", "admin_key": admin_secret})
        rooms = data.get("list")
        found = [
            str(room.get("room"))
            for room in (rooms if isinstance(rooms, list) else [])
            if isinstance(room, dict) and str(room.get("description", "")).startswith(mark)
        ]
        held = keep()
        for room_id in found:
            if room_id in held:
                continue
            try:
                await handle.message(
                    {
                        "request": "destroy",
                        "room": room_id,
                        "secret": room_secret(admin_secret, room_id),
                    }
                )
            except JanusGone:
                raise
            except JanusError as exc:
                log_event("sfu.sweep_failed", 30, sfu=janus.url, room=room_id, error=exc.reason)
                continue
            destroyed.append(room_id)
    finally:
        await session.destroy()
    if destroyed:
        log_event("sfu.swept", 30, sfu=janus.url, rooms=len(destroyed))
    return destroyed


__all__ = ["PREFIX", "deployment_of", "room_description", "room_secret", "sweep"]
