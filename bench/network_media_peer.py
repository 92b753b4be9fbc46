"""One headless Chromium end of a call for ``bench/network_impaired.py``, run in a lab home.

``python -m bench.network_media_peer offer|answer DIR ICE_JSON SECONDS``: a page with one
``RTCPeerConnection`` sending a 640x480 canvas at 30 frames/s (a moving block on a textured
background) and receiving the other end's; offer, answer and trickled candidates go through
two JSON-lines files in DIR, which both homes see. Every second it prints a line shaped like
``parley-cli``'s ``stats`` events (``videos`` with the received camera's frames/s,
``camera_frames``, ``camera_freeze_ms``: the sum of the waits between frames over 500 ms,
timed with ``requestVideoFrameCallback``, and ``bitrate_out_kbps``), so the benchmark reads
both stacks the same way.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.network_peer import Mailbox
from tests.chromium import CHROMIUM, CHROMIUM_ARGS

_JS = """
window.peer = {
  pc: null, candidates: [], frames: 0, freezeMs: 0, last: null, sent: 0, sentAt: null,
  init(iceServers) {
    const pc = new RTCPeerConnection({iceServers});
    this.pc = pc;
    pc.onicecandidate = (e) => { if (e.candidate) this.candidates.push(e.candidate.toJSON()); };
    pc.ontrack = (e) => {
      const v = document.createElement("video");
      v.muted = true; v.autoplay = true; v.srcObject = new MediaStream([e.track]);
      document.body.appendChild(v);
      const frame = (now) => {
        this.frames += 1;
        if (this.last !== null && now - this.last > 500) this.freezeMs += now - this.last;
        this.last = now;
        v.requestVideoFrameCallback(frame);
      };
      v.requestVideoFrameCallback(frame);
    };
    const canvas = document.createElement("canvas");
    canvas.width = 640; canvas.height = 480;
    const ctx = canvas.getContext("2d");
    let n = 0;
    setInterval(() => {
      n += 1;
      for (let y = 0; y < 480; y += 40) for (let x = 0; x < 640; x += 40) {
        ctx.fillStyle = `hsl(${(x + y + n) % 360}, 60%, 50%)`; ctx.fillRect(x, y, 40, 40);
      }
      ctx.fillStyle = "white"; ctx.fillRect((n * 7) % 600, 200, 40, 40);
    }, 33);
    const track = canvas.captureStream(30).getVideoTracks()[0];
    pc.addTrack(track, new MediaStream([track]));
  },
  async offer() {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    return this.pc.localDescription.sdp;
  },
  async answer(sdp) {
    await this.pc.setRemoteDescription({type: "offer", sdp});
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    return this.pc.localDescription.sdp;
  },
  async applyAnswer(sdp) { await this.pc.setRemoteDescription({type: "answer", sdp}); },
  takeCandidates() { const out = this.candidates; this.candidates = []; return out; },
  async addCandidate(c) { try { await this.pc.addIceCandidate(c); } catch (e) {} },
  async sample() {
    let sent = 0;
    (await this.pc.getStats()).forEach((s) => { if (s.type === "transport") sent += s.bytesSent; });
    const now = performance.now();
    const kbps = this.sentAt === null ? 0 : (sent - this.sent) * 8 / (now - this.sentAt);
    this.sent = sent; this.sentAt = now;
    return {frames: this.frames, freezeMs: this.freezeMs, kbps, state: this.pc.connectionState};
  },
};
"""


def _emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def run(role: str, folder: Path, ice_servers: list[dict[str, Any]], seconds: float) -> None:
    """Connect, then print a stats line every second until ``seconds`` have passed."""
    from playwright.async_api import async_playwright

    mine, theirs = ("offer", "answer") if role == "offer" else ("answer", "offer")
    box = Mailbox(folder, mine, theirs)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page()
            await page.goto("about:blank")
            await page.evaluate(_JS)
            await page.evaluate("s => window.peer.init(s)", ice_servers)
            if role == "offer":
                box.send({"sdp": await page.evaluate("() => window.peer.offer()")})
            described = False
            end = time.monotonic() + seconds
            frames_before, next_stats = 0, time.monotonic() + 1.0
            connected = False
            while time.monotonic() < end:
                for message in box.receive():
                    if "sdp" in message and role == "answer":
                        answer = await page.evaluate("s => window.peer.answer(s)", message["sdp"])
                        box.send({"sdp": answer})
                        described = True
                    elif "sdp" in message:
                        await page.evaluate("s => window.peer.applyAnswer(s)", message["sdp"])
                        described = True
                    elif "candidate" in message and described:
                        add = "c => window.peer.addCandidate(c)"
                        await page.evaluate(add, message["candidate"])
                for candidate in await page.evaluate("() => window.peer.takeCandidates()"):
                    box.send({"candidate": candidate})
                if time.monotonic() >= next_stats:
                    next_stats += 1.0
                    s = await page.evaluate("() => window.peer.sample()")
                    if s["state"] == "connected" and not connected:
                        connected = True
                        _emit(event="state", state="connected")
                    fps = s["frames"] - frames_before
                    frames_before = s["frames"]
                    _emit(
                        event="stats",
                        videos=[{"name": "camera", "fps": fps}],
                        camera_frames=s["frames"],
                        camera_freeze_ms=round(s["freezeMs"]),
                        bitrate_out_kbps=round(s["kbps"], 1),
                        packet_loss_pct=0.0,
                    )
                await asyncio.sleep(0.05)
        finally:
            await browser.close()


def main() -> int:
    """``offer|answer DIR ICE_JSON SECONDS``."""
    role, folder, servers, seconds = sys.argv[1:5]
    if role not in ("offer", "answer"):
        print("role is offer or answer", file=sys.stderr)
        return 2
    asyncio.run(run(role, Path(folder), json.loads(servers), float(seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
