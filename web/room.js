// A room on the room API (/rooms/v1): publish yourself over WHIP as `room/name` (microphone,
// camera, and a spare video m-line that carries a screen share when you share), and receive
// everyone else on ONE subscribe connection (room_subscription.js) whose slots the server
// fills; its events drive the tiles (room_tiles.js). Two peer connections per page in all,
// whatever the room's size. Mute and screen share are told to the server (POST .../media), so
// the others' tiles show them and nobody's downlink carries a camera that is off.
import { $, param, setStatus, showError, shownError } from "./page.js";
import { Publisher } from "./peers.js";
import { RECONNECTING, isFinal, retrying } from "./reconnect.js";
import { Chat, LABEL as CHAT } from "./room_chat.js";
import { Subscription } from "./room_subscription.js";
import { Tiles } from "./room_tiles.js";

const NAME = /^[A-Za-z0-9_.~-]{1,64}$/; // the server's name shape (signaling/serving/names.py)
const STATS_MS = 1000;
const CAMERA_BITRATE = 300_000; // a tile, not a stage: the downlink is shared by many
// ?camera=WxH@FPS asks the camera for less (a crowded room on a small machine).
const CAMERA = /^(\d{2,4})x(\d{2,4})@(\d{1,2})$/;

const roomInput = $("room");
const nameInput = $("name");
const joinButton = $("join");
const leaveButton = $("leave");
const muteButton = $("mute");
const cameraButton = $("camera");
const shareButton = $("share");

let joined = null; // {room, name, media, publisher, sub, timer, screen, rejoining, rejoins}
const chat = new Chat($("chat-log"), $("chat-form"), $("chat-input"));
const tiles = new Tiles($("tiles"), $("alone"), (names) => {
  const prefs = Object.fromEntries(names.map((name) => [name, { pinned: true }]));
  joined?.sub?.post("prefs", prefs);
});

function onEvent(event, data) {
  if (event === "participants") tiles.participants(data);
  else if (event === "slots") tiles.slots(data);
  else if (event === "speakers") tiles.speakers(data);
  else if (event === "paused" || event === "resumed") tiles.paused(event, data);
  else if (event === "renegotiate") joined?.sub?.renegotiate(data);
  else if (event === "reconnect") rejoin("the server is going away"); // stopping or draining
  else if (event === "ended") {
    setStatus("The room session ended.", "warn");
    leave();
  }
}

async function showStats() {
  const sub = joined?.sub;
  if (!sub) return;
  const byMid = await sub.sample().catch(() => sub.byMid);
  tiles.refresh();
  tiles.showRates(byMid);
}

function cameraConstraints() {
  const match = param("camera").match(CAMERA);
  const [width, height, frameRate] = match ? match.slice(1).map(Number) : [320, 240, 15];
  return { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: frameRate } };
}

function setJoined(on) {
  joinButton.disabled = on;
  for (const button of [leaveButton, muteButton, cameraButton, shareButton]) {
    button.disabled = !on;
  }
  roomInput.disabled = on;
  nameInput.disabled = on;
  $("self-tile").hidden = !on;
  if (!on) {
    setPressed(muteButton, false, "Mute mic", "Unmute mic");
    setPressed(cameraButton, false, "Camera off", "Camera on");
    setPressed(shareButton, false, "Share screen", "Stop sharing");
  }
}

function setPressed(button, on, offText, onText) {
  button.setAttribute("aria-pressed", String(on));
  button.textContent = on ? onText : offText;
}

/** Tell the server what this participant mutes and whether it shares its screen. */
function sayMedia() {
  if (!joined) return;
  const muted = [];
  if (!joined.media.getAudioTracks()[0]?.enabled) muted.push("audio");
  if (!joined.media.getVideoTracks()[0]?.enabled) muted.push("video");
  joined.sub?.post("media", { muted, screen: Boolean(joined.screen) });
}

