// Player page: WHEP playback that reconnects by itself, with live stats.
import { $, param, renderRows, setStatus, showError, shownError } from "./page.js";
import { Player } from "./peers.js";
import { playerRows } from "./stats.js";
import { endpointUrl } from "./whip.js";

const streamInput = $("stream");
const playButton = $("play");
const stopButton = $("stop");
const unmuteButton = $("unmute");
const video = $("video");
const statsList = $("stats");
const layerSelect = $("layer");

let player = null;
let publisherState = null; // "live" or "waiting for the publisher", from the WHEP events

function onStatus(text, err) {
  const kind = text === "playing" ? "ok" : text.includes("retrying") ? "warn" : "";
  setStatus(`${player?.stream ?? ""}: ${text}`, kind);
  if (text === "playing") showError("");
  else if (err) showError(`Play failed: ${err.message}`);
}

function updateEndpoint() {
  const name = streamInput.value.trim();
  $("endpoint").textContent = name ? endpointUrl("whep", name) : "—";
}

function play() {
  const name = streamInput.value.trim();
  if (!name) {
    showError("Enter a stream name.");
    return;
  }
  player?.stop();
  const layer = layerSelect.value;
  const query = layer === "auto" ? "" : `&layer=${encodeURIComponent(layer)}`;
  history.replaceState(null, "", `?stream=${encodeURIComponent(name)}${query}`);
  updateEndpoint();
  showError("");
  publisherState = null;
  player = new Player(name, video, {
    onStatus,
    onPublisher: (live, viewers) => {
      publisherState = live ? "live" : "waiting for the publisher";
      const count = viewers === null ? "" : ` · ${viewers} watching`;
      $("publisher").textContent = `${publisherState}${count}`;
      $("publisher").dataset.kind = live ? "ok" : "warn";
    },
    onStats: (summary) => renderRows(statsList, playerRows(summary, video)),
  });
  // ?spatial=N pins a VP9 SVC stream's spatial layer (the WHEP layer extension's field).
  const spatial = param("spatial", "");
  player.layer = /^[0-7]$/.test(spatial) ? { spatialLayerId: Number(spatial) } : { rid: layer };
  player.start();
  playButton.disabled = true;
  stopButton.disabled = false;
  streamInput.disabled = true;
}

function stop() {
  player?.stop();
  player = null;
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
layerSelect.addEventListener("change", async () => {
  if (!player) return;
  const refused = await player.setLayer({ rid: layerSelect.value });
  showError(refused ? `Layer not changed: ${refused}` : "");
});
window.addEventListener("pagehide", () => player?.stop(true));

// Read-only hook for tests: decoded frames (summed over reconnects) and the rendered size.
window.litesfu = {
  stats: async () => ({
    playing: Boolean(player),
    error: shownError(),
    publisher: publisherState,
    ...(player ? player.snapshot() : { framesDecoded: 0, videoWidth: 0, sessions: 0 }),
  }),
};

streamInput.value = param("stream", "live/livestream");
const wantedLayer = param("layer", "auto");
if (![...layerSelect.options].some((o) => o.value === wantedLayer)) {
  layerSelect.append(new Option(wantedLayer, wantedLayer));
}
layerSelect.value = wantedLayer;
updateEndpoint();
if (param("autoplay", "1") !== "0") play();
