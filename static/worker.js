// The Python worker: starts Pyodide in named phases, then serves the page's requests by calling
// dcmstudio.api (the only Python it calls). No DICOM logic lives here: opened files are mounted
// read-only by path (WORKERFS: read from the user's disk when Python reads them), results come back
// as plain JSON, outputs are read from MEMFS and transferred. The page may run several of these.
import { CANCELLED, PHASES, Op, Reply, INPUT_DIR, OUTPUT_DIR } from "./protocol.js";
import { takeFile } from "./memfs.js";
import { installCodecs } from "./codecs.js";
import { loadStage, loadLaterStage, pyodideOptions } from "./stages.js";

const siteRoot = new URL("../", import.meta.url);

let pyodide = null;
let apiCall = null;        // dcmstudio.api.call, kept for the worker's lifetime
const cancelled = new Set(); // ids of requests the page asked to stop
let interruptBuffer = null; // set when the page is cross-origin isolated: stops a long Python call
const YIELD_EVERY_MS = 25;  // how often a long request lets a Cancel in

function post(message, transfer = []) {
  self.postMessage(message, transfer);
}

// Milliseconds since the worker started at which each phase began (shown by bench/startup.py).
const timings = {};
// Milliseconds this worker's job steps (JOB_STEPS) spent waiting for fetched bytes, in Python and
// handing parts over (of which slicing opened files: each slice waits for the browser process),
// summed over its requests (bench/e2e.py reads them: where a job's time goes); and `reads`, how
// many reads of opened files it fetched ahead (opening them included; not Python's own reads).
const spent = { fetching: 0, python: 0, handing: 0, slicing: 0, reads: 0 };

function phase(name, fraction = 0) {
  const p = PHASES.find((x) => x.name === name);
  timings[name] = Math.round(performance.now());
  post({ kind: Reply.PHASE, phase: name, label: p.label, fraction });
}

async function fetchBytes(path) {
  const response = await fetch(new URL(path, siteRoot));
  if (!response.ok) throw new Error(`${path} could not be loaded (HTTP ${response.status}).`);
  return response.arrayBuffer();
}

// Settle once the `later` stage (Pillow, the volume readers...) and the wasm codecs (JPEG-LS,
// JPEG 2000, HTJ2K) are loaded, which starts when Python is ready; requests other than opening
// and inspecting files wait for them. Their failures are reported, and inspection still works.
let later = null;
let codecs = null;

async function start() {
  phase("runtime");
  const runtime = await (await fetch(new URL("runtime.json", siteRoot))).json();
  const options = pyodideOptions(runtime, (path) => new URL(path, siteRoot).href);
  const { loadPyodide } = await import(options.indexURL + "pyodide.mjs");
  // Our Python is fetched while the runtime starts, and unpacked once it is up.
  const startupArchives = runtime.startup.archives.map(fetchBytes);
  pyodide = await loadPyodide({ ...options, stdout: () => {}, stderr: (s) => console.warn(s) });

  phase("packages", 0.1);
  await loadStage(pyodide, runtime.startup, startupArchives);

  phase("code", 0.5);
  pyodide.FS.mkdirTree(INPUT_DIR);
  reportUnreadableFiles(pyodide.FS);
  pyodide.FS.mkdirTree(OUTPUT_DIR);
  pyodide.FS.mkdirTree(PREFETCH_DIR);
  // The module proxy lives as long as the worker: its `call` attribute is borrowed from it.
  apiCall = pyodide.pyimport("dcmstudio.api").call;
  if (self.crossOriginIsolated) {
    interruptBuffer = new Uint8Array(new SharedArrayBuffer(1));
    pyodide.setInterruptBuffer(interruptBuffer);
  }
  // Tests reach Pyodide through this (e.g. to prove the policy refuses other origins).
  self.dcmstudio = { pyodide, spent };
  timings.ready = Math.round(performance.now());
  post({ kind: Reply.PHASE, phase: "ready", label: "Python ready", fraction: 1, interruptBuffer, timings });

  later = loadLaterStage(pyodide, runtime.later, runtime.later.archives.map(fetchBytes), apiCall)
    .then((call) => {
      apiCall = call;  // dcmstudio was imported again, now with numpy
      timings.later = Math.round(performance.now());
    })
    .catch((error) => {
      post({ kind: Reply.NOTICE,
        message: `numpy, Pillow and the volume readers could not all be loaded (${error.message || error}): `
          + "opening and inspecting files still work; images, image creation, compression and volumes may not. "
          + "Reload the page to try again." });
    })
    .finally(() => post({ kind: Reply.SETTLED }));
  // The codecs load meanwhile, and register with dcmstudio.codecs once the later stage has
  // brought numpy and imported it again.
  const registry = later.then(() => pyodide.pyimport("dcmstudio.codecs"));
  codecs = installCodecs(pyodide, siteRoot, runtime.codecs, registry)
    .catch((error) => console.warn(`The wasm codecs were not installed: ${error.message || error}`))
    .finally(() => registry.then((module) => module.destroy(), () => {}));
  // Tests wait for this before they reach into the Python that the later stage imports again.
  self.dcmstudio.settled = Promise.allSettled([later, codecs]);
}