function toggleTrack(kind, button, offText, onText) {
  const track = joined?.media.getTracks().find((t) => t.kind === kind);
  if (!track) return;
  track.enabled = !track.enabled; // a disabled track sends silence or black, cheaply
  setPressed(button, !track.enabled, offText, onText);
  sayMedia();
}

async function toggleScreen() {
  if (!joined) return;
  if (joined.screen) {
    await stopSharing();
    return;
  }
  let display;
  try {
    display = await navigator.mediaDevices.getDisplayMedia({
      video: { frameRate: { ideal: 5, max: 15 } },
      audio: false,
    });
  } catch (err) {
    showError(`Cannot share the screen: ${err.name}: ${err.message}`);
    return;
  }
  if (!joined) {
    display.getTracks().forEach((t) => t.stop());
    return;
  }
  const track = display.getVideoTracks()[0];
  track.contentHint = "detail"; // text stays sharp; the frame rate gives way
  track.addEventListener("ended", () => stopSharing()); // the browser's own "Stop sharing"
  await showScreen(display);
}

function stopSharing() {
  return joined?.screen ? showScreen(null) : undefined;
}

/** Send `display` on the spare video m-line, or nothing (null); show it; tell the server. */
async function showScreen(display) {
  const track = display?.getVideoTracks()[0] ?? null;
  joined.screen?.stop();
  joined.screen = track;
  await joined.publisher?.shareOnSpare(track);
  $("self-screen").srcObject = display;
  $("self-screen").hidden = !display;
  setPressed(shareButton, Boolean(display), "Share screen", "Stop sharing");
  sayMedia();
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
  const query = new URLSearchParams(location.search);
  query.set("room", room);
  query.set("name", name);
  history.replaceState(null, "", `?${query}`);
  $("room-title").textContent = room;
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({ video: cameraConstraints(), audio: true });
  } catch (err) {
    setJoined(false);
    showError(`Cannot open camera/microphone: ${err.name}: ${err.message}`);
    return;
  }
  $("self-video").srcObject = media;
  $("self-name").textContent = `${name} (you)`;
  const timer = setInterval(showStats, STATS_MS);
  joined = { room, name, media, timer, rejoining: false, rejoins: 0 };
  try {
    await connect(joined);
  } catch (err) {
    const taken = err.status === 409 ? " (someone in this room already uses that name)" : "";
    showError(`Could not join: ${err.message}${taken}`);
    await leave();
    return false;
  }
  setStatus(`In room ${room} as ${name}.`, "ok");
  return true;
}

/** Open this participant's two sessions (subscribe, then publish) for `session`. Throws
 * HttpError; what it opened is on `session` and `leave` closes it. */
async function connect(session) {
  const { room, name, media } = session;
  const current = () => joined === session && session.sub === sub;
  const publisher = new Publisher(`${room}/${name}`, {
    onState: (state) => {
      $("self-status").textContent = state;
    },
  });
  const sub = new Subscription(room, name, {
    onTrack: (mid, track) => current() && tiles.track(mid, track),
    onEvent: (event, data) => current() && onEvent(event, data),
    onState: (state) => current() && tiles.setConnection(state),
    onOpen: () => current() && setStatus(`In room ${room} as ${name}.`, "ok"),
    onError: (status, reason) => {
      if (!current()) return;
      // 404: the room session is gone (the server restarted, or dropped it): join again.
      if (status === 404) rejoin("the room session is gone");
      else setStatus(`Room events: ${status ? `HTTP ${status} — ${reason}` : reason}; ${RECONNECTING}`, "warn");
    },
    onTrouble: (message) => current() && setStatus(message, "warn"),
    channel: CHAT,
    onChannel: (channel, own) => (own ? chat.open(channel) : chat.listen(channel)),
  });
  Object.assign(session, { publisher, sub });
  // Join first: a --workers front places the room's streams with the room once it was joined.
  await sub.start();
  await publisher.start(media, undefined, { maxBitrate: CAMERA_BITRATE, spareVideo: true });
}

