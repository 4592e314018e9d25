// Home page: live stream list from /api/v1/streams, refreshed every 2 s.
import { $, showError } from "./page.js";
import { formatBitrate } from "./stats.js";
import { fetchStreams } from "./whip.js";

const body = document.querySelector("#streams tbody");
const count = $("stream-count");
const none = $("no-streams");
let latest = [];

function cell(row, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  row.append(td);
}

function badge(stream) {
  const span = document.createElement("span");
  const state = stream.publishing ? stream.publisher_state ?? "publishing" : "no publisher";
  span.className = `badge ${stream.publisher_state === "connected" ? "live" : "waiting"}`;
  span.textContent = state;
  return span;
}

function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  return a;
}

function render(streams) {
  const rows = streams.map((stream) => {
    const tr = document.createElement("tr");
    tr.dataset.stream = stream.name;
    cell(tr, stream.name);
    cell(tr, badge(stream));
    const codecs = stream.codecs ?? {};
    cell(tr, [codecs.video, codecs.audio].filter(Boolean).join(" + ") || "—");
    cell(tr, String(stream.players ?? 0));
    cell(tr, formatBitrate(stream.bitrate_in ?? 0));
    cell(tr, formatBitrate(stream.bitrate_out ?? 0));
    cell(tr, link(`play.html?stream=${encodeURIComponent(stream.name)}`, "Play"));
    return tr;
  });
  body.replaceChildren(...rows);
  count.textContent = String(streams.length);
  none.hidden = streams.length > 0;
}

async function refresh() {
  try {
    latest = await fetchStreams();
    latest.sort((a, b) => a.name.localeCompare(b.name));
    render(latest);
    showError("");
  } catch (err) {
    showError(`Could not load streams: ${err.message}`);
  }
}

$("go").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("go-stream").value.trim() || "live/livestream";
  const page = event.submitter?.dataset.page ?? "play.html";
  location.href = `${page}?stream=${encodeURIComponent(name)}`;
});

// Read-only hook for tests and the curious.
window.litesfu = {
  streams: () => latest.map((s) => ({ ...s })),
  stats: async () => ({ streams: latest.map((s) => s.name) }),
};

refresh();
setInterval(refresh, 2000);
