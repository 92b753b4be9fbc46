"""Protocol version 1: names, limits, validation and message encoding.

Pure code with no I/O, shared by the server and the client (see docs/protocol.md).
"""

from signaling.protocol.constants import (
    CallReason,
    ContactStatus,
    ErrorCode,
    EventType,
    Presence,
    RequestType,
)
from signaling.protocol.errors import ProtocolError
from signaling.protocol.messages import Envelope, decode_request, encode

__all__ = [
    "CallReason",
    "ContactStatus",
    "Envelope",
    "ErrorCode",
    "EventType",
    "Presence",
    "ProtocolError",
    "RequestType",
    "decode_request",
    "encode",
]
