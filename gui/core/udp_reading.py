"""Every datagram waiting in an ICE socket is read when the loop comes to it, not one per pass.

asyncio's datagram transport reads **one** datagram each time the loop finds its socket
readable, so a link is read at most once per loop pass (under qasync, each of those reads
is a Qt timer event of its own). One link of a meeting carries about 65 packets a second
at 320x180 and 10 fps (audio every 20 ms, video, RTCP), over 150 at 720p (1.5 Mb/s of VP8
in packets of about 1.2 kB). When the loop makes fewer passes than that (a loaded machine,
a busy window), the rest waits in the kernel: aioice asks for a 256 KiB receive buffer
(512 KiB granted), which holds up to 30 s of one link's media. The link is then read at
the loop's pace, never faster, so the delay grows until that buffer is full, and stays:
in ``tests/ui/test_meeting_window.py`` at load 13-17 (three participants in one process),
Ada's audio (and the video on the same socket) came 20-30 s late, sent to received, with
the sockets' receive queues near 460 KiB and aioice's queue empty (measured by wrapping
aiortc's send and receive, 2026-12-01).

:func:`install` makes the protocols aioice reads its sockets with (the host candidates'
``StunProtocol`` and the TURN client over UDP) read on, after the datagram the transport
handed them, what else is waiting in the socket, up to :data:`MAX_BURST`: the loop's pace
then bounds the delay to a pass, not to the buffer. Each datagram still goes through
aioice's own ``datagram_received``, in order. Only asyncio's selector transport is read
this way (a non-blocking socket read directly); any other transport (Windows' proactor)
keeps its own reading.
"""

from __future__ import annotations

import asyncio
import asyncio.selector_events
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("parley.ice")

#: At most this many datagrams read after the one the transport handed over, per pass and
#: socket (about a second of one link's media at 320x180): one socket cannot hold the loop.
MAX_BURST = 64

_SELECTOR_DATAGRAM = getattr(asyncio.selector_events, "_SelectorDatagramTransport", None)

#: The protocol classes patched, with their own ``datagram_received`` (for tests).
PATCHED: dict[Any, Callable[..., None]] = {}


def read_waiting(protocol: Any, received: Callable[[Any, bytes, Any], None]) -> int:
    """Hand ``received`` (the protocol's own handler) the datagrams waiting in the socket of
    ``protocol.transport``, up to :data:`MAX_BURST`; returns how many were read."""
    transport = getattr(protocol, "transport", None)
    if _SELECTOR_DATAGRAM is None or not isinstance(transport, _SELECTOR_DATAGRAM):
        return 0
    sock = transport._sock
    size = transport.max_size
    count = 0
    while count < MAX_BURST and not transport.is_closing():
        try:
            data, addr = sock.recvfrom(size)
        except (BlockingIOError, InterruptedError):
            break
        except OSError as exc:  # as the transport does: the protocol is told
            protocol.error_received(exc)
            break
        count += 1
        received(protocol, data, addr)
    return count


def _draining(own: Callable[[Any, bytes, Any], None]) -> Callable[[Any, bytes, Any], None]:
    def datagram_received(self: Any, data: bytes, addr: Any) -> None:
        own(self, data, addr)
        read_waiting(self, own)

    datagram_received.__doc__ = (own.__doc__ or "") + "\n(Then what else waits: udp_reading.)"
    return datagram_received


def install() -> None:
    """Make aioice's UDP protocols read every waiting datagram (idempotent)."""
    import aioice.ice
    import aioice.turn

    if _SELECTOR_DATAGRAM is None:
        log.info("asyncio has no selector datagram transport here: one datagram per pass")
        return
    for cls in (
        getattr(aioice.ice, "StunProtocol", None),
        getattr(aioice.turn, "TurnClientUdpProtocol", None),
    ):
        if cls is None or cls in PATCHED:
            continue
        own = getattr(cls, "datagram_received", None)
        if own is None:
            log.info("aioice's %s changed: its socket is read one datagram per pass", cls)
            continue
        PATCHED[cls] = own
        cls.datagram_received = _draining(own)


__all__ = ["MAX_BURST", "install", "read_waiting"]
