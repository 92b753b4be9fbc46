// The guest page: a name, a preview, camera and microphone, then the call or meeting the link
// leads to. Plain DOM and textContent only: whatever other people send is shown as text.

import { RequestError, Signaling } from "./signaling.js";
import { PeerLink, newId } from "./peer.js";

const $ = (id) => document.getElementById(id);
// Joining a meeting that continues an end-to-end call (its Meeting has end_to_end_until): the
// call's chat never went through the server, so it is not shown here; the app says the same
// (gui/core/meeting_chat.py, NOT_SHOWN_END_TO_END).
const NOT_SHOWN_END_TO_END =
  "Messages sent before you joined, while the meeting was end-to-end encrypted, are not shown.";
const code = decodeURIComponent(location.pathname.split("/").pop() || "");

const state = {
  phase: "lobby",
  stream: null,
  local: { camera: null, audio: null, screen: null },
  muted: false,
  cameraOff: false,
  signaling: null,
  user: null,
  callId: null,
  accepted: false,
  offer: null,
  meetingId: null,
  // A meeting through a media server: one publisher, one subscription (in links) per publisher.
  sfu: false,
  iceServers: [],
  publisher: null,
  links: new Map(),
  names: new Map(),
  tiles: new Map(),
  chats: [],
  // Chat ids shown: a message arriving again (a meeting's history) is shown once.
  chatIds: new Set(),
  words: null,
  removed: null,
  endTitle: null,
  previewAt: null,
  joinClickedAt: null,
  firstFrameAt: null,
};

// For people debugging and for the tests: what the page knows, and the call's figures.
window.parleyGuest = {
  state,
  async stats() {
    const out = {};
    for (const [username, link] of state.links) out[username] = await link.received();
    return out;
  },
  chatTexts: () => state.chats.map((c) => `${c.who}: ${c.text}`),
};

// Lobby ---------------------------------------------------------------------------------

function stopTracks(stream) {
  if (stream) for (const track of stream.getTracks()) track.stop();
}

async function openDevices(cameraId, microphoneId) {
  const video = cameraId ? { deviceId: { exact: cameraId } } : true;
  const audio = microphoneId ? { deviceId: { exact: microphoneId } } : true;
  for (const constraints of [{ video, audio }, { audio }, { video }]) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (error) {
      console.info("getUserMedia", JSON.stringify(Object.keys(constraints)), error.name);
    }
  }
  return new MediaStream();
}

async function startPreview(cameraId, microphoneId) {
  stopTracks(state.stream);
  const status = $("lobby-status");
  if (!navigator.mediaDevices || !window.isSecureContext) {
    status.textContent = "This page needs a secure (https) address to use your camera and microphone.";
    state.stream = new MediaStream();
  } else {
    state.stream = await openDevices(cameraId, microphoneId);
  }
  state.local.camera = state.stream.getVideoTracks()[0] || null;
  state.local.audio = state.stream.getAudioTracks()[0] || null;
  $("preview").srcObject = state.stream;
  await fillDevices();
  if (!state.local.camera && !state.local.audio) {
    status.textContent = "No camera or microphone is available: you can still join, see and hear.";
  } else if (!state.local.camera) {
    status.textContent = "No camera is available: the others will hear you.";
  } else {
    status.textContent = "Type your name and join when you are ready.";
  }
  $("join").disabled = false;
  if (state.previewAt === null) state.previewAt = performance.now();
}

async function fillDevices() {
  if (!navigator.mediaDevices?.enumerateDevices) return;
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind, track) => {
    const current = track?.getSettings().deviceId;
    select.replaceChildren();
    let n = 0;
    for (const device of devices.filter((d) => d.kind === kind)) {
      n += 1;
      const option = document.createElement("option");
      option.value = device.deviceId;
      option.textContent = device.label || `${kind === "videoinput" ? "Camera" : "Microphone"} ${n}`;
      option.selected = device.deviceId === current;
      select.append(option);
    }
    select.disabled = n === 0;
  };
  fill($("camera"), "videoinput", state.local.camera);
  fill($("microphone"), "audioinput", state.local.audio);
}

function deviceChanged() {
  startPreview($("camera").value, $("microphone").value);
}

const JOIN_ERRORS = {
  rate_limited: (e) => `Too many tries. Wait ${e.retryAfter || 60} seconds and try again.`,
  meeting_full: () => "The meeting is full. Try again when someone has left.",
  busy: () => "Your host is in another call.",
};

