// A room on the room API (/rooms/v1): publish yourself over WHIP as `room/name`, and receive
// everyone else on ONE subscribe connection whose m-lines (slots) the server fills. The server
// never offers: its `renegotiate` event asks for more slots and this page re-offers (one PATCH
// at a time); its `slots` event says which m-line carries whom.
import { authHeaders, refusalHint } from "./auth.js";
import { openEvents } from "./sse.js";
import { $, param, setStatus, showError, shownError } from "./page.js";
import { Publisher } from "./peers.js";
import { HttpError, iceServers } from "./whip.js";

const KINDS = ["audio", "video"];
const NAME = /^[A-Za-z0-9_.~-]{1,64}$/; // the server's name shape (signaling/serving/names.py)
const STATS_MS = 1000;

const roomInput = $("room");
const nameInput = $("name");
const joinButton = $("join");
const leaveButton = $("leave");
const muteButton = $("mute");
const tilesBox = $("tiles");
const alone = $("alone");

let joined = null; // {room, name, media, publisher, sub}
const tiles = new Map(); // participant name -> {tile, video, statusEl, mids: {kind: mid}}
const tracks = new Map(); // mid -> the receiving track of that m-line

/** The subscribe connection: its session URL, headers, and one re-offer at a time. */
class Subscription {
  constructor(room, name) {
    this.room = room;
    this.name = name;
    this.headers = authHeaders(`${room}/${name}`, "subscribe");
    this.pc = null;
    this.sessionUrl = null;
    this.events = null;
    this.wanted = { audio: 1, video: 1 };
    this.busy = false; // a PATCH is in flight; a need that arrives meanwhile waits for it
    this.byMid = new Map(); // mid -> the inbound-rtp stats of the latest sample
  }

  async start(handlers) {
    const servers = await iceServers("whip", `${this.room}/${this.name}`);
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers: servers });
    this.pc = pc;
    pc.addEventListener("track", (event) => {
      tracks.set(event.transceiver.mid, event.track);
      handlers.onTrack();
    });
    for (const kind of KINDS) pc.addTransceiver(kind, { direction: "recvonly" });
    const path = `/rooms/v1/${encodeURIComponent(this.room)}/participants/${encodeURIComponent(this.name)}`;
    const response = await this.offer("POST", new URL(path, location.href).href, 201);
    this.sessionUrl = new URL(response.headers.get("Location"), location.href).href;
    this.events = openEvents(`${this.sessionUrl}/events`, {}, handlers);
  }

  /** Send this connection's offer; apply the answer. Throws HttpError with the reason. */
  async offer(method, url, expected) {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    let response;
    try {
      response = await fetch(url, {
        method,
        headers: { ...this.headers, "Content-Type": "application/sdp" },
        body: this.pc.localDescription.sdp,
        signal: AbortSignal.timeout(10000),
      });
    } catch (err) {
      throw new HttpError(0, `server unreachable (${err.message})`);
    }
    const text = await response.text();
    if (response.status !== expected) {
      const reason = text.trim().split("\n")[0] || response.statusText;
      throw new HttpError(response.status, reason + refusalHint(response.status));
    }
    if (this.pc.signalingState === "closed") throw new HttpError(0, "closed while negotiating");
    await this.pc.setRemoteDescription({ type: "answer", sdp: text });
    return response;
  }

  /** The server wants `counts` slots in all: add recvonly m-lines and re-offer, serialised. */
  async renegotiate(counts) {
    this.wanted = counts;
    if (this.busy || !this.sessionUrl) return;
    this.busy = true;
    try {
      while (this.missing()) {
        for (const kind of KINDS) {
          const have = this.pc.getTransceivers().filter((t) => t.receiver.track.kind === kind);
          for (let i = have.length; i < (this.wanted[kind] ?? 0); i++) {
            this.pc.addTransceiver(kind, { direction: "recvonly" });
          }
        }
        await this.offer("PATCH", this.sessionUrl, 200);
      }
    } catch (err) {
      setStatus(`Could not add slots: ${err.message}`, "warn");
    } finally {
      this.busy = false;
    }
  }

  missing() {
    const all = this.pc?.getTransceivers() ?? [];
    return KINDS.some(
      (kind) => all.filter((t) => t.receiver.track.kind === kind).length < (this.wanted[kind] ?? 0),
    );
  }

  /** Each m-line's inbound-rtp stats, by mid, for the tiles and the tests' hook. */
  async sample() {
    if (!this.pc) return;
    const report = await this.pc.getStats();
    report.forEach((stat) => {
      if (stat.type === "inbound-rtp" && stat.mid !== undefined) this.byMid.set(stat.mid, stat);
    });
  }

  async stop(keepalive) {
    this.events?.close();
    const url = this.sessionUrl;
    this.sessionUrl = null;
    if (url) {
      // DELETE before closing: a DTLS close first would end the session, and the DELETE 404.
      const ending = fetch(url, { method: "DELETE", headers: this.headers, keepalive }).catch(
        () => null,
      );
      if (!keepalive) await ending;
    }
    this.pc?.close();
  }
}

