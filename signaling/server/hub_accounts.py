"""The hub's account self-service (protocol v1.1): password change, signing other sessions
out, deleting an account, blocking users.

Same order of effects as the rest of the hub: validate, change memory, commit to the store,
reply, then send events. A connection the server signs out gets ``signed_out`` {``reason``}
and is then logged out exactly as after ``logout`` (its call waits for it, its user may go
offline); the connection stays open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from signaling.protocol.account import (
    MAX_BLOCKED,
    Block,
    BlockedList,
    ChangePassword,
    DeleteAccount,
    SignedOutReason,
    SignOutOthers,
)
from signaling.protocol.constants import (
    ECHO_USERNAME,
    CallReason,
    ContactStatus,
    ErrorCode,
    EventType,
    LeaveReason,
    RequestType,
)
from signaling.protocol.errors import ProtocolError, bad_message
from signaling.protocol.messages import event_message
from signaling.server.calls import CallPhase
from signaling.server.logs import log_event
from signaling.server.routing import Handler, Result, Session, me_user
from signaling.server.store import UserRecord

if TYPE_CHECKING:
    from signaling.server.hub import Hub


class AccountRouter:
    """The ``account.*`` requests."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def handlers(self) -> dict[RequestType, Handler]:
        """What the hub dispatches here."""
        return {
            RequestType.ACCOUNT_PASSWORD: self._change_password,
            RequestType.ACCOUNT_SIGN_OUT_OTHERS: self._sign_out_others,
            RequestType.ACCOUNT_DELETE: self._delete,
            RequestType.ACCOUNT_BLOCK: self._block,
            RequestType.ACCOUNT_UNBLOCK: self._unblock,
            RequestType.ACCOUNT_BLOCKED: self._blocked,
        }

    # Passwords and sessions ------------------------------------------------------

    async def _check_password(self, session: Session, password: str) -> UserRecord:
        """The logged-in user, if ``password`` is theirs; counted as a login failure if not."""
        hub = self.hub
        username = me_user(session).username
        now = hub.now()
        address = session.peer.address
        wait = hub.user_failures.blocked(username, now) or hub.address_failures.blocked(
            address, now
        )
        if wait is not None:
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                "too many wrong passwords; try again later",
                retry_after=wait,
            )
        found = await hub.store.get_user(username)
        if hub.vault is None or not await hub.vault.verify(
            found.password_hash if found else None, password
        ):
            hub.user_failures.failed(username, hub.now())
            hub.address_failures.failed(address, hub.now())
            log_event("account.wrong_password", conn=session.id, user=username)
            raise ProtocolError(ErrorCode.BAD_CREDENTIALS, "the current password is wrong")
        assert found is not None
        return found

    async def _change_password(self, session: Session, req: ChangePassword) -> Result:
        user = await self._check_password(session, req.password)
        if req.new_password == req.password:
            raise bad_message("the new password is the current one")
        assert self.hub.vault is not None
        new_hash = await self.hub.vault.hash(req.new_password)
        # One transaction: a change that fails leaves the old password (its retry works).
        revoked = await self.hub.store.change_password(user.username, new_hash, session.token_hash)
        log_event("account.password_changed", conn=session.id, user=user.username)
        return Result(
            {"revoked": revoked},
            lambda: self.sign_out(user.username, SignedOutReason.PASSWORD_CHANGED, keep=session),
        )

    async def _sign_out_others(self, session: Session, _: SignOutOthers) -> Result:
        username = me_user(session).username
        revoked = await self.hub.store.revoke_other_tokens(username, session.token_hash)
        log_event("account.signed_out_others", conn=session.id, user=username, tokens=revoked)
        return Result(
            {"revoked": revoked},
            lambda: self.sign_out(username, SignedOutReason.SIGNED_OUT_ELSEWHERE, keep=session),
        )

    async def sign_out(
        self, username: str, reason: SignedOutReason, keep: Session | None = None
    ) -> None:
        """Log out every connection of ``username`` whose token is not ``keep``'s."""
        keep_hash = keep.token_hash if keep is not None else None
        for other in list(self.hub.by_user.get(username, ())):
            if other.bot or other is keep or (keep_hash and other.token_hash == keep_hash):
                continue
            self.hub.send(other, event_message(EventType.SIGNED_OUT, reason=reason.value))
            await self.hub.detach(other)

    # Deleting ------------------------------------------------------------------------

    async def _delete(self, session: Session, req: DeleteAccount) -> Result:
        hub = self.hub
        user = await self._check_password(session, req.password)
        username = user.username
        # Leave what the user is in, as hanging up and leaving would, before the rows go.
        call = hub.calls.of_user(username)
        if call is not None:
            if call.phase is CallPhase.RINGING:
                reason = CallReason.CANCELLED if username == call.caller else CallReason.DECLINED
            else:
                reason = CallReason.HANGUP
            await hub.follow_up(await hub.call_router.finish(call, reason))
        meeting = hub.meetings.table.of_user(username)
        if meeting is not None:
            await hub.follow_up(await hub.meetings._depart(meeting, username, LeaveReason.LEFT))
        relations = await hub.store.list_contacts(username)
        await hub.store.delete_user(username, hub.now())
        for relation in relations:
            hub.relation_changed(username, relation.user.username, accepted=False)
        log_event("account.deleted", conn=session.id, user=username)

        async def after() -> None:
            for relation in relations:
                hub.tell_contact(user, relation.user, ContactStatus.REMOVED, session)
            await self.sign_out(username, SignedOutReason.ACCOUNT_DELETED, keep=session)
            await hub.detach(session)

        return Result(then=after)

    # Blocking ------------------------------------------------------------------------

    async def _block(self, session: Session, req: Block) -> Result:
        hub = self.hub
        me = me_user(session)
        peer = await hub.existing_peer(session, req.username)
        if peer.username == ECHO_USERNAME:
            raise ProtocolError(ErrorCode.FORBIDDEN, "the Echo Test cannot be blocked")
        if len(await hub.store.blocked_users(me.username)) >= MAX_BLOCKED:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"at most {MAX_BLOCKED} users can be blocked")
        before = await hub.store.block_user(me.username, peer.username, hub.now())
        if before is ContactStatus.ACCEPTED:
            hub.relation_changed(me.username, peer.username, accepted=False)
        log_event("account.blocked", user=me.username, peer=peer.username)
        # A call from them that rings now stops ringing, as if declined.
        call = hub.calls.of_user(me.username)
        ringing = (
            call is not None
            and call.phase is CallPhase.RINGING
            and call.caller == peer.username
            and call.callee == me.username
        )
        calls = hub.call_router
        ended = await calls.finish(call, CallReason.DECLINED) if ringing and call else None

        async def after() -> None:
            if before is not None:
                hub.tell_contact(me, peer, ContactStatus.REMOVED, session)
            if ended is not None:
                await hub.follow_up(ended)

        return Result({"user": peer.public()}, after)

    async def _unblock(self, session: Session, req: Block) -> Result:
        me = me_user(session)
        if await self.hub.store.unblock_user(me.username, req.username):
            log_event("account.unblocked", user=me.username, peer=req.username)
        return Result()

    async def _blocked(self, session: Session, _: BlockedList) -> Result:
        users = await self.hub.store.blocked_users(me_user(session).username)
        return Result({"users": [user.public() for user in users]})

    async def check_request(self, me: str, peer: str) -> None:
        """``contacts.request`` between two users of whom one blocked the other is refused."""
        blockers = await self.hub.store.blockers(me, peer)
        if me in blockers:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"you blocked '{peer}'; unblock them first")
        if peer in blockers:
            raise ProtocolError(ErrorCode.FORBIDDEN, f"'{peer}' does not accept requests from you")
