// LiteSFU's HTTP API from the browser: WHIP/WHEP offer and answer, ending a session, the
// operator's ICE servers, codec choice and the stats API. Publisher and Player (peers.js)
// keep sessions going on top of it.
import { authHeaders, refusalHint } from "./auth.js";

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
 * Offer/answer over WHIP or WHEP, at `endpoint` (another node's, after a `reconnect` event)
 * or this page's server. Returns the absolute session URL (from Location) that DELETE ends,
 * its ETag, and the WHEP events and layer URLs if offered. Throws HttpError with the status
 * and the server's reason on failure.
 */
export async function negotiate(pc, kind, stream, query = "", endpoint = null) {
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await gathered(pc, 1000);
  const url = (endpoint ?? endpointUrl(kind, stream)) + query;
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
    etag: response.headers.get("ETag"),
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
export async function closeAfterDelete(pc, sessionUrl, keepalive) {
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
  return ["VP8", "VP9", "H264", "H265"].filter((name) => names.has(name));
}

/** GET a stats API path with the stats token; throws HttpError so pages can show why. */
export async function fetchStats(path) {
  let response;
  try {
    response = await fetch(path, { cache: "no-store", headers: authHeaders(null, "stats") });
  } catch (err) {
    throw new HttpError(0, `server unreachable (${err.message})`);
  }
  if (!response.ok) {
    const reason = (await response.text()).trim() + refusalHint(response.status);
    throw new HttpError(response.status, reason);
  }
  return response;
}

/** The server's stream list. */
export async function fetchStreams() {
  const body = await (await fetchStats("/api/v1/streams")).json();
  return Array.isArray(body.streams) ? body.streams : [];
}
