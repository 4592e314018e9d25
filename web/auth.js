// Bearer tokens for the pages: given once as ?token=... (repeatable), kept for this tab only.
// The token leaves the visible URL (and so the history and any copied link) at once; it is
// only ever sent in Authorization headers, never in a URL the server would log.

const KEY = "litesfu.tokens";

function takeFromUrl() {
  const url = new URL(location.href);
  const given = url.searchParams.getAll("token").filter((t) => t.trim() !== "");
  if (given.length === 0) return;
  sessionStorage.setItem(KEY, JSON.stringify(given));
  url.searchParams.delete("token");
  history.replaceState(history.state, "", url.pathname + url.search + url.hash);
}

function stored() {
  try {
    const list = JSON.parse(sessionStorage.getItem(KEY) ?? "[]");
    return Array.isArray(list) ? list.filter((t) => typeof t === "string") : [];
  } catch {
    return [];
  }
}

/** What a signed token (lsfu1.<payload>.<signature>) claims; null for a static token. */
function claims(token) {
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== "lsfu1") return null;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    return JSON.parse(json);
  } catch {
    return null;
  }
}

/** Whether signed claims `c` grant `role` on `stream`: a stream token's, or a room token's
 * ({room, participant, roles}) for the participant's stream "ROOM/PARTICIPANT". */
function grants(c, stream, role) {
  if (Array.isArray(c.roles)) {
    return c.roles.includes(role) && `${c.room}/${c.participant}` === stream;
  }
  return c.role === role && (role === "stats" || c.stream === stream);
}

/**
 * The token for `role` ("publish", "play", "subscribe", "stats") on `stream`: a signed token
 * made for exactly that, else a static token (which allows everything), else the first one.
 */
export function tokenFor(stream, role) {
  const list = stored();
  const exact = list.find((t) => {
    const c = claims(t);
    return c && grants(c, stream, role);
  });
  return exact ?? list.find((t) => claims(t) === null) ?? list[0] ?? null;
}

/** Headers with `Authorization: Bearer` when the page was given a token. */
export function authHeaders(stream, role, headers = {}) {
  const token = tokenFor(stream, role);
  return token ? { ...headers, Authorization: `Bearer ${token}` } : { ...headers };
}

export function hasTokens() {
  return stored().length > 0;
}

/** A one-line explanation of a 401/403 for the page to show. */
export function refusalHint(status) {
  if (status !== 401 && status !== 403) return "";
  return hasTokens()
    ? " (the token given does not allow this)"
    : " (this server needs a token: open the page with ?token=...)";
}

takeFromUrl();
