"""``account …`` and ``guest-link …``: the commands that change the account or its links."""

from __future__ import annotations

import argparse

from gui.cli.output import BadArguments, emit
from gui.core import account, guest_links
from gui.core.signaling_client import SignalingClient


async def run_account(client: SignalingClient, args: argparse.Namespace) -> int:
    """``account …``: each action prints one JSON line saying what was done."""
    action = args.account_command
    if action == "password":
        problem = account.check_new_password(args.password, args.new)
        if problem is not None:
            raise BadArguments(f"--new: {problem}")
        revoked = await account.change_password(client, args.password, args.new)
        emit("password_changed", signed_out=revoked)
    elif action == "sign-out-others":
        emit("signed_out_others", signed_out=await account.sign_out_others(client))
    elif action == "delete":
        if not args.yes:
            raise BadArguments(
                "account delete: this deletes the account with its contacts, requests and call "
                "history, for good; add --yes to do it"
            )
        await account.delete_account(client, args.password)
        emit("account_deleted", username=args.user.lower())
    elif action == "block":
        emit("blocked", user=await account.block(client, args.peer))
    elif action == "unblock":
        await account.unblock(client, args.peer)
        emit("unblocked", username=args.peer.lower())
    else:
        emit("blocked_users", users=await account.blocked(client))
    return 0


async def run_guest_link(client: SignalingClient, args: argparse.Namespace) -> int:
    """``guest-link create`` prints the link's ``url`` (its secret: shown once), ``list`` the
    links that admit guests, ``revoke`` turns one off."""
    if args.guest_command == "create":
        link = await guest_links.create_link(client, args.meeting, args.expires)
        emit("guest_link", **link)
    elif args.guest_command == "list":
        emit("guest_links", links=await guest_links.list_links(client))
    else:
        await guest_links.revoke_link(client, args.link_id)
        emit("guest_link_revoked", link_id=args.link_id.lower())
    return 0
