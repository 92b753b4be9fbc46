"""A pure machine's actions carried out one at a time, in order: what calls and meetings share.

Making an offer or applying a description is asynchronous, and an answer must not
overtake the offer it answers, nor a candidate its description: so the actions a
machine gives (``take_actions()``) are queued and one worker task performs them
in order. ``CallSession`` and ``MeetingSession`` each own one runner; what an
action means, what a failure does and which action is the last stay theirs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from gui.core.call_machine import SendRequest
from gui.core.peer_link import SignalingLink
from gui.core.signaling_client import NotConnected, RequestError

Json = dict[str, Any]


class ActionRunner:
    """Queues a machine's actions and performs them in order on one task, started lazily."""

    def __init__(
        self,
        take: Callable[[], Iterable[Any]],
        perform: Callable[[Any], Awaitable[None]],
        failed: Callable[[Any, Exception], None],
        last: Callable[[Any], bool],
    ) -> None:
        """``perform`` carries one action out; ``failed`` hears what it raised; after an action
        for which ``last`` is true, the worker stops."""
        self._take = take
        self._perform = perform
        self._failed = failed
        self._last = last
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def pump(self) -> None:
        """Queue what the machine wants done now (call after every input)."""
        for action in self._take():
            self._queue.put_nowait(action)
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        while True:
            action = await self._queue.get()
            try:
                await self._perform(action)
            except Exception as exc:
                self._failed(action, exc)
            self.pump()
            if self._last(action):
                return


async def send_request(
    link: SignalingLink,
    action: SendRequest,
    label: str,
    log: logging.Logger,
    refused: Callable[[str, str, str], None],
) -> Json | None:
    """Send ``action``'s request; its ``ok`` reply, or ``None`` after ``refused(kind, code,
    message)`` (``unreachable`` when it could not be sent or went unanswered)."""
    try:
        return await link.request(action.kind, **action.fields)
    except RequestError as exc:
        log.info("%s: %s refused: %s", label, action.kind, exc)
        refused(action.kind, exc.code, exc.message)
    except (NotConnected, TimeoutError) as exc:
        log.info("%s: %s not sent: %s", label, action.kind, exc)
        refused(action.kind, "unreachable", str(exc))
    return None
