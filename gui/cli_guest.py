"""``parley-cli guest-link create|revoke|list``: links that let a guest join from a browser.

``create`` prints ``{"event": "guest_link", "url": ..., "link_id": ..., "expires_at": ...}``
(the URL holds the link's secret code: it is shown once, at creation); ``list`` prints the
links that still admit guests (without their codes); ``revoke LINK_ID`` turns one off and
sends away the guests it admitted.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Protocol

from gui.core.guest_links import guest_link_url


class Requester(Protocol):
    """The part of the signaling client used here."""

    url: str

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send a request; return the ``ok`` reply or raise."""


def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}, ensure_ascii=False), flush=True)


def _expiry(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of seconds") from None
    if not 60 <= value <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError("a link lasts 60 seconds to 7 days (604800 s)")
    return value


def add_parser(commands: Any) -> None:
    """``guest-link`` and its three actions, on the CLI's subcommands."""
    guest = commands.add_parser(
        "guest-link", help="create, list or revoke links for guests who join from a browser"
    )
    actions = guest.add_subparsers(dest="guest_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="a link for a call with you, or for a meeting")
    create.add_argument(
        "--meeting", metavar="ID", help="a link into this meeting (you must be in it)"
    )
    create.add_argument(
        "--expires",
        type=_expiry,
        metavar="S",
        help="how long the link admits guests, in seconds (default: 24 hours)",
    )
    actions.add_parser("list", help="your links that still admit guests")
    revoke = actions.add_parser("revoke", help="turn a link off; its guests are removed")
    revoke.add_argument("link_id", metavar="LINK_ID")


async def run(client: Requester, args: argparse.Namespace) -> int:
    """Carry out ``guest-link ACTION``; exit status 0."""
    if args.guest_command == "create":
        fields: dict[str, Any] = {}
        if args.meeting:
            fields["meeting_id"] = args.meeting.lower()
        if args.expires is not None:
            fields["expires_in"] = args.expires
        link = (await client.request("guest_link.create", **fields))["link"]
        url = guest_link_url(client.url, link.pop("path"))
        link.pop("code")
        _emit("guest_link", url=url, **link)
    elif args.guest_command == "list":
        _emit("guest_links", links=(await client.request("guest_link.list"))["links"])
    else:
        await client.request("guest_link.revoke", link_id=args.link_id.lower())
        _emit("guest_link_revoked", link_id=args.link_id.lower())
    return 0
