"""``parley-cli``: the headless client, for scripts, bots, tests and people without a display.

Built on the same engine as the desktop app (``SignalingClient`` and
``CallSession``). It prints one JSON object per line on stdout and exits 0
when the call ended by a person's choice (hang-up, cancel, decline), 1 when
it could not be made or broke (busy, offline, no answer, lost, refused), and
2 on bad arguments, with a one-line error on stderr.

``meet create|join|answer`` take part in a meeting of up to four (a mesh: a
peer connection to every other participant), with the same media options; the
summary then has the figures of what came from each participant.

``call`` and ``answer`` take ``--share-screen [N]``: once the call connects,
screen N (0 by default) goes out on the call's screen slot, beside the
camera slot's pattern. Only then does the CLI need Qt: it runs on a
``QGuiApplication`` and a qasync loop; everything else stays plain asyncio.
"""

from __future__ import annotations

from gui.cli.arguments import build_parser
from gui.cli.run import main

__all__ = ["build_parser", "main"]
