"""HTTP for guests, on the WebSocket's own port: ``/g/CODE`` and ``/g/static/NAME``.

``/g/CODE`` answers the page a guest joins from (200) when the link admits guests,
and otherwise a page that says why: 404 for a code that does not exist, 410 (Gone)
for one that expired, was revoked, or whose meeting ended, 429 when an address
tried too many unknown codes. The page's script, style and modules are files in
``static/`` shipped in the package, served as they are (no build step).

Every answer carries a strict Content-Security-Policy (scripts, styles and
connections from this origin only, nothing inline, no frames) and no referrer, so
that the code in the address never leaves in a ``Referer`` header.
"""

from __future__ import annotations

import html
from functools import cache
from http import HTTPStatus
from importlib import resources

from websockets.datastructures import Headers
from websockets.http11 import Response

from signaling.protocol.constants import ErrorCode
from signaling.protocol.errors import ProtocolError
from signaling.protocol.guests import CODE_RE, LINK_PATH_PREFIX
from signaling.server.guests import GuestRouter, LinkState, LinkView

STATIC_PREFIX = f"{LINK_PATH_PREFIX}static/"
#: The files under ``static/`` and their types; nothing else is served.
STATIC_FILES = {
    "guest.css": "text/css; charset=utf-8",
    "guest.js": "text/javascript; charset=utf-8",
    "signaling.js": "text/javascript; charset=utf-8",
    "peer.js": "text/javascript; charset=utf-8",
    "words.js": "text/javascript; charset=utf-8",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self)"),
]

_GONE = {
    LinkState.UNKNOWN: (
        HTTPStatus.NOT_FOUND,
        "This link does not exist",
        "Check that you copied the whole link, or ask the person who sent it for a new one.",
    ),
    LinkState.EXPIRED: (
        HTTPStatus.GONE,
        "This link has expired",
        "Guest links work for a limited time. Ask the person who sent it for a new one.",
    ),
    LinkState.REVOKED: (
        HTTPStatus.GONE,
        "This link was revoked",
        "The person who sent it has turned it off. Ask them for a new one if you still "
        "need to talk.",
    ),
    LinkState.ENDED: (
        HTTPStatus.GONE,
        "This meeting has ended",
        "The meeting this link was for is over.",
    ),
}


@cache
def _static(name: str) -> bytes:
    return (resources.files("signaling.server.web") / "static" / name).read_bytes()


def _response(
    status: HTTPStatus, body: bytes, content_type: str, extra: tuple[tuple[str, str], ...] = ()
) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
            *_HEADERS,
            *extra,
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def _page(status: HTTPStatus, title: str, text: str) -> Response:
    body = _static("message.html").decode()
    body = body.replace("{{title}}", html.escape(title)).replace("{{text}}", html.escape(text))
    return _response(status, body.encode(), "text/html; charset=utf-8")


def _join_page(view: LinkView) -> Response:
    owner = view.owner.display_name if view.owner else "your host"
    if view.for_meeting:
        heading = (
            f"Join the meeting “{view.meeting_title}”"
            if view.meeting_title
            else f"Join {owner}'s meeting"
        )
    else:
        heading = f"Join a call with {owner}"
    body = _static("guest.html").decode().replace("{{heading}}", html.escape(heading))
    return _response(HTTPStatus.OK, body.encode(), "text/html; charset=utf-8")


async def guest_page(guests: GuestRouter, path: str, address: str) -> Response:
    """The answer to ``GET path`` (a path under ``/g/``) from ``address``."""
    if path.startswith(STATIC_PREFIX):
        name = path.removeprefix(STATIC_PREFIX)
        content_type = STATIC_FILES.get(name)
        if content_type is None:
            return _page(HTTPStatus.NOT_FOUND, "Not found", "There is nothing here.")
        return _response(HTTPStatus.OK, _static(name), content_type)
    code = path.removeprefix(LINK_PATH_PREFIX)
    if not CODE_RE.fullmatch(code):
        return _page(HTTPStatus.NOT_FOUND, *_GONE[LinkState.UNKNOWN][1:])
    try:
        view = await guests.view(code, address)
    except ProtocolError as exc:
        if exc.code is not ErrorCode.RATE_LIMITED:
            raise
        response = _page(
            HTTPStatus.TOO_MANY_REQUESTS,
            "Too many tries",
            "This address opened too many links that do not exist. Wait a minute and try again.",
        )
        response.headers["Retry-After"] = str(exc.retry_after or 60)
        return response
    if view.state is not LinkState.OK:
        return _page(*_GONE[view.state])
    return _join_page(view)
