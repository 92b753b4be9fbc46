"""v1.1: ``rtc.signal`` may carry ``restart``, the token of a call's fresh peer connection."""

from __future__ import annotations

import json

import pytest

from signaling.protocol.constants import ErrorCode
from signaling.protocol.messages import FrameError, RtcSignal, decode_request

CALL_ID = "123e4567-e89b-12d3-a456-426614174000"
OFFER = {"type": "offer", "sdp": "v=0\r\n"}


def signal(**fields: object) -> RtcSignal:
    frame = {"type": "rtc.signal", "call_id": CALL_ID, "description": OFFER, **fields}
    request = decode_request(json.dumps(frame)).request
    assert isinstance(request, RtcSignal)
    return request


def test_the_restart_token_is_relayed_with_the_description() -> None:
    assert signal(restart="caller-2").payload() == {"description": OFFER, "restart": "caller-2"}
    assert signal().payload() == {"description": OFFER}  # as before v1.1
    assert signal(restart=None).payload() == {"description": OFFER}


@pytest.mark.parametrize("token", ["", "x" * 33, 7, ["a"], "a\u200bb", "a\nb"])
def test_a_bad_restart_token_is_bad_message(token: object) -> None:
    with pytest.raises(FrameError) as caught:
        signal(restart=token)
    assert caught.value.code is ErrorCode.BAD_MESSAGE
    assert "restart" in str(caught.value)
