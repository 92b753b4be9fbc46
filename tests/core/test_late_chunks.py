"""A link whose DTLS transport ends while its data channel still retransmits closes without a
task failing unseen (``gui/core/late_chunks.py``; aiortc issue 1040).

Two real :class:`PeerLink` objects in this process, connected over loopback UDP. The peer goes
silent (its ICE transport stops, sending nothing), so a chat message stays unacknowledged; this
end's retransmission timer is then set to fire on every pass of the loop, so that it fires while
the connection closes, and this end's ICE transport stops, as when consent fails. aiortc then
closes the connection by itself (every DTLS transport closed), stopping the media before the
association: the retransmissions in between must not leave an exception nobody retrieved.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from gui.core.peer_link import CallOptions, PeerLink
from tests.waiting import until


async def _connected_pair() -> tuple[PeerLink, PeerLink]:
    here, peer = PeerLink(CallOptions(), "here"), PeerLink(CallOptions(), "peer")
    here.offer_sections()
    await peer.apply_remote(await here.make_offer(), "offer")
    await here.apply_remote(await peer.make_answer(), "answer")
    await until(lambda: here.channel.is_open and peer.channel.is_open, 20, "open data channel")
    return here, peer


async def test_retransmissions_after_dtls_ended_fail_no_task() -> None:
    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    here, peer = await _connected_pair()
    try:
        sctp = here.pc.sctp
        assert sctp is not None
        await peer.pc.sctp.transport.transport.stop()  # the peer's path is gone, silently
        here.chat("nobody acknowledges this")
        await asyncio.sleep(0.1)
        assert sctp._sent_queue, "the message should wait for an acknowledgement"
        sctp._rto = 0.0  # retransmit on every pass of the loop from now on
        sctp._t3_restart()
        await asyncio.sleep(0.05)
        await sctp.transport.transport.stop()  # this end's path ends too: DTLS closes
        await until(lambda: here.pc.connectionState == "closed", 20, "connection closed")
        await asyncio.sleep(0.1)
        gc.collect()
        await asyncio.sleep(0)
        assert sctp.state == "closed"
        assert not unretrieved, [c.get("message") for c in unretrieved]
    finally:
        await here.close()
        await peer.close()
        loop.set_exception_handler(previous)
