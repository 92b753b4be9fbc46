"""A guest who was sent a link: link opened → first remote frame in the browser; page weight.

One signaling server in this process (SQLite in a temporary folder) and one host, also
here: Parley's engine (``SignalingClient`` and ``CallSession``, as ``parley-cli answer``
runs it) answering every call with the 640x480 test pattern and a tone. For each run a
fresh headless Chromium context (Debian's Chromium through Playwright, fake camera and
microphone; nothing cached) opens the host's guest link, types a name and presses Join
as soon as the page allows it; the page notes when the first remote video frame is
presented (``requestVideoFrameCallback`` on the remote tile).

Figures, min/median/max over the runs:

1. **Link opened → first remote frame**: from the navigation's start (the page's
   ``performance.timeOrigin``) to the first frame presented; it holds loading the page,
   opening the camera and microphone, typing the name (automated: a few milliseconds),
   joining, the host's accepting, ICE, DTLS and the first decoded frame. Goal: under 2 s.
2. **Link opened → own camera shown** (the page loaded, the camera and microphone open,
   Join enabled), and **Join pressed → first remote frame** (without the page's loading
   and the person's typing).
3. **Page weight**: the bytes of everything the page loads (HTML, CSS, JavaScript
   modules), and the number of requests to any other origin (goal: 0). Goal: under 100 KB.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import Figure, Goal, PartialFailure
from gui.core.call_session import CallSession, LocalMedia
from gui.core.signaling_client import SignalingClient
from gui.media.pattern import PatternVideoTrack
from gui.media.tone import ToneAudioTrack
from signaling.server import ServerConfig, SignalingServer
from signaling.server.credentials import HashParameters
from tests.guest.browser import GuestPage, chromium, guest_page

NAME = "guest"
RUNS = 7
QUICK_RUNS = 2
FIRST_FRAME_GOAL_MS = 2000.0
PAGE_WEIGHT_GOAL_KB = 100.0
RUN_TIMEOUT_S = 30.0


class Host:
    """The link's owner: answers every call with Parley's engine, hangs up when the guest does."""

    def __init__(self, url: str) -> None:
        self.client = SignalingClient(url)
        self.calls: list[CallSession] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Connect and register."""
        await self.client.connect()
        await self.client.register("host", "host-password-1")
        self.client.on_event(self._event)

    def _event(self, message: dict[str, Any]) -> None:
        if message.get("type") != "call.incoming":
            return
        media = LocalMedia(camera=PatternVideoTrack(640, 480, fps=30), audio=ToneAudioTrack(440))
        session = CallSession.incoming(self.client, message, media)
        self.calls.append(session)
        session.accept()
        task = asyncio.get_running_loop().create_task(self._follow(session))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @staticmethod
    async def _follow(session: CallSession) -> None:
        try:
            await session.wait_ended()
        finally:
            session.media.stop()

    async def link(self) -> str:
        """A new guest link's path."""
        reply = await self.client.request("guest_link.create")
        return str(reply["link"]["path"])

    async def close(self) -> None:
        """Hang up what is still on, and disconnect."""
        for session in self.calls:
            if not session.machine.ended:
                session.hang_up()
        for task in list(self.tasks):
            await asyncio.wait_for(task, 10)
        await self.client.close()


async def one_run(browser: Any, url: str) -> dict[str, float]:
    """Open ``url`` in a fresh context, join, wait for the first remote frame, leave."""
    async with guest_page(browser) as guest:
        weights: list[int] = []
        foreign: list[str] = []
        origin = urlsplit(url).netloc

        async def weigh(response: Any) -> None:
            if urlsplit(response.url).netloc != origin:
                foreign.append(response.url)
            try:
                weights.append(len(await response.body()))
            except Exception:  # a redirect or an aborted request has no body
                weights.append(0)

        guest.page.on("response", lambda response: asyncio.ensure_future(weigh(response)))
        await guest.open(url)
        await guest.join(NAME, timeout=RUN_TIMEOUT_S)
        first = await _first_frame(guest)
        clicked = float(await guest.evaluate("() => window.parleyGuest.state.joinClickedAt"))
        preview = float(await guest.evaluate("() => window.parleyGuest.state.previewAt"))
        await guest.page.click("#leave")
        await guest.wait_done()
        return {
            "opened_to_frame_ms": first,
            "join_to_frame_ms": first - clicked,
            "opened_to_preview_ms": preview,
            "page_bytes": float(sum(weights)),
            "foreign_requests": float(len(foreign)),
        }


async def _first_frame(guest: GuestPage) -> float:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        first = await guest.evaluate("() => window.parleyGuest.state.firstFrameAt")
        if first is not None:
            return float(first)
        await asyncio.sleep(0.02)
    raise TimeoutError(f"no remote frame within {RUN_TIMEOUT_S:g} s")


async def measure(runs: int) -> tuple[list[dict[str, float]], list[str]]:
    with tempfile.TemporaryDirectory(prefix="parley-bench-guest-") as folder:
        config = ServerConfig(
            host="127.0.0.1",
            port=0,
            db_path=Path(folder) / "parley.db",
            hash_parameters=HashParameters(time_cost=1, memory_kib=1024, parallelism=1),
        )
        server = SignalingServer(config)
        await server.start()
        host = Host(server.url)
        results: list[dict[str, float]] = []
        errors: list[str] = []
        try:
            await host.start()
            base = server.url.replace("ws://", "http://").removesuffix("/ws")
            async with chromium() as browser:
                for _ in range(runs):
                    try:
                        url = base + await host.link()  # a new link each run: nothing cached
                        results.append(await one_run(browser, url))
                    except Exception as exc:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(0.5)  # the host's previous call winds down
        finally:
            await host.close()
            await server.stop()
        return results, errors


def _spread(name: str, values: list[float], unit: str, goal: Goal | None) -> list[Figure]:
    if not values:
        return [Figure("guest", f"{name} (median)", float("nan"), unit, goal)]
    return [
        Figure("guest", f"{name} (min)", min(values), unit),
        Figure("guest", f"{name} (median)", statistics.median(values), unit, goal),
        Figure("guest", f"{name} (max)", max(values), unit),
    ]


def run(quick: bool) -> list[Figure]:
    """The figures of :mod:`bench.guest` (``quick``: two runs instead of seven)."""
    results, errors = asyncio.run(measure(QUICK_RUNS if quick else RUNS))
    figures = [
        *_spread(
            "link opened -> first remote frame",
            [r["opened_to_frame_ms"] for r in results],
            "ms",
            Goal.below(FIRST_FRAME_GOAL_MS),
        ),
        *_spread(
            "link opened -> own camera shown",
            [r["opened_to_preview_ms"] for r in results],
            "ms",
            None,
        ),
        *_spread(
            "join pressed -> first remote frame",
            [r["join_to_frame_ms"] for r in results],
            "ms",
            None,
        ),
        *_spread(
            "page weight",
            [r["page_bytes"] / 1000 for r in results],
            "KB",
            Goal.below(PAGE_WEIGHT_GOAL_KB),
        ),
        Figure(
            "guest",
            "requests to other origins",
            max((r["foreign_requests"] for r in results), default=float("nan")),
            "",
            Goal.at_most(0),
        ),
        Figure("guest", "runs", float(len(results)), ""),
    ]
    if errors:
        raise PartialFailure(figures, errors)
    return figures


if __name__ == "__main__":
    from bench.runner import format_table

    print(format_table(run(quick=False)))
