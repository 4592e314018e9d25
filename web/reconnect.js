// Keeping a WHIP or WHEP session through a bad minute, shared by the publish, play and room
// pages. One Keeper per page session, and it never holds two sessions at once:
// - ICE `disconnected` for more than DISCONNECTED_GRACE_MS, or `failed`: an ICE restart by
//   PATCH (RFC 9725 §4.4) on the same session URL;
// - the session gone (the PATCH says 404, or the server does not answer): a new POST, after
//   0.5, 1, 2, 4, 8 and then every 10 s, on the same stream with the same media;
// - a `reconnect` event from the server (it is stopping or draining): a new POST at once, to
//   the URL the event names (another node of a cluster) or to the same endpoint.
// The page shows "reconnecting…" meanwhile and never reloads.
import { authHeaders } from "./auth.js";
import { HttpError } from "./whip.js";

export const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 10000];
export const DISCONNECTED_GRACE_MS = 3000;
export const RECONNECTING = "reconnecting…";
const SDPFRAG = "application/trickle-ice-sdpfrag";
const PATCH_TIMEOUT_MS = 5000;

/** Delays between tries: RETRY_DELAYS_MS in turn, then its last for ever. */
export class Backoff {
  constructor(delays = RETRY_DELAYS_MS) {
    this.delays = delays;
    this.tries = 0;
  }

  next() {
    const delay = this.delays[Math.min(this.tries, this.delays.length - 1)];
    this.tries += 1;
    return delay;
  }

  reset() {
    this.tries = 0;
  }
}

/**
 * Call `attempt()` until it resolves true, waiting the Backoff's delays between tries, at
 * most `tries` times (about ten minutes by default). Resolves whether it succeeded.
 */
export async function retrying(attempt, tries = 60) {
  const backoff = new Backoff();
  for (let i = 0; i < tries; i += 1) {
    if (await attempt()) return true;
    await new Promise((resolve) => setTimeout(resolve, backoff.next()));
  }
  return false;
}

/** A refusal that no retry can fix: no token, or the wrong one. */
export function isFinal(err) {
  return err?.status === 401 || err?.status === 403;
}

/**
 * Call `onTrouble(why)` once ICE has stayed `disconnected` for DISCONNECTED_GRACE_MS, or at
 * once when it `failed`; `onConnected()` each time it (re)connects. Returns a function that
 * stops watching.
 */
export function watchIce(pc, { onTrouble, onConnected = () => {} }) {
  let timer = null;
  const clear = () => {
    clearTimeout(timer);
    timer = null;
  };
  const check = () => {
    const state = pc.iceConnectionState;
    if (state === "connected" || state === "completed") {
      clear();
      onConnected();
    } else if (state === "failed") {
      clear();
      onTrouble("the connection failed");
    } else if (state === "disconnected" && !timer) {
      timer = setTimeout(() => {
        timer = null;
        if (pc.iceConnectionState === "disconnected") onTrouble("the connection dropped");
      }, DISCONNECTED_GRACE_MS);
    }
  };
  pc.addEventListener("iceconnectionstatechange", check);
  return () => {
    clear();
    pc.removeEventListener("iceconnectionstatechange", check);
  };
}

/** The answer SDP with the ICE credentials of a restart's 200 fragment in place of the old. */
function withCredentials(sdp, fragment) {
  const ufrag = fragment.match(/^a=ice-ufrag:(\S+)/m)?.[1];
  const pwd = fragment.match(/^a=ice-pwd:(\S+)/m)?.[1];
  if (!ufrag || !pwd) throw new HttpError(0, "the ICE restart answer has no credentials");
  return sdp.replace(/^a=ice-ufrag:\S+/gm, `a=ice-ufrag:${ufrag}`).replace(/^a=ice-pwd:\S+/gm, `a=ice-pwd:${pwd}`);
}

/**
 * ICE restart over PATCH (RFC 9725 §4.4): a new offer with fresh credentials, its ufrag and
 * pwd sent as an sdpfrag with If-Match, the server's new ones applied as the answer. Returns
 * the session's new ETag; throws HttpError (status 404: the session is gone; 0: no answer).
 */
