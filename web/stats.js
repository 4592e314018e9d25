// What a page shows of a peer connection: getStats summarised with rates, and formatted.

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