/** Close both sessions but keep the page, the camera and the tiles (marked reconnecting). */
async function disconnect(session) {
  const { sub, publisher } = session;
  session.sub = null;
  session.publisher = null;
  await Promise.all([sub?.stop(), publisher?.stop()].map((p) => p?.catch(() => null)));
}

/** Join the same room again with the same media, backing off as reconnect.js does, until it
 * works or the participant leaves. The page says "reconnecting…" meanwhile, so do the tiles. */
async function rejoin(why) {
  const session = joined;
  if (!session || session.rejoining) return;
  session.rejoining = true;
  setStatus(`${why}; ${RECONNECTING}`, "warn");
  tiles.setConnection("reconnecting");
  await retrying(async () => {
    if (joined !== session) return true; // left meanwhile
    await disconnect(session);
    if (joined !== session) return true;
    tiles.forgetTracks();
    try {
      await connect(session);
    } catch (err) {
      if (!isFinal(err)) {
        setStatus(`${err.message}; ${RECONNECTING}`, "warn");
        return false;
      }
      showError(`Could not join again: ${err.message}`); // no token, or the wrong one
      await leave();
    }
    return true;
  });
  if (joined !== session) return;
  session.rejoining = false;
  session.rejoins += 1;
  // The new sessions start as the old began: say again what is muted, share the screen again.
  if (session.screen) await session.publisher.shareOnSpare(session.screen);
  sayMedia();
  setStatus(`In room ${session.room} as ${session.name}.`, "ok");
}

/** Leave: DELETE both sessions (keepalive when the page unloads) and drop every tile. */
async function leave(keepalive = false) {
  const was = joined;
  joined = null;
  if (!was) return;
  clearInterval(was.timer);
  tiles.clear();
  chat.clear();
  const stops = [was.sub?.stop(keepalive), was.publisher?.stop(keepalive)];
  was.media.getTracks().forEach((t) => t.stop());
  was.screen?.stop();
  $("self-video").srcObject = null;
  $("self-screen").srcObject = null;
  $("self-screen").hidden = true;
  setJoined(false);
  if (!shownError()) setStatus("Left the room.");
  await Promise.all(stops);
}

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  join();
});
leaveButton.addEventListener("click", () => leave());
muteButton.addEventListener("click", () =>
  toggleTrack("audio", muteButton, "Mute mic", "Unmute mic"),
);
cameraButton.addEventListener("click", () =>
  toggleTrack("video", cameraButton, "Camera off", "Camera on"),
);
shareButton.addEventListener("click", () => toggleScreen());
window.addEventListener("pagehide", () => {
  if (joined) leave(true);
});

// Read-only hook for tests: own publisher, and each remote tile with what its slots decoded.
window.litesfu = {
  stats: async () => {
    const own = joined?.publisher;
    const s = own?.pc ? await own.stats().catch(() => null) : null;
    const byMid = (await joined?.sub?.sample().catch(() => null)) ?? joined?.sub?.byMid;
    return {
      joined: Boolean(joined),
      rejoins: joined?.rejoins ?? 0,
      chatDropped: chat.dropped,
      error: shownError(),
      publisher: {
        state: own?.pc?.connectionState ?? "closed",
        framesEncoded: s?.framesEncoded ?? 0,
        frameWidth: s?.frameWidth ?? 0,
        sharing: Boolean(joined?.screen),
      },
      subscriber: {
        state: joined?.sub?.pc?.connectionState ?? "closed",
        mlines: joined?.sub?.pc?.getTransceivers().length ?? 0,
      },
      tiles: tiles.report(byMid ?? new Map()),
    };
  },
};

roomInput.value = param("room", "room1");
nameInput.value = param("name", `guest-${Math.floor(Math.random() * 9000 + 1000)}`);
if (param("room") && param("name")) join();
else setStatus("Choose a room and a name, then Join.");