async function join(event) {
  event.preventDefault();
  const name = $("name").value.trim();
  const status = $("lobby-status");
  if (!name) {
    status.textContent = "Please type your name first.";
    $("name").focus();
    return;
  }
  $("join").disabled = true;
  status.textContent = "Joining…";
  state.joinClickedAt = performance.now();
  const signaling = new Signaling();
  state.signaling = signaling;
  try {
    await signaling.connect();
    signaling.onEvent(onEvent);
    signaling.onClose(onClose);
    const reply = await signaling.request("guest.join", {
      code,
      display_name: name,
      media: { audio: Boolean(state.local.audio), video: Boolean(state.local.camera) },
    });
    enterRoom(reply);
  } catch (error) {
    const words = error instanceof RequestError && JOIN_ERRORS[error.code];
    status.textContent = words ? words(error) : `Could not join: ${error.message}`;
    signaling.close();
    state.signaling = null;
    $("join").disabled = false;
  }
}

// The room ------------------------------------------------------------------------------

function enterRoom(reply) {
  state.user = reply.user;
  state.iceServers = Array.isArray(reply.ice_servers) ? reply.ice_servers : [];
  state.phase = "in-call";
  $("lobby").hidden = true;
  $("room").hidden = false;
  addTile(reply.user.username, "camera", "You", state.stream, true);
  if (reply.meeting) {
    state.meetingId = reply.meeting.meeting_id;
    state.sfu = reply.meeting.topology === "sfu";
    if (typeof reply.meeting.end_to_end_until === "string") {
      $("chat-notice").textContent = NOT_SHOWN_END_TO_END;
      $("chat-notice").hidden = false;
    }
    const others = reply.meeting.participants.filter((p) => p.username !== reply.user.username);
    for (const participant of others) {
      state.names.set(participant.username, participant.display_name);
      if (!state.sfu) openLink(participant.username, true);
    }
    if (state.sfu) publish();
    roomStatus(others.length ? "Connecting…" : "Waiting for the others…");
  } else {
    state.callId = reply.call_id;
    state.names.set(reply.peer.username, reply.peer.display_name);
    roomStatus(`Calling ${reply.peer.display_name}…`);
    openLink(reply.peer.username, true);
  }
  $("mute").focus();
}

function roomStatus(text) {
  $("room-status").textContent = text;
}

function nameOf(username) {
  return state.names.get(username) || username;
}

function sendSignal(username, payload) {
  if (!state.signaling) return;
  if (state.meetingId) {
    state.signaling.send("rtc.signal", { meeting_id: state.meetingId, to: username, ...payload });
  } else {
    state.signaling.send("rtc.signal", { call_id: state.callId, ...payload });
  }
}

function openLink(username, offerer) {
  const link = new PeerLink({
    local: { ...state.local },
    stream: state.stream,
    iceServers: state.iceServers,
    signal: (payload) => sendSignal(username, payload),
    onTrack: (slot, track) => showTrack(username, slot, track),
    onChat: (message) => (state.meetingId ? chatOnce(message.id, username, message.text) : addChat(nameOf(username), message.text)),
    onPast: (items) => pastChat(username, items),
    onState: (media) => tileMedia(username, media),
    onWords: (words) => showWords(words),
    onConnection: (connection) => {
      if (connection === "connected") roomStatus(state.meetingId ? "In the meeting" : `In a call with ${nameOf(username)}`);
      if (connection === "failed") roomStatus(`The connection to ${nameOf(username)} failed.`);
    },
  });
  state.links.set(username, link);
  if (offerer) {
    // In a meeting the offer goes at once; in a call, when the host accepts (call.accepted).
    state.offer = link.offer().then((offer) => {
      if (state.meetingId) sendSignal(username, { description: offer });
      sendMediaState();
      return offer;
    });
  }
  return link;
}

/** The connections this end's media goes out on: the publisher, or one link per participant. */
function senders() {
  return state.sfu ? (state.publisher ? [state.publisher] : []) : [...state.links.values()];
}

// Through a media server (docs/protocol.md, topology "sfu") ----------------------------------

function sfuRequest(type, fields) {
  return state.signaling.request(type, { meeting_id: state.meetingId, ...fields });
}

