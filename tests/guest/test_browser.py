"""A guest in real headless Chromium, against a real ``parley-server`` and real ``parley-cli``.

Each test opens a link the way a person who was sent it would: load the page, type a name,
press Join; the browser's own WebRTC (fake camera and microphone) then talks to Parley
ends that nobody adapted for it. What each side got is read from both: the browser's
``getStats()`` and DOM, ``parley-cli``'s JSON lines and exit status.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chromium import chromium_missing
from tests.cli.procs import CliProcess, Launcher, ServerProcess, serving
from tests.guest.browser import GuestPage, chromium, guest_page, until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing())),
]

FORBIDDEN_FROM_PAGE = """async ([kind, fields]) => {
  try {
    await window.parleyGuest.state.signaling.request(kind, fields);
    return "ok";
  } catch (error) {
    return error.code;
  }
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(tmp_path_factory.mktemp("guests")) as process:
        yield process


@pytest.fixture
def launch(server: ServerProcess) -> Iterator[Launcher]:
    with Launcher.around(server.url) as launcher:
        yield launcher


async def off_loop(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A blocking wait on a child process, off the event loop (Playwright runs on it)."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def make_link(launch: Launcher, user: str, *args: str) -> str:
    maker = launch.cli(user, "guest-link", "create", *args)
    await off_loop(maker.finish, 60, 0)
    (link,) = maker.named("guest_link")
    return str(link["url"])


async def start(launch: Launcher, server: ServerProcess, user: str, *args: str) -> CliProcess:
    """``parley-cli USER ARGS``, returned once the server saw it log in."""
    mark = server.log_mark()
    child = launch.cli(user, *args)
    await off_loop(server.wait_logged_in, user, mark)
    return child


async def forbidden(guest: GuestPage, kind: str, **fields: Any) -> str:
    return str(await guest.evaluate(FORBIDDEN_FROM_PAGE, [kind, fields]))


async def test_a_guest_calls_parley_cli_both_see_hear_chat_and_the_words_match(
    launch: Launcher, server: ServerProcess
) -> None:
    await off_loop(launch.register, "gina")
    url = await make_link(launch, "gina")
    host = await start(launch, server, "gina", "answer", "--wait", "90", "--chat", "hi, guest")
    async with chromium() as browser, guest_page(browser) as guest:
        assert await guest.open(url) == 200
        assert "Join a call with gina" in await guest.text("h1")
        await guest.page.wait_for_selector("#join:not([disabled])")
        assert await guest.page.locator("#camera option").count() >= 1  # the devices to choose
        assert await guest.page.locator("#microphone option").count() >= 1
        await guest.join("Ann")
        _, incoming = await off_loop(host.wait_event, "incoming", 30)
        assert incoming["caller"]["display_name"] == "Guest: Ann"
        await off_loop(host.wait_state, "connected", 30)
        await guest.wait_receiving(["gina"])
        _, sas = await off_loop(host.wait_event, "sas", 15)
        words = await until(guest.words, 15, "verification words")
        assert words == sas["words"]
        assert await guest.text("#words-text") == " ".join(words)
        await until(lambda: _has(guest.chats(), "gina: hi, guest"), 20, "the host's chat")
        await guest.send_chat("hello from the browser")
        await off_loop(host.wait_event, "chat", 15, text="hello from the browser")
        # A guest asks for what guests may not do: refused, and the call goes on.
        assert await forbidden(guest, "users.search", query="gi") == "forbidden"
        assert await forbidden(guest, "contacts.request", username="gina") == "forbidden"
        call_id = str(uuid.uuid4())
        invite = {"to": "gina", "call_id": call_id, "media": {"audio": True, "video": True}}
        assert await forbidden(guest, "call.invite", **invite) == "forbidden"
        before = (await guest.stats())["gina"]["camera_frames"]
        await until(lambda: _more(guest, "gina", before + 15), 15, "frames after the refusals")
        assert await guest.phase() == "in-call"
        # Mute and camera off reach the other side (the data channel's state messages).
        await guest.page.click("#mute")
        await off_loop(host.wait_event, "peer_media", 15, audio=False, video=True)
        assert await guest.page.get_attribute("#mute", "aria-pressed") == "true"
        await guest.page.click("#camera-off")
        await off_loop(host.wait_event, "peer_media", 15, audio=False, video=False)
        mark = host.mark()
        await guest.page.click("#mute")
        await guest.page.click("#camera-off")
        await off_loop(host.wait_event, "peer_media", 15, mark, audio=True, video=True)
        # No tile for the host's screen: nothing comes on that slot.
        assert await guest.page.locator("figcaption", has_text="screen").count() == 0
        # The browser shares its (fake) screen on the call's screen slot.
        await guest.page.click("#share")
        await off_loop(host.wait_event, "peer_media", 15, screen=True)
        await until(lambda: _screen_sent(guest, 20), 20, "screen frames sent")
        await guest.page.click("#leave")
        title, _ = await guest.wait_done()
        assert title == "You left"
    await off_loop(host.finish, 30, 0)
    summary = host.summary
    assert summary["reason"] == "hangup"
    assert summary["frames_received"] > 10 and summary["audio_ms_received"] > 1000
    assert summary["screen_frames_received"] > 0, summary


async def test_a_revoked_link_sends_its_guest_away(launch: Launcher, server: ServerProcess) -> None:
    await off_loop(launch.register, "jack")
    maker = launch.cli("jack", "guest-link", "create")
    await off_loop(maker.finish, 60, 0)
    (link,) = maker.named("guest_link")
    host = await start(launch, server, "jack", "answer", "--wait", "90")
    async with chromium() as browser, guest_page(browser) as guest:
        await guest.open(link["url"])
        await guest.join("Kim")
        await off_loop(host.wait_state, "connected", 30)
        await guest.wait_receiving(["jack"])
        revoker = launch.cli("jack", "guest-link", "revoke", link["link_id"])
        await off_loop(revoker.finish, 60, 0)
        title, text = await guest.wait_done()
        assert (title, text) == ("You were removed", "This guest link was revoked.")
        assert await guest.text("#room") and await guest.page.is_hidden("#room")
        # The link is dead now: its page says so.
        again = await browser.new_page()
        response = await again.goto(link["url"])
        assert response is not None and response.status == 410
        assert await again.text_content("h1") == "This link was revoked"
    _, ended = await off_loop(host.wait_state, "ended", 20)
    assert ended["reason"] == "hangup"
    await off_loop(host.finish, 30, 0)


async def test_expired_and_unknown_links_get_a_page_that_says_so(make_server: Any) -> None:
    """On an in-process server, whose clock the test moves past the link's expiry."""
    from tests.wire import befriend

    signaling = await make_server()
    (owner,) = await befriend(signaling.url, "lena")
    link = (await owner.request("guest_link.create", expires_in=60))["link"]
    base = signaling.url.replace("ws://", "http://").removesuffix("/ws")
    hub = signaling.hub
    real = hub.clock
    hub.clock = lambda: real() + 61
    try:
        async with chromium() as browser, guest_page(browser) as guest:
            assert await guest.open(base + link["path"]) == 410
            assert await guest.text("h1") == "This link has expired"
            assert await guest.open(base + "/g/" + "Z" * 32) == 404
            assert await guest.text("h1") == "This link does not exist"
            assert not [c for c in guest.console if "Content Security Policy" in c]
    finally:
        hub.clock = real
        await owner.close()


async def test_a_guest_in_a_mesh_meeting_of_three(launch: Launcher, server: ServerProcess) -> None:
    await off_loop(launch.befriend, ("hana", "ivan"))
    ivan = await start(launch, server, "ivan", "meet", "answer", "--wait", "60", "--stats")
    hana = await start(
        launch, server, "hana", "meet", "create", "--invite", "ivan", "--stats",
        "--chat", "before <b>the guest</b>",
    )  # fmt: skip
    _, created = await off_loop(hana.wait_event, "state", 30, state="joined")
    meeting_id = created["meeting_id"]
    await off_loop(ivan.wait_event, "state", 30, state="joined")
    await off_loop(ivan.wait_event, "chat", 30, text="before <b>the guest</b>")
    url = await make_link(launch, "hana", "--meeting", meeting_id)
    async with chromium() as browser, guest_page(browser) as guest:
        assert await guest.open(url) == 200
        await guest.join("Zoe")
        await guest.wait_receiving(["hana", "ivan"], timeout=40)
        # The chat from before the guest came, over the data channels: once, though both
        # sent it (ivan's copy of what hana, present, wrote is not taken).
        line = "hana: before <b>the guest</b>"
        await until(lambda: _has(guest.chats(), line), 20, "the chat from before")
        await asyncio.sleep(1.0)
        assert (await guest.chats()).count(line) == 1
        guest_name = (await guest.evaluate("() => window.parleyGuest.state.user"))["username"]
        # Screen sharing: the browser's (fake) screen goes out to both, on the screen slot.
        await guest.page.click("#share")
        await until(lambda: _pressed(guest, "#share"), 10, "the share button pressed")
        for member in (hana, ivan):  # both get the guest's media before it leaves
            await off_loop(
                member.wait_for, lambda m=member: media_from(m, guest_name), 40, "the guest's media"
            )
        await guest.page.click("#leave")
        title, _ = await guest.wait_done()
        assert title == "You left"
    for member in (hana, ivan):
        _, left = await off_loop(member.wait_event, "participant_left", 20, username=guest_name)
        assert left["reason"] == "left"
        member.send_signal(2)
    for member in (hana, ivan):
        await off_loop(member.finish, 30)
        figures = member.summary["participants"][guest_name]
        assert figures["connected"] and figures["frames_received"] > 10, member.summary
        assert figures["audio_ms_received"] > 500, member.summary


def media_from(member: CliProcess, username: str) -> bool | None:
    """Whether ``member``'s per-second link figures show media coming from ``username``."""
    for _, message in reversed(member.events):  # called with the process's lock held
        if message["event"] == "link_stats" and message.get("username") == username:
            return True if message.get("bitrate_in_kbps", 0) > 30 else None
    return None


async def _has(chats: Any, line: str) -> bool:
    return line in await chats


async def _more(guest: GuestPage, username: str, frames: float) -> bool:
    return (await guest.stats())[username]["camera_frames"] > frames


async def _screen_sent(guest: GuestPage, frames: int) -> bool:
    sent = await guest.evaluate(
        """async () => {
          const link = [...window.parleyGuest.state.links.values()][0];
          const mid = link.slots.screen.mid;
          let frames = 0;
          (await link.pc.getStats()).forEach((s) => {
            if (s.type === "outbound-rtp" && s.mid === mid) frames += s.framesSent || 0;
          });
          return frames;
        }"""
    )
    return int(sent) >= frames


async def _pressed(guest: GuestPage, selector: str) -> bool:
    return await guest.page.get_attribute(selector, "aria-pressed") == "true"


async def test_over_tls_the_page_and_its_socket_are_https_and_wss(
    make_server: Any, tmp_path: Any
) -> None:
    """A server with a certificate serves the page over https, and the page connects over wss."""
    import ssl

    from tests.tls import make_server_files
    from tests.wire import WireClient

    files = make_server_files(tmp_path)
    signaling = await make_server(tls_cert=files.cert, tls_key=files.key)
    assert signaling.url.startswith("wss://")
    trust = ssl.create_default_context(cafile=str(files.ca))
    host = await WireClient.open(signaling.url, ssl=trust)
    await host.register("mona")
    link = (await host.request("guest_link.create"))["link"]
    url = signaling.url.replace("wss://", "https://").removesuffix("/ws") + link["path"]
    async with chromium() as browser:
        context = await browser.new_context(
            permissions=["camera", "microphone"], ignore_https_errors=True
        )
        try:
            guest = GuestPage(await context.new_page())
            assert await guest.open(url) == 200
            await guest.join("Nia")
            incoming = await host.next_event("call.incoming", timeout=15)
            assert incoming["from"]["display_name"] == "Guest: Nia"
            await host.request("call.accept", call_id=incoming["call_id"])
            signal = await host.next_event("rtc.signal", timeout=15)  # the page's offer, over wss
            assert signal["description"]["type"] == "offer"
            await host.request("call.hangup", call_id=incoming["call_id"])
            title, text = await guest.wait_done()
            assert (title, text) == ("The call ended", "mona hung up.")
        finally:
            await context.close()
            await host.close()