// A File whose bytes the browser can no longer give (moved, deleted or changed on disk since it was
// opened) makes FileReaderSync throw inside a read() system call, which Python cannot catch. Turn
// that into an I/O error (EIO), which dcmstudio reports as a sentence naming the file.
function reportUnreadableFiles(FS) {
  const ops = FS.filesystems.WORKERFS.stream_ops;
  const read = ops.read;
  ops.read = function readOrEIO(...args) {
    try {
      return read.apply(this, args);
    } catch (error) {
      if (error instanceof FS.ErrnoError) throw error;
      throw new FS.ErrnoError(pyodide._module.ERRNO_CODES.EIO);
    }
  };
}

// Mounts a batch of opened files at /in/<batch>/<key>, once: only the File handles are kept.
const mounted = new Set();
function mount(batch, files) {
  const dir = `${INPUT_DIR}/${batch}`;
  if (mounted.has(batch)) return dir;
  pyodide.FS.mkdirTree(dir);
  const blobs = files.map(({ key, file }) => ({ name: key, data: file }));
  pyodide.FS.mount(pyodide.FS.filesystems.WORKERFS, { blobs }, dir);
  mounted.add(batch);
  return dir;
}

// Every read of an opened file is a request to the browser, about a millisecond whatever its size;
// many requests at once overlap. So the worker fetches what Python will read for several files
// concurrently (the head of each file to describe, the whole of each file to edit) into MEMFS
// scratch files, and tells Python where they are. A read that fails is left to Python, which
// then names the file.
const HEAD_BYTES = 64 * 1024;
// A file larger than this is not fetched whole for a task that reads whole files, only its head:
// Python then reads the rest itself, in bounded chunks where it can (a ZIP member's CRC), so a
// few large files at once never sit whole in the worker's memory.
const WHOLE_FETCH_MAX = 16 * 1024 * 1024;
const PREFETCH_DIR = "/prefetch";
let prefetched = 0;
// Resolves with the scratch path of each file's fetched bytes (null where the read failed);
// `fetched`, if given, gets each one's bytes too. `kept[i]`, if given, are bytes of file i the page
// already holds (its header, kept from opening it): they are used instead of a read.
function prefetch(paths, length = 0, { kept = [], fetched = [] } = {}) {
  return Promise.all(paths.map(async (path, i) => {
    try {
      let bytes;
      if (kept[i]) {
        bytes = new Uint8Array(kept[i]);  // the worker's copy of the page's (a message copies it)
      } else {
        const file = pyodide.FS.lookupPath(path).node.contents;
        const want = Array.isArray(length) ? length[i] : length;
        spent.reads++;
        bytes = new Uint8Array(await (want ? file.slice(0, want) : file).arrayBuffer());
      }
      const local = `${PREFETCH_DIR}/${++prefetched}`;
      pyodide.FS.writeFile(local, bytes, { canOwn: true });
      fetched[i] = bytes;
      return local;
    } catch {
      return null;
    }
  }));
}

