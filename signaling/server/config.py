"""Everything that can be tuned about a server, with the protocol's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from signaling.protocol.constants import MESH_CAPACITY, RECONNECT_GRACE_S, RING_TIMEOUT_S
from signaling.server.credentials import HashParameters
from signaling.server.sfu.pool import SfuAddress
from signaling.server.turn import IceSettings


def default_db_path() -> Path:
    """``parley.db`` in the user data directory (``~/.local/share/parley`` on Linux)."""
    return Path(platformdirs.user_data_dir("parley", appauthor=False)) / "parley.db"


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Abuse limits. The defaults leave a well-behaved client far below them."""

    #: Requests per second per connection, and the burst allowed on top.
    requests_per_s: float = 20.0
    request_burst: float = 60.0
    #: Failed logins per username, and per address, within ``login_window_s``.
    login_failures_per_user: int = 5
    login_failures_per_address: int = 20
    login_window_s: float = 60.0


@dataclass(frozen=True, slots=True)
class SfuSettings:
    """The media servers (Janus) meetings go through, when there are any."""

    addresses: tuple[SfuAddress, ...]
    admin_secret: str = field(repr=False)
    #: Participants of a meeting through a media server.
    capacity: int = 16
    #: The deployment this server's rooms are marked with (``sfu/sweep.py``); empty: a digest
    #: of the database's location.
    deployment: str = ""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How one signaling server runs."""

    host: str = "127.0.0.1"
    #: 0 picks a free port (tests, the embedded server).
    port: int = 8765
    db_path: Path | str = field(default_factory=default_db_path)
    #: ``redis://HOST:PORT``: one service of several instances (``bus/redis.py``); ``None``: alone.
    bus_url: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    ring_timeout_s: float = RING_TIMEOUT_S
    #: How long a call, or a meeting's participant, waits for a lost connection to come back.
    reconnect_grace_s: float = RECONNECT_GRACE_S
    #: Participants a meeting holds (mesh: each sends to every other one, so keep it small).
    meeting_capacity: int = MESH_CAPACITY
    #: Media servers: with one up, every new meeting goes through it (``sfu/relay.py``).
    sfu: SfuSettings | None = None
    #: STUN and TURN servers handed to clients (``--turn``, ``--stun``): ``turn.py``.
    ice: IceSettings | None = None
    rate_limits: RateLimits = field(default_factory=RateLimits)
    hash_parameters: HashParameters = field(default_factory=HashParameters)
    #: Outgoing messages queued for one connection before it counts as stuck and is closed.
    max_send_queue: int = 1024
