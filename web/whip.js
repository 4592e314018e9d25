// LiteSFU browser client: WHIP publish, WHEP play, getStats summaries.
// Shared by every page so that the signalling and the numbers shown are the same everywhere.
import { authHeaders, refusalHint } from "./auth.js";
import { openEvents } from "./sse.js";

const EVENTS_REL = "urn:ietf:params:whep:ext:core:server-sent-events";
const LAYER_REL = "urn:ietf:params:whep:ext:core:layer";
// Simulcast layers a publisher sends, lowest first: quarter, half and full size.
export const SIMULCAST_ENCODINGS = [
  { rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: "f", maxBitrate: 1_500_000 },
];
const sessionHeaders = new Map(); // session URL -> the Authorization its DELETE needs

/** An HTTP answer other than 201: keeps the status and the server's one-line reason. */
export class HttpError extends Error {
  constructor(status, reason) {
    super(status ? `HTTP ${status}${reason ? ` — ${reason}` : ""}` : reason);
    this.name = "HttpError";
    this.status = status;
    this.reason = reason;
  }
}

/** Query-string parameter with a default, so pages work when opened bare. */
export function param(name, fallback = "") {
  const value = new URLSearchParams(location.search).get(name);
  return value === null || value.trim() === "" ? fallback : value.trim();
}

/** Stream names may contain a slash (room/name); encode each part but keep the slash. */
export function streamPath(name) {
  return name.split("/").map(encodeURIComponent).join("/");
}

export function endpointUrl(kind, stream) {
  return new URL(`/${kind}/${streamPath(stream)}`, location.href).href;
}

/**
 * Resolve when ICE gathering is complete or after `ms`. The server is ICE-lite and does not
 * need our candidates, so a short bounded wait only makes the offer tidier.
 */
function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, ms);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** The target of the Link with relation `rel` in a WHEP answer, or null. */
function linkTarget(header, base, rel) {
  for (const part of (header ?? "").split(/,(?=\s*<)/)) {
    const match = part.match(/<([^>]*)>/);
    if (match && part.includes(`rel="${rel}"`)) return new URL(match[1], base).href;
  }
  return null;
}

/** RTCIceServer entries of the `Link: rel="ice-server"` values of one header (RFC 9725 §4.6). */
export function parseIceServers(header) {
  const servers = [];
  for (const part of (header ?? "").split(/,(?=\s*<)/)) {
    const match = part.match(/<([^>]*)>/);
    if (!match || !part.includes('rel="ice-server"')) continue;
    const server = { urls: match[1] };
    const username = part.match(/username="([^"]*)"/);
    const credential = part.match(/credential="([^"]*)"/);
    if (username && credential) Object.assign(server, { username: username[1], credential: credential[1] });
    servers.push(server);
  }
  return servers;
}

/**
 * The STUN/TURN servers the operator configured, from an OPTIONS request to the endpoint
 * before the peer connection exists (a TURN server must be known before gathering starts).
 * None on any failure: the page still works with host candidates.
 */
export async function iceServers(kind, stream) {
  try {
    const response = await fetch(endpointUrl(kind, stream), {
      method: "OPTIONS",
      signal: AbortSignal.timeout(5000),
    });
    return parseIceServers(response.headers.get("Link"));
  } catch {
    return [];
  }
}

/**
 * Offer/answer over WHIP or WHEP. Returns the absolute session URL (from Location) that
 * DELETE ends and the WHEP events URL if offered. Throws HttpError with the status and the
 * server's reason on failure.
 */