// The bytes of a described file the page keeps (see dcmstudio.catalog.header_end: all deid's first
// pass needs), as a buffer of their own; none for a header longer than HEAD_BYTES.
function headToKeep(bytes, headerEnd) {
  return bytes && headerEnd ? bytes.slice(0, headerEnd).buffer : undefined;
}

// A job item as Python gets it: without the bytes the page keeps of its file (see prefetch).
function forPython({ keptHead: _, checkHead: __, ...item }) {
  return item;
}

// Whether `bytes` (what a step read of a file) no longer start with the header kept from opening
// it (`kept`): the file changed on disk since, in a browser that does not refuse to read it then.
function changedSince(kept, bytes) {
  if (!kept || !bytes) return false;
  const head = new Uint8Array(kept);
  return bytes.length < head.length || !head.every((byte, i) => bytes[i] === byte);
}

function fileSize(path) {
  try {
    return pyodide.FS.lookupPath(path).node.contents.size;
  } catch {
    return 0;  // not there: the step names it
  }
}

// Deletes a fetched copy once its step is over, if Python did not (it deletes what it read).
// (Detaching its buffer to free it sooner made it worse: V8 then no longer counts the memory,
// which stays until a full collection, so none comes: +1.5 GB after opening 20,000 files.)
function release(local) {
  if (!local) return;
  try { pyodide.FS.unlink(local); } catch { /* Python deleted it */ }
}

function callPython(fn, args) {
  if (interruptBuffer) interruptBuffer[0] = 0;
  return JSON.parse(apiCall(fn, JSON.stringify(args)));
}

// Gives the event loop a turn so that a Cancel sent meanwhile is received.
// A MessageChannel turn, not setTimeout: nested timers are clamped to 4 ms, which over a series of
// 3,000 files would add 12 s of waiting. And only every few milliseconds, not after every file.
const turns = new MessageChannel();
const waitingForTurn = [];  // several requests may be waiting at once
let lastTurn = 0;
turns.port1.onmessage = () => {
  lastTurn = performance.now();
  waitingForTurn.shift()();
};
function yieldToMessages() {
  if (performance.now() - lastTurn < YIELD_EVERY_MS) return Promise.resolve();
  return new Promise((resolve) => {
    waitingForTurn.push(resolve);
    turns.port2.postMessage(null);
  });
}

// Moves each output named in a result from MEMFS to the page, as transferred buffers.
// `send(part, transfer)` posts a part ({ output, buffer | blob }); by default one message each.
function sendOutputs(id, result, send = postPart(id)) {
  for (const output of result.outputs || []) {
    const bytes = takeFile(pyodide.FS, output.path);
    send({ output: { name: output.name, mime: output.mime, final: true }, buffer: bytes.buffer }, [bytes.buffer]);
    delete output.path;
  }
}

function postPart(id) {
  return (part, transfer = []) => post({ kind: Reply.PART, id, ...part }, transfer);
}

// Moves the finished parts of a streamed output (e.g. a ZIP being written) to the page. A part
// that is a stretch of a file the page opened goes as a slice of that File: its bytes are never
// copied. Slicing here, not in the page, keeps that cost (a request to the browser per slice)
// off the page's main thread.
function sendChunks(id, result, send = postPart(id)) {
  for (const chunk of result.chunks || []) {
    const output = { name: chunk.name, mime: chunk.mime, final: chunk.final };
    if (chunk.source !== undefined) {
      const { source, offset, length } = chunk;
      if (source.startsWith(`${INPUT_DIR}/`)) {
        const t0 = performance.now();
        const blob = pyodide.FS.lookupPath(source).node.contents.slice(offset, offset + length);
        spent.slicing += performance.now() - t0;
        send({ output, blob });
      } else {
        const bytes = pyodide.FS.lookupPath(source).node.contents.slice(offset, offset + length);
        send({ output, buffer: bytes.buffer }, [bytes.buffer]);
      }
      continue;
    }
    const bytes = takeFile(pyodide.FS, chunk.path);
    send({ output, buffer: bytes.buffer }, [bytes.buffer]);
  }
  delete result.chunks;
}

