// The page's side of the worker protocol: start-up reporting, requests with progress, cancel.
import { CANCELLED, Op, Reply, STARTUP_TIMEOUT_MS } from "./protocol.js";

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
    // Resolves when the worker's start-up is over, later stage included (never rejects).
    this.settled = new Promise((resolve) => { this.resolveSettled = resolve; });
    this.timer = setTimeout(() => this.fail(
      `Python did not start within ${STARTUP_TIMEOUT_MS / 1000} s. Reload the page; if it happens again, ` +
      "the server may send .wasm or .mjs files with the wrong MIME type (see README, Hosting)."), STARTUP_TIMEOUT_MS);
    createWorker().then((worker) => {
      this.worker = worker;
      worker.onmessage = (event) => this.receive(event.data);
      worker.onerror = (event) => {
        event.preventDefault();
        this.fail(`The Python worker failed to load: ${event.message || "its script could not be run"}. ` +
          "Reload; if it happens again, the server may send static/worker.js or the .mjs/.wasm files with a " +
          "wrong MIME type (see the README, Hosting).");
      };
      worker.onmessageerror = () => this.fail("The Python worker sent a message the page could not read.");
    }, (error) => this.fail(`The Python worker could not be created: ${error.message}`));
  }

  fail(message) {
    clearTimeout(this.timer);
    this.resolveSettled();
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
      case Reply.SETTLED:
        this.resolveSettled();
        break;
      case Reply.PROGRESS:
        this.pending.get(message.id)?.onProgress?.(message);
        break;
      case Reply.PART:
        this.pending.get(message.id)?.onPart?.(message);
        break;
      case Reply.PARTS: {
        const onPart = this.pending.get(message.id)?.onPart;
        for (const part of message.parts) onPart?.({ id: message.id, ...part });
        break;
      }
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

// How many workers the page runs: a setting (?workers=N, or localStorage "dcmstudio.workers"), by
// default one per core up to 4, fewer where the device reports little memory (each worker holds
// its own Python, about 150 MB).
export function poolSize() {
  const asked = Number(new URLSearchParams(location.search).get("workers")
    || localStorage.getItem("dcmstudio.workers"));
  if (Number.isInteger(asked) && asked >= 1) return Math.min(asked, 16);
  const cores = navigator.hardwareConcurrency || 2;
  const memoryGB = navigator.deviceMemory || 8;
  return Math.max(1, Math.min(cores, 4, Math.floor(memoryGB / 2)));
}

// Items each worker takes at a time: few round trips, yet the last worker to finish is not left
// with a long tail.
const DESCRIBE_CHUNK = 16;
const STEP_CHUNK = 4;
// Files mounted per WORKERFS mount (one mount per batch in each worker).
const MOUNT_BATCH = 2000;

// Several Python workers. The first one (`primary`) starts with the page and answers every call
// (it keeps state: opened volumes, files put for Create...). The others start once its start-up
// is over, so start-up is no slower, and share out describing opened files and the tasks that
// can be shared (WorkerPool.job). Every worker mounts every opened file: only handles are copied.
export class WorkerPool {
  constructor({ onPhase, onFatal, onNotice, size = poolSize() }) {
    this.primary = new PythonWorker({ onPhase, onFatal, onNotice });
    this.size = size;
    this.helpers = [];      // started workers besides the primary, ready or not
    this.batches = [];      // every mounted batch, for a worker that starts later
    this.batchCount = 0;
    this.ready = this.primary.ready;
    this.onWorkerReady = null;  // called when a helper becomes available (e.g. to warm it up)
    // Helpers start once the primary's start-up is over: sooner, they would slow its later
    // stage, which the first image or edit waits for.
    this.primary.settled.then(() => { if (this.primary.isReady) this.startHelpers(); });
  }

  get isReady() { return this.primary.isReady; }
  get interruptBuffer() { return this.primary.interruptBuffer; }
  get worker() { return this.primary.worker; }

  request(op, args, options) { return this.primary.request(op, args, options); }
  call(fn, args, options) { return this.primary.call(fn, args, options); }
  cancel(id) { this.primary.cancel(id); }

  // A call that needs no state of the primary's (e.g. a thumbnail): the last helper that is
  // ready takes it, so the primary stays free for what the person asked for.
  callAny(fn, args, options) {
    const workers = this.available();
    return workers[workers.length - 1].call(fn, args, options);
  }

  startHelpers() {
    for (let i = 1; i < this.size; i++) {
      const helper = new PythonWorker({
        onPhase: () => {},
        onNotice: () => {},
        // A helper that fails is left out; the primary still does everything.
        onFatal: (message) => {
          console.warn(`A helper worker stopped: ${message}`);
          this.helpers = this.helpers.filter((h) => h !== helper);
        },
      });
      for (const batch of this.batches) helper.request(Op.MOUNT, batch);
      this.helpers.push(helper);
      helper.ready.then(() => this.onWorkerReady?.(), () => {});
    }
  }

  // The workers that can take work now (a helper still starting is not waited for).
  available() {
    return [this.primary, ...this.helpers.filter((h) => h.isReady)];
  }

  // Mounts files in every worker, started or starting; returns the batch names, each with its files.
  mount(entries) {
    const batches = [];
    for (let first = 0; first < entries.length; first += MOUNT_BATCH) {
      const files = entries.slice(first, first + MOUNT_BATCH).map(({ key, file }) => ({ key, file }));
      const batch = { batch: `b${++this.batchCount}`, files };
      this.batches.push(batch);
      for (const worker of [this.primary, ...this.helpers]) worker.request(Op.MOUNT, batch);
      batches.push(batch);
    }
    return batches;
  }

  // Describes opened files ({ key, file, name }) across the workers. `onDescribed(described, sent)`
  // gets each chunk's answers as they come; resolves when every file was described or the opening
  // was cancelled (`isCancelled`).
  async describe(entries, { onDescribed, isCancelled = () => false }) {
    const queue = [];
    let offset = 0;
    for (const { batch, files } of this.mount(entries)) {
      for (let first = 0; first < files.length; first += DESCRIBE_CHUNK) {
        const end = offset + Math.min(first + DESCRIBE_CHUNK, files.length);
        queue.push({ batch, sent: entries.slice(offset + first, end) });
      }
      offset += files.length;
    }
    const running = new Map();  // request id → worker, to cancel
    // Two requests in flight per worker: the heads of one chunk are read while Python describes
    // the other (reading is waiting on the browser, describing is the worker's own work).
    const pump = async (worker) => {
      while (queue.length && !isCancelled()) {
        const { batch, sent } = queue.shift();
        const request = worker.request(Op.ADD_FILES, { batch, describe: sent.map(({ key, name }) => ({ key, name })) });
        running.set(request.id, worker);
        const result = await request.done;
        running.delete(request.id);
        onDescribed(result.ok ? result.files : sent.map(({ key }) => ({ key, ok: false, error: result.error })), sent);
      }
    };
    const drain = (worker) => Promise.all([pump(worker), pump(worker)]);
    // Helpers that become ready meanwhile join in; none is waited for once the queue is empty.
    const active = new Set();
    const start = (worker) => {
      const drained = drain(worker);
      active.add(drained);
      drained.finally(() => active.delete(drained));
    };
    this.available().forEach(start);
    for (const helper of this.helpers.filter((h) => !h.isReady)) {
      helper.ready.then(() => { if (queue.length && !isCancelled()) start(helper); }, () => {});
    }
    this.cancelDescribe = () => { for (const [id, worker] of running) worker.cancel(id); };
    while (active.size) await Promise.all([...active]);
  }

  // Runs a task shared out over the available workers: each opens its share, takes the next few
  // items whenever it is free, then finishes. `onPart(part, item)` gets each output part with the
  // item it belongs to (parts are named by the item's `member`); `onStep(step, item)` each item's
  // result, in completion order. Resolves with every share's finish result, in worker order, or
  // the first failure; `handle.cancel()` stops every share. `chunk`: items a worker takes at a time.
  // A step that answers `later` is not done: its item is sent again, in a last round, once every
  // other item is done, with `last_round`: what the other steps left for it (`for_last_round`),
  // in the order of the items (e.g. a file that refers to others, told which of them failed).
  job({ kind, options, items, onPart, onStep, chunk = STEP_CHUNK }) {
    const workers = this.available();
    const byMember = new Map(items.map((item) => [item.member, item]));
    const queue = [...items];
    // A Cancel answers at once: a worker still busy with a request before this job's (e.g. a
    // warm-up, which no Cancel stops) is not waited for, and what comes after it is ignored.
    let cancelled = false;
    let stop;
    const stopped = new Promise((resolve) => { stop = resolve; });
    const running = new Set();  // { worker, id } of the requests under way
    let failure = null;
    const held = [];            // items whose step answered `later`
    const told = new Map();     // item → what its step left for the last round
    let inFlight = 0;
    const wake = [];            // pumps waiting for the first round to end
    const lastRound = () => {
      const notes = items.filter((item) => told.has(item)).map((item) => told.get(item));
      queue.push(...held.splice(0).map((item) => ({ ...item, last_round: notes })));
    };
    const share = async (worker) => {
      const opened = await worker.request(Op.JOB_OPEN, { kind, options, count: items.length }).done;
      if (!opened.ok) { failure ??= opened; return null; }
      const job = opened.job;
      const part = (message) => { if (!cancelled) onPart(message, byMember.get(message.output.name)); };
      // Two requests in flight per worker: the files of one are read while the other is processed.
      const pump = async () => {
        for (;;) {
          if (cancelled || failure) break;
          if (!queue.length) {
            // Held items wait until no request of the first round is left, then go to the pumps
            // still there (a pump with nothing held in sight leaves: its share can close).
            if (!held.length) break;
            if (inFlight) { await new Promise((resolve) => wake.push(resolve)); continue; }
            lastRound();
          }
          const taken = queue.splice(0, chunk);
          const request = worker.request(Op.JOB_STEPS, { job, items: taken, reads: opened.reads }, { onPart: part });
          const sent = { worker, id: request.id };
          running.add(sent);
          inFlight++;
          const result = await request.done;
          inFlight--;
          running.delete(sent);  // only requests under way are cancelled (and kept)
          if (result.ok) {
            if (!cancelled) result.steps.forEach((step, i) => {
              if (step.ok && step.later && !taken[i].last_round) return held.push(taken[i]);
              if (step.ok && step.for_last_round != null) told.set(taken[i], step.for_last_round);
              return onStep(step, taken[i]);
            });
          } else {
            failure ??= result;
          }
          for (const resolve of wake.splice(0)) resolve();
          if (!result.ok) break;
        }
      };
      await Promise.all([pump(), pump()]);
      if (cancelled || failure) {
        await worker.request(Op.JOB_CLOSE, { job, cancel: true }).done;
        return null;
      }
      return worker.request(Op.JOB_CLOSE, { job }, { onPart: part }).done;
    };
    const finished = Promise.all(workers.map(share)).then((shares) => {
      if (cancelled) return CANCELLED;
      if (failure) return failure;
      const broken = shares.find((f) => !f.ok);
      return broken || { ok: true, shares, workers: workers.length };
    });
    const done = Promise.race([finished, stopped]);
    return {
      done,
      cancel: () => {
        cancelled = true;
        for (const { worker, id } of running) worker.cancel(id);
        stop(CANCELLED);
      },
    };
  }
}
