// Dashboard: the server's /metrics and /api/v1/streams read each second, drawn as charts.
import { LineChart } from "./chart.js";
import { $, setStatus, showError } from "./page.js";
import { formatBitrate, formatMs } from "./stats.js";
import { fetchStats } from "./whip.js";

const INTERVAL_MS = 1000;
const MAX_STREAMS = 6; // lines per stream chart, so a busy server stays readable
// Whole numbers as they are, small fractions (an axis's half-way mark) with one decimal.
const plain = (n) => (Number.isInteger(n) || n >= 10 ? n.toFixed(0) : n.toFixed(1));
const rate = (n) => `${plain(n)}/s`;
const percent = (n) => `${n.toFixed(1)} %`;

const server = $("server-charts");
const streamsBox = $("stream-charts");
const inOut = { in: "in, from publishers", out: "out, to players" };
const charts = {
  bitrate: new LineChart(server, "Media bitrate", formatBitrate, { unit: "bit/s", labels: inOut }),
  packets: new LineChart(server, "Media packets", rate, { unit: "packets/s", labels: inOut }),
  sessions: new LineChart(server, "Sessions", plain, { unit: "sessions" }),
  cpu: new LineChart(server, "CPU", percent, { unit: "% of one core", labels: { cpu: "server" } }),
  drops: new LineChart(server, "Drops", rate, {
    unit: "packets/s",
    labels: { drops: "refused or lost" },
  }),
  streamBitrate: new LineChart(streamsBox, "Bitrate in", formatBitrate, { unit: "bit/s" }),
  players: new LineChart(streamsBox, "Players", plain, { unit: "players" }),
  loss: new LineChart(streamsBox, "Loss to players", percent, { unit: "%" }),
  rtt: new LineChart(streamsBox, "RTT to players", formatMs, { unit: "ms" }),
};
let previous = null; // {time, totals} of the last scrape, for rates
let latestPlayers = [];

/** Prometheus text as {name: sum over every sample of that name} (workers added up). */
function parseMetrics(text) {
  const sums = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = line.match(/^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/);
    if (!match) continue;
    const [, name, labels = "", value] = match;
    const number = Number(value);
    if (!Number.isFinite(number)) continue;
    sums[name] = (sums[name] ?? 0) + number;
    const role = labels.match(/role="(\w+)"/);
    if (name === "litesfu_sessions" && role) {
      sums[`sessions_${role[1]}`] = (sums[`sessions_${role[1]}`] ?? 0) + number;
    }
  }
  return sums;
}

function perSecond(now, totals, name) {
  if (!previous || now <= previous.time) return 0;
  const delta = (totals[name] ?? 0) - (previous.totals[name] ?? 0);
  return Math.max(0, delta) / ((now - previous.time) / 1000);
}

function drawServer(now, totals) {
  charts.bitrate.push({
    in: 8 * perSecond(now, totals, "litesfu_media_bytes_in_total"),
    out: 8 * perSecond(now, totals, "litesfu_media_bytes_out_total"),
  });
  charts.packets.push({
    in: perSecond(now, totals, "litesfu_media_packets_in_total"),
    out: perSecond(now, totals, "litesfu_media_packets_out_total"),
  });
  charts.sessions.push({
    publishers: totals.sessions_publish ?? 0,
    players: totals.sessions_play ?? 0,
  });
  charts.cpu.push({ cpu: 100 * perSecond(now, totals, "process_cpu_seconds_total") });
  charts.drops.push({ drops: perSecond(now, totals, "litesfu_drops_total") });
}

const average = (values) => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : 0);

function drawStreams(streams) {
  const shown = streams.slice(0, MAX_STREAMS);
  const by = (pick) => Object.fromEntries(shown.map((s) => [s.name, pick(s)]));
  const tracksOf = (s) => (s.player_sessions ?? []).flatMap((p) => p.tracks ?? []);
  charts.streamBitrate.push(by((s) => s.bitrate_in ?? 0));
  charts.players.push(by((s) => s.players ?? 0));
  charts.loss.push(by((s) => 100 * average(tracksOf(s).map((t) => t.fraction_lost ?? 0))));
  charts.rtt.push(
    by((s) => average(tracksOf(s).flatMap((t) => (t.rtt_ms === null ? [] : [t.rtt_ms])))),
  );
}

function drawPlayers(streams) {
  latestPlayers = streams.flatMap((s) =>
    (s.player_sessions ?? []).map((p) => {
      const tracks = p.tracks ?? [];
      const rtts = tracks.flatMap((t) => (t.rtt_ms === null ? [] : [t.rtt_ms]));
      return {
        stream: s.name,
        state: p.state,
        rttMs: rtts.length ? average(rtts) : null,
        loss: average(tracks.map((t) => t.fraction_lost ?? 0)),
      };
    }),
  );
  const rows = latestPlayers.map((p) => {
    const tr = document.createElement("tr");
    for (const text of [p.stream, p.state, "UDP", formatMs(p.rttMs), percent(100 * p.loss)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  });
  document.querySelector("#players tbody").replaceChildren(...rows);
  $("no-players").hidden = rows.length > 0;
}

async function tick() {
  try {
    const [metrics, list] = await Promise.all([fetchStats("/metrics"), fetchStats("/api/v1/streams")]);
    const totals = parseMetrics(await metrics.text());
    const streams = (await list.json()).streams ?? [];
    const now = performance.now();
    drawServer(now, totals);
    drawStreams(streams);
    drawPlayers(streams);
    previous = { time: now, totals };
    setStatus(`Updated ${new Date().toLocaleTimeString()}.`);
    showError("");
  } catch (err) {
    showError(`Cannot read the server: ${err.message}`);
  }
}

// Read-only hook for tests: samples per chart and the latest value of each series.
window.litesfu = {
  stats: async () => ({
    charts: Object.fromEntries(
      Object.entries(charts).map(([key, chart]) => [
        key,
        {
          points: chart.points(),
          legend: chart.legendEntries(),
          axis: chart.axisLabels,
          caption: chart.caption.textContent,
          latest: Object.fromEntries([...chart.series].map(([n, line]) => [n, line.at(-1)])),
        },
      ]),
    ),
    players: latestPlayers,
  }),
};

tick();
setInterval(tick, INTERVAL_MS);
