// Publisher and Player: a WHIP publication and a WHEP playback, each kept through a bad
// minute by a Keeper (reconnect.js).
import { Keeper, RECONNECTING, isFinal, sessionHeaders } from "./reconnect.js";
import { openEvents } from "./sse.js";
import { StatsMeter } from "./stats.js";
import {
  HttpError,
  SIMULCAST_ENCODINGS,
  closeAfterDelete,
  iceServers,
  negotiate,
  preferCodec,
} from "./whip.js";

/**
 * Publishes a MediaStream over WHIP and keeps publishing it: a Keeper (reconnect.js) restarts
 * ICE or republishes the same stream with the same tracks when the connection or the session
 * is lost, so the camera is never asked for again.
 */
export class Publisher {
  constructor(stream, { onState = () => {} } = {}) {
    this.stream = stream;
    this.onState = onState; // (state, err): the connection's state, or RECONNECTING
    this.pc = null;
    this.sessionUrl = null;
    this.meter = new StatsMeter();
    this.last = null;
    this.tracks = new Map(); // kind -> the track published, kept across republishes
    this.media = null;
    this.codec = null;
    this.options = { simulcast: false, maxBitrate: 0, spareVideo: false };
    this.spare = null; // the spare video transceiver, with spareVideo
    this.spareTrack = null; // what shareOnSpare() put there, kept across republishes
    this.keeper = null;
  }

  /**
   * Publish `media`; with `simulcast` the video goes as three layers (SIMULCAST_ENCODINGS),
   * else at most `maxBitrate` bit/s if given; with `scalabilityMode` (say "L3T3_KEY") as one
   * SVC encoding of several layers. With `spareVideo` a second video m-line goes along with
   * no track yet (WHIP cannot add one later): shareOnSpare() fills it. A first failure is
   * thrown; once published, losses are recovered by themselves.
   */
  async start(
    media,
    codec,
    { simulcast = false, maxBitrate = 0, spareVideo = false, scalabilityMode = "" } = {},
  ) {
    this.media = media;
    this.codec = codec;
    this.options = { simulcast, maxBitrate, spareVideo, scalabilityMode };
    for (const track of media.getTracks()) this.tracks.set(track.kind, track);
    const opened = await this.open(null);
    this.keeper = new Keeper({
      renew: (endpoint) => this.open(endpoint),
      report: (state, err) => this.onState(state, err),
    });
    this.keeper.attach(opened);
  }

  /** End the last session (if any) and publish anew, at `endpoint` or the usual one. */
  async open(endpoint) {
    await this.drop();
    const { simulcast, maxBitrate, spareVideo, scalabilityMode } = this.options;
    const servers = await iceServers("whip", this.stream);
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers: servers });
    this.pc = pc;
    this.meter = new StatsMeter();
    pc.addEventListener("connectionstatechange", () => {
      if (pc === this.pc) this.onState(pc.connectionState);
    });
    for (const kind of ["audio", "video"]) {
      const track = this.tracks.get(kind);
      if (!track) continue;
      const init = { direction: "sendonly", streams: [this.media] };
      if (kind === "video" && simulcast) init.sendEncodings = SIMULCAST_ENCODINGS;
      else if (kind === "video" && (maxBitrate || scalabilityMode)) {
        init.sendEncodings = [
          { ...(maxBitrate ? { maxBitrate } : {}), ...(scalabilityMode ? { scalabilityMode } : {}) },
        ];
      }
      const transceiver = pc.addTransceiver(track, init);
      if (kind === "video") preferCodec(transceiver, this.codec);
    }
    if (spareVideo) {
      const init = { direction: "sendonly", streams: [this.media] };
      this.spare = pc.addTransceiver(this.spareTrack ?? "video", init);
      preferCodec(this.spare, this.codec);
    }
    try {
      const answer = await negotiate(pc, "whip", this.stream, "", endpoint);
      this.sessionUrl = answer.sessionUrl;
      return { pc, session: { url: answer.sessionUrl, etag: answer.etag, headers: sessionHeaders(this.stream, "whip") } };
    } catch (err) {
      pc.close();
      if (this.pc === pc) this.pc = null;
      throw err;
    }
  }

  /** Swap a camera or microphone without renegotiating (kept for a republish too). */
  async replaceTrack(track) {
    this.tracks.set(track.kind, track);
    const sender = this.pc?.getSenders().find((s) => s.track?.kind === track.kind);
    if (sender) await sender.replaceTrack(track);
  }

  /** Send `track` (a screen, say) on the spare video m-line, or nothing with null. */
  async shareOnSpare(track) {
    this.spareTrack = track;
    await this.spare?.sender.replaceTrack(track);
  }

  async stats() {
    if (!this.pc) return null;
    this.last = await this.meter.sample(this.pc);
    return this.last;
  }

  /** What the test hook reports: the session's state and how often it was recovered. */
  recoveries() {
    return { restarts: this.keeper?.restarts ?? 0, renewals: this.keeper?.renewals ?? 0 };
  }

  async drop(keepalive = false) {
    const pc = this.pc;
    const url = this.sessionUrl;
    this.pc = null;
    this.sessionUrl = null;
    await closeAfterDelete(pc, url, keepalive);
  }

  async stop(keepalive = false) {
    this.keeper?.stop();
    await this.drop(keepalive);
  }
}

