// Player page: WHEP playback that reconnects by itself (reconnect.js), with live stats; or HLS.
import { playHls, hlsUrl } from "./hls.js";
import { $, param, renderRows, setStatus, showError, shownError } from "./page.js";
import { Player } from "./peers.js";
import { RECONNECTING } from "./reconnect.js";
import { playerRows } from "./stats.js";
import { endpointUrl } from "./whip.js";

const streamInput = $("stream");
const playButton = $("play");
const stopButton = $("stop");
const unmuteButton = $("unmute");
const video = $("video");
const statsList = $("stats");
const layerSelect = $("layer");
const viaSelect = $("via");

let player = null;
let hls = null; // { stop(), latency() } while playing as HLS
let publisherState = null; // "live" or "waiting for the publisher", from the WHEP events

function onStatus(text, err) {
  const kind = text === "playing" ? "ok" : text === RECONNECTING ? "warn" : "";
  setStatus(`${player?.stream ?? ""}: ${text}`, kind);
  if (text === "playing") showError("");
  else if (err) showError(`Play failed: ${err.message}`);
}

function updateEndpoint() {
  const name = streamInput.value.trim();
  const url = viaSelect.value === "hls" ? hlsUrl : (n) => endpointUrl("whep", n);
  $("endpoint").textContent = name ? url(name) : "—";
}

function play() {
  const name = streamInput.value.trim();
  if (!name) {
    showError("Enter a stream name.");
    return;
  }
  player?.stop();
  hls?.stop();
  hls = null;
  const layer = layerSelect.value;
  // ?spatial=N pins a VP9 SVC stream's spatial layer (the WHEP layer extension's field); read
  // before the address is rewritten below, and kept in it so that a reload keeps the pin.
  const spatial = param("spatial", "");
  const pinned = /^[0-7]$/.test(spatial);
  let query = layer === "auto" ? "" : `&layer=${encodeURIComponent(layer)}`;
  if (pinned) query += `&spatial=${spatial}`;
  if (viaSelect.value === "hls") query += "&via=hls";
  history.replaceState(null, "", `?stream=${encodeURIComponent(name)}${query}`);
  updateEndpoint();
  showError("");
  publisherState = null;
  playButton.disabled = true;
  stopButton.disabled = false;
  streamInput.disabled = true;
  if (viaSelect.value === "hls") {
    const status = (text, err) => {
      setStatus(`${name}: ${text}`, text.startsWith("playing") ? "ok" : "");
      if (err) showError(`HLS failed: ${err.message}`);
    };
    playHls(name, video, status).then(
      (started) => (hls = started),
      (err) => status("stopped", err),
    );
    return;
  }
  player = new Player(name, video, {
    onStatus,
    onPublisher: (live, viewers) => {
      publisherState = live ? "live" : "waiting for the publisher";
      const count = viewers === null ? "" : ` · ${viewers} watching`;
      $("publisher").textContent = `${publisherState}${count}`;
      $("publisher").dataset.kind = live ? "ok" : "warn";
    },
    onStats: (summary) => renderRows(statsList, playerRows(summary, video)),
    // The picker shows only for a stream with simulcast: one whose video has several layers.
    onLayers: (layers) => {
      $("layer-picker").hidden = !Object.values(layers).some((list) => list.length > 1);
    },
  });
  player.layer = pinned ? { spatialLayerId: Number(spatial) } : { rid: layer };
  player.start();
}

function stop() {
  player?.stop();
  player = null;
  hls?.stop();
  hls = null;
  playButton.disabled = false;
  stopButton.disabled = true;
  streamInput.disabled = false;
  renderRows(statsList, []);
}

$("form").addEventListener("submit", (event) => {
  event.preventDefault();
  play();
});
stopButton.addEventListener("click", stop);
unmuteButton.addEventListener("click", () => {
  video.muted = !video.muted;
  unmuteButton.textContent = video.muted ? "Unmute" : "Mute";
  video.play().catch(() => {});
});
streamInput.addEventListener("input", updateEndpoint);
viaSelect.addEventListener("change", updateEndpoint);
layerSelect.addEventListener("change", async () => {
  if (!player) return;
  const refused = await player.setLayer({ rid: layerSelect.value });
  showError(refused ? `Layer not changed: ${refused}` : "");
});
window.addEventListener("pagehide", () => player?.stop(true));

// Read-only hook for tests: decoded frames (summed over reconnects) and the rendered size.
window.litesfu = {
  stats: async () => ({
    playing: Boolean(player || hls),
    currentTime: video.currentTime,
    hlsLatency: hls ? hls.latency() : null,
    error: shownError(),
    publisher: publisherState,
    status: player?.status ?? "idle",
    layerPicker: !$("layer-picker").hidden,
    ...(player ? player.snapshot() : { framesDecoded: 0, videoWidth: 0, sessions: 0 }),
  }),
};

streamInput.value = param("stream", "live/livestream");
const wantedLayer = param("layer", "auto");
if (![...layerSelect.options].some((o) => o.value === wantedLayer)) {
  layerSelect.append(new Option(wantedLayer, wantedLayer));
}
layerSelect.value = wantedLayer;
viaSelect.value = param("via", "webrtc") === "hls" ? "hls" : "webrtc";
updateEndpoint();
if (param("autoplay", "1") !== "0") play();