async function publish() {
  state.publisher?.close();
  const publisher = new PeerLink({
    local: { ...state.local },
    stream: state.stream,
    iceServers: state.iceServers,
    signal: (payload) => payload.candidate && sfuRequest("sfu.trickle", payload).catch(() => {}),
    onConnection: (connection) => {
      if (connection === "connected") roomStatus("In the meeting (through the meeting server)");
      if (connection === "failed") roomStatus("The connection to the meeting server failed.");
    },
  });
  state.publisher = publisher;
  try {
    const offer = await publisher.offer({ direction: "sendonly", dataChannel: false });
    const reply = await sfuRequest("sfu.publish", { description: offer });
    if (publisher !== state.publisher) return;
    await publisher.accept(reply.description);
    sendMediaState();
    for (const item of reply.publishers || []) subscribe(item.username, item.publication);
  } catch (error) {
    roomStatus(`Could not reach the meeting server (${error.message}); trying again…`);
    setTimeout(() => state.phase === "in-call" && publisher === state.publisher && publish(), 2000);
  }
}

async function subscribe(username, publication) {
  if (state.links.get(username)?.publication === publication) return;
  closeLink(username);
  try {
    const reply = await sfuRequest("sfu.subscribe", { username });
    const link = new PeerLink({
      local: { camera: null, audio: null, screen: null },
      stream: null,
      iceServers: state.iceServers,
      signal: (payload) => payload.candidate && sfuRequest("sfu.trickle", { username, ...payload }).catch(() => {}),
      onTrack: (slot, track) => showTrack(username, slot, track),
    });
    link.publication = reply.publication;
    state.links.set(username, link);
    const answer = await link.answer(reply.description);
    await sfuRequest("sfu.answer", { username, description: answer });
  } catch (error) {
    console.info("subscribe", username, error.message);
    closeLink(username);
    setTimeout(() => state.phase === "in-call" && state.names.has(username) && subscribe(username, publication), 1000);
  }
}

function closeLink(username) {
  state.links.get(username)?.close();
  state.links.delete(username);
  for (const slot of ["camera", "screen"]) {
    const key = `${username}/${slot}`;
    state.tiles.get(key)?.figure.remove();
    state.tiles.delete(key);
  }
}

function addTile(username, slot, label, stream, self = false) {
  const key = `${username}/${slot}`;
  let tile = state.tiles.get(key);
  if (tile) return tile;
  const figure = document.createElement("figure");
  figure.className = "tile";
  const video = document.createElement("video");
  video.autoplay = true;
  video.playsInline = true;
  video.muted = self;
  const caption = document.createElement("figcaption");
  caption.textContent = slot === "screen" ? `${label}’s screen` : label;
  video.setAttribute("aria-label", caption.textContent);
  figure.append(video, caption);
  $("tiles").append(figure);
  tile = { figure, video, caption, stream: stream || new MediaStream(), label };
  video.srcObject = tile.stream;
  state.tiles.set(key, tile);
  if (!self) watchFirstFrame(video);
  return tile;
}

function watchFirstFrame(video) {
  const mark = () => {
    if (state.firstFrameAt === null) state.firstFrameAt = performance.now();
  };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(mark);
  else video.addEventListener("loadeddata", mark, { once: true });
}

function showTrack(username, slot, track) {
  if (slot === "screen") {
    showScreen(username, track);
    return;
  }
  putTrack(addTile(username, "camera", nameOf(username)), track);
}

// Every peer negotiates a screen slot; its tile shows only while pictures come on it.
function showScreen(username, track) {
  const key = `${username}/screen`;
  const show = () => {
    if (state.links.has(username)) putTrack(addTile(username, "screen", nameOf(username)), track);
  };
  const hide = () => {
    state.tiles.get(key)?.figure.remove();
    state.tiles.delete(key);
  };
  track.addEventListener("unmute", show);
  track.addEventListener("mute", hide);
  track.addEventListener("ended", hide);
  if (!track.muted) show();
}

function putTrack(tile, track) {
  for (const old of tile.stream.getTracks().filter((t) => t.kind === track.kind)) tile.stream.removeTrack(old);
  tile.stream.addTrack(track);
  tile.video.srcObject = tile.stream;
  tile.video.play().catch(() => {});
}

function tileMedia(username, media) {
  const tile = state.tiles.get(`${username}/camera`);
  if (!tile) return;
  const notes = [];
  if (!media.audio) notes.push("muted");
  if (!media.video) notes.push("camera off");
  tile.caption.textContent = notes.length ? `${tile.label} (${notes.join(", ")})` : tile.label;
}

