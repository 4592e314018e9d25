// Server-sent events over fetch(), because EventSource cannot send an Authorization header.
// Reconnects by itself (1, 2, 4, 8 s) until closed; a 401 or 403 is final and reported.

/** Split an event-stream body into {event, data} records (comment lines are heartbeats). */
function* records(buffer) {
  const blocks = buffer.split("\n\n");
  for (const block of blocks) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (data.length) yield { event, data: data.join("\n") };
  }
}

export function openEvents(url, headers, { onEvent, onError = () => {}, onOpen = () => {} }) {
  const abort = new AbortController();
  let backoff = 1000;
  let closed = false;

  async function run() {
    while (!closed) {
      try {
        const response = await fetch(url, { headers, cache: "no-store", signal: abort.signal });
        if (!response.ok) {
          const reason = (await response.text()).trim();
          onError(response.status, reason);
          if (response.status === 401 || response.status === 403 || response.status === 404) {
            return;
          }
        } else {
          onOpen();
          backoff = 1000;
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          let pending = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            pending += value;
            const end = pending.lastIndexOf("\n\n");
            if (end < 0) continue;
            for (const record of records(pending.slice(0, end))) {
              onEvent(record.event, JSON.parse(record.data));
            }
            pending = pending.slice(end + 2);
          }
        }
      } catch (err) {
        if (closed) return;
        onError(0, err.message);
      }
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, 8000);
    }
  }

  run();
  return {
    close() {
      closed = true;
      abort.abort();
    },
  };
}
