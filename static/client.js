// The page's side of the worker protocol: start-up reporting, requests with progress, cancel.
import { Op, Reply, STARTUP_TIMEOUT_MS } from "./protocol.js";

// Hosts that send our Content-Security-Policy header bind the worker by its own response; where a
// host cannot send headers, a blob: worker inherits the page's <meta> policy instead (README).
async function createWorker() {
  const url = new URL("worker.js", import.meta.url);
  let hasHeaderPolicy = false;
  try {
    const head = await fetch(url, { method: "HEAD" });
    hasHeaderPolicy = head.headers.has("content-security-policy");
  } catch { /* fall back to the blob worker, which is bound by the page's policy */ }
  if (hasHeaderPolicy) return new Worker(url, { type: "module", name: "dcmstudio-python" });
  const shim = new Blob([`import ${JSON.stringify(url.href)};`], { type: "text/javascript" });
  return new Worker(URL.createObjectURL(shim), { type: "module", name: "dcmstudio-python" });
}

export class PythonWorker {
  constructor({ onPhase, onFatal, onNotice }) {
    this.onPhase = onPhase;
    this.onFatal = onFatal;
    this.onNotice = onNotice;
    this.pending = new Map();
    this.nextId = 1;
    this.isReady = false;
    this.interruptBuffer = null;
    this.ready = new Promise((resolve, reject) => { this.resolveReady = resolve; this.rejectReady = reject; });
    this.timer = setTimeout(() => this.fail(
      `Python did not start within ${STARTUP_TIMEOUT_MS / 1000} s. Reload the page; if it happens again, ` +
      "the server may send .wasm or .mjs files with the wrong MIME type (see README, Hosting)."), STARTUP_TIMEOUT_MS);
    createWorker().then((worker) => {
      this.worker = worker;
      worker.onmessage = (event) => this.receive(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        this.fail(`The Python worker failed to load: ${event.message || "its script could not be run"}. Reload; if it ` +
          "happens again, the server may send static/worker.js or the .mjs/.wasm files with a wrong MIME type (see the README, Hosting).");
      };
      worker.onmessageerror = () => this.fail("The Python worker sent a message the page could not read.");
    }, (error) => this.fail(`The Python worker could not be created: ${error.message}`));
  }

  fail(message) {
    clearTimeout(this.timer);
    this.rejectReady(new Error(message));
    this.onFatal(message);
    for (const { resolve } of this.pending.values()) {
      resolve({ ok: false, error: { type: "WorkerError", message, file: null } });
    }
    this.pending.clear();
  }

  receive(message) {
    switch (message.kind) {
      case Reply.PHASE:
        this.onPhase(message);
        if (message.phase === "ready") {
          clearTimeout(this.timer);
          this.isReady = true;
          this.interruptBuffer = message.interruptBuffer || null;
          this.resolveReady();
        }
        break;
      case Reply.FATAL:
        this.fail(message.message);
        break;
      case Reply.NOTICE:
        this.onNotice(message.message);
        break;
      case Reply.PROGRESS:
        this.pending.get(message.id)?.onProgress?.(message);
        break;
      case Reply.PART:
        this.pending.get(message.id)?.onPart?.(message);
        break;
      case Reply.DONE: {
        const request = this.pending.get(message.id);
        this.pending.delete(message.id);
        request?.resolve(message.result);
        break;
      }
    }
  }

  // Sends one request; resolves with its { ok, ... } result (never rejects).
  request(op, args, { transfer = [], onProgress, onPart } = {}) {
    const id = this.nextId++;
    const done = new Promise((resolve) => this.pending.set(id, { resolve, onProgress, onPart }));
    this.ready.then(() => this.worker.postMessage({ id, op, args }, transfer),
      (error) => this.pending.get(id)?.resolve({ ok: false, error: { type: "WorkerError", message: error.message } }));
    return { id, done };
  }

  call(fn, args, options) {
    return this.request(Op.CALL, { fn, args }, options).done;
  }

  cancel(id) {
    this.worker?.postMessage({ id: this.nextId++, op: Op.CANCEL, args: { target: id } });
    // A long single Python call is stopped through the interrupt buffer where the page has one.
    if (this.interruptBuffer) this.interruptBuffer[0] = 2;
  }
}