// Collects parts to post them together (Reply.PARTS): every message costs the page's main thread
// a task, so a share's steps send theirs in one message per request rather than one per part.
function partBatch(id) {
  const parts = [];
  const transfer = [];
  return {
    send: (part, buffers = []) => { parts.push(part); transfer.push(...buffers); },
    flush: () => { if (parts.length) post({ kind: Reply.PARTS, id, parts: parts.splice(0) }, transfer.splice(0)); },
  };
}

const handlers = {
  async [Op.MOUNT](id, { batch, files }) {
    mount(batch, files);
    return { ok: true };
  },

  async [Op.ADD_FILES](id, { batch, files, describe }) {
    const dir = mount(batch, files);
    const bytes = [];
    const heads = await prefetch(describe.map(({ key }) => `${dir}/${key}`), HEAD_BYTES, { fetched: bytes });
    const described = [];
    for (let i = 0; i < describe.length; i++) {
      if (cancelled.has(id)) break;
      const { key, name } = describe[i];
      const path = `${dir}/${key}`;
      const description = callPython("describe", { path, name, head: heads[i] });
      described.push({ key, path, ...description, keptHead: headToKeep(bytes[i], description.header_end) });
      release(heads[i]);
      bytes[i] = null;
      await yieldToMessages();  // the page counts progress by chunk: no message per file
    }
    heads.slice(described.length).forEach(release);  // a Cancel left these out
    return { ok: true, files: described };
  },

  async [Op.PUT_FILES](id, { dir, files }) {
    try { pyodide.FS.rmdir(dir); } catch { /* not there, or not empty: unlink below */ }
    pyodide.FS.mkdirTree(dir);
    for (const name of pyodide.FS.readdir(dir)) {
      if (name !== "." && name !== "..") pyodide.FS.unlink(`${dir}/${name}`);
    }
    for (const { name, buffer } of files) pyodide.FS.writeFile(`${dir}/${name}`, new Uint8Array(buffer));
    return { ok: true, paths: files.map(({ name }) => `${dir}/${name}`) };
  },

  // Mounted files cannot be unlinked (WORKERFS is read-only, and holds only handles): forget
  // what Python cached about them.
  async [Op.REMOVE_FILES](id, { paths }) {
    return callPython("forget", { paths });
  },

  async [Op.CALL](id, { fn, args }) {
    const result = callPython(fn, args);
    if (result.ok) sendOutputs(id, result);
    return result;
  },

  // A long task: start, one step per item (progress, cancel between steps), finish.
  async [Op.JOB](id, { kind, options, items }) {
    const started = callPython("job_start", { kind, options, count: items.length });
    if (!started.ok) return started;
    const job = started.job;
    const steps = [];
    for (let i = 0; i < items.length; i++) {
      if (cancelled.has(id)) {
        callPython("job_cancel", { job });
        return CANCELLED;
      }
      const step = callPython("job_step", { job, item: forPython(items[i]) });
      if (step.ok) {
        sendChunks(id, step);
        sendOutputs(id, step);
      }
      steps.push(step);
      post({ kind: Reply.PROGRESS, id, done: i + 1, total: items.length, label: items[i].name || "" });
      await yieldToMessages();
    }
    const finished = callPython("job_finish", { job });
    if (finished.ok) {
      sendChunks(id, finished);
      sendOutputs(id, finished);
    }
    return { ...finished, steps };
  },

  // A share of a pooled task (client.js WorkerPool.job): the page hands out items as workers
  // become free and puts the outputs in order.
  async [Op.JOB_OPEN](id, { kind, options, count }) {
    return callPython("job_start", { kind, options, count });
  },

  // `reads` (from job_start): what Python reads of each file, its head or the whole of it.
  async [Op.JOB_STEPS](id, { job, items, reads }) {
    const heads = items.map(({ path }) => reads === "head" || fileSize(path) > WHOLE_FETCH_MAX);
    const fetching = performance.now();
    // A head the page kept from opening the file is not read again (deid's first pass); one to
    // check (`checkHead`: deid's steps, whose first pass learned from it) is compared with the read.
    const kept = items.map((item, i) => (heads[i] ? item.keptHead : undefined));
    const read = [];
    const locals = await prefetch(items.map((item) => item.path), heads.map((head) => (head ? HEAD_BYTES : 0)),
      { kept, fetched: read });
    spent.fetching += performance.now() - fetching;
    const steps = [];
    const parts = partBatch(id);
    for (const [i, item] of items.entries()) {
      if (cancelled.has(id)) break;
      const fetched = locals[i] ? { [heads[i] ? "head" : "local"]: locals[i] } : {};
      const python = performance.now();
      const changed = changedSince(item.checkHead, read[i]) ? { changed: true } : {};
      const step = callPython("job_step", { job, item: { ...forPython(item), ...fetched, ...changed } });
      spent.python += performance.now() - python;
      release(locals[i]);
      const handing = performance.now();
      if (step.ok) {
        sendChunks(id, step, parts.send);
        sendOutputs(id, step, parts.send);
      }
      spent.handing += performance.now() - handing;
      steps.push(step);
      await yieldToMessages();  // a Cancel is heard between items, not after the whole chunk
    }
    const handing = performance.now();
    parts.flush();  // before DONE: the page takes each step's parts before the step
    spent.handing += performance.now() - handing;
    locals.slice(steps.length).forEach(release);  // fetched for the items a Cancel left out
    return { ok: true, steps };
  },

  async [Op.JOB_CLOSE](id, { job, cancel }) {
    if (cancel) return callPython("job_cancel", { job });
    const finished = callPython("job_finish", { job });
    if (finished.ok) {
      sendChunks(id, finished);
      sendOutputs(id, finished);
    }
    return finished;
  },

  async [Op.CANCEL](id, { target }) {
    cancelled.add(target);
    return { ok: true };
  },
};

