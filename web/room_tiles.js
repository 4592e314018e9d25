// The room page's remote tiles, driven by the room events: one tile per other participant,
// which m-lines (slots) carry its audio, camera and screen, whether it speaks, is pinned or
// paused, and what state its media is in. Every name goes in as text, never as markup.
//
// Contract for tests and scripts: each tile has data-participant="<name>",
// data-speaking="true|false", data-paused="true|false" (and data-state, data-pinned).

/** A tile's state, shown on it: what a person looking at a blank or frozen tile wants to know. */
const STATE_TEXT = {
  waiting: "waiting for media",
  unpublished: "not publishing",
  "camera-off": "camera off",
  paused: "paused (bandwidth)",
  reconnecting: "reconnecting…",
};

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function mediaElement(className) {
  const video = element("video", className);
  video.autoplay = true;
  video.playsInline = true;
  // Unmuted autoplay is only allowed after a user gesture (e.g. the Join click).
  video.muted = !navigator.userActivation?.hasBeenActive;
  return video;
}

export class Tiles {
  /** `onPin(names)` is told the pinned names whenever a click changes them. */
  constructor(box, alone, onPin) {
    this.box = box;
    this.alone = alone;
    this.onPin = onPin;
    this.byName = new Map(); // name -> tile record
    this.tracks = new Map(); // mid -> the receiving track of that m-line
    this.pinned = new Set();
    this.connection = "new"; // the subscribe connection's state
  }

  add(name) {
    const tile = element("article", "tile");
    Object.assign(tile.dataset, {
      participant: name,
      speaking: "false",
      paused: "false",
      pinned: String(this.pinned.has(name)),
      state: "waiting",
    });
    tile.title = "Click to pin (keep this tile's video first when bandwidth is short)";
    const header = element("header");
    const label = element("span", "name", name);
    const badges = element("span", "badges");
    const status = element("span", "tile-status", STATE_TEXT.waiting);
    header.append(label, badges, status);
    const video = mediaElement("camera");
    const screen = mediaElement("screen");
    screen.muted = true; // its audio, if any, is the participant's own track on `video`
    screen.hidden = true;
    tile.append(header, screen, video);
    tile.addEventListener("click", () => this.togglePin(name));
    // The first frame (or a new size) changes what the tile's state is: show it at once.
    for (const media of [video, screen]) media.addEventListener("resize", () => this.refresh());
    const record = { tile, video, screen, badges, status, mids: {}, pausedMids: new Set() };
    record.publishing = false;
    record.muted = [];
    this.box.append(tile);
    this.byName.set(name, record);
    return record;
  }

  togglePin(name) {
    if (this.pinned.has(name)) this.pinned.delete(name);
    else this.pinned.add(name);
    const record = this.byName.get(name);
    if (record) {
      record.tile.dataset.pinned = String(this.pinned.has(name));
      // The click is a user gesture: the browser now lets this tile's sound play.
      record.video.muted = false;
    }
    this.onPin([...this.pinned]);
  }

  /** `participants` event: a tile for exactly the others the server lists, in name order. */
  participants(list) {
    const names = new Set(list.map((p) => p.name));
    for (const [name, record] of this.byName) {
      if (!names.has(name)) {
        record.tile.remove();
        this.byName.delete(name);
      }
    }
    const pinsBefore = this.pinned.size;
    for (const name of [...this.pinned]) if (!names.has(name)) this.pinned.delete(name);
    if (this.pinned.size !== pinsBefore) this.onPin([...this.pinned]);
    for (const p of [...list].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const record = this.byName.get(p.name) ?? this.add(p.name);
      record.publishing = p.publishing;
      record.muted = p.muted ?? [];
      const badges = record.muted.map((kind) => (kind === "audio" ? "mic off" : "camera off"));
      if ((p.tracks ?? []).includes("screen")) badges.push("sharing screen");
      record.badges.replaceChildren(...badges.map((text) => element("span", "badge", text)));
    }
    for (const record of this.byName.values()) this.box.append(record.tile); // name order
    this.alone.hidden = this.byName.size > 0;
    this.refresh();
  }

  /** `slots` event: point each tile at the m-lines that carry its participant now. */
  slots(slots) {
    for (const record of this.byName.values()) record.mids = {};
    for (const [mid, slot] of Object.entries(slots)) {
      const record = this.byName.get(slot.participant);
      if (record) record.mids[slot.track ?? slot.kind] = mid;
    }
    // A `paused` event names a (participant, mid) pair: a slot it no longer holds is not.
    for (const record of this.byName.values()) {
      const held = new Set(Object.values(record.mids));
      for (const mid of record.pausedMids) if (!held.has(mid)) record.pausedMids.delete(mid);
    }
    this.attach();
  }

