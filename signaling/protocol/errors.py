"""The one exception type that turns into an ``error`` reply."""

from __future__ import annotations

from signaling.protocol.constants import ErrorCode


class ProtocolError(Exception):
    """A request failed in a way the protocol names.

    Raised anywhere below a request handler; the dispatcher turns it into
    ``{"type": "error", "re": ..., "code": ..., "message": ...}``.
    """

    def __init__(self, code: ErrorCode, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"ProtocolError({self.code.value!r}, {self.message!r})"


def bad_message(message: str) -> ProtocolError:
    """Shorthand for the most common error."""
    return ProtocolError(ErrorCode.BAD_MESSAGE, message)


class RequestError(Exception):
    """A request was answered with ``error``: raised on the requesting side (client or bot)."""

    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after
