"""Built-in users written as clients of the protocol (the Echo Test), and how they run.

The server package knows a bot only as ``signaling.server.bots.Bot``; the composition
roots (``parley-server`` in :mod:`gui.server`, the app's built-in server in
:mod:`gui.embedded`) plug these in. Qt-free, on ``gui.core`` and ``gui.media`` only.
"""

from __future__ import annotations

from gui.bots.thread import BotThread


def echo_test() -> BotThread:
    """The Echo Test as the composition roots plug it in: on a thread and loop of its own."""
    from gui.bots.echo import EchoBot  # aiortc is loaded only when the Echo Test is wanted

    return BotThread(EchoBot())


__all__ = ["BotThread", "echo_test"]
