"""A WebRTC peer that nobody here wrote: Debian's headless Chromium, driven with Playwright.

Playwright runs the system's ``/usr/bin/chromium`` (it downloads no browser of its own).
:class:`BrowserPeer` holds one ``RTCPeerConnection`` in a blank page; it answers an
offer with a canvas camera (and, when asked, a second canvas track), and reports what it
decodes per section from the browser's own ``getStats()``. Chromium is started with the
flags that keep it off this machine's closed network, and with host candidates as plain
addresses (no mDNS names, which aiortc cannot resolve).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]

_PEER_JS = """
window.parley = {
  pc: null,
  canvases: [],
  start(videoTracks) {
    const pc = new RTCPeerConnection({iceServers: []});
    this.pc = pc;
    pc.ontrack = (event) => {
      if (event.track.kind !== "video") return;
      const video = document.createElement("video");
      video.muted = true; video.autoplay = true; video.playsInline = true;
      video.srcObject = new MediaStream([event.track]);
      document.body.appendChild(video);
    };
    this.videoTracks = videoTracks;
  },
  camera(width, height, hue) {
    const canvas = document.createElement("canvas");
    canvas.width = width; canvas.height = height;
    const ctx = canvas.getContext("2d");
    let n = 0;
    setInterval(() => {
      n += 1;
      ctx.fillStyle = `hsl(${hue}, 80%, 50%)`; ctx.fillRect(0, 0, width, height);
      ctx.fillStyle = "white"; ctx.fillRect((n * 7) % width, 20, 40, 40);
    }, 66);
    this.canvases.push(canvas);
    return canvas.captureStream(15).getVideoTracks()[0];
  },
  async gathered() {
    const pc = this.pc;
    if (pc.iceGatheringState === "complete") return;
    await new Promise((resolve) => {
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") resolve();
      });
    });
  },
  async answer(sdp) {
    const pc = this.pc;
    await pc.setRemoteDescription({type: "offer", sdp});
    for (let i = 0; i < this.videoTracks; i++) {
      const track = this.camera(320, 240, 120 * i);
      pc.addTrack(track, new MediaStream([track]));
    }
    await pc.setLocalDescription(await pc.createAnswer());
    await this.gathered();
    return pc.localDescription.sdp;
  },
  async addCandidate(candidate) {
    await this.pc.addIceCandidate(candidate);
  },
  videoMids() {
    return this.pc.getTransceivers()
      .filter((t) => t.receiver.track.kind === "video").map((t) => t.mid);
  },
  async received() {
    const out = {};
    const stats = await this.pc.getStats();
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        out[s.mid] = {frames: s.framesDecoded || 0, width: s.frameWidth || 0,
                      height: s.frameHeight || 0};
      }
    });
    return out;
  },
  state() { return this.pc ? this.pc.connectionState : "none"; },
  close() { if (this.pc) this.pc.close(); },
};
"""


@dataclass(frozen=True, slots=True)
class Decoded:
    """What the browser decoded on one section."""

    frames: int
    width: int
    height: int


class BrowserPeer:
    """One ``RTCPeerConnection`` in a Chromium page."""

    def __init__(self, page: Any) -> None:
        self.page = page

    async def start(self, video_tracks: int) -> None:
        """Create the peer connection; ``video_tracks`` canvas tracks are added on answering."""
        await self.page.evaluate(_PEER_JS)
        await self.page.evaluate("n => window.parley.start(n)", video_tracks)

    async def answer(self, offer_sdp: str) -> str:
        """Apply an offer, add the tracks, and return the answer with every candidate in it."""
        return str(await self.page.evaluate("sdp => window.parley.answer(sdp)", offer_sdp))

    async def add_candidate(self, candidate: dict[str, Any]) -> None:
        """A trickled candidate from the other side."""
        await self.page.evaluate("c => window.parley.addCandidate(c)", candidate)

    async def video_mids(self) -> list[str]:
        """The video sections' mids, in the offer's order."""
        return list(await self.page.evaluate("() => window.parley.videoMids()"))

    async def received(self) -> dict[str, Decoded]:
        """Frames decoded and their size, per video section (the browser's ``getStats()``)."""
        stats = await self.page.evaluate("() => window.parley.received()")
        return {mid: Decoded(**values) for mid, values in stats.items()}

    async def connection_state(self) -> str:
        """The browser's ``connectionState``."""
        return str(await self.page.evaluate("() => window.parley.state()"))

    async def close(self) -> None:
        """Close the peer connection."""
        await self.page.evaluate("() => window.parley.close()")


def chromium_missing() -> str | None:
    """Why Chromium cannot run here, or ``None``."""
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (apt-get install chromium; installer/bootstrap does)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is missing (pip install -e '.[test]')"
    return None


@asynccontextmanager
async def browser_peer() -> AsyncIterator[BrowserPeer]:
    """A fresh headless Chromium with one blank page, closed afterwards."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page()
            await page.goto("about:blank")
            yield BrowserPeer(page)
        finally:
            await browser.close()
