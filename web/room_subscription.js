// A participant's one subscribe connection on the room API (/rooms/v1): everyone else's
// media arrives on its m-lines (slots), which the server fills. The server never offers: its
// `renegotiate` event asks for more slots and this side re-offers with PATCH. Every offer,
// a re-offer for slots or an ICE restart, waits for the one before it, so the server never
// sees two at once and glare cannot happen.
import { authHeaders, refusalHint } from "./auth.js";
import { openEvents } from "./sse.js";
import { HttpError, iceServers } from "./whip.js";

const KINDS = ["audio", "video"];
const OFFER_TIMEOUT_MS = 10000;

export class Subscription {
  /** `handlers`: onTrack(mid, track), onEvent(name, data), onState(connectionState),
   * onOpen(), onError(status, reason), onTrouble(message); and, for room data, `channel`
   * (the label of a data channel to open before the first offer, so that it carries a data
   * m-line) with onChannel(channel, own): that one, and each one the server opens toward us. */
  constructor(room, name, handlers) {
    this.room = room;
    this.name = name;
    this.handlers = handlers;
    this.headers = authHeaders(`${room}/${name}`, "subscribe");
    this.pc = null;
    this.sessionUrl = null;
    this.events = null;
    this.wanted = { audio: 1, video: 1 };
    this.queue = Promise.resolve(); // offers, one after another
    this.renegotiating = false;
    this.byMid = new Map(); // mid -> the inbound-rtp stats of the latest sample
  }

  async start() {
    const servers = await iceServers("whip", `${this.room}/${this.name}`);
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers: servers });
    this.pc = pc;
    pc.addEventListener("track", (event) => {
      this.handlers.onTrack(event.transceiver.mid, event.track);
    });
    pc.addEventListener("connectionstatechange", () => {
      if (pc !== this.pc) return;
      this.handlers.onState(pc.connectionState);
      if (pc.connectionState === "failed") this.restartIce();
    });
    for (const kind of KINDS) pc.addTransceiver(kind, { direction: "recvonly" });
    if (this.handlers.channel) {
      this.handlers.onChannel(pc.createDataChannel(this.handlers.channel), true);
      pc.addEventListener("datachannel", (event) => this.handlers.onChannel(event.channel, false));
    }
    const path = `/rooms/v1/${encodeURIComponent(this.room)}/participants/${encodeURIComponent(this.name)}`;
    const response = await this.offer("POST", new URL(path, location.href).href, 201);
    this.sessionUrl = new URL(response.headers.get("Location"), location.href).href;
    this.events = openEvents(`${this.sessionUrl}/events`, {}, this.handlers);
  }

  /** Send this connection's offer; apply the answer. Throws HttpError with the reason. */
  async offer(method, url, expected, options = {}) {
    await this.pc.setLocalDescription(await this.pc.createOffer(options));
    let response;
    try {
      response = await fetch(url, {
        method,
        headers: { ...this.headers, "Content-Type": "application/sdp" },
        body: this.pc.localDescription.sdp,
        signal: AbortSignal.timeout(OFFER_TIMEOUT_MS),
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

  /** Run `task` after every offer queued before it; its failure is told, not thrown. */
  enqueue(what, task) {
    this.queue = this.queue.then(task).catch((err) => {
      if (this.sessionUrl) this.handlers.onTrouble(`Could not ${what}: ${err.message}`);
    });
    return this.queue;
  }

  /** The server wants `counts` slots in all: add recvonly m-lines and re-offer. */
  renegotiate(counts) {
    this.wanted = counts;
    if (this.renegotiating || !this.sessionUrl) return this.queue;
    this.renegotiating = true;
    return this.enqueue("add slots", async () => {
      try {
        while (this.missing() && this.sessionUrl) {
          for (const kind of KINDS) {
            const have = this.transceivers(kind).length;
            for (let i = have; i < (this.wanted[kind] ?? 0); i++) {
              this.pc.addTransceiver(kind, { direction: "recvonly" });
            }
          }
          await this.offer("PATCH", this.sessionUrl, 200);
        }
      } finally {
        this.renegotiating = false;
      }
    });
  }

  /** The connection failed: new ICE credentials in a re-offer (the server restarts ICE). */
  restartIce() {
    if (!this.sessionUrl) return this.queue;
    return this.enqueue("reconnect", () =>
      this.offer("PATCH", this.sessionUrl, 200, { iceRestart: true }),
    );
  }

  transceivers(kind) {
    return (this.pc?.getTransceivers() ?? []).filter((t) => t.receiver.track.kind === kind);
  }

  missing() {
    return KINDS.some((kind) => this.transceivers(kind).length < (this.wanted[kind] ?? 0));
  }

  /** POST a JSON body to one of the session's own routes (prefs, media); a failure is
   * told, not thrown. */
  async post(route, body) {
    if (!this.sessionUrl) return;
    try {
      const response = await fetch(`${this.sessionUrl}/${route}`, {
        method: "POST",
        headers: { ...this.headers, "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(OFFER_TIMEOUT_MS),
      });
      if (response.status !== 204) {
        const reason = (await response.text()).trim().split("\n")[0];
        throw new Error(`HTTP ${response.status} — ${reason}`);
      }
    } catch (err) {
      if (this.sessionUrl) this.handlers.onTrouble(`Could not set ${route}: ${err.message}`);
    }
  }

  /** Each m-line's inbound-rtp stats, by mid, for the tiles and the tests' hook. */
  async sample() {
    if (!this.pc) return this.byMid;
    const report = await this.pc.getStats();
    report.forEach((stat) => {
      if (stat.type === "inbound-rtp" && stat.mid !== undefined) this.byMid.set(stat.mid, stat);
    });
    return this.byMid;
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