/**
 * Plays a stream over WHEP and keeps playing it. Its Keeper (reconnect.js) restarts ICE when
 * the connection drops, plays anew when the session is gone or no frame is decoded for a
 * while, and follows the server's `reconnect` event at once, to another node if it says so.
 */
export class Player {
  constructor(
    stream,
    video,
    { onStatus = () => {}, onStats = () => {}, onPublisher = () => {}, onLayers = () => {} } = {},
  ) {
    this.stream = stream;
    this.video = video;
    this.onStatus = onStatus;
    this.onStats = onStats;
    this.onPublisher = onPublisher; // (live: boolean, viewers: number|null) from WHEP events
    this.onLayers = onLayers; // (layers: {mline: [{rid, …}]}) when the stream has simulcast
    this.layer = { rid: "auto" }; // the layer wish, kept across reconnects
    this.layerUrl = null;
    this.events = null;
    this.publisherLive = null; // unknown until the server says
    this.pc = null;
    this.sessionUrl = null;
    this.meter = null;
    this.last = null;
    this.running = false;
    this.keeper = null;
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
    this.keeper = new Keeper({
      renew: (endpoint) => this.open(endpoint),
      report: (status, err) => {
        if (err && isFinal(err)) this.fail(err);
        else this.report(status, err);
      },
    });
    this.keeper.later("starting", 0);
    this.watchTimer = setInterval(() => this.watch(), 1000);
  }

  /** End the last session (if any) and play anew, at `endpoint` or the usual one. */
  async open(endpoint) {
    await this.teardown();
    const servers = await iceServers("whep", this.stream);
    if (!this.running) throw new HttpError(0, "stopped");
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers: servers });
    this.pc = pc;
    this.meter = new StatsMeter();
    this.progressAt = performance.now();
    this.lastFrames = 0;
    this.stalls = 0; // checks in a row without a new frame
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
      const state = pc.connectionState;
      if (pc === this.pc && state !== "connected" && state !== "failed") this.report(state);
    });
    this.report(this.sessions > 0 ? RECONNECTING : "connecting");
    const rid = this.layer.rid;
    const query = rid && rid !== "auto" ? `?layer=${encodeURIComponent(rid)}` : "";
    let answer;
    try {
      answer = await negotiate(pc, "whep", this.stream, query, endpoint);
    } catch (err) {
      pc.close();
      if (pc === this.pc) this.pc = null;
      throw err;
    }
    this.sessions += 1; // WHEP sessions this player has had
    this.sessionUrl = answer.sessionUrl;
    this.layerUrl = answer.layerUrl;
    this.layerHeaders = answer.headers;
    if (!rid) this.setLayer(this.layer); // a size cap is not a query parameter
    if (answer.eventsUrl) this.follow(answer.eventsUrl, answer.headers.Authorization);
    const headers = sessionHeaders(this.stream, "whep");
    return { pc, session: { url: answer.sessionUrl, etag: answer.etag, headers } };
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
        body: JSON.stringify(["active", "inactive", "viewercount", "layers", "reconnect"]),
      });
    } catch {
      return; // events are a nicety; playback goes on without them
    }
    const where = response.headers.get("Location");
    if (response.status !== 201 || !where || this.pc !== pc) return;
    let viewers = null;
    this.events = openEvents(new URL(where, eventsUrl).href, {}, {
      onEvent: (event, data) => {
        if (event === "reconnect") {
          this.keeper?.follow(data.url ? new URL(data.url, eventsUrl).href : null);
          return;
        }
        if (event === "layers") {
          this.onLayers(data);
          return;
        }
        if (event === "active" || event === "inactive") this.publisherLive = event === "active";
        if (event === "viewercount") viewers = data.viewercount;
        if (event === "inactive") this.report("waiting for the publisher");
        this.onPublisher(this.publisherLive, viewers);
      },
    });
  }

  /**
   * Ask for a simulcast layer: `{rid: "q"}` pins one, `{rid: "auto"}` lets the server follow
   * the link, `{maxWidth, maxHeight}` caps the size; of a VP9 SVC stream `{spatialLayerId}`
   * and `{temporalLayerId}` pin layers. Kept for reconnects; returns the server's
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
    this.keeper?.stop();
    clearInterval(this.watchTimer);
    this.teardown();
    this.report(`refused: ${err.message}`, err);
  }

  async watch() {
    const pc = this.pc;
    if (!this.running || !pc || this.keeper.timer || this.keeper.busy) return;
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
      this.stalls = 0;
      this.firstFrameMs ??= now - this.playStartedAt;
      this.report("playing");
      return;
    }
    if (this.publisherLive === false) {
      this.progressAt = now; // nothing to decode until the publisher comes: no retrying
      this.report("waiting for the publisher");
      return;
    }
    // Allow longer before the first frame (ICE, DTLS, keyframe) than between frames. A stall
    // first gets an ICE restart on the same session, and a new session only if that did not
    // bring video back either.
    const patience = this.lastFrames === 0 ? 8000 : 4000;
    if (now - this.progressAt <= patience) return;
    this.progressAt = now;
    this.stalls += 1;
    if (this.stalls === 1 && this.lastFrames > 0) this.keeper.trouble("no video for a few seconds");
    else this.keeper.later("no video for a few seconds");
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
      sessionUrl: this.sessionUrl,
      restarts: this.keeper?.restarts ?? 0,
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
    this.keeper?.stop();
    clearInterval(this.watchTimer);
    await this.teardown(keepalive);
    this.video.srcObject = null;
    this.report("stopped");
  }
}
