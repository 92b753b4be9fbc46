"""An SCTP chunk that cannot be sent because the path below it has ended is lost, as a datagram
would be, instead of failing a task nobody awaits.

aiortc keeps the data channel's SCTP association running after its DTLS transport has closed
(the peer closed it, or ICE consent failed) until the whole peer connection is closed, and
closing stops the media first. The association's timers go on meanwhile: a retransmission
(``_t3_expired`` schedules ``_transmit`` with ``asyncio.ensure_future``) then raises
``ConnectionError("Cannot send encrypted data, not connected")`` in a task that nobody awaits,
which asyncio prints at collection as "Task exception was never retrieved" with a traceback
(aiortc issue 1040). Seen at the hang-up after a 10 s black hole in
``tests/net/test_recovery.py``, once in 10 runs. The same happens a little earlier, while DTLS
still counts as connected but its ICE transport has closed ("Cannot send data, not connected").

:func:`install` wraps ``RTCSctpTransport._send_chunk``, the one place the association hands a
chunk to DTLS, so that a chunk refused with ``ConnectionError`` counts as lost on the way (a debug
line). That is what SCTP is built for: a chunk with data stays in the association's queue and is
sent again when its timer fires, should the path come back; aiortc's DTLS never connects again
once it has closed, so it does not, and closing the connection stops the association.
``_abort``, the only caller that expected the error, caught and ignored it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("parley.call")

SendChunk = Callable[[Any, Any], Awaitable[None]]


def _lost_when_refused(own: SendChunk) -> SendChunk:
    @functools.wraps(own)  # its ``__wrapped__`` also tells that it is installed
    async def _send_chunk(self: Any, chunk: Any) -> None:
        try:
            await own(self, chunk)
        except ConnectionError as exc:
            log.debug("SCTP %s lost: %s", type(chunk).__name__, exc)

    return _send_chunk


def install() -> None:
    """Count the chunks the path below refuses as lost rather than raise (idempotent)."""
    from aiortc.rtcsctptransport import RTCSctpTransport

    own = getattr(RTCSctpTransport, "_send_chunk", None)
    if own is None:
        log.info("aiortc's RTCSctpTransport changed: late SCTP chunks still raise")
        return
    if hasattr(own, "__wrapped__"):
        return
    RTCSctpTransport._send_chunk = _lost_when_refused(own)  # type: ignore[method-assign,assignment]


__all__ = ["install"]