  /** A new m-line's receiving track (the connection's `track` event). */
  track(mid, track) {
    this.tracks.set(mid, track);
    this.attach();
  }

  attach() {
    for (const record of this.byName.values()) {
      const camera = ["audio", "video"].map((k) => this.tracks.get(record.mids[k]));
      show(record.video, camera.filter(Boolean));
      const screen = this.tracks.get(record.mids.screen);
      show(record.screen, screen ? [screen] : []);
      record.screen.hidden = !screen;
    }
    this.refresh();
  }

  speakers(names) {
    const speaking = new Set(names);
    for (const [name, record] of this.byName) {
      record.tile.dataset.speaking = String(speaking.has(name));
    }
  }

  /** `paused` / `resumed` events: the mid is one of the participant's video slots. */
  paused(event, { participant, mid }) {
    const record = this.byName.get(participant);
    if (!record) return;
    if (event === "paused") record.pausedMids.add(mid);
    else record.pausedMids.delete(mid);
    this.refresh();
  }

  /** The subscribe connection's state: every tile is reconnecting while it is down. */
  setConnection(state) {
    this.connection = state;
    this.refresh();
  }

  /** Each tile's data-paused, data-state and status line, from what is known now. */
  refresh() {
    const down = ["disconnected", "failed", "reconnecting"].includes(this.connection);
    for (const record of this.byName.values()) {
      const paused = [record.mids.video, record.mids.screen].some((m) => record.pausedMids.has(m));
      record.tile.dataset.paused = String(paused);
      let state = "playing";
      if (down) state = "reconnecting";
      else if (!record.publishing) state = "unpublished";
      else if (paused) state = "paused";
      else if (record.muted.includes("video") && !record.mids.screen) state = "camera-off";
      else if (!record.video.videoWidth && !record.screen.videoWidth) state = "waiting";
      record.tile.dataset.state = state;
      if (state !== "playing") record.status.textContent = STATE_TEXT[state];
    }
  }

  /** While playing, the status line shows the picture's size and frame rate. */
  showRates(byMid) {
    for (const record of this.byName.values()) {
      if (record.tile.dataset.state !== "playing") continue;
      const stat = byMid.get(record.mids.video) ?? byMid.get(record.mids.screen);
      const video = record.video.videoWidth ? record.video : record.screen;
      const fps = Math.round(stat?.framesPerSecond ?? 0);
      record.status.textContent = `${video.videoWidth}×${video.videoHeight} · ${fps} fps`;
    }
  }

  /** A new subscribe connection comes: the old one's tracks are gone, the tiles stay. */
  forgetTracks() {
    this.tracks.clear();
    this.attach();
  }

  clear() {
    for (const record of this.byName.values()) record.tile.remove();
    this.byName.clear();
    this.tracks.clear();
    this.pinned.clear();
    this.alone.hidden = true;
  }

  /** What the test hook reports of each tile, from the latest inbound-rtp stats by mid. */
  report(byMid) {
    return [...this.byName.entries()].map(([name, record]) => ({
      name,
      mids: { ...record.mids },
      framesDecoded: byMid.get(record.mids.video)?.framesDecoded ?? 0,
      screenFramesDecoded: byMid.get(record.mids.screen)?.framesDecoded ?? 0,
      audioPackets: byMid.get(record.mids.audio)?.packetsReceived ?? 0,
      audioBytes: byMid.get(record.mids.audio)?.bytesReceived ?? 0,
      videoBytes: byMid.get(record.mids.video)?.bytesReceived ?? 0,
      videoWidth: record.video.videoWidth,
      videoHeight: record.video.videoHeight,
      screenWidth: record.screen.videoWidth,
      speaking: record.tile.dataset.speaking === "true",
      paused: record.tile.dataset.paused === "true",
      pinned: record.tile.dataset.pinned === "true",
      state: record.tile.dataset.state,
      muted: [...record.muted],
    }));
  }
}

/** Give a media element exactly these tracks, leaving it alone when it has them already. */
function show(media, wanted) {
  const shown = media.srcObject?.getTracks() ?? [];
  if (wanted.length === shown.length && wanted.every((track) => shown.includes(track))) return;
  media.srcObject = wanted.length ? new MediaStream(wanted) : null;
}
