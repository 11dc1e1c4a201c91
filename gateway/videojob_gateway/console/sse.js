// Server-Sent Events over fetch(): an EventSource cannot send an Authorization header, and a
// credential in the URL would land in logs and histories. So the console reads the gateway's
// event stream (GET .../videojobs/{name}/events) with fetch and parses text/event-stream itself,
// as the HTML standard describes it, and reconnects with Last-Event-ID as an EventSource would.

/** The text/event-stream parser (HTML standard, "Interpreting an event stream"). Feed it text
 *  as it arrives; it returns the events completed by that text. Pure: no I/O. */
export class SseParser {
  constructor() {
    this.buffer = "";
    this.afterCR = false; // the last chunk ended with CR: a LF next is the same line break
    this.data = [];
    this.event = "";
    this.lastEventId = "";
    this.retry = null;
  }

  /** @returns {{type: string, data: string, id: string}[]} */
  feed(text) {
    if (this.afterCR && text.startsWith("\n")) text = text.slice(1);
    this.afterCR = false;
    this.buffer += text;
    const events = [];
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      if (m === null) break;
      if (m[0] === "\r" && m.index === this.buffer.length - 1) {
        this.afterCR = true; // "\r" may be half of "\r\n": take the line, skip a "\n" next
      }
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      const ev = this.line(line);
      if (ev) events.push(ev);
    }
    return events;
  }

  line(line) {
    if (line === "") {
      const data = this.data;
      const type = this.event || "message";
      this.data = [];
      this.event = "";
      if (data.length === 0) return null;
      return { type, data: data.join("\n"), id: this.lastEventId };
    }
    if (line.startsWith(":")) return null; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id") { if (!value.includes("\0")) this.lastEventId = value; }
    else if (field === "retry") { if (/^\d+$/.test(value)) this.retry = Number(value); }
    return null;
  }
}

/** Follows an event stream until it ends for good: `onEvent({type, data, id})` for each event.
 *  Reconnects after a dropped connection (waiting the server's `retry`, longer after repeated
 *  failures) with Last-Event-ID, so the gateway sends only a state the page does not have.
 *  Ends on 204 (nothing more to say), on an answer that is not a stream (401, 403, 404: told
 *  through `onError`), after an event in `final`, or when `signal` aborts. */
export async function follow(url, { headers, onEvent, onError, signal, final = [] }) {
  let lastEventId = "";
  let retry = 3000;
  let failures = 0;
  while (!signal.aborted) {
    const parser = new SseParser();
    parser.lastEventId = lastEventId;
    let finished = false;
    try {
      const h = { ...headers, Accept: "text/event-stream" };
      if (lastEventId) h["Last-Event-ID"] = lastEventId;
      const resp = await fetch(url, { headers: h, signal, cache: "no-store" });
      if (resp.status === 204) return;
      const type = resp.headers.get("content-type") || "";
      if (!resp.ok || !type.startsWith("text/event-stream")) {
        let problem = null;
        try { problem = await resp.json(); } catch { /* not a problem document */ }
        onError?.(resp.status, problem);
        if (resp.status >= 500 || resp.status === 429) { failures += 1; }
        else return;
      } else {
        failures = 0;
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const ev of parser.feed(value)) {
            lastEventId = parser.lastEventId;
            onEvent(ev);
            if (final.includes(ev.type)) finished = true;
          }
          lastEventId = parser.lastEventId;
          if (finished) { reader.cancel().catch(() => {}); break; }
        }
        if (parser.retry !== null) retry = parser.retry;
      }
    } catch (e) {
      if (signal.aborted) return;
      failures += 1;
    }
    if (finished) return;
    const wait = Math.min(retry * 2 ** Math.min(failures, 4), 30000) * (0.8 + Math.random() * 0.4);
    await new Promise((resolve) => {
      const t = setTimeout(resolve, wait);
      signal.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }
}