export async function negotiate(pc, kind, stream, query = "") {
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await gathered(pc, 1000);
  const url = endpointUrl(kind, stream) + query;
  const headers = authHeaders(stream, kind === "whip" ? "publish" : "play", {
    "Content-Type": "application/sdp",
  });
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers,
      body: pc.localDescription.sdp,
      signal: AbortSignal.timeout(10000),
    });
  } catch (err) {
    if (err.name === "TimeoutError") throw new HttpError(0, "no answer from the server in 10 s");
    throw new HttpError(0, `server unreachable (${err.message})`);
  }
  const text = await response.text();
  if (response.status !== 201 && response.status !== 200) {
    const reason = text.trim().split("\n")[0] || response.statusText;
    throw new HttpError(response.status, reason + refusalHint(response.status));
  }
  if (pc.signalingState === "closed") throw new HttpError(0, "closed while negotiating");
  await pc.setRemoteDescription({ type: "answer", sdp: text });
  const where = response.headers.get("Location");
  const sessionUrl = where ? new URL(where, url).href : null;
  if (sessionUrl && headers.Authorization) {
    sessionHeaders.set(sessionUrl, { Authorization: headers.Authorization });
  }
  const link = response.headers.get("Link");
  return {
    sessionUrl,
    eventsUrl: linkTarget(link, url, EVENTS_REL),
    layerUrl: linkTarget(link, url, LAYER_REL),
    headers,
  };
}

/** DELETE a session; never throws, since leaving must always succeed locally. */
export async function endSession(sessionUrl, keepalive = false) {
  if (!sessionUrl) return;
  try {
    const headers = sessionHeaders.get(sessionUrl) ?? {};
    sessionHeaders.delete(sessionUrl);
    await fetch(sessionUrl, {
      method: "DELETE",
      headers,
      keepalive,
      signal: AbortSignal.timeout(3000),
    });
  } catch {
    // The server may already be gone; the local side is closed either way.
  }
}

/**
 * End a session the WHIP way: DELETE, then close the connection. Closing first would send a
 * DTLS alert that ends the session on the server, and the DELETE would then find nothing.
 * While the page unloads there is no time to wait, so both go out at once.
 */
async function closeAfterDelete(pc, sessionUrl, keepalive) {
  if (keepalive) {
    const ending = endSession(sessionUrl, true);
    pc?.close();
    await ending;
    return;
  }
  await endSession(sessionUrl);
  pc?.close();
}

/** Codecs of `mime` first among the sender's, best H264 profile first; rtx kept for NACK. */
export function preferCodec(transceiver, mime) {
  if (!mime || !transceiver.setCodecPreferences || !RTCRtpSender.getCapabilities) return false;
  const all = RTCRtpSender.getCapabilities("video")?.codecs ?? [];
  const wanted = all.filter((c) => c.mimeType.toLowerCase() === `video/${mime.toLowerCase()}`);
  if (wanted.length === 0) return false;
  const rank = (c) => {
    const fmtp = c.sdpFmtpLine ?? "";
    let score = 0;
    if (fmtp.includes("packetization-mode=1")) score -= 2;
    if (fmtp.includes("profile-level-id=42e01f")) score -= 1;
    return score;
  };
  wanted.sort((a, b) => rank(a) - rank(b));
  const rtx = all.filter((c) => c.mimeType.toLowerCase() === "video/rtx");
  transceiver.setCodecPreferences([...wanted, ...rtx]);
  return true;
}

/** Video codecs this browser can send, among those the SFU forwards. */
export function sendableVideoCodecs() {
  const caps = window.RTCRtpSender?.getCapabilities?.("video")?.codecs ?? [];
  const names = new Set(caps.map((c) => c.mimeType.split("/")[1].toUpperCase()));
  return ["VP8", "H264"].filter((name) => names.has(name));
}

/**
 * Turns successive getStats reports into one small summary with rates. Keep one meter per
 * peer connection: the rates are differences against the meter's previous sample.
 */
export class StatsMeter {
  constructor() {
    this.previous = null;
  }

