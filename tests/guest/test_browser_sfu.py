"""A guest in a meeting through a real Janus (``parley-server --sfu``), from headless Chromium.

The page publishes once to the media server and subscribes to each other participant
through the server's ``sfu.*`` relay, as Parley's app does; two ``parley-cli`` take part
from the other side. Each side must get pictures and sound from the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from gui.core.guest_links import guest_link_url
from gui.core.meeting_chat import NOT_SHOWN_END_TO_END
from tests.chromium import chromium_missing
from tests.cli.procs import Launcher, ServerProcess, serving
from tests.guest.browser import chromium, guest_page
from tests.guest.test_browser import make_link, media_from, off_loop, start
from tests.server.test_calls import connected
from tests.sfu.conftest import SfuSetup, sfu  # noqa: F401 (the session's Janus)
from tests.sfu.test_relay import AV, apps
from tests.wire import new_call_id

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing())),
]

SMALL = ("--resolution", "320x240", "--fps", "15", "--stats")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sfu: SfuSetup) -> Iterator[ServerProcess]:  # noqa: F811
    with serving(tmp_path_factory.mktemp("guests-sfu"), "--no-echo", *sfu.server_args) as process:
        yield process


@pytest.fixture
def launch(server: ServerProcess) -> Iterator[Launcher]:
    with Launcher.around(server.url) as launcher:
        yield launcher


async def test_a_guest_in_a_meeting_through_janus(launch: Launcher, server: ServerProcess) -> None:
    await off_loop(launch.befriend, ("sg-ana", "sg-ben"))
    ben = await start(launch, server, "sg-ben", "meet", "answer", "--wait", "60", *SMALL)
    ana = await start(
        launch,
        server,
        "sg-ana",
        "meet",
        "create",
        "--invite",
        "sg-ben",
        "--audio",
        "tone:600",
        *SMALL,
    )
    _, joined = await off_loop(ana.wait_event, "state", 30, state="joined")
    assert joined["topology"] == "sfu"
    await off_loop(ben.wait_event, "state", 30, state="joined")
    url = await make_link(launch, "sg-ana", "--meeting", joined["meeting_id"])
    async with chromium() as browser, guest_page(browser) as guest:
        assert await guest.open(url) == 200
        await guest.join("Sam")
        await guest.wait_receiving(["sg-ana", "sg-ben"], timeout=60)
        me = (await guest.evaluate("() => window.parleyGuest.state.user"))["username"]
        # No data channel through Janus: the server relays chat (meeting.chat), both ways.
        await guest.send_chat("hello <b>all</b>")
        for member in (ana, ben):
            await off_loop(member.wait_event, "chat", 20, text="hello <b>all</b>")
        assert await guest.page.locator("#chat-log b").count() == 0  # shown as text
        for member in (ana, ben):
            await off_loop(
                member.wait_for,
                lambda m=member: media_from(m, me),
                60,
                "frames from the guest",
            )
        await guest.page.click("#leave")
        await guest.wait_done()
    for member in (ana, ben):
        await off_loop(member.wait_event, "participant_left", 20, username=me)
        member.send_signal(2)
    for member in (ana, ben):
        await off_loop(member.finish, 30)
        figures = member.summary["participants"][me]
        assert figures["frames_received"] > 10 and figures["audio_ms_received"] > 1000


async def test_a_guest_joining_after_a_call_moved_to_janus_is_told_its_chat_is_not_shown(
    server: ServerProcess,
) -> None:
    """Two apps' call became a meeting through Janus; its chat went end to end and is not
    shown to a guest who joins later: the page says so above its chat, as the app does."""
    cal, dee = await apps(server.url, "sg-cal", "sg-dee")
    try:
        moved = await cal.request(
            "meeting.create",
            meeting_id=new_call_id(),
            media=AV,
            from_call=await connected(cal, dee),
        )
        meeting_id = moved["meeting"]["meeting_id"]
        link = (await cal.request("guest_link.create", meeting_id=meeting_id))["link"]
        async with chromium() as browser, guest_page(browser) as guest:
            assert await guest.open(guest_link_url(server.url, link["path"])) == 200
            await guest.join("Sam")
            assert await guest.page.locator("#chat-notice").is_visible()
            assert await guest.text("#chat-notice") == NOT_SHOWN_END_TO_END
            assert await guest.chats() == []
            await guest.page.click("#leave")
            await guest.wait_done()
    finally:
        await asyncio.gather(cal.close(), dee.close())