export async function restartIce(pc, session) {
  const offer = await pc.createOffer({ iceRestart: true });
  await pc.setLocalDescription(offer);
  const ufrag = offer.sdp.match(/^a=ice-ufrag:(\S+)/m)?.[1];
  const pwd = offer.sdp.match(/^a=ice-pwd:(\S+)/m)?.[1];
  const mline = offer.sdp.match(/^m=.*$/m)?.[0];
  const mid = offer.sdp.match(/^a=mid:(\S+)/m)?.[1];
  const body = [`a=ice-ufrag:${ufrag}`, `a=ice-pwd:${pwd}`, mline, `a=mid:${mid}`, ""].join("\r\n");
  let response;
  try {
    response = await fetch(session.url, {
      method: "PATCH",
      headers: { ...session.headers, "Content-Type": SDPFRAG, "If-Match": session.etag ?? "*" },
      body,
      signal: AbortSignal.timeout(PATCH_TIMEOUT_MS),
    });
  } catch (err) {
    throw new HttpError(0, `server unreachable (${err.message})`);
  }
  const text = await response.text();
  if (response.status !== 200) throw new HttpError(response.status, text.trim());
  if (pc.signalingState === "closed") throw new HttpError(0, "closed while restarting");
  await pc.setRemoteDescription({ type: "answer", sdp: withCredentials(pc.remoteDescription.sdp, text) });
  return response.headers.get("ETag") ?? session.etag;
}

/** The Authorization a session's PATCH needs: the token of its stream and role. */
export function sessionHeaders(stream, kind) {
  return authHeaders(stream, kind === "whip" ? "publish" : "play", {});
}

/**
 * Keeps one session alive for a page. `renew(url)` tears the old session down and opens a
 * new one (a POST to `url`, or to the usual endpoint when null), resolving with
 * {pc, session: {url, etag, headers}}, or throwing HttpError. `report(text, err)` tells the
 * page. `attach(opened)` is to be called with what the first session opened.
 */
export class Keeper {
  constructor({ renew, report }) {
    this.renew = renew;
    this.report = report;
    this.backoff = new Backoff();
    this.timer = null;
    this.busy = false; // a restart or a renewal is under way: trouble meanwhile waits for it
    this.stopped = false;
    this.current = null; // {pc, session}
    this.unwatch = () => {};
    this.restarts = 0;
    this.renewals = 0;
    this.target = null; // where the next renewal POSTs (another node after `reconnect`)
  }

  /** Watch a session the page opened itself (its first), or that `renew` opened. */
  attach(opened) {
    this.unwatch();
    this.current = opened;
    this.unwatch = watchIce(opened.pc, {
      onTrouble: (why) => this.trouble(why),
      onConnected: () => this.backoff.reset(),
    });
  }

  /** ICE trouble: restart it over PATCH; when the session is gone, open a new one. */
  async trouble(why) {
    if (this.stopped || this.busy || this.timer) return;
    const opened = this.current;
    if (!opened?.session?.url) {
      this.later(why);
      return;
    }
    this.busy = true;
    this.report(RECONNECTING);
    try {
      opened.session.etag = await restartIce(opened.pc, opened.session);
      this.restarts += 1;
    } catch (err) {
      if (this.current === opened) this.later(`${why}; ${err.message}`, 0);
    } finally {
      this.busy = false;
    }
  }

  /** A new session after `delay` (the next backoff step unless given), at `url` if given. */
  later(why, delay = null, url = null) {
    if (this.stopped) return;
    if (url) this.target = url;
    clearTimeout(this.timer);
    const wait = delay ?? this.backoff.next();
    this.report(RECONNECTING, null, why);
    this.timer = setTimeout(() => this.renewNow(), wait);
  }

  /** The server asked for a new session (its `reconnect` event): follow it at once. */
  follow(url) {
    this.later("the server asked to reconnect", 0, url);
  }

  async renewNow() {
    this.timer = null;
    if (this.stopped) return;
    if (this.busy) {
      this.timer = setTimeout(() => this.renewNow(), 100); // after the restart under way
      return;
    }
    this.busy = true;
    this.unwatch();
    this.unwatch = () => {};
    const old = this.current;
    this.current = null;
    try {
      const opened = await this.renew(this.target, old);
      if (this.stopped) return;
      this.renewals += 1;
      this.attach(opened);
    } catch (err) {
      if (isFinal(err)) {
        this.stop();
        this.report(`refused: ${err.message}`, err);
      } else {
        this.busy = false;
        this.later(err.message);
      }
    } finally {
      this.busy = false;
    }
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    this.unwatch();
  }
}