  async sample(pc) {
    const report = await pc.getStats();
    const now = performance.now();
    const summary = {
      state: pc.connectionState,
      bytesSent: 0,
      bytesReceived: 0,
      bitrate: 0,
      // Null until a stat reports it: Firefox has no targetBitrate, for one, and a page
      // should say "—" (unknown) rather than 0 (known to be nothing).
      framesEncoded: null,
      framesDecoded: 0,
      framesPerSecond: null,
      frameWidth: 0,
      frameHeight: 0,
      packetsLost: null,
      jitterMs: null,
      rttMs: null,
      targetBitrate: null,
      availableOutgoingBitrate: null,
      videoCodec: null,
      audioCodec: null,
    };
    let pairRtt = null;
    let remoteRtt = null;
    const codecName = (stat) => report.get(stat.codecId)?.mimeType?.split("/")[1] ?? null;
    const add = (key, value) => {
      if (typeof value === "number") summary[key] = (summary[key] ?? 0) + value;
    };
    const latest = (key, value) => {
      if (typeof value === "number") summary[key] = value;
    };
    report.forEach((stat) => {
      if (stat.type === "outbound-rtp") {
        summary.bytesSent += stat.bytesSent ?? 0;
        if (stat.kind === "video") {
          add("framesEncoded", stat.framesEncoded);
          add("targetBitrate", stat.targetBitrate);
          latest("framesPerSecond", stat.framesPerSecond);
          summary.frameWidth = stat.frameWidth ?? summary.frameWidth;
          summary.frameHeight = stat.frameHeight ?? summary.frameHeight;
          summary.videoCodec = codecName(stat) ?? summary.videoCodec;
        } else {
          summary.audioCodec = codecName(stat) ?? summary.audioCodec;
        }
      } else if (stat.type === "inbound-rtp") {
        summary.bytesReceived += stat.bytesReceived ?? 0;
        add("packetsLost", stat.packetsLost);
        if (stat.kind === "video") {
          summary.framesDecoded += stat.framesDecoded ?? 0;
          latest("framesPerSecond", stat.framesPerSecond);
          summary.frameWidth = stat.frameWidth ?? summary.frameWidth;
          summary.frameHeight = stat.frameHeight ?? summary.frameHeight;
          summary.videoCodec = codecName(stat) ?? summary.videoCodec;
          if (typeof stat.jitter === "number") summary.jitterMs = stat.jitter * 1000;
        } else {
          summary.audioCodec = codecName(stat) ?? summary.audioCodec;
        }
      } else if (stat.type === "remote-inbound-rtp") {
        add("packetsLost", stat.packetsLost);
        if (typeof stat.roundTripTime === "number") remoteRtt = stat.roundTripTime * 1000;
      } else if (stat.type === "candidate-pair" && stat.nominated && stat.state === "succeeded") {
        if (typeof stat.currentRoundTripTime === "number") {
          pairRtt = stat.currentRoundTripTime * 1000;
        }
        if (typeof stat.availableOutgoingBitrate === "number") {
          summary.availableOutgoingBitrate = stat.availableOutgoingBitrate;
        }
      }
    });
    summary.rttMs = remoteRtt ?? pairRtt;
    const bytes = summary.bytesSent + summary.bytesReceived;
    if (this.previous && now > this.previous.time && bytes >= this.previous.bytes) {
      summary.bitrate = ((bytes - this.previous.bytes) * 8 * 1000) / (now - this.previous.time);
    }
    this.previous = { time: now, bytes };
    return summary;
  }
}