function addTile(name) {
  const tile = document.createElement("article");
  tile.className = "tile";
  tile.dataset.participant = name;
  tile.dataset.speaking = "false";
  tile.dataset.paused = "false";
  const header = document.createElement("header");
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = name;
  const statusEl = document.createElement("span");
  statusEl.className = "tile-status";
  statusEl.textContent = "waiting for media";
  header.append(label, statusEl);
  const video = document.createElement("video");
  video.autoplay = true;
  // Unmuted autoplay is only allowed after a user gesture (e.g. the Join click).
  video.muted = !navigator.userActivation?.hasBeenActive;
  video.title = "Click to mute or unmute";
  video.playsInline = true;
  video.addEventListener("click", () => {
    video.muted = !video.muted;
  });
  tile.append(header, video);
  tilesBox.append(tile);
  tiles.set(name, { tile, video, statusEl, mids: {} });
}

/** Tiles for exactly the participants the server lists, in name order. */
function onParticipants(list) {
  const names = new Set(list.map((p) => p.name));
  for (const [name, t] of tiles) {
    if (!names.has(name)) {
      t.tile.remove();
      tiles.delete(name);
    }
  }
  for (const p of [...list].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (!tiles.has(p.name)) addTile(p.name);
    if (!p.publishing) tiles.get(p.name).statusEl.textContent = "not publishing";
  }
  alone.hidden = tiles.size > 0;
}

/** Point each tile at the m-lines that carry its participant now. */
function onSlots(slots) {
  const before = new Map([...tiles].map(([name, t]) => [name, t.mids.video]));
  for (const t of tiles.values()) t.mids = {};
  for (const [mid, slot] of Object.entries(slots)) {
    const t = tiles.get(slot.participant);
    if (t) t.mids[slot.kind] = mid;
  }
  // A `paused` event names a (participant, mid) pair: a tile on another slot starts afresh.
  for (const [name, t] of tiles) if (before.get(name) !== t.mids.video) t.tile.dataset.paused = "false";
  attachTracks();
}

function attachTracks() {
  for (const t of tiles.values()) {
    const wanted = KINDS.map((kind) => tracks.get(t.mids[kind])).filter(Boolean);
    const shown = t.video.srcObject?.getTracks() ?? [];
    if (wanted.length === shown.length && wanted.every((track) => shown.includes(track))) continue;
    t.video.srcObject = wanted.length ? new MediaStream(wanted) : null;
  }
}

function onSpeakers(names) {
  const speaking = new Set(names);
  for (const [name, t] of tiles) t.tile.dataset.speaking = String(speaking.has(name));
}

function onPaused(event, { participant, mid }) {
  const t = tiles.get(participant);
  if (t && t.mids.video === mid) t.tile.dataset.paused = String(event === "paused");
}

function onEvent(event, data) {
  if (event === "participants") onParticipants(data);
  else if (event === "slots") onSlots(data);
  else if (event === "speakers") onSpeakers(data);
  else if (event === "paused" || event === "resumed") onPaused(event, data);
  else if (event === "renegotiate") joined?.sub.renegotiate(data);
  else if (event === "ended") {
    setStatus("The room session ended.", "warn");
    leave();
  }
}

async function showStats() {
  const sub = joined?.sub;
  if (!sub) return;
  await sub.sample().catch(() => null);
  for (const t of tiles.values()) {
    const stat = sub.byMid.get(t.mids.video);
    if (t.tile.dataset.paused === "true") t.statusEl.textContent = "paused (bandwidth)";
    else if (stat && t.video.videoWidth) {
      const size = `${t.video.videoWidth}×${t.video.videoHeight}`;
      t.statusEl.textContent = `${size} · ${Math.round(stat.framesPerSecond ?? 0)} fps`;
    }
  }
}