function showWords(words) {
  if (state.meetingId) return;
  state.words = words;
  $("words-text").textContent = words.join(" ");
  $("words").hidden = false;
}

// A meeting's chat message, shown once by id; this guest's own as "You".
function chatOnce(id, username, text) {
  if (state.chatIds.has(id)) return;
  state.chatIds.add(id);
  addChat(username === state.user?.username ? "You" : nameOf(username), text);
}

// The chat from before this guest joined, sent by a participant over the new link: what
// someone present wrote is taken from them only (docs/protocol.md).
function pastChat(relayedBy, items) {
  for (const item of items) {
    const present = state.names.has(item.from) && item.from !== relayedBy;
    if (!present || item.from === state.user?.username) chatOnce(item.id, item.from, item.text);
  }
}

function addChat(who, text) {
  state.chats.push({ who, text });
  const item = document.createElement("li");
  item.textContent = `${who}: ${text}`;
  $("chat-log").append(item);
  item.scrollIntoView({ block: "nearest" });
}

function sendChat(event) {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text) return;
  if (state.sfu) {
    // No data channel through a media server: the signaling server relays it (meeting.chat).
    const id = newId();
    state.chatIds.add(id);
    sfuRequest("meeting.chat", { chat_id: id, text: text.slice(0, 4000) }).catch((error) =>
      addChat("Parley", `Your message was not sent: ${error.message || error}`),
    );
  } else {
    const id = newId(); // one id on every link: a late joiner shows it once
    state.chatIds.add(id);
    for (const link of state.links.values()) link.sendChat(text.slice(0, 4000), id);
  }
  addChat("You", text);
  input.value = "";
}

function mediaNow() {
  return {
    audio: Boolean(state.local.audio) && !state.muted,
    video: Boolean(state.local.camera) && !state.cameraOff,
    screen: Boolean(state.local.screen),
  };
}

function sendMediaState() {
  const media = mediaNow();
  for (const link of state.links.values()) link.sendState(media);
  if (state.meetingId && state.signaling) {
    state.signaling.send("meeting.media", { meeting_id: state.meetingId, ...media });
  }
}

function toggle(button, on, onLabel, offLabel) {
  button.setAttribute("aria-pressed", String(on));
  button.textContent = on ? onLabel : offLabel;
}

function toggleMute() {
  state.muted = !state.muted;
  if (state.local.audio) state.local.audio.enabled = !state.muted;
  toggle($("mute"), state.muted, "Unmute", "Mute");
  sendMediaState();
}

function toggleCamera() {
  state.cameraOff = !state.cameraOff;
  if (state.local.camera) state.local.camera.enabled = !state.cameraOff;
  toggle($("camera-off"), state.cameraOff, "Camera on", "Camera off");
  sendMediaState();
}

async function toggleShare() {
  if (state.local.screen) {
    stopShare();
    return;
  }
  let track;
  try {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    track = stream.getVideoTracks()[0];
  } catch (error) {
    roomStatus(`Screen sharing did not start (${error.name}).`);
    return;
  }
  state.local.screen = track;
  track.addEventListener("ended", stopShare);
  for (const link of senders()) await link.setTrack("screen", track);
  toggle($("share"), true, "Stop sharing", "Share screen");
  addTile(state.user.username, "screen", "You", new MediaStream([track]), true);
  sendMediaState();
}

function stopShare() {
  const track = state.local.screen;
  if (!track) return;
  state.local.screen = null;
  track.stop();
  for (const link of senders()) link.setTrack("screen", null);
  toggle($("share"), false, "Stop sharing", "Share screen");
  const key = `${state.user.username}/screen`;
  state.tiles.get(key)?.figure.remove();
  state.tiles.delete(key);
  sendMediaState();
}

async function leave() {
  const signaling = state.signaling;
  try {
    if (state.meetingId) await signaling?.request("meeting.leave", { meeting_id: state.meetingId });
    else if (state.callId) {
      await signaling?.request(state.accepted ? "call.hangup" : "call.cancel", { call_id: state.callId });
    }
  } catch (error) {
    console.info("leave", error.message);
  }
  end("You left", state.meetingId ? "You left the meeting." : "You left the call.");
}

// Events from the server ------------------------------------------------------------------

