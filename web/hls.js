// HLS playback of a stream: the browser's own HLS where it has one (Safari), else hls.js
// (from npm, put in web/vendor/ by scripts/install-hls-js.sh) over Media Source Extensions.
import { tokenFor } from "./auth.js";
import { streamPath } from "./whip.js";

const HLS_JS = "vendor/hls.light.min.js";

export function hlsUrl(stream) {
  return new URL(`hls/${streamPath(stream)}/index.m3u8`, document.baseURI).href;
}

function loadHlsJs() {
  if (window.Hls) return Promise.resolve(window.Hls);
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = HLS_JS;
    script.onload = () => resolve(window.Hls);
    script.onerror = () => reject(new Error(`${HLS_JS} is missing: run scripts/install-hls-js.sh`));
    document.head.append(script);
  });
}

/** Play `stream` as HLS in `video`; returns { stop(), latency() }. `onStatus(text, err)` as for WHEP.
 * hls.js where Media Source is there (it plays LL-HLS parts); the browser's own HLS where
 * it is not (iPhone Safari). */
export async function playHls(stream, video, onStatus) {
  const url = hlsUrl(stream);
  const token = tokenFor(stream, "play");
  const Hls = window.MediaSource || window.ManagedMediaSource ? await loadHlsJs() : null;
  if (!Hls?.isSupported()) {
    if (!video.canPlayType("application/vnd.apple.mpegurl")) {
      throw new Error("this browser has neither HLS nor Media Source");
    }
    video.src = url; // a token cannot go along: the stream must be open to play
    video.play().catch(() => {});
    onStatus("playing (native HLS)");
    return { stop: () => video.removeAttribute("src"), latency: () => null };
  }
  const hls = new Hls({
    lowLatencyMode: true,
    enableWorker: false, // the page's CSP allows no blob: workers
    xhrSetup: (xhr) => token && xhr.setRequestHeader("Authorization", `Bearer ${token}`),
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    onStatus("playing");
    video.play().catch(() => {});
  });
  hls.on(Hls.Events.ERROR, (_, data) => {
    if (data.fatal) onStatus("HLS failed", new Error(`${data.type}: ${data.details}`));
  });
  onStatus("loading HLS");
  hls.loadSource(url);
  hls.attachMedia(video);
  // latency: seconds behind the live edge the playlist shows, as hls.js measures it.
  return { stop: () => hls.destroy(), latency: () => hls.latency };
}
