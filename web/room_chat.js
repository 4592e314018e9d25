// The room page's chat: text over one data channel, labelled "chat", on the participant's
// subscribe connection. The server relays room data (docs/data-channels.md, "Room data"): we
// send {"data": TEXT}, everyone else receives {"from": NAME, "data": TEXT}, with "from" written
// by the server. Names and texts go in as text (textContent), never as markup.

export const LABEL = "chat";
const MAX_TEXT = 1000; // characters one message may carry, as the input's maxlength says
const MAX_SHOWN = 200; // lines kept on the page; older ones go

/** The shown text of a received message's `data`: strings as they are, anything else as JSON. */
function asText(data) {
  return typeof data === "string" ? data : JSON.stringify(data);
}

export class Chat {
  /** `log`: the list the lines go in; `form`, `input`: where this participant writes. */
  constructor(log, form, input) {
    this.log = log;
    this.input = input;
    this.own = null; // the channel this page opened on its current subscribe connection
    this.dropped = 0; // messages that were not {"from": string, "data": ...}: not shown
    input.maxLength = MAX_TEXT;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.send(input.value.trim());
    });
    this.enable(false);
  }

  /** The channel this page opened on a (new) subscribe connection: sends go on it. */
  open(channel) {
    this.own = channel;
    channel.addEventListener("open", () => this.enable(channel === this.own));
    channel.addEventListener("close", () => channel === this.own && this.enable(false));
    this.listen(channel);
  }

  /** A "chat" channel the server opened toward us (others' messages may come on it too). */
  listen(channel) {
    if (channel.label !== LABEL) return;
    channel.addEventListener("message", ({ data }) => this.receive(data));
  }

  receive(raw) {
    let message = null;
    try {
      message = typeof raw === "string" ? JSON.parse(raw) : null;
    } catch {
      message = null;
    }
    if (typeof message?.from !== "string" || !("data" in message)) {
      this.dropped += 1;
      return;
    }
    this.show(message.from, asText(message.data));
  }

  send(text) {
    if (!text || this.own?.readyState !== "open") return;
    this.own.send(JSON.stringify({ data: text.slice(0, MAX_TEXT) }));
    this.show("you", text.slice(0, MAX_TEXT), true);
    this.input.value = "";
  }

  show(from, text, mine = false) {
    const line = document.createElement("li");
    line.dataset.from = mine ? "" : from;
    const who = document.createElement("b");
    who.textContent = `${from}: `;
    line.append(who, document.createTextNode(text));
    this.log.append(line);
    while (this.log.children.length > MAX_SHOWN) this.log.firstElementChild.remove();
    line.scrollIntoView({ block: "nearest" });
  }

  enable(on) {
    this.input.disabled = !on;
    this.input.form.querySelector("button").disabled = !on;
  }

  /** Leaving: nothing to send on, and nothing of this room's talk stays shown. */
  clear() {
    this.own = null;
    this.enable(false);
    this.log.replaceChildren();
  }
}