const CALL_ENDINGS = {
  hangup: (n) => `${n} hung up.`,
  declined: (n) => `${n} declined the call.`,
  busy: (n) => `${n} is in another call. Try again later.`,
  offline: (n) => `${n} is not online right now. Try again later.`,
  timeout: (n) => `${n} did not answer.`,
  lost: () => "The connection was lost.",
  failed: () => "The call could not be made.",
};

const REMOVED = {
  removed: "The host removed you.",
  revoked: "This guest link was revoked.",
};

async function onEvent(message) {
  switch (message.type) {
    case "call.ringing":
      roomStatus(`Ringing ${nameOf([...state.names.keys()][0])}…`);
      break;
    case "call.accepted": {
      state.accepted = true;
      roomStatus("Connecting…");
      const offer = await state.offer;
      if (offer) sendSignal([...state.links.keys()][0], { description: offer });
      break;
    }
    case "call.ended": {
      const peer = nameOf([...state.names.keys()][0]);
      const words = CALL_ENDINGS[message.reason];
      end("The call ended", words ? words(peer) : "The call ended.");
      break;
    }
    case "rtc.signal":
      await onSignal(message);
      break;
    case "meeting.joined":
      state.names.set(message.participant.username, message.participant.display_name);
      roomStatus(`${message.participant.display_name} joined.`);
      break;
    case "meeting.left":
      roomStatus(`${nameOf(message.username)} left.`);
      state.names.delete(message.username);
      closeLink(message.username);
      break;
    case "sfu.published":
      if (state.sfu) subscribe(message.username, message.publication);
      break;
    case "sfu.reconnect":
      if (state.sfu) {
        roomStatus("Reconnecting to the meeting server…");
        for (const username of [...state.links.keys()]) closeLink(username);
        publish();
      }
      break;
    case "meeting.chat":
      if (typeof message.text === "string" && message.from && message.text) {
        if (typeof message.chat_id === "string") {
          if (state.chatIds.has(message.chat_id)) break;
          state.chatIds.add(message.chat_id);
        }
        const mine = message.from.username === state.user?.username;
        addChat(mine ? "You" : message.from.display_name || nameOf(message.from.username), message.text);
      }
      break;
    case "meeting.media":
      tileMedia(message.username, message);
      break;
    case "meeting.ended":
      end("The meeting ended", "The meeting is over.");
      break;
    case "guest.removed":
      state.removed = message.reason;
      break;
    default:
      break;
  }
}

async function onSignal(message) {
  const from = message.from;
  if (typeof from !== "string") return;
  let link = state.links.get(from);
  const description = message.description;
  if (description?.type === "offer") {
    if (link) closeLink(from); // they came back: start again
    link = openLink(from, false);
    const answer = await link.answer(description);
    sendSignal(from, { description: answer });
    sendMediaState();
    return;
  }
  if (!link) return;
  if (description?.type === "answer") await link.accept(description);
  if (message.candidate) await link.addCandidate(message.candidate);
}

function onClose() {
  if (state.phase === "ended") return;
  if (state.removed) end("You were removed", REMOVED[state.removed] || "You were removed.");
  else end("Disconnected", "The connection to the server was lost.");
}

function end(title, text) {
  if (state.phase === "ended") return;
  if (state.removed) {
    title = "You were removed";
    text = REMOVED[state.removed] || text;
  }
  state.phase = "ended";
  state.endTitle = title;
  for (const username of [...state.links.keys()]) closeLink(username);
  state.publisher?.close();
  stopTracks(state.stream);
  state.local.screen?.stop();
  state.signaling?.close();
  $("lobby").hidden = true;
  $("room").hidden = true;
  $("done").hidden = false;
  $("done-title").textContent = title;
  $("done-text").textContent = text;
  $("done-title").focus();
}

// Start -----------------------------------------------------------------------------------

$("join-form").addEventListener("submit", join);
$("camera").addEventListener("change", deviceChanged);
$("microphone").addEventListener("change", deviceChanged);
$("mute").addEventListener("click", toggleMute);
$("camera-off").addEventListener("click", toggleCamera);
$("share").addEventListener("click", toggleShare);
$("leave").addEventListener("click", leave);
$("chat-form").addEventListener("submit", sendChat);
if (!navigator.mediaDevices?.getDisplayMedia) $("share").hidden = true;
startPreview();
