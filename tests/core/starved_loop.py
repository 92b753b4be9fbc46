"""A loop starved of passes, and how late a tone is heard on it (tests/core/test_udp_reading.py,
bench/starved_loop.py).

Two real aiortc peers on loopback (:func:`tests.media.loopback.loopback`), a tone; a callback
on the loop sleeps on every pass, so the loop makes few passes a second, as a loaded machine's
does: fewer than the 50 audio packets a second the link carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

from gui.core import udp_reading
from gui.media import fast_paths
from gui.media.tone import ToneAudioTrack
from tests.media.loopback import loopback
from tests.waiting import until

#: How long the loop is starved before the tone starts, and what each pass is made to cost.
STARVED_S = 10.0
PASS_COST_S = 0.05


class Starver:
    """Sleeps ``pass_cost_s`` on every pass of the loop (a callback that schedules itself
    again), counting the passes: sleeping, not spinning, so the machine's load adds nothing."""

    def __init__(self, pass_cost_s: float = PASS_COST_S) -> None:
        self.pass_cost_s = pass_cost_s
        self.passes = 0
        self._handle: asyncio.Handle | None = None

    def start(self) -> None:
        self._handle = asyncio.get_running_loop().call_soon(self._pass)

    def _pass(self) -> None:
        self.passes += 1
        time.sleep(self.pass_cost_s)
        self._handle = asyncio.get_running_loop().call_soon(self._pass)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


@contextlib.contextmanager
def one_datagram_per_pass() -> Iterator[None]:
    """aioice's protocols as they came, for the duration (the bug, for comparison)."""
    drained = {cls: cls.datagram_received for cls in udp_reading.PATCHED}
    for cls, own in udp_reading.PATCHED.items():
        cls.datagram_received = own
    try:
        yield
    finally:
        for cls, drain in drained.items():
            cls.datagram_received = drain


async def onset_delay_after_starving(
    starved_s: float = STARVED_S, pass_cost_s: float = PASS_COST_S
) -> tuple[float, float]:
    """The tone starts after the loop was starved for ``starved_s``, each pass costing
    ``pass_cost_s``: how late it is heard (s; not heard within 20 s: the time waited), and
    the loop's passes per second meanwhile."""
    fast_paths.install()  # as every PeerLink has it: audio encoded on the loop, in real time
    tone = ToneAudioTrack(550.0)
    tone.muted = True
    starver = Starver(pass_cost_s)
    try:
        async with loopback(tone) as call:
            await until(lambda: call.audio is not None and call.audio.frames > 10, 20, "audio")
            audio = call.audio
            assert audio is not None
            started = time.monotonic()
            starver.start()
            await asyncio.sleep(starved_s)
            passes_per_s = starver.passes / (time.monotonic() - started)
            audio.reset_onset(0.1)
            tone.muted = False
            with contextlib.suppress(TimeoutError):  # not heard: as late as the wait, or more
                await until(lambda: audio.onset_at is not None, 20, "the tone at the receiver")
            assert tone.sound_started_at is not None
            heard_at = time.monotonic() if audio.onset_at is None else audio.onset_at
            delay = heard_at - tone.sound_started_at
            return delay, passes_per_s
    finally:
        starver.stop()
        tone.stop()
