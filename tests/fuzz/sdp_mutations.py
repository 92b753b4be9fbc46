"""Hypothesis strategies for hostile SDP and ICE candidates, made by mutating real ones.

A real description is cut into its session lines and its media sections; each
mutation then works on that structure (drop, repeat or reorder sections, drop,
repeat or rewrite lines, set an attribute to an odd value, rewrite an ``m=``
line) or on the raw text (cut it short, change line endings, replace it
outright). One to four mutations apply in a row, so most results are "nearly
right", the hardest kind to refuse well.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiortc import RTCPeerConnection
from hypothesis import strategies as st

from gui.core.call_session import CallOptions
from gui.core.remote_sdp import split_sdp

#: Values that have broken parsers before: empty, huge, negative, separators, NUL, non-ASCII.
ODD_VALUES = [
    "",
    "0",
    "-1",
    "65536",
    "99999999999999999999999",
    "1.5",
    " ",
    ":",
    "a b",
    "\x00",
    "\u202e",
    "\ud7ff",
    "é",
    "x" * 300,
    "sha-256",
    "actpass",
    "holdconn",
    "BUNDLE",
    "*",
]
odd_text = st.sampled_from(ODD_VALUES) | st.text(max_size=24)
#: Attributes a mutation may set; the value is drawn per use.
ATTRIBUTES = {
    "mid": st.sampled_from(["0", "1", "2", "3", "9", "", "a" * 70]) | odd_text,
    "setup": st.sampled_from(["actpass", "active", "passive", "holdconn"]) | odd_text,
    "ice-ufrag": st.sampled_from(["abcd", "a", "a" * 300]) | odd_text,
    "ice-pwd": st.sampled_from(["abcdefghijklmnopqrstuvwxyz", "short"]) | odd_text,
    "fingerprint": st.sampled_from(
        ["sha-256 " + ":".join(["AB"] * 32), "sha-1 AB:CD", "sha-256 zz", "md5 00"]
    )
    | odd_text,
    "group": st.sampled_from(["BUNDLE 0 1 2 3", "BUNDLE 0 0", "BUNDLE 7", "BUNDLE", "LS 0 1"])
    | odd_text,
    "rtpmap": st.sampled_from(["96 VP8/90000", "111 opus/48000/2", "96 nope/1", "300 VP8/0"])
    | odd_text,
    "fmtp": st.sampled_from(["97 apt=200", "999 x=1", "96 profile-level-id=zz"]) | odd_text,
    "sctp-port": st.sampled_from(["5000", "0", "70000", "x"]) | odd_text,
    "max-message-size": st.sampled_from(["0", "262144", "-5", "x"]) | odd_text,
    "extmap": st.sampled_from(["1 urn:x", "x urn:y", "300/sendrecv urn:z"]) | odd_text,
    "ssrc": st.sampled_from(["1 cname:x", "x cname:y", "4294967296 msid:a b"]) | odd_text,
    "rtcp-fb": st.sampled_from(["* nack", "97", "x y z"]) | odd_text,
    "candidate": st.sampled_from(
        [
            "1 1 udp 2130706431 127.0.0.1 9 typ host",
            "1 1 udp 1 example.org 9 typ host",
            "1 9 sctp -1 ::1 70000 typ weird",
            "1 1 udp",
        ]
    )
    | odd_text,
}
DIRECTION_LINES = ["a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive", "a=sendrecv"]


@dataclass
class Sdp:
    """A description cut into its parts, to mutate and join again."""

    session: list[str]
    sections: list[list[str]]
    newline: str = "\r\n"

    @classmethod
    def split(cls, text: str) -> Sdp:
        return cls(*split_sdp(text))

    def join(self) -> str:
        lines = self.session + [line for section in self.sections for line in section]
        return self.newline.join(lines) + self.newline

    def blocks(self) -> list[list[str]]:
        """Every list of lines a line mutation may touch (the session's, then each section's)."""
        return [self.session, *self.sections]


@st.composite
def mutate_once(draw: st.DrawFn, sdp: Sdp) -> None:
    """Apply one mutation to ``sdp`` in place."""
    op = draw(
        st.sampled_from(
            [
                "drop_line",
                "repeat_line",
                "edit_line",
                "set_attribute",
                "drop_section",
                "repeat_section",
                "swap_sections",
                "many_sections",
                "rewrite_mline",
                "direction",
                "newline",
            ]
        )
    )
    blocks = [b for b in sdp.blocks() if b]
    block = draw(st.sampled_from(blocks)) if blocks else sdp.session
    index = draw(st.integers(0, max(0, len(block) - 1)))
    if op == "drop_line" and block:
        del block[index]
    elif op == "repeat_line" and block:
        block.insert(index, block[index])
    elif op == "edit_line" and block:
        head, sep, _ = block[index].partition(":" if block[index].startswith("a=") else "=")
        block[index] = head + (sep or "=") + draw(odd_text)
    elif op == "set_attribute":
        name = draw(st.sampled_from(sorted(ATTRIBUTES)))
        line = f"a={name}:{draw(ATTRIBUTES[name])}"
        existing = [i for i, text in enumerate(block) if text.startswith(f"a={name}:")]
        if existing and draw(st.booleans()):
            block[draw(st.sampled_from(existing))] = line
        else:
            block.insert(max(1, index) if block is not sdp.session else len(block), line)
    elif op == "drop_section" and sdp.sections:
        del sdp.sections[draw(st.integers(0, len(sdp.sections) - 1))]
    elif op == "repeat_section" and sdp.sections:
        at = draw(st.integers(0, len(sdp.sections) - 1))
        sdp.sections.insert(at, list(sdp.sections[at]))
    elif op == "swap_sections" and len(sdp.sections) > 1:
        i, j = draw(st.lists(st.integers(0, len(sdp.sections) - 1), min_size=2, max_size=2))
        sdp.sections[i], sdp.sections[j] = sdp.sections[j], sdp.sections[i]
    elif op == "many_sections" and sdp.sections:
        section = draw(st.sampled_from(sdp.sections))
        sdp.sections.extend(list(section) for _ in range(draw(st.integers(2, 40))))
    elif op == "rewrite_mline" and sdp.sections:
        section = draw(st.sampled_from(sdp.sections))
        kind = draw(st.sampled_from(["audio", "video", "application", "text", "", "video2"]))
        port = draw(st.sampled_from(["9", "0", "99999", "-1", "x"]))
        proto = draw(st.sampled_from(["UDP/TLS/RTP/SAVPF", "RTP/AVP", "UDP/DTLS/SCTP", "x"]))
        fmt = draw(st.sampled_from(["96 97", "webrtc-datachannel", "300", "72", "x", ""]))
        section[0] = f"m={kind} {port} {proto} {fmt}"
    elif op == "direction" and sdp.sections:
        section = draw(st.sampled_from(sdp.sections))
        kept = [line for line in section if line not in DIRECTION_LINES]
        extra = draw(st.lists(st.sampled_from(DIRECTION_LINES), max_size=2))
        section[:] = kept[:1] + extra + kept[1:]
    elif op == "newline":
        sdp.newline = draw(st.sampled_from(["\n", "\r", "\r\r\n", "\r\n "]))


@st.composite
def mutated_sdp(draw: st.DrawFn, base: str) -> str:
    """``base`` after one to four mutations, or, now and then, cut short or replaced outright."""
    ending = draw(st.sampled_from(["structure"] * 8 + ["truncate", "replace"]))
    if ending == "replace":
        return draw(st.text(max_size=200) | st.sampled_from(["garbage", "v=0\r\n", "\0" * 5000]))
    sdp = Sdp.split(base)
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3, 4]))):
        draw(mutate_once(sdp))
    text = sdp.join()
    if ending == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    return text


@st.composite
def mutated_candidate(draw: st.DrawFn, base: str) -> dict[str, object]:
    """A trickled candidate: ``base`` with some tokens replaced, and an odd mid or index."""
    tokens = base.split()
    for _ in range(draw(st.integers(0, 3))):
        tokens[draw(st.integers(0, len(tokens) - 1))] = draw(
            st.sampled_from(["0", "3", "-1", "99999", "tcp", "sctp", "x.local", "host", "relay"])
            | odd_text
        )
    if draw(st.booleans()):
        tokens = tokens[: draw(st.integers(0, len(tokens)))]
    return {
        "candidate": "candidate:" + " ".join(tokens),
        "sdpMid": draw(st.sampled_from(["0", "1", "3", "7", None, "x" * 64])),
        "sdpMLineIndex": draw(st.sampled_from([0, 1, 3, 9, 1023, None])),
    }


async def parley_pair() -> tuple[RTCPeerConnection, RTCPeerConnection]:
    """A caller with an offer as Parley makes it (camera, audio, screen, data), and a callee
    that answered it; the caller of these closes both."""
    options = CallOptions()
    caller, callee = (RTCPeerConnection(options.rtc_configuration()) for _ in range(2))
    for kind in ("video", "audio", "video"):
        caller.addTransceiver(kind, direction="sendrecv")
    caller.createDataChannel("parley")
    await caller.setLocalDescription(await caller.createOffer())
    await callee.setRemoteDescription(caller.localDescription)
    await callee.setLocalDescription(await callee.createAnswer())
    return caller, callee


async def parley_offer_and_answer() -> tuple[str, str]:
    """The SDP of :func:`parley_pair`'s offer and answer (the connections are closed)."""
    caller, callee = await parley_pair()
    await asyncio.gather(caller.close(), callee.close())
    return caller.localDescription.sdp, callee.localDescription.sdp
