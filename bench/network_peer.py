"""One headless Chromium peer of ``bench/network.py``, run inside a lab home (``ip netns exec``).

``python -m bench.network_peer offer|answer DIR ICE_JSON`` : a page with one
``RTCPeerConnection`` (the given ICE servers) sending a canvas video; offer and answer and
trickled candidates go through two JSON-lines files in DIR (``offer.jsonl``,
``answer.jsonl``), which both homes see. Prints one JSON line at the end: ``connected``,
``first_frame_ms`` (answerer: from receiving the offer, its "accept", to the first remote frame
decoded; offerer: from receiving the answer) and ``path`` (``Direct (UDP)``, ``Relayed (TCP)``...
from the browser's selected candidate pair).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from tests.chromium import CHROMIUM, CHROMIUM_ARGS

_JS = """
window.peer = {
  pc: null, candidates: [], firstFrameMs: null, t0: null,
  init(iceServers) {
    const pc = new RTCPeerConnection({iceServers});
    this.pc = pc;
    pc.onicecandidate = (e) => { if (e.candidate) this.candidates.push(e.candidate.toJSON()); };
    pc.ontrack = (e) => {
      const v = document.createElement("video");
      v.muted = true; v.autoplay = true; v.srcObject = new MediaStream([e.track]);
      document.body.appendChild(v);
    };
    const canvas = document.createElement("canvas");
    canvas.width = 320; canvas.height = 240;
    const ctx = canvas.getContext("2d");
    let n = 0;
    setInterval(() => {
      n += 1; ctx.fillStyle = "#264"; ctx.fillRect(0, 0, 320, 240);
      ctx.fillStyle = "white"; ctx.fillRect((n * 7) % 320, 20, 40, 40);
    }, 33);
    const track = canvas.captureStream(30).getVideoTracks()[0];
    pc.addTrack(track, new MediaStream([track]));
    setInterval(async () => {
      if (this.firstFrameMs !== null || this.t0 === null) return;
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 0
            && this.firstFrameMs === null) this.firstFrameMs = performance.now() - this.t0;
      });
    }, 25);
  },
  async offer() {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    return this.pc.localDescription.sdp;
  },
  async answer(sdp) {
    this.t0 = performance.now();
    await this.pc.setRemoteDescription({type: "offer", sdp});
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    return this.pc.localDescription.sdp;
  },
  async applyAnswer(sdp) {
    this.t0 = performance.now();
    await this.pc.setRemoteDescription({type: "answer", sdp});
  },
  takeCandidates() { const out = this.candidates; this.candidates = []; return out; },
  async addCandidate(c) { try { await this.pc.addIceCandidate(c); } catch (e) {} },
  async path() {
    const stats = await this.pc.getStats();
    let pair = null; const byId = {};
    stats.forEach((s) => { byId[s.id] = s; });
    stats.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) {
        pair = byId[s.selectedCandidatePairId];
      }
    });
    if (!pair) return null;
    const local = byId[pair.localCandidateId], remote = byId[pair.remoteCandidateId];
    return {local: local.candidateType, remote: remote.candidateType,
            relayProtocol: local.relayProtocol || null};
  },
  state() { return this.pc.connectionState; },
};
"""


def _label(path: dict[str, Any] | None) -> str | None:
    if path is None:
        return None
    relayed = "relay" in (path["local"], path["remote"])
    transport = path["relayProtocol"] if path["local"] == "relay" else "udp"
    return f"{'Relayed' if relayed else 'Direct'} ({(transport or 'udp').upper()})"


class Mailbox:
    """Signaling between two browser peers through two JSON-lines files in a folder both homes
    see: lines written by this side to its file, lines read from the other side's."""

    def __init__(self, folder: Path, mine: str, theirs: str) -> None:
        self.out = folder / f"{mine}.jsonl"
        self.other = folder / f"{theirs}.jsonl"
        self.read = 0

    def send(self, message: dict[str, Any]) -> None:
        """Append ``message`` for the other side."""
        with self.out.open("a") as f:
            f.write(json.dumps(message) + "\n")

    def receive(self) -> list[dict[str, Any]]:
        """The other side's complete lines not read yet."""
        if not self.other.exists():
            return []
        text = self.other.read_text()
        lines = text.splitlines()
        complete = lines if text.endswith("\n") else lines[:-1]
        new, self.read = complete[self.read :], len(complete)
        return [json.loads(line) for line in new]


async def run(role: str, folder: Path, ice_servers: list[dict[str, Any]], limit: float) -> dict:
    from playwright.async_api import async_playwright

    mine, theirs = ("offer", "answer") if role == "offer" else ("answer", "offer")
    box = Mailbox(folder, mine, theirs)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # The lab's TURN certificate comes from a test CA Chromium does not know.
            args=[*CHROMIUM_ARGS, "--ignore-certificate-errors"],
        )
        try:
            page = await browser.new_page()
            await page.goto("about:blank")
            await page.evaluate(_JS)
            await page.evaluate("s => window.peer.init(s)", ice_servers)
            if role == "offer":
                box.send({"sdp": await page.evaluate("() => window.peer.offer()")})
            described = False
            gathered: list[str] = []
            deadline = time.monotonic() + limit
            result: dict[str, Any] = {"connected": False, "first_frame_ms": None, "path": None}
            while time.monotonic() < deadline:
                for message in box.receive():
                    if "sdp" in message and role == "answer":
                        answer = await page.evaluate("s => window.peer.answer(s)", message["sdp"])
                        box.send({"sdp": answer})
                        described = True
                    elif "sdp" in message:
                        await page.evaluate("s => window.peer.applyAnswer(s)", message["sdp"])
                        described = True
                    elif "candidate" in message and described:
                        await page.evaluate(
                            "c => window.peer.addCandidate(c)", message["candidate"]
                        )
                for candidate in await page.evaluate("() => window.peer.takeCandidates()"):
                    box.send({"candidate": candidate})
                    gathered.append(candidate["candidate"].split(" typ ")[-1].split(" ")[0])
                state = await page.evaluate("() => window.peer.state()")
                first = await page.evaluate("() => window.peer.firstFrameMs")
                if state == "connected" and first is not None:
                    result = {
                        "connected": True,
                        "first_frame_ms": round(first),
                        "path": _label(await page.evaluate("() => window.peer.path()")),
                    }
                    # Let the other side see its first frame too before this page goes.
                    await asyncio.sleep(3.0)
                    break
                await asyncio.sleep(0.05)
            result["state"] = await page.evaluate("() => window.peer.state()")
            result["gathered"] = gathered
            return result
        finally:
            await browser.close()


def main() -> int:
    role, folder, ice = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    limit = float(sys.argv[4]) if len(sys.argv) > 4 else 40.0
    print(json.dumps(asyncio.run(run(role, folder, ice, limit))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
