"""Checks on what the other end of a call sends before any of it reaches aiortc.

aiortc trusts its input: an offer with no media section is "applied" and the
call then waits forever for media that cannot come; one with sections but no
ICE or DTLS attributes raises from deep inside; a section repeated 300 times
builds 300 transceivers. So every description and trickled candidate from a
peer is checked here first, against the size, structure and content a WebRTC
endpoint really sends, and against the offer this end made (for an answer).

Pure functions, no I/O: each returns ``None`` when the input is usable and
otherwise a short reason in English for the logs (``"offer: section 2 has no
a=mid"``). The caller ends the call as ``failed``; the user is shown a plain
sentence, never this reason.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from typing import Any

from aiortc.codecs import CODECS
from aiortc.sdp import DIRECTIONS, MediaDescription, SessionDescription

from signaling.protocol.fields import is_encodable

#: Larger than any real description (Parley's offer is about 6,000 characters, a browser's
#: 5,000 to 12,000); the server relays at most 60,000 by default.
MAX_SDP_CHARS = 64 * 1024
#: Parley offers four sections (camera, audio, screen, data channel); browsers in a 1:1 call
#: as many. A description with more is not a call Parley can take part in.
MAX_SECTIONS = 8
#: Candidates in one description, and trickled ones over a whole call (one ICE agent rarely
#: has more than a dozen; every one adds checks to run).
MAX_CANDIDATES = 64
#: As the server relays (docs/protocol.md, Limits).
MAX_CANDIDATE_CHARS = 1024
MAX_MID_CHARS = 64
MAX_MLINE_INDEX = 1023

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE = re.compile(r"[a-z]=")
_MLINE = re.compile(r"m=(\S+) (\d{1,5}) (\S+) (\S.*)")
_MID = re.compile(rf"[!-~]{{1,{MAX_MID_CHARS}}}")
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")
_SHA256 = re.compile(r"([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}")
_MDNS_HOST = re.compile(r"[A-Za-z0-9-]{1,63}\.local")
_CANDIDATE_TYPES = frozenset({"host", "srflx", "prflx", "relay"})
_AUDIO_VIDEO = ("audio", "video")
#: Directions an answer may give a section, by the direction this end offered (RFC 3264 6.1).
_ANSWERABLE = {
    "sendrecv": frozenset(DIRECTIONS),
    "sendonly": frozenset({"recvonly", "inactive"}),
    "recvonly": frozenset({"sendonly", "inactive"}),
    "inactive": frozenset({"inactive"}),
}


class _Unusable(Exception):
    """Internal: the first problem found, as the reason to return."""


def check_description(
    description: object, expected: str, offer_sdp: str | None = None
) -> str | None:
    """Why ``description`` (an ``rtc.signal`` description) cannot be applied, or ``None``.

    ``expected`` is ``"offer"`` (this end is the callee) or ``"answer"`` (the caller, which
    passes its own offer as ``offer_sdp`` so the answer can be compared section by section).
    """
    try:
        _check_description(description, expected, offer_sdp)
    except _Unusable as exc:
        return str(exc)
    return None


def check_candidate(candidate: object, mids: Collection[str] = ()) -> str | None:
    """Why a trickled ``candidate`` object cannot be added, or ``None``.

    ``mids`` are the remote description's section ids; a candidate naming another one is
    refused. An empty ``candidate`` string (end of candidates) is usable.
    """
    try:
        _check_candidate_object(candidate, mids)
    except _Unusable as exc:
        return str(exc)
    return None


def mids_in_sdp(sdp: str) -> list[str]:
    """The ``a=mid`` values of a description, in section order."""
    return [line[6:].strip() for line in sdp.splitlines() if line.startswith("a=mid:")]


def _fail(reason: str) -> _Unusable:
    return _Unusable(reason)


def _check_description(description: object, expected: str, offer_sdp: str | None) -> None:
    if not isinstance(description, dict):
        raise _fail("the description is not an object")
    kind, sdp = description.get("type"), description.get("sdp")
    if kind != expected:
        raise _fail(f"expected an {expected}, got type {_show(kind)}")
    if not isinstance(sdp, str):
        raise _fail(f"{kind}: sdp is not a string")
    _check_text(kind, sdp)
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser fails in many ways (asserts included)
        raise _fail(f"{kind}: unreadable SDP ({type(exc).__name__})") from None
    _check_sections(kind, sdp, parsed)
    if kind == "answer" and offer_sdp is not None:
        _check_against_offer(parsed, SessionDescription.parse(offer_sdp))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_text(kind: str, sdp: str) -> None:
    if len(sdp) > MAX_SDP_CHARS:
        raise _fail(f"{kind}: {len(sdp)} characters, more than {MAX_SDP_CHARS}")
    if _CONTROL.search(sdp):
        raise _fail(f"{kind}: control characters in the SDP")
    if not is_encodable(sdp):
        raise _fail(f"{kind}: the SDP is not valid Unicode")
    lines = sdp.splitlines()
    if not lines or lines[0].strip() != "v=0":
        raise _fail(f"{kind}: the SDP does not start with v=0")
    for number, line in enumerate(lines, 1):
        if line and not _LINE.match(line):
            raise _fail(f"{kind}: line {number} is not an SDP line")
        if line.startswith("m=") and not _MLINE.fullmatch(line.strip()):
            raise _fail(f"{kind}: line {number} is not a valid m= line")


def _check_sections(kind: str, sdp: str, parsed: SessionDescription) -> None:
    sections = parsed.media
    if not sections:
        raise _fail(f"{kind}: no media section")
    if len(sections) > MAX_SECTIONS:
        raise _fail(f"{kind}: {len(sections)} media sections, more than {MAX_SECTIONS}")
    _, blocks = split_sdp(sdp)
    mids: list[str] = []
    candidates = 0
    for index, (media, block) in enumerate(zip(sections, blocks, strict=True)):
        where = f"{kind}: section {index} ({media.kind})"
        mid = media.rtp.muxId
        if not isinstance(mid, str) or not mid:
            raise _fail(f"{where} has no a=mid")
        if not _MID.fullmatch(mid):
            raise _fail(f"{where} has an invalid mid")
        if mid in mids:
            raise _fail(f"{where} repeats mid {_show(mid)}")
        mids.append(mid)
        _check_transport(kind, where, media)
        if media.kind in _AUDIO_VIDEO:
            _check_rtp(where, media, block)
        elif media.kind == "application":
            _check_application(where, media)
        else:
            raise _fail(f"{where}: media kind {_show(media.kind)} is not audio, video or data")
        for candidate in media.ice_candidates:
            _check_candidate_fields(
                where,
                candidate.component,
                candidate.protocol,
                candidate.priority,
                candidate.ip,
                candidate.port,
                candidate.type,
            )
        candidates += len(media.ice_candidates)
    if candidates > MAX_CANDIDATES:
        raise _fail(f"{kind}: {candidates} candidates, more than {MAX_CANDIDATES}")
    if sum(1 for m in sections if m.kind == "application") > 1:
        raise _fail(f"{kind}: more than one data channel section")
    for group in parsed.group:
        if group.semantic != "BUNDLE":
            continue
        items = [str(item) for item in group.items]
        if len(set(items)) != len(items) or not set(items) <= set(mids):
            raise _fail(f"{kind}: the BUNDLE group names sections that do not exist")


def split_sdp(sdp: str) -> tuple[list[str], list[list[str]]]:
    """The session's lines, and each media section's lines, as aiortc groups them."""
    session: list[str] = []
    sections: list[list[str]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            session.append(line)
    return session, sections


def _check_transport(kind: str, where: str, media: MediaDescription) -> None:
    ice = media.ice
    if ice is None or not ice.usernameFragment or not ice.password:
        raise _fail(f"{where} has no ICE username fragment or password")
    if not (4 <= len(ice.usernameFragment) <= 256 and _ICE_CHARS.fullmatch(ice.usernameFragment)):
        raise _fail(f"{where} has an invalid ICE username fragment")
    if not (22 <= len(ice.password) <= 256 and _ICE_CHARS.fullmatch(ice.password)):
        raise _fail(f"{where} has an invalid ICE password")
    dtls = media.dtls
    if dtls is None:
        raise _fail(f"{where} has no DTLS setup role")
    if kind == "answer" and dtls.role not in ("client", "server"):
        raise _fail(f"{where}: an answer must be DTLS active or passive")
    if not any(
        f.algorithm.lower() == "sha-256" and _SHA256.fullmatch(f.value) for f in dtls.fingerprints
    ):
        raise _fail(f"{where} has no sha-256 certificate fingerprint")


def _check_rtp(where: str, media: MediaDescription, block: list[str]) -> None:
    if not media.rtcp_mux:
        raise _fail(f"{where} does not multiplex RTCP")
    if any(not 0 <= pt <= 127 or 72 <= pt <= 76 for pt in media.fmt):
        raise _fail(f"{where} has an invalid payload type")
    directions = [line for line in block if line.strip()[2:] in DIRECTIONS]
    if len(directions) != 1:  # aiortc needs one (it fails answering a section with none)
        raise _fail(f"{where} gives {len(directions)} directions, not one")
    ours = {c.mimeType.lower() for c in CODECS[media.kind] if not c.mimeType.endswith("/rtx")}
    if not any(c.mimeType.lower() in ours for c in media.rtp.codecs):
        raise _fail(f"{where} offers no codec Parley has")


def _check_application(where: str, media: MediaDescription) -> None:
    if media.profile == "DTLS/SCTP":
        port = int(media.fmt[0]) if media.fmt and str(media.fmt[0]).isdigit() else None
    else:
        port = media.sctp_port
    if port is None or not 1 <= port <= 65535:
        raise _fail(f"{where} has no valid SCTP port")


def _check_against_offer(answer: SessionDescription, offer: SessionDescription) -> None:
    ours = [(m.kind, m.rtp.muxId) for m in offer.media]
    theirs = [(m.kind, m.rtp.muxId) for m in answer.media]
    if ours != theirs:
        raise _fail("answer: its sections do not match the offer's")
    for index, (mine, other) in enumerate(zip(offer.media, answer.media, strict=True)):
        if mine.kind not in _AUDIO_VIDEO:
            continue
        offered = mine.direction or "sendrecv"
        if (other.direction or "sendrecv") not in _ANSWERABLE.get(offered, frozenset()):
            raise _fail(f"answer: section {index} answers {offered} with {other.direction}")


# Candidates --------------------------------------------------------------------------------


def _check_candidate_object(candidate: object, mids: Collection[str]) -> None:
    if not isinstance(candidate, dict):
        raise _fail("the candidate is not an object")
    text, mid, index = (candidate.get(k) for k in ("candidate", "sdpMid", "sdpMLineIndex"))
    if not isinstance(text, str):
        raise _fail("candidate: the candidate line is not a string")
    if mid is not None and (not isinstance(mid, str) or not _MID.fullmatch(mid)):
        raise _fail("candidate: invalid sdpMid")
    if index is not None and (
        type(index) is not int or not 0 <= index <= MAX_MLINE_INDEX  # bool is not an index
    ):
        raise _fail("candidate: invalid sdpMLineIndex")
    if not text:
        return  # end of candidates
    if len(text) > MAX_CANDIDATE_CHARS or _CONTROL.search(text) or not text.isascii():
        raise _fail("candidate: invalid characters or too long")
    if mid is None and index is None:
        raise _fail("candidate: neither sdpMid nor sdpMLineIndex")
    if mid is not None and mids and mid not in mids:
        raise _fail(f"candidate: no section with mid {_show(mid)}")
    if index is not None and mids and index >= len(mids):
        raise _fail(f"candidate: no section {index}")
    bits = text.removeprefix("candidate:").split()
    if len(bits) < 8 or bits[6] != "typ":
        raise _fail("candidate: not a candidate line")
    try:
        component, priority, port = int(bits[1]), int(bits[3]), int(bits[5])
    except ValueError:
        raise _fail("candidate: a number is not a number") from None
    _check_candidate_fields("candidate", component, bits[2], priority, bits[4], port, bits[7])


def _check_candidate_fields(
    where: str, component: int, protocol: str, priority: int, host: str, port: int, kind: str
) -> None:
    if component not in (1, 2):
        raise _fail(f"{where}: candidate component {component}")
    if protocol.lower() not in ("udp", "tcp"):
        raise _fail(f"{where}: candidate transport {_show(protocol)}")
    if not 0 <= priority < 2**32:
        raise _fail(f"{where}: candidate priority out of range")
    if not 0 <= port <= 65535:
        raise _fail(f"{where}: candidate port out of range")
    if kind not in _CANDIDATE_TYPES:
        raise _fail(f"{where}: candidate type {_show(kind)}")
    if _MDNS_HOST.fullmatch(host):
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise _fail(f"{where}: candidate address {_show(host)} is not an IP address") from None
