// Co-hosting room: publish yourself as `room/name`, play everyone else in `room/`.
import { authHeaders, refusalHint } from "./auth.js";
import { openEvents } from "./sse.js";
import { $, param, setStatus, showError, shownError } from "./page.js";
import { Player, Publisher } from "./peers.js";
import { formatBitrate, formatFps } from "./stats.js";
import { fetchStreams } from "./whip.js";

const POLL_MS = 1500; // only where the server has no room events (a --workers front)

const roomInput = $("room");
const nameInput = $("name");
const joinButton = $("join");
const leaveButton = $("leave");
const muteButton = $("mute");
const tilesBox = $("tiles");
const alone = $("alone");

let joined = null; // {room, name, media, publisher}
let roomEvents = null; // the /api/v1/events stream of the room while joined
let pollTimer = null;
const live = new Set(); // participants whose stream is published, as the events tell
const remotes = new Map(); // participant name -> {tile, player, statusEl, video}

function addTile(name) {
  const tile = document.createElement("article");
  tile.className = "tile";
  tile.dataset.participant = name;
  const header = document.createElement("header");
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = name;
  const statusEl = document.createElement("span");
  statusEl.className = "tile-status";
  statusEl.textContent = "connecting";
  header.append(label, statusEl);
  const video = document.createElement("video");
  video.autoplay = true;
  // Unmuted autoplay is only allowed after a user gesture (e.g. the Join click).
  video.muted = !navigator.userActivation?.hasBeenActive;
  video.title = "Click to mute or unmute";
  video.playsInline = true;
  tile.append(header, video);
  tilesBox.append(tile);
  const player = new Player(`${joined.room}/${name}`, video, {
    onStatus: (text) => {
      statusEl.textContent = text;
    },
    onStats: (s) => {
      if (player.status !== "playing") return;
      const size = video.videoWidth ? `${video.videoWidth}×${video.videoHeight}` : "—";
      const fps = formatFps(s.framesPerSecond);
      statusEl.textContent = `${size} · ${fps} fps · ${formatBitrate(s.bitrate)}`;
    },
  });
  video.addEventListener("click", () => {
    video.muted = !video.muted;
  });
  remotes.set(name, { tile, player, statusEl, video });
  player.layer = { maxWidth: tileWidth(video) };
  // A small tile asks a simulcast publisher for a small layer; resizing asks again.
  new ResizeObserver(() => {
    const maxWidth = tileWidth(video);
    if (maxWidth !== player.layer.maxWidth) player.setLayer({ maxWidth });
  }).observe(video);
  player.start();
}

/** The pixels a tile shows, rounded up to a step so small resizes ask nothing new. */
function tileWidth(video) {
  const step = 160;
  const pixels = (video.clientWidth || 320) * (window.devicePixelRatio || 1);
  return Math.min(16384, Math.ceil(pixels / step) * step);
}

function removeTile(name) {
  const remote = remotes.get(name);
  if (!remote) return;
  remotes.delete(name);
  remote.player.stop();
  remote.tile.remove();
}

/** Bring the tiles in line with who is publishing in the room. */
function sync() {
  if (!joined) return;
  for (const name of [...remotes.keys()]) if (!live.has(name)) removeTile(name);
  for (const name of [...live].sort()) if (!remotes.has(name)) addTile(name);
  alone.hidden = remotes.size > 0;
}

/** Who publishes in the room, from the stream list: for servers without room events. */
async function poll(room) {
  let streams;
  try {
    streams = await fetchStreams();
  } catch (err) {
    setStatus(`Cannot list participants: ${err.message}`, "warn");
    return;
  }
  live.clear();
  for (const stream of streams) {
    const who = stream.name.slice(room.length + 1);
    if (stream.publishing && stream.name.startsWith(`${room}/`) && who !== joined?.name) {
      live.add(who);
    }
  }
  sync();
}

/** Follow the room's events (published, unpublished) instead of asking again and again. */
function followRoom(room) {
  live.clear();
  const url = `/api/v1/events?room=${encodeURIComponent(room)}`;
  roomEvents = openEvents(url, authHeaders(null, "stats"), {
    onOpen: () => {
      live.clear(); // a reconnect starts with the room's state again
      setStatus(`In room ${room} as ${joined?.name}.`, "ok");
    },
    onEvent: (event, data) => {
      const who = data.stream?.slice(room.length + 1);
      if (!who || who === joined?.name) return;
      if (event === "published") live.add(who);
      else if (event === "unpublished") live.delete(who);
      sync();
    },
    onError: (status, reason) => {
      if (status === 404) {
        pollTimer = setInterval(() => poll(room), POLL_MS);
        return;
      }
      const why = status ? `HTTP ${status} — ${reason}${refusalHint(status)}` : reason;
      setStatus(`Cannot follow the room: ${why}`, "warn");
      if (status === 401 || status === 403) showError(`Cannot follow the room: ${why}`);
    },
  });
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
  if (!room || !name || room.includes("/") || name.includes("/")) {
    showError("Room and name are required and may not contain '/'.");
    return;
  }
  setJoined(true);
  setStatus(`Joining ${room} as ${name}…`);
  history.replaceState(
    null,
    "",
    `?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`,
  );
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
  joined = { room, name, media, publisher };
  try {
    await publisher.start(media);
  } catch (err) {
    const taken = err.status === 409 ? " (someone in this room already uses that name)" : "";
    showError(`Could not join: ${err.message}${taken}`);
    await leave();
    return;
  }
  setStatus(`In room ${room} as ${name}.`, "ok");
  followRoom(room);
}

/** Stop playing and publishing; DELETEs every session (keepalive when the page unloads). */
async function leave(keepalive = false) {
  const was = joined;
  joined = null;
  roomEvents?.close();
  roomEvents = null;
  clearInterval(pollTimer);
  pollTimer = null;
  live.clear();
  const stops = [...remotes.keys()].map((name) => {
    const remote = remotes.get(name);
    remotes.delete(name);
    remote.tile.remove();
    return remote.player.stop(keepalive);
  });
  if (was) {
    stops.push(was.publisher.stop(keepalive));
    was.media.getTracks().forEach((t) => t.stop());
  }
  $("self-video").srcObject = null;
  setJoined(false);
  alone.hidden = true;
  setStatus("Left the room.");
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

// Read-only hook for tests: own publisher and every remote tile, as getStats summaries.
window.litesfu = {
  stats: async () => {
    const own = joined?.publisher;
    const s = own?.pc ? await own.stats().catch(() => null) : null;
    return {
      joined: Boolean(joined),
      error: shownError(),
      publisher: {
        state: own?.pc?.connectionState ?? "closed",
        framesEncoded: s?.framesEncoded ?? 0,
        frameWidth: s?.frameWidth ?? 0,
      },
      tiles: [...remotes.entries()].map(([name, remote]) => ({
        name,
        ...remote.player.snapshot(),
      })),
    };
  },
};

roomInput.value = param("room", "room1");
nameInput.value = param("name", `guest-${Math.floor(Math.random() * 9000 + 1000)}`);
if (param("room") && param("name")) join();
else setStatus("Choose a room and a name, then Join.");
