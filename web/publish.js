// Publisher page: camera/mic preview, device and codec choice, WHIP start/stop, live stats.
import { $, param, renderRows, setStatus, showError, shownError } from "./page.js";
import { Publisher } from "./peers.js";
import { RECONNECTING } from "./reconnect.js";
import { publisherRows } from "./stats.js";
import { endpointUrl, sendableVideoCodecs } from "./whip.js";

const streamInput = $("stream");
const cameraSelect = $("camera");
const micSelect = $("microphone");
const codecSelect = $("codec");
const startButton = $("start");
const stopButton = $("stop");
const preview = $("preview");
const statsList = $("stats");

let media = null;
let mediaReady = Promise.resolve(); // the latest device (re)open, awaited before publishing
let publisher = null;
let lastSummary = null;
// ?svc=L3T3_KEY (or L1T3, ...): the video as one SVC encoding of that scalability mode.
const svcMode = /^L[1-3]T[1-3](_KEY)?$/.test(param("svc", "")) ? param("svc", "") : "";

function updateLinks() {
  const name = streamInput.value.trim();
  $("play-link").href = `play.html?stream=${encodeURIComponent(name)}`;
  $("endpoint").textContent = name ? endpointUrl("whip", name) : "—";
}

function fillSelect(select, devices, noneLabel, current) {
  const options = devices.map((device, index) => {
    const option = document.createElement("option");
    option.value = device.deviceId;
    option.textContent = device.label || `${device.kind} ${index + 1}`;
    return option;
  });
  const none = document.createElement("option");
  none.value = "none";
  none.textContent = noneLabel;
  select.replaceChildren(...options, none);
  if (current && [...select.options].some((o) => o.value === current)) select.value = current;
}

function constraintFor(select, extra) {
  if (select.value === "none") return false;
  if (!select.value) return extra;
  return { ...extra, deviceId: { exact: select.value } };
}

/** (Re)open the chosen devices; swaps tracks in place when already publishing. */
async function openDevices() {
  // Simulcast's quarter-size layer is only worth having from a camera opened large.
  const size = $("simulcast").checked || svcMode
    ? { width: { ideal: 1280 }, height: { ideal: 720 } }
    : { width: { ideal: 640 }, height: { ideal: 480 } };
  const video = constraintFor(cameraSelect, size);
  const audio = constraintFor(micSelect, true);
  const old = media;
  if (!video && !audio) {
    media = null;
    preview.srcObject = null;
    old?.getTracks().forEach((t) => t.stop());
    return;
  }
  try {
    media = await navigator.mediaDevices.getUserMedia({ video, audio });
  } catch (err) {
    showError(`Cannot open camera/microphone: ${err.name}: ${err.message}`);
    return;
  }
  preview.srcObject = media;
  if (publisher) {
    for (const track of media.getTracks()) await publisher.replaceTrack(track);
  }
  old?.getTracks().forEach((t) => t.stop());
}

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const current = (kind) => media?.getTracks().find((t) => t.kind === kind)?.getSettings().deviceId;
  fillSelect(
    cameraSelect,
    devices.filter((d) => d.kind === "videoinput"),
    "(no camera)",
    current("video"),
  );
  fillSelect(
    micSelect,
    devices.filter((d) => d.kind === "audioinput"),
    "(no microphone)",
    current("audio"),
  );
}

function setPublishing(on) {
  startButton.disabled = on;
  stopButton.disabled = !on;
  streamInput.disabled = on;
  codecSelect.disabled = on;
}

async function start() {
  showError("");
  const name = streamInput.value.trim();
  if (!name) {
    showError("Enter a stream name.");
    return;
  }
  setPublishing(true);
  setStatus("Opening camera and microphone…");
  await mediaReady;
  if (!startButton.disabled) return; // Stop was pressed while the devices were opening
  if (!media) {
    setPublishing(false);
    showError("Nothing to publish: choose a camera or a microphone.");
    return;
  }
  history.replaceState(null, "", `?stream=${encodeURIComponent(name)}`);
  updateLinks();
  setStatus(`Publishing ${name}…`);
  const attempt = new Publisher(name, {
    onState: (state, err) => {
      if (publisher !== attempt) return;
      const kind = state === "connected" ? "ok" : state === RECONNECTING ? "warn" : "";
      setStatus(`Publishing ${name}: ${state}`, kind);
      if (state === "connected") showError("");
      else if (err) showError(`Publish failed: ${err.message}`);
    },
  });
  publisher = attempt;
  try {
    await attempt.start(media, codecSelect.value, {
      simulcast: $("simulcast").checked,
      scalabilityMode: svcMode,
    });
  } catch (err) {
    if (publisher === attempt) publisher = null;
    setPublishing(false);
    setStatus("Not publishing.", "warn");
    showError(`Publish failed: ${err.message}`);
  }
}

async function stop() {
  const current = publisher;
  publisher = null;
  lastSummary = null;
  setPublishing(false);
  setStatus("Stopped.");
  renderRows(statsList, []);
  await current?.stop();
}

async function tick() {
  if (!publisher?.pc) return;
  try {
    lastSummary = await publisher.stats();
    if (lastSummary) renderRows(statsList, publisherRows(lastSummary));
  } catch {
    // A closing connection may refuse getStats; the next tick will try again.
  }
}

function init() {
  streamInput.value = param("stream", "live/livestream");
  streamInput.addEventListener("input", updateLinks);
  updateLinks();
  const codecs = sendableVideoCodecs();
  for (const name of codecs) codecSelect.append(new Option(name, name));
  const wanted = param("codec", "").toUpperCase();
  if (codecs.includes(wanted)) codecSelect.value = wanted;
  $("simulcast").checked = param("simulcast", "0") === "1";
  $("form").addEventListener("submit", (event) => {
    event.preventDefault();
    start();
  });
  stopButton.addEventListener("click", stop);
  const reopen = () => {
    mediaReady = openDevices();
  };
  cameraSelect.addEventListener("change", reopen);
  $("simulcast").addEventListener("change", reopen);
  micSelect.addEventListener("change", reopen);
  navigator.mediaDevices?.addEventListener?.("devicechange", listDevices);
  window.addEventListener("pagehide", () => publisher?.stop(true));
  setInterval(tick, 1000);
  if (!navigator.mediaDevices?.getUserMedia) {
    showError("This page needs camera access: open it over https or from localhost.");
    return;
  }
  mediaReady = openDevices().then(listDevices);
}

// Read-only hook for tests: the latest getStats summary of the publishing connection.
window.litesfu = {
  stats: async () => {
    const s = lastSummary ?? {};
    return {
      publishing: Boolean(publisher),
      state: publisher?.pc?.connectionState ?? "closed",
      framesEncoded: s.framesEncoded ?? 0,
      frameWidth: s.frameWidth ?? 0,
      bitrate: s.bitrate ?? 0,
      targetBitrate: s.targetBitrate ?? 0,
      availableOutgoingBitrate: s.availableOutgoingBitrate ?? 0,
      codec: s.videoCodec ?? null,
      error: shownError(),
      status: $("status").textContent,
      sessionUrl: publisher?.sessionUrl ?? null,
      ...(publisher?.recoveries() ?? { restarts: 0, renewals: 0 }),
    };
  },
};

init();