function setJoined(on) {
  joinButton.disabled = on;
  leaveButton.disabled = !on;
  muteButton.disabled = !on;
  roomInput.disabled = on;
  nameInput.disabled = on;
  $("self-tile").hidden = !on;
}

async function join() {
  showError("");
  const room = roomInput.value.trim();
  const name = nameInput.value.trim();
  if (!NAME.test(room) || !NAME.test(name)) {
    showError("Room and name are 1 to 64 of the characters A-Z a-z 0-9 _ . ~ -");
    return;
  }
  setJoined(true);
  setStatus(`Joining ${room} as ${name}…`);
  history.replaceState(null, "", `?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`);
  $("room-title").textContent = room;
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 320 }, height: { ideal: 240 }, frameRate: { ideal: 15 } },
      audio: true,
    });
  } catch (err) {
    setJoined(false);
    showError(`Cannot open camera/microphone: ${err.name}: ${err.message}`);
    return;
  }
  $("self-video").srcObject = media;
  $("self-name").textContent = `${name} (you)`;
  const publisher = new Publisher(`${room}/${name}`, {
    onState: (state) => {
      $("self-status").textContent = state;
    },
  });
  const sub = new Subscription(room, name);
  joined = { room, name, media, publisher, sub, timer: setInterval(showStats, STATS_MS) };
  try {
    // Join first: a --workers front places the room's streams with the room once it was joined.
    await sub.start({
      onTrack: attachTracks,
      onEvent,
      onOpen: () => setStatus(`In room ${room} as ${name}.`, "ok"),
      onError: (status, reason) => {
        if (status === 404) onEvent("ended", {});
        else setStatus(`Room events: ${status ? `HTTP ${status} — ${reason}` : reason}`, "warn");
      },
    });
    await publisher.start(media);
  } catch (err) {
    const taken = err.status === 409 ? " (someone in this room already uses that name)" : "";
    showError(`Could not join: ${err.message}${taken}`);
    await leave();
    return;
  }
  setStatus(`In room ${room} as ${name}.`, "ok");
}

/** Leave: DELETE both sessions (keepalive when the page unloads) and drop every tile. */
async function leave(keepalive = false) {
  const was = joined;
  joined = null;
  if (!was) return;
  clearInterval(was.timer);
  for (const t of tiles.values()) t.tile.remove();
  tiles.clear();
  tracks.clear();
  const stops = [was.sub.stop(keepalive), was.publisher.stop(keepalive)];
  was.media.getTracks().forEach((t) => t.stop());
  $("self-video").srcObject = null;
  setJoined(false);
  alone.hidden = true;
  if (!shownError()) setStatus("Left the room.");
  await Promise.all(stops);
}

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  join();
});
leaveButton.addEventListener("click", () => leave());
muteButton.addEventListener("click", () => {
  const track = joined?.media.getAudioTracks()[0];
  if (!track) return;
  track.enabled = !track.enabled;
  muteButton.textContent = track.enabled ? "Mute mic" : "Unmute mic";
});
window.addEventListener("pagehide", () => {
  if (joined) leave(true);
});

// Read-only hook for tests: own publisher, and each remote tile with what its slots decoded.
window.litesfu = {
  stats: async () => {
    const own = joined?.publisher;
    const s = own?.pc ? await own.stats().catch(() => null) : null;
    await joined?.sub.sample().catch(() => null);
    const byMid = joined?.sub.byMid ?? new Map();
    return {
      joined: Boolean(joined),
      error: shownError(),
      publisher: {
        state: own?.pc?.connectionState ?? "closed",
        framesEncoded: s?.framesEncoded ?? 0,
        frameWidth: s?.frameWidth ?? 0,
      },
      subscriber: {
        state: joined?.sub.pc?.connectionState ?? "closed",
        mlines: joined?.sub.pc?.getTransceivers().length ?? 0,
      },
      tiles: [...tiles.entries()].map(([name, t]) => ({
        name,
        mids: { ...t.mids },
        framesDecoded: byMid.get(t.mids.video)?.framesDecoded ?? 0,
        audioPackets: byMid.get(t.mids.audio)?.packetsReceived ?? 0,
        videoWidth: t.video.videoWidth,
        videoHeight: t.video.videoHeight,
        speaking: t.tile.dataset.speaking === "true",
        paused: t.tile.dataset.paused === "true",
      })),
    };
  },
};

roomInput.value = param("room", "room1");
nameInput.value = param("name", `guest-${Math.floor(Math.random() * 9000 + 1000)}`);
if (param("room") && param("name")) join();
else setStatus("Choose a room and a name, then Join.");
