"""Issue 16's five malformed offers, sent to a real ``parley-cli answer`` by a hand-driven caller.

Before the fix, the first three (``"garbage"``, ``"v=0"``, 5,000 NUL characters)
left the callee "connecting" without media for good, and the last two (a video
section with no ICE or DTLS attributes, 300 audio sections sharing one mid) made
it print a Python traceback. Now each call must end as ``failed`` within seconds,
on both sides, with the reason in parley-cli's JSON and no traceback on stderr.

The caller is a raw protocol client in the test process (it can send anything);
the server is a real one on the test's loop, and each callee its own
``python -m gui.cli`` child. The five calls run side by side.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from gui.core.call_machine import UNUSABLE_DETAIL
from signaling.server import SignalingServer
from tests.cli.procs import CliProcess
from tests.wire import WireClient, befriend, new_call_id

pytestmark = pytest.mark.slow

#: From the offer to the callee's end; it was "never" before the fix. Seconds, with room for
#: five children starting at once on two cores.
ENDS_WITHIN_S = 15.0
#: parley-cli answers at once; seconds, with room for five children on two cores.
ANSWERED_WITHIN_S = 15.0
SESSION_KEYS = (
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwxyz\r\n"
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\n"
)
AUDIO_MID_0 = (
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n"
)
BAD_OFFERS = {
    "garbage": "garbage",
    "version only": "v=0\r\n",
    "NUL characters": "\0" * 5000,
    "no ICE or DTLS": (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n"
        "a=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n"
    ),
    "300 sections, one mid": SESSION_KEYS + AUDIO_MID_0 * 300,
}


def answer_as(url: str, user: str) -> CliProcess:
    """``parley-cli answer`` for ``user`` (registered by :func:`befriend`)."""
    argv = [sys.executable, "-m", "gui.cli", "--server", url, "--user", user]
    argv += ["--password", "correct horse", "answer", "--wait", "60", "--video", "none"]
    return CliProcess(f"parley-cli[{user} answer]", argv)


async def offer_garbage(caller: WireClient, callee: str, sdp: str) -> str:
    """Ring ``callee`` once its CLI is online, send ``sdp`` as the offer; the reason it ended."""
    while True:  # the CLI's login shows as its presence going online
        event = await caller.next_event("presence", timeout=60)
        if event["username"] == callee and event["presence"] == "online":
            break
    # parley-cli listens for call.incoming from before it logs in, so ringing at once is safe.
    call_id = new_call_id()
    media = {"audio": True, "video": True}
    await caller.request("call.invite", to=callee, call_id=call_id, media=media)
    await caller.next_event("call.accepted", timeout=ANSWERED_WITHIN_S)
    description = {"type": "offer", "sdp": sdp}
    await caller.request("rtc.signal", call_id=call_id, description=description)
    ended = await caller.next_event("call.ended", timeout=ENDS_WITHIN_S)
    return str(ended["reason"])


async def test_five_malformed_offers_end_each_call_as_failed(server: SignalingServer) -> None:
    clients = await befriend(server.url, *(f"{who}{i}" for i in range(5) for who in ("mal", "bob")))
    callers, callees = clients[0::2], clients[1::2]
    for client in callees:  # the CLI logs in as this user: free it, so that presence shows it
        await client.close()
    children = [answer_as(server.url, f"bob{i}") for i in range(5)]
    try:
        calls = asyncio.gather(
            *(
                offer_garbage(caller, f"bob{i}", sdp)
                for i, (caller, sdp) in enumerate(zip(callers, BAD_OFFERS.values(), strict=True))
            )
        )
        try:
            reasons = await calls
        except TimeoutError:
            raise AssertionError("\n".join(c.describe() for c in children)) from None
        # The callee's hang-up says the call failed, and the server tells the caller so.
        assert reasons == ["failed"] * 5
        codes = await asyncio.gather(*(asyncio.to_thread(c.finish, 30) for c in children))
    finally:
        for child in children:
            await asyncio.to_thread(child.kill)
        for caller in callers:
            await caller.close()
    for name, child, code in zip(BAD_OFFERS, children, codes, strict=True):
        summary = child.summary
        assert (code, summary["reason"]) == (1, "failed"), f"{name}\n{child.describe()}"
        assert summary["detail"] == UNUSABLE_DETAIL, name
        assert summary["problem"].startswith("offer"), (name, summary["problem"])
        ended = child.named("state")[-1]
        assert ended["state"] == "ended" and ended["detail"] == UNUSABLE_DETAIL, name
        (logged,) = [line for line in child.stderr.splitlines() if "cannot use" in line]
        assert summary["problem"] in logged, name
