"""A guest in a real headless Chromium: opens a link's page, joins, reads what the page shows.

Chromium (Debian's, through Playwright, as ``tests/chromium.py`` runs it) gets a fake
camera and microphone (``--use-fake-device-for-media-stream``: a moving test picture
and a beep) and grants them without asking (``--use-fake-ui-for-media-stream``, which
also picks a fake screen for ``getDisplayMedia``). The page is driven like a person
would: type a name, press Join, press buttons, type chat; what it knows is read from
its DOM and from ``window.parleyGuest``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from tests.chromium import CHROMIUM, CHROMIUM_ARGS

GUEST_ARGS = [
    *CHROMIUM_ARGS,
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--auto-select-desktop-capture-source=Entire screen",
]


async def until[T](
    check: Callable[[], Awaitable[T | None]], timeout: float, what: str, every: float = 0.1
) -> T:
    """Poll ``check`` until it gives something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"no {what} within {timeout:g} s (last: {last!r})")


class GuestPage:
    """One browser tab on a guest link."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda message: self.console.append(message.text))
        page.on("request", lambda request: self.requests.append(request.url))

    async def open(self, url: str) -> int:
        """Load the page; its HTTP status."""
        response = await self.page.goto(url)
        assert response is not None
        return int(response.status)

    async def text(self, selector: str) -> str:
        return str(await self.page.text_content(selector) or "")

    async def join(self, name: str, timeout: float = 20.0) -> None:
        """Type ``name`` and press Join once the camera is up; wait until in the room."""
        await self.page.wait_for_selector("#join:not([disabled])", timeout=timeout * 1000)
        await self.page.fill("#name", name)
        await self.page.click("#join")
        try:
            await self.page.wait_for_selector("#room:not([hidden])", timeout=timeout * 1000)
        except Exception as exc:
            status = await self.text("#lobby-status")
            raise AssertionError(f"not in the room: the page says {status!r}") from exc

    async def evaluate(self, script: str, arg: Any = None) -> Any:
        return await self.page.evaluate(script, arg)

    async def stats(self) -> dict[str, dict[str, float]]:
        """Per remote participant: frames decoded (camera, screen), audio energy and samples."""
        stats: dict[str, dict[str, float]] = await self.evaluate("() => window.parleyGuest.stats()")
        return stats

    async def chats(self) -> list[str]:
        """The chat log as shown (``WHO: TEXT``)."""
        return list(await self.page.locator("#chat-log li").all_text_contents())

    async def words(self) -> list[str] | None:
        words = await self.evaluate("() => window.parleyGuest.state.words")
        return list(words) if words else None

    async def phase(self) -> str:
        return str(await self.evaluate("() => window.parleyGuest.state.phase"))

    async def send_chat(self, text: str) -> None:
        await self.page.fill("#chat-input", text)
        await self.page.press("#chat-input", "Enter")

    async def wait_receiving(self, usernames: list[str], timeout: float = 30.0) -> dict:
        """Until video frames and sound arrive from each of ``usernames``."""

        async def check() -> dict | None:
            stats = await self.stats()
            ok = all(
                stats.get(u, {}).get("camera_frames", 0) > 10
                and stats.get(u, {}).get("audio_energy", 0) > 0
                for u in usernames
            )
            return stats if ok else None

        return await until(check, timeout, f"media from {usernames}")

    async def wait_done(self, timeout: float = 15.0) -> tuple[str, str]:
        """Until the page shows its final screen: (title, text)."""
        await self.page.wait_for_selector("#done:not([hidden])", timeout=timeout * 1000)
        return await self.text("#done-title"), await self.text("#done-text")


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """A headless Chromium with fake media devices (the browser object), closed afterwards."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=GUEST_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def guest_page(browser: Any) -> AsyncIterator[GuestPage]:
    """A fresh browser context (its own permissions and storage) with one tab."""
    context = await browser.new_context(permissions=["camera", "microphone"])
    try:
        yield GuestPage(await context.new_page())
    finally:
        await context.close()
