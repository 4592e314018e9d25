// Publisher and Player: one WHIP publication, one WHEP playback that reconnects by itself.
import { openEvents } from "./sse.js";
import { StatsMeter } from "./stats.js";
import {
  SIMULCAST_ENCODINGS,
  closeAfterDelete,
  endSession,
  iceServers,
  negotiate,
  preferCodec,
} from "./whip.js";

/** Publishes a MediaStream over WHIP; one instance per attempt. */
export class Publisher {
  constructor(stream, { onState = () => {} } = {}) {
    this.stream = stream;
    this.onState = onState;
    this.pc = null;
    this.sessionUrl = null;
    this.meter = new StatsMeter();
    this.last = null;
    this.spare = null; // the spare video transceiver, with spareVideo
  }

  /**
   * Publish `media`; with `simulcast` the video goes as three layers (SIMULCAST_ENCODINGS),
   * else at most `maxBitrate` bit/s if given. With `spareVideo` a second video m-line goes
   * along with no track yet (WHIP cannot add one later): shareOnSpare() fills it.
   */
  async start(media, codec, { simulcast = false, maxBitrate = 0, spareVideo = false } = {}) {
    const servers = await iceServers("whip", this.stream);
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers: servers });
    this.pc = pc;
    pc.addEventListener("connectionstatechange", () => this.onState(pc.connectionState));
    for (const kind of ["audio", "video"]) {
      const track = media.getTracks().find((t) => t.kind === kind);
      if (!track) continue;
      const init = { direction: "sendonly", streams: [media] };
      if (kind === "video" && simulcast) init.sendEncodings = SIMULCAST_ENCODINGS;
      else if (kind === "video" && maxBitrate) init.sendEncodings = [{ maxBitrate }];
      const transceiver = pc.addTransceiver(track, init);
      if (kind === "video") preferCodec(transceiver, codec);
    }
    if (spareVideo) {
      this.spare = pc.addTransceiver("video", { direction: "sendonly", streams: [media] });
      preferCodec(this.spare, codec);
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

  /** Send `track` (a screen, say) on the spare video m-line, or nothing with null. */
  async shareOnSpare(track) {
    await this.spare?.sender.replaceTrack(track);
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