// Opening and inspecting files need only the start-up stage; everything else (pixels, Pillow,
// volumes, the wasm codecs) waits until the later stage and the codecs are loaded.
const OPS_BEFORE_LATER_STAGE = new Set([Op.MOUNT, Op.ADD_FILES, Op.REMOVE_FILES, Op.CANCEL]);
const CALLS_BEFORE_LATER_STAGE = new Set(["tree", "search", "export_text", "export_json", "forget", "member_names",
  "zip_directory"]);

const ready = start().catch((error) => {
  post({ kind: Reply.FATAL, message: `Python could not start: ${error.message || error}` });
  throw error;
});

self.onmessage = async (event) => {
  const { id, op, args } = event.data;
  try {
    await ready;
    if (!OPS_BEFORE_LATER_STAGE.has(op) && !(op === Op.CALL && CALLS_BEFORE_LATER_STAGE.has(args?.fn))) {
      await codecs;
      await later;
    }
    const handler = handlers[op];
    if (!handler) throw new Error(`unknown request '${op}'`);
    const result = await handler(id, args || {});
    post({ kind: Reply.DONE, id, result });
  } catch (error) {
    const failure = { type: "WorkerError", message: String(error.message || error), file: null };
    post({ kind: Reply.DONE, id, result: { ok: false, error: failure } });
  } finally {
    cancelled.delete(id);
  }
};

self.addEventListener("unhandledrejection", (event) => {
  post({ kind: Reply.FATAL, message: `The worker failed: ${event.reason?.message || event.reason}` });
});
