// The guest's connection to parley-server: one WebSocket on the page's own origin, requests
// with ids answered by "ok" or "error", and server events (docs/protocol.md).

export class RequestError extends Error {
  constructor(reply) {
    super(reply.message || reply.code);
    this.code = reply.code;
    this.retryAfter = reply.retry_after;
  }
}

export class Signaling {
  constructor(url = Signaling.defaultUrl()) {
    this.url = url;
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = new Set();
    this.closeListeners = new Set();
  }

  static defaultUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws`;
  }

  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url, "parley.v1");
      this.ws = ws;
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error("cannot reach the server")), { once: true });
      ws.addEventListener("message", (event) => this.receive(event.data));
      ws.addEventListener("close", (event) => {
        for (const { reject: fail } of this.pending.values()) fail(new Error("connection closed"));
        this.pending.clear();
        for (const listener of this.closeListeners) listener(event);
      });
    });
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (typeof message !== "object" || message === null) return;
    if (typeof message.re === "string" && this.pending.has(message.re)) {
      const { resolve, reject } = this.pending.get(message.re);
      this.pending.delete(message.re);
      if (message.type === "ok") resolve(message);
      else reject(new RequestError(message));
      return;
    }
    for (const listener of this.listeners) listener(message);
  }

  request(type, fields = {}) {
    const id = `g${this.nextId++}`;
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        reject(new Error("not connected"));
        return;
      }
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify({ type, id, ...fields }));
    });
  }

  /** Send a request whose reply nobody waits for (signals, media state). */
  send(type, fields = {}) {
    this.request(type, fields).catch((error) => console.warn(type, error.message));
  }

  onEvent(listener) {
    this.listeners.add(listener);
  }

  onClose(listener) {
    this.closeListeners.add(listener);
  }

  close() {
    if (this.ws) this.ws.close(1000);
  }
}
