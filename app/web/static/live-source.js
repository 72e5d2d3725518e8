// The one holder of the blotter's live stream (/api/stream, Server-Sent Events) for a whole browser.
// It runs in the SharedWorker (live-worker.js) or, where a browser has none, in the tab that holds the
// Web Lock "orderhook-live" (blotter.js), and reports to every tab through `emit` (docs/frontend.md,
// "How it stays live"):
//   {kind: "state", state: "connecting" | "live" | "reconnecting", epoch}  epoch changes on each (re)open
//   {kind: "message", data}                                                  one `data:` line of the stream
//   {kind: "signed-out"}                                                     the session ended
"use strict";

const LIVE_STREAM = "/api/stream";
const LIVE_PROBE = "/api/orders?limit=1"; // a closed stream may be a refused session: a 401 here says so
const LIVE_RETRY_MS = 2000;

class LiveSource {
  constructor(emit) {
    this.emit = emit;
    this.id = Math.random().toString(36).slice(2);
    this.opens = 0;
    this.source = null;
    this.timer = null;
    this.state = { kind: "state", state: "connecting", epoch: null };
  }

  start() {
    if (this.source || this.timer) return;
    this.report("connecting");
    this.open();
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.source) this.source.close();
    this.source = null;
    this.state = { kind: "state", state: "connecting", epoch: null };
  }

  report(state) {
    this.state = { kind: "state", state, epoch: state === "live" ? `${this.id}:${this.opens}` : null };
    this.emit(this.state);
  }

  open() {
    const source = new EventSource(LIVE_STREAM);
    this.source = source;
    source.onopen = () => {
      this.opens += 1;
      this.report("live");
    };
    source.onmessage = (event) => this.emit({ kind: "message", data: event.data });
    source.addEventListener("signed-out", () => this.signedOut());
    source.onerror = () => {
      this.report("reconnecting");
      if (source.readyState !== EventSource.CLOSED) return; // the EventSource retries by itself
      source.close();
      this.source = null;
      this.timer = setTimeout(() => this.retry(), LIVE_RETRY_MS);
    };
  }

  async retry() {
    try {
      const answer = await fetch(LIVE_PROBE, { credentials: "same-origin" });
      if (answer.status === 401) {
        this.timer = null;
        this.signedOut();
        return;
      }
    } catch {
      // the service is away: try the stream again anyway
    }
    this.timer = null;
    this.open();
  }

  signedOut() {
    this.stop();
    this.emit({ kind: "signed-out" });
  }
}
