// One peer connection, negotiated as every Parley call is (gui/core/peer_link.py): sections
// camera, audio, screen (in that order) and a data channel named "parley", max-bundle. The
// data channel carries chat with delivery receipts, the sender's media state and a heartbeat
// (gui/core/peer_channel.py): {"t": "chat", id, text, sent_at}, {"t": "ack", id},
// {"t": "state", audio, video, screen}, {"t": "ping"}; in a meeting, {"t": "past", items: [{id,
// from, text, sent_at}, ...]}: the chat from before this link (docs/protocol.md).

import { wordsForCall } from "./words.js";

const MAX_CHAT_CHARS = 4000;
const MAX_MESSAGE_CHARS = 32 * 1024;
const USERNAME = /^[A-Za-z0-9._-]{3,32}$/;
const HEARTBEAT_MS = 2000;
const GATHER_WAIT_MS = 1500;

export function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class PeerLink {
  /**
   * @param {object} options
   *   local: {camera, audio, screen} tracks (or null), stream: the camera/microphone stream,
   *   iceServers, signal(payload): send {description} or {candidate} to the peer,
   *   onTrack(slot, track), onChat(message), onState(state), onWords(words),
   *   onConnection(state), onPast(items): a meeting's earlier chat, [{id, from, text}]
   */
  constructor(options) {
    this.options = options;
    this.local = options.local;
    // No ICE servers unless the server gave some (TURN for guests behind NATs): nothing else
    // is contacted.
    this.pc = new RTCPeerConnection({ iceServers: options.iceServers || [], bundlePolicy: "max-bundle" });
    this.slots = {};
    this.channel = null;
    this.queue = [];
    this.snapshot = false;
    this.early = [];
    this.words = null;
    this.remoteSdp = null;
    this.closed = false;
    this.pc.addEventListener("icecandidate", (event) => {
      if (!event.candidate || !event.candidate.candidate) return;
      if (this.snapshot) this.options.signal({ candidate: event.candidate.toJSON() });
    });
    this.pc.addEventListener("track", (event) => {
      const videos = this.pc.getTransceivers().filter((t) => t.receiver.track.kind === "video");
      const kind = event.track.kind;
      const slot = kind === "audio" ? "audio" : videos.indexOf(event.transceiver) > 0 ? "screen" : "camera";
      this.options.onTrack?.(slot, event.track);
    });
    this.pc.addEventListener("datachannel", (event) => this.attach(event.channel));
    this.pc.addEventListener("connectionstatechange", () => {
      this.options.onConnection?.(this.pc.connectionState);
    });
    this.heartbeat = setInterval(() => this.sendRaw({ t: "ping" }), HEARTBEAT_MS);
  }

  // Negotiation -------------------------------------------------------------------------

  /** Offer camera, audio, screen and (unless to a media server) the data channel. */
  async offer({ direction = "sendrecv", dataChannel = true } = {}) {
    const stream = this.options.stream;
    const streams = stream ? [stream] : [];
    this.slots.camera = this.pc.addTransceiver(this.local.camera || "video", { direction, streams });
    this.slots.audio = this.pc.addTransceiver(this.local.audio || "audio", { direction, streams });
    this.slots.screen = this.pc.addTransceiver(this.local.screen || "video", { direction });
    if (dataChannel) this.attach(this.pc.createDataChannel("parley", { ordered: true }));
    await this.pc.setLocalDescription(await this.pc.createOffer());
    return this.described();
  }

  async answer(description) {
    this.remoteSdp = description.sdp;
    await this.pc.setRemoteDescription(description);
    const all = this.pc.getTransceivers();
    const audio = all.filter((t) => t.receiver.track.kind === "audio");
    const video = all.filter((t) => t.receiver.track.kind === "video");
    if (audio[0]) this.slots.audio = audio[0];
    if (video[0]) this.slots.camera = video[0];
    if (video[1]) this.slots.screen = video[1];
    for (const [slot, transceiver] of Object.entries(this.slots)) {
      transceiver.direction = "sendrecv";
      await transceiver.sender.replaceTrack(this.local[slot] || null);
      if (slot !== "screen" && this.options.stream) transceiver.sender.setStreams(this.options.stream);
    }
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    const out = await this.described();
    await this.flushEarly();
    this.checkWords();
    return out;
  }

  async accept(description) {
    this.remoteSdp = description.sdp;
    await this.pc.setRemoteDescription(description);
    await this.flushEarly();
    this.checkWords();
  }

  async described() {
    await this.gathered();
    this.snapshot = true;
    const local = this.pc.localDescription;
    return { type: local.type, sdp: local.sdp };
  }

  gathered() {
    if (this.pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (this.pc.iceGatheringState === "complete") resolve();
      };
      this.pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, GATHER_WAIT_MS);
    });
  }

  async addCandidate(candidate) {
    if (!this.pc.remoteDescription) {
      this.early.push(candidate);
      return;
    }
    if (!candidate.candidate) return;
    try {
      await this.pc.addIceCandidate(candidate);
    } catch (error) {
      console.warn("candidate refused", error.message);
    }
  }

  async flushEarly() {
    const early = this.early;
    this.early = [];
    for (const candidate of early) await this.addCandidate(candidate);
  }

  async checkWords() {
    if (this.words) return;
    // The peer's SDP as it was sent: the browser keeps one fingerprint of several (aiortc
    // lists sha-256, sha-384 and sha-512), and the words come from the sha-256 one.
    const words = await wordsForCall(this.pc.localDescription?.sdp, this.remoteSdp);
    if (words && !this.words) {
      this.words = words;
      this.options.onWords?.(words);
    }
  }

  // Media ---------------------------------------------------------------------------------

  async setTrack(slot, track) {
    this.local[slot] = track;
    const transceiver = this.slots[slot];
    if (transceiver) await transceiver.sender.replaceTrack(track);
  }

  canShareScreen() {
    return Boolean(this.slots.screen);
  }

  // The data channel --------------------------------------------------------------------

  attach(channel) {
    this.channel = channel;
    channel.addEventListener("open", () => {
      const queued = this.queue;
      this.queue = [];
      for (const data of queued) channel.send(data);
    });
    channel.addEventListener("message", (event) => this.receive(event.data));
  }

  sendRaw(message) {
    const data = JSON.stringify(message);
    if (this.channel && this.channel.readyState === "open") this.channel.send(data);
    else if (this.queue.length < 256 && (!this.channel || this.channel.readyState === "connecting")) this.queue.push(data);
  }

  sendChat(text, id = newId()) {
    const message = { t: "chat", id, text, sent_at: Date.now() / 1000 };
    this.sendRaw(message);
    return message;
  }

  sendState(state) {
    this.sendRaw({ t: "state", audio: state.audio, video: state.video, screen: state.screen });
  }

  receive(data) {
    if (typeof data !== "string" || data.length > MAX_MESSAGE_CHARS) return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof message !== "object" || message === null) return;
    if (message.t === "chat") {
      const { id, text } = message;
      if (typeof id !== "string" || !id || id.length > 64) return;
      if (typeof text !== "string" || !text || text.length > MAX_CHAT_CHARS) return;
      this.sendRaw({ t: "ack", id });
      this.options.onChat?.({ id, text });
    } else if (message.t === "past" && Array.isArray(message.items)) {
      const items = message.items.filter(
        (item) =>
          typeof item === "object" &&
          item !== null &&
          typeof item.id === "string" &&
          item.id.length > 0 &&
          item.id.length <= 64 &&
          typeof item.text === "string" &&
          item.text.length > 0 &&
          item.text.length <= MAX_CHAT_CHARS &&
          typeof item.from === "string" &&
          USERNAME.test(item.from),
      );
      if (items.length) this.options.onPast?.(items.map(({ id, from, text }) => ({ id, from, text })));
    } else if (message.t === "state") {
      const { audio, video, screen } = message;
      if ([audio, video, screen].every((v) => typeof v === "boolean")) {
        this.options.onState?.({ audio, video, screen });
      }
    }
  }

  // Figures (for people and the tests) ---------------------------------------------------

  async received() {
    const out = { camera_frames: 0, screen_frames: 0, audio_energy: 0, audio_samples: 0 };
    const mids = {
      camera: this.slots.camera?.mid,
      screen: this.slots.screen?.mid,
    };
    const stats = await this.pc.getStats();
    stats.forEach((s) => {
      if (s.type !== "inbound-rtp") return;
      if (s.kind === "video" && s.mid === mids.screen) out.screen_frames = s.framesDecoded || 0;
      else if (s.kind === "video") out.camera_frames = s.framesDecoded || 0;
      else if (s.kind === "audio") {
        out.audio_energy = s.totalAudioEnergy || 0;
        out.audio_samples = s.totalSamplesReceived || 0;
      }
    });
    return out;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    try {
      this.channel?.close();
    } catch {
      // closed already
    }
    this.pc.close();
  }
}
