"""The checks of ``gui/core/remote_sdp.py`` against hypothesis-made descriptions and candidates.

Two properties: the checks never raise, whatever they are given; and what they
let through, aiortc really takes (a fresh peer connection applies the offer and
answers it; the caller's connection applies the answer). The second is what makes
the checks worth having: the session still catches what aiortc refuses, but a
refusal found here first gives the clearer reason.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from gui.core.call_session import CallOptions
from gui.core.remote_sdp import (
    MAX_SDP_CHARS,
    check_candidate,
    check_description,
    mids_in_sdp,
)
from tests.fuzz.sdp_mutations import mutated_candidate, mutated_sdp, parley_offer_and_answer

OFFER, ANSWER = asyncio.run(parley_offer_and_answer())
CANDIDATE = next(line[2:] for line in OFFER.splitlines() if line.startswith("a=candidate:"))
SETTINGS = settings(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_real_descriptions_pass_and_the_issue_cases_fail() -> None:
    assert check_description({"type": "offer", "sdp": OFFER}, "offer") is None
    assert check_description({"type": "answer", "sdp": ANSWER}, "answer", OFFER) is None
    assert mids_in_sdp(OFFER) == ["0", "1", "2", "3"]
    for sdp in ("garbage", "v=0\r\n", "\0" * 5000, "v=0\r\n" + "x" * MAX_SDP_CHARS):
        assert check_description({"type": "offer", "sdp": sdp}, "offer") is not None
    assert check_description({"type": "answer", "sdp": OFFER}, "offer") is not None
    swapped = ANSWER.replace("a=mid:1", "a=mid:9").replace("BUNDLE 0 1 2 3", "BUNDLE 0 9 2 3")
    assert "do not match" in str(
        check_description({"type": "answer", "sdp": swapped}, "answer", OFFER)
    )


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


@SETTINGS
@given(
    json_like
    | st.fixed_dictionaries({"type": json_like, "sdp": json_like})
    | st.fixed_dictionaries({"type": st.just("offer"), "sdp": st.text(max_size=500)})
)
def test_no_input_makes_the_checks_raise(description: Any) -> None:
    for expected, offer in (("offer", None), ("answer", OFFER)):
        reason = check_description(description, expected, offer)
        assert reason is None or isinstance(reason, str)
    reason = check_candidate(description, ["0", "1"])
    assert reason is None or isinstance(reason, str)


async def callee_takes(sdp: str) -> None:
    """A fresh callee connection, as Parley's, applies ``sdp`` as an offer and answers it."""
    pc = RTCPeerConnection(CallOptions().rtc_configuration())
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
    finally:
        await pc.close()


async def caller_takes(mutated_answer: str) -> None:
    """A caller connection with Parley's offer applies ``mutated_answer``."""
    pc = RTCPeerConnection(CallOptions().rtc_configuration())
    try:
        for kind in ("video", "audio", "video"):
            pc.addTransceiver(kind, direction="sendrecv")
        pc.createDataChannel("parley")
        await pc.setLocalDescription(await pc.createOffer())
        offer = pc.localDescription.sdp
        # The answer was made for another offer with the same sections: mids and kinds match.
        reason = check_description({"type": "answer", "sdp": mutated_answer}, "answer", offer)
        note(f"reason: {reason}")
        event("passed the checks" if reason is None else "refused")
        if reason is None:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=mutated_answer, type="answer"))
    finally:
        await pc.close()


@pytest.mark.slow
@settings(SETTINGS, max_examples=200)
@given(mutated_sdp(OFFER))
def test_what_passes_as_an_offer_aiortc_answers(sdp: str) -> None:
    reason = check_description({"type": "offer", "sdp": sdp}, "offer")
    note(f"reason: {reason}")
    event("passed the checks" if reason is None else "refused")
    if reason is None:
        asyncio.run(callee_takes(sdp))


@pytest.mark.slow
@settings(SETTINGS, max_examples=150)
@given(mutated_sdp(ANSWER))
def test_what_passes_as_an_answer_aiortc_applies(sdp: str) -> None:
    asyncio.run(caller_takes(sdp))


@settings(SETTINGS, max_examples=300)
@given(mutated_candidate(CANDIDATE))
def test_candidates_that_pass_are_ones_aiortc_parses(candidate: dict[str, object]) -> None:
    from aiortc.sdp import candidate_from_sdp

    reason = check_candidate(candidate, ["0", "1", "2", "3"])
    note(f"reason: {reason}")
    event("passed the checks" if reason is None else "refused")
    if reason is None:
        text = str(candidate["candidate"])
        parsed = candidate_from_sdp(text.removeprefix("candidate:"))
        assert parsed.port <= 65535 and parsed.component in (1, 2)
