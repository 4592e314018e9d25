// What every page shares: element lookup, query parameters, the status line and error box.

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/** Query-string parameter with a default, so pages work when opened bare. */
export function param(name, fallback = "") {
  const value = new URLSearchParams(location.search).get(name);
  return value === null || value.trim() === "" ? fallback : value.trim();
}

let lastError = null; // the error shown, for the pages' test hooks

/** The page's status line (#status); `kind` ("ok", "warn") colours it. */
export function setStatus(text, kind = "") {
  const line = $("status");
  line.textContent = text;
  line.dataset.kind = kind;
}

/** Show `text` in the page's error box (#error); "" clears it. */
export function showError(text) {
  lastError = text || null;
  $("error").textContent = text;
}

/** The error the page shows now, or null. */
export function shownError() {
  return lastError;
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