export function formatBitrate(bps) {
  if (bps === null || bps === undefined) return "—";
  if (!Number.isFinite(bps) || bps <= 0) return "0 bit/s";
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(2)} Mbit/s`;
  if (bps >= 1e3) return `${(bps / 1e3).toFixed(0)} kbit/s`;
  return `${bps.toFixed(0)} bit/s`;
}

/** A count, or "—" when the browser does not report it. */
export function formatCount(n) {
  return n === null || n === undefined ? "—" : String(n);
}

export function formatFps(fps) {
  return fps === null || fps === undefined ? "—" : fps.toFixed(0);
}

export function formatMs(ms) {
  return ms === null || ms === undefined ? "—" : `${ms.toFixed(1)} ms`;
}

/** Replace the children of a <dl> with label/value rows. */
export function renderRows(dl, rows) {
  const items = [];
  for (const [label, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    items.push(dt, dd);
  }
  dl.replaceChildren(...items);
}

/** Rows shown under a publisher preview. */
export function publisherRows(s) {
  return [
    ["state", s.state],
    ["codec", [s.videoCodec, s.audioCodec].filter(Boolean).join(" + ") || "—"],
    ["bitrate", formatBitrate(s.bitrate)],
    ["encoder target", formatBitrate(s.targetBitrate)],
    ["bandwidth estimate", formatBitrate(s.availableOutgoingBitrate)],
    ["fps", formatFps(s.framesPerSecond)],
    ["resolution", s.frameWidth ? `${s.frameWidth}×${s.frameHeight}` : "—"],
    ["frames encoded", formatCount(s.framesEncoded)],
    ["packets lost", formatCount(s.packetsLost)],
    ["RTT", formatMs(s.rttMs)],
  ];
}

/** Rows shown under a player. */
export function playerRows(s, videoEl) {
  const width = videoEl?.videoWidth || s.frameWidth;
  const height = videoEl?.videoHeight || s.frameHeight;
  return [
    ["state", s.state],
    ["codec", [s.videoCodec, s.audioCodec].filter(Boolean).join(" + ") || "—"],
    ["bitrate", formatBitrate(s.bitrate)],
    ["fps", formatFps(s.framesPerSecond)],
    ["resolution", width ? `${width}×${height}` : "—"],
    ["frames decoded", s.framesDecoded],
    ["packets lost", formatCount(s.packetsLost)],
    ["jitter", formatMs(s.jitterMs)],
  ];
}

/** Publishes a MediaStream over WHIP; one instance per attempt. */
export class Publisher {
  constructor(stream, { onState = () => {} } = {}) {
    this.stream = stream;
    this.onState = onState;
    this.pc = null;
    this.sessionUrl = null;
    this.meter = new StatsMeter();
    this.last = null;
  }

  /** Publish `media`; with `simulcast` the video goes as three layers (SIMULCAST_ENCODINGS). */
  async start(media, codec, { simulcast = false } = {}) {
    const servers = await iceServers("whip", this.stream);
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers: servers });
    this.pc = pc;
    pc.addEventListener("connectionstatechange", () => this.onState(pc.connectionState));
    for (const kind of ["audio", "video"]) {
      const track = media.getTracks().find((t) => t.kind === kind);
      if (!track) continue;
      const init = { direction: "sendonly", streams: [media] };
      if (kind === "video" && simulcast) init.sendEncodings = SIMULCAST_ENCODINGS;
      const transceiver = pc.addTransceiver(track, init);
      if (kind === "video") preferCodec(transceiver, codec);
    }
    try {
      this.sessionUrl = (await negotiate(pc, "whip", this.stream)).sessionUrl;
    } catch (err) {
      pc.close();
      throw err;
    }
  }

  /** Swap a camera or microphone without renegotiating. */
  async replaceTrack(track) {
    const sender = this.pc?.getSenders().find((s) => s.track?.kind === track.kind);
    if (sender) await sender.replaceTrack(track);
  }

  async stats() {
    if (!this.pc) return null;
    this.last = await this.meter.sample(this.pc);
    return this.last;
  }

  async stop(keepalive = false) {
    const url = this.sessionUrl;
    this.sessionUrl = null;
    await closeAfterDelete(this.pc, url, keepalive);
  }
}

/**
 * Plays a stream over WHEP and keeps playing it: when the connection fails or no frame is
 * decoded for a while, it drops the session and opens a new one, waiting 1, 2, 4, 8 s.
 */
export class Player {
  constructor(
    stream,
    video,
    { onStatus = () => {}, onStats = () => {}, onPublisher = () => {} } = {},
  ) {
    this.stream = stream;
    this.video = video;
    this.onStatus = onStatus;
    this.onStats = onStats;
    this.onPublisher = onPublisher; // (live: boolean, viewers: number|null) from WHEP events
    this.layer = { rid: "auto" }; // the layer wish, kept across reconnects
    this.layerUrl = null;
    this.events = null;
    this.publisherLive = null; // unknown until the server says
    this.pc = null;
    this.sessionUrl = null;
    this.meter = null;
    this.last = null;
    this.running = false;
    this.backoffMs = 1000;
    this.retryTimer = null;
    this.watchTimer = null;
    this.status = "idle";
    this.sessions = 0;
    this.framesBefore = 0; // decoded by earlier sessions, so the total only grows
    this.firstFrameMs = null; // from start() to the first decoded frame, for the curious
  }

  /** Tell the page, once per change (errors always, since their text matters). */
  report(status, err = null) {
    if (status === this.status && !err) return;
    this.status = status;
    this.onStatus(status, err);
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.playStartedAt = performance.now();
    this.connect();
    this.watchTimer = setInterval(() => this.watch(), 1000);
  }

  async connect() {
    await this.teardown();
    if (!this.running) return;
    const servers = await iceServers("whep", this.stream);
    if (!this.running) return;
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers: servers });
    this.pc = pc;
    this.meter = new StatsMeter();
    this.sessions += 1;
    this.startedAt = performance.now();
    this.progressAt = this.startedAt;
    this.lastFrames = 0;
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
    const media = new MediaStream();
    pc.addEventListener("track", (event) => {
      media.addTrack(event.track);
      this.video.srcObject = media;
      this.video.play().catch(() => {});
      if (event.track.kind === "video" && this.video.requestVideoFrameCallback) {
        // Time to the first frame on screen, measured exactly rather than per stats tick.
        this.video.requestVideoFrameCallback((now) => {
          this.firstFrameMs ??= now - this.playStartedAt;
        });
      }
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== this.pc) return;
      const state = pc.connectionState;
      if (state === "failed") this.retry(`connection ${state}`);
      else if (state !== "connected") this.report(state);
    });
    this.report("connecting");
    try {
      const rid = this.layer.rid;
      const query = rid && rid !== "auto" ? `?layer=${encodeURIComponent(rid)}` : "";
      const { sessionUrl, eventsUrl, layerUrl, headers } = await negotiate(
        pc,
        "whep",
        this.stream,
        query,
      );
      if (pc !== this.pc) {
        await endSession(sessionUrl);
        return;
      }
      this.sessionUrl = sessionUrl;
      this.layerUrl = layerUrl;
      this.layerHeaders = headers;
      if (!rid) this.setLayer(this.layer); // a size cap is not a query parameter
      if (eventsUrl) this.follow(eventsUrl, headers.Authorization);
    } catch (err) {
      if (pc !== this.pc) return;
      if (err.status === 401 || err.status === 403) this.fail(err);
      else this.retry(err.message, err);
    }
  }

  /** Ask for the WHEP events of this session and follow them until teardown. */
  async follow(eventsUrl, authorization) {
    const pc = this.pc; // events belong to this session only
    const headers = { "Content-Type": "application/json" };
    if (authorization) headers.Authorization = authorization;
    let response;
    try {
      response = await fetch(eventsUrl, {
        method: "POST",
        headers,
        body: JSON.stringify(["active", "inactive", "viewercount"]),
      });
    } catch {
      return; // events are a nicety; playback goes on without them
    }
    const where = response.headers.get("Location");
    if (response.status !== 201 || !where || this.pc !== pc) return;
    let viewers = null;
    this.events = openEvents(new URL(where, eventsUrl).href, {}, {
      onEvent: (event, data) => {
        if (event === "active" || event === "inactive") this.publisherLive = event === "active";
        if (event === "viewercount") viewers = data.viewercount;
        if (event === "inactive") this.report("waiting for the publisher");
        this.onPublisher(this.publisherLive, viewers);
      },
    });
  }

  /**
   * Ask for a simulcast layer: `{rid: "q"}` pins one, `{rid: "auto"}` lets the server follow
   * the link, `{maxWidth, maxHeight}` caps the size. Kept for reconnects; returns the server's
   * one-line reason when it refuses, or null.
   */
  async setLayer(layer) {
    this.layer = layer;
    if (!this.layerUrl) return null;
    const headers = { "Content-Type": "application/json" };
    if (this.layerHeaders?.Authorization) headers.Authorization = this.layerHeaders.Authorization;
    try {
      const response = await fetch(this.layerUrl, {
        method: "POST",
        headers,
        body: JSON.stringify(layer),
      });
      return response.ok ? null : (await response.text()).trim();
    } catch (err) {
      return err.message;
    }
  }

  /** A refusal no retry can fix (no token, or the wrong one): say so and stop. */
  fail(err) {
    this.running = false;
    clearInterval(this.watchTimer);
    this.teardown();
    this.report(`refused: ${err.message}`, err);
  }

  async watch() {
    const pc = this.pc;
    if (!this.running || !pc || this.retryTimer) return;
    let summary;
    try {
      summary = await this.meter.sample(pc);
    } catch {
      return;
    }
    if (pc !== this.pc) return;
    this.last = summary;
    this.onStats(summary);
    const now = performance.now();
    if (summary.framesDecoded > this.lastFrames) {
      this.lastFrames = summary.framesDecoded;
      this.progressAt = now;
      this.firstFrameMs ??= now - this.playStartedAt;
      this.backoffMs = 1000;
      this.report("playing");
      return;
    }
    if (this.publisherLive === false) {
      this.progressAt = now; // nothing to decode until the publisher comes: no retrying
      this.report("waiting for the publisher");
      return;
    }
    // Allow longer before the first frame (ICE, DTLS, keyframe) than between frames.
    const patience = this.lastFrames === 0 ? 8000 : 4000;
    if (now - this.progressAt > patience) this.retry("no video for a few seconds");
  }

  retry(why, err = null) {
    if (!this.running || this.retryTimer) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 8000);
    this.report(`${why}; retrying in ${(delay / 1000).toFixed(0)} s`, err);
    this.teardown();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  async teardown(keepalive = false) {
    const pc = this.pc;
    const url = this.sessionUrl;
    if (pc) this.framesBefore += this.lastFrames ?? 0;
    this.lastFrames = 0;
    this.last = null;
    this.pc = null;
    this.sessionUrl = null;
    this.layerUrl = null;
    this.events?.close();
    this.events = null;
    this.publisherLive = null;
    await closeAfterDelete(pc, url, keepalive);
  }

  /** What the test hook reports: totals across reconnects plus the current session. */
  snapshot() {
    const s = this.last ?? {};
    return {
      state: this.pc?.connectionState ?? "closed",
      sessions: this.sessions,
      firstFrameMs: this.firstFrameMs,
      framesDecoded: this.framesBefore + (this.pc ? (s.framesDecoded ?? 0) : 0),
      videoWidth: this.video.videoWidth,
      videoHeight: this.video.videoHeight,
      bitrate: s.bitrate ?? 0,
      packetsLost: s.packetsLost ?? 0,
      jitterMs: s.jitterMs ?? null,
      codec: s.videoCodec ?? null,
      publisherLive: this.publisherLive,
    };
  }

  async stop(keepalive = false) {
    this.running = false;
    clearInterval(this.watchTimer);
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    await this.teardown(keepalive);
    this.video.srcObject = null;
    this.report("stopped");
  }
}

/** The server's stream list; throws HttpError so pages can show why it failed. */
export async function fetchStreams() {
  let response;
  try {
    response = await fetch("/api/v1/streams", {
      cache: "no-store",
      headers: authHeaders(null, "stats"),
    });
  } catch (err) {
    throw new HttpError(0, `server unreachable (${err.message})`);
  }
  if (!response.ok) {
    const reason = (await response.text()).trim() + refusalHint(response.status);
    throw new HttpError(response.status, reason);
  }
  const body = await response.json();
  return Array.isArray(body.streams) ? body.streams : [];
}
