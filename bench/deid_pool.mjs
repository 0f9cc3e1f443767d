// The page's De-identify run over N workers, in Node: each worker_thread starts its own Pyodide
// from dist/ (pyodide_runtime.mjs), and the files are shared out as the page shares them (client.js
// WorkerPool.job, wb-deid.js): the key derived once, a pooled first pass whose answers are merged
// in input order, the same learned values given to every worker, pooled de-identifying steps, the
// members put in input order into one ZIP, one merged mapping and report; or, with CONTAINER
// "files" (the page's folder save), each file written into OUT as its step answers, its unchanged
// pixel data taken from the input (a reference, as the page's File.slice), no CRC.
//   node bench/deid_pool.mjs IN_DIR OUT WORKERS OPTIONS_JSON [members|files] [cold|warm]
// "warm": each worker has de-identified a made-up series before the clock starts (the deid_prepare
// task, dcmstudio.jobs.prepare_deid), as the page's workers do while the person is in the
// De-identify workbench or picks the target (wb-deid.js); "cold" (the default): not, as a worker
// that de-identifies for the first time (imports, tables, code run for the first time: ~0.2 s).
// Prints one JSON line of timings (cpuSeconds: the process' CPU time over the same span, every
// thread's: on a busy machine a steadier figure than elapsed time); writes OUT (a ZIP, or a folder), and OUT.mapping.json (the
// merged mapping and the report). Writing the ZIP to disk is timed apart (zipWriteSeconds, not in
// seconds); writing the folder's files is in seconds, as the page writes them while it works.
// As bench/deid.py's single-runtime job, each worker holds the files in MEMFS before the clock
// starts (the page's workers read them from the opened files); parts that are stretches of an
// input reach the main thread as references and are taken from its own copy (the page's
// File.slice), never copied through a worker.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";

const STEP_CHUNK = 4;  // client.js: items a worker takes at a time
const LEARN_CHUNK = 16;  // wb-deid.js: the first pass takes more
const HEAD_BYTES = 64 * 1024;  // worker.js: what it fetches ahead of a step that reads heads only
const KEY_SALT = "dcmstudio-deid-1";  // dcmstudio.deid.keys, as wb-deid.js derives it
const KEY_ITERATIONS = 100000;

if (isMainThread) await main(); else await serve();

// A worker: its own runtime, the files in its MEMFS, then the page worker's ops.
async function serve() {
  const { startRuntime } = await import("./pyodide_runtime.mjs");
  const { takeFile } = await import("../static/memfs.js");
  const started = performance.now();
  const { pyodide, call } = await startRuntime();
  const startup = (performance.now() - started) / 1000;
  let warmUp = 0;
  if (workerData.warm) {
    const began = performance.now();
    call("job_finish", { job: call("job_start", { kind: "deid_prepare", options: {}, count: 0 }).job });
    warmUp = (performance.now() - began) / 1000;
  }
  for (const name of workerData.names) {
    const data = fs.readFileSync(path.join(workerData.inDir, name));
    pyodide.FS.writeFile(`/in/${name}`, new Uint8Array(data.buffer, data.byteOffset, data.length));
  }
  // A result's parts as the worker sends them: chunk files' bytes (transferred), and stretches of
  // an input as references.
  const parts = (result) => {
    const out = [];
    for (const chunk of result.chunks || []) {
      out.push(chunk.source !== undefined ? { ref: [path.basename(chunk.source), chunk.offset, chunk.length] }
        : { bytes: takeFile(pyodide.FS, chunk.path) });
    }
    delete result.chunks;
    for (const output of result.outputs || []) {
      out.push({ name: output.name, bytes: takeFile(pyodide.FS, output.path) });
      delete output.path;
    }
    return out;
  };
  let prefetched = 0;
  const ops = {
    call: ({ fn, args }) => { const result = call(fn, args); return { result, parts: parts(result) }; },
    // worker.js JOB_STEPS: where the task reads heads only, each file's first bytes fetched ahead
    steps: ({ job, items, reads }) => {
      const steps = items.map((item) => {
        const fetched = {};
        if (reads === "head") {
          const contents = pyodide.FS.lookupPath(item.path).node.contents;
          fetched.head = `/tmp/head-${++prefetched}`;
          pyodide.FS.writeFile(fetched.head, contents.slice(0, HEAD_BYTES), { canOwn: true });
        }
        const step = call("job_step", { job, item: { ...item, ...fetched } });
        return { step, parts: parts(step) };
      });
      return { steps };
    },
  };
  parentPort.on("message", ({ id, op, args }) => {
    const began = performance.now();
    const answer = ops[op](args);
    answer.busy = (performance.now() - began) / 1000;  // this worker's time in Python and MEMFS
    const transfer = [];
    for (const { parts: list } of answer.steps || [answer]) {
      for (const part of list) if (part.bytes) transfer.push(part.bytes.buffer);
    }
    parentPort.postMessage({ id, answer }, transfer);
  });
  parentPort.postMessage({ ready: true, startup, warmUp });
}

function startWorker(inDir, names, warm) {
  const busy = { seconds: 0 };
  const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { inDir, names, warm } });
  const pending = new Map();
  let nextId = 1;
  let onReady;
  const ready = new Promise((resolve) => { onReady = resolve; });
  worker.on("message", (message) => {
    if (message.ready) return onReady(message);
    busy.seconds += message.answer.busy;
    pending.get(message.id)(message.answer);
    pending.delete(message.id);
  });
  worker.on("error", (error) => { console.error(error); process.exit(1); });
  const request = (op, args) => new Promise((resolve) => {
    const id = nextId++;
    pending.set(id, resolve);
    worker.postMessage({ id, op, args });
  });
  return { ready, request, busy, call: (fn, args) => request("call", { fn, args }), terminate: () => worker.terminate() };
}

// client.js WorkerPool.job: each worker opens its share, takes STEP_CHUNK items whenever it is
// free (two requests in flight), then finishes. Resolves with the finish answers in worker order.
async function shareOut(workers, kind, options, items, onStep, chunkSize = STEP_CHUNK) {
  const queue = [...items];
  return Promise.all(workers.map(async (worker) => {
    const opened = (await worker.call("job_start", { kind, options, count: items.length })).result;
    const pump = async () => {
      while (queue.length) {
        const chunk = queue.splice(0, chunkSize);
        const { steps } = await worker.request("steps", { job: opened.job, items: chunk, reads: opened.reads });
        steps.forEach(({ step, parts }, i) => onStep(step, chunk[i], parts));
      }
    };
    await Promise.all([pump(), pump()]);
    return (await worker.call("job_finish", { job: opened.job })).result;
  }));
}

async function main() {
  const [inDir, out, count, optionsJson, container = "members", start = "cold"] = process.argv.slice(2);
  const names = fs.readdirSync(inDir).sort();
  const inputs = new Map(names.map((name) => [name, fs.readFileSync(path.join(inDir, name))]));
  const workers = Array.from({ length: Number(count) }, () => startWorker(inDir, names, start === "warm"));
  const readies = await Promise.all(workers.map((w) => w.ready));
  const startups = readies.map((r) => r.startup);
  const resolve = (parts) => parts.map((p) => (p.ref ? inputs.get(p.ref[0]).subarray(p.ref[1], p.ref[1] + p.ref[2])
    : Buffer.from(p.bytes.buffer, p.bytes.byteOffset, p.bytes.length)));

  const t0 = performance.now();
  const cpu0 = process.cpuUsage();  // the whole process: main thread and workers
  const options = JSON.parse(optionsJson);
  options.key = options.secret
    ? crypto.pbkdf2Sync(options.secret, KEY_SALT, KEY_ITERATIONS, 32, "sha256").toString("hex")
    : crypto.randomBytes(32).toString("hex");
  const tKey = performance.now();

  const items = names.map((name, i) => ({ path: `/in/${name}`, name, index: i + 1 }));
  const taught = [];
  const outputNames = [];
  const read = [];
  const shares = await shareOut(workers, "deid_learn", options, items, (step, item) => {
    taught[item.index - 1] = { identifiers: step.identifiers, patients: step.patients };
    outputNames[item.index - 1] = step.output || item.name;
    read[item.index - 1] = step.learned;
  }, LEARN_CHUNK);
  const { learned } = (await workers[0].call("deid_learned", { files: taught,
    shares: shares.map((share) => ({ identifiers: share.identifiers })) })).result;
  const { members } = (await workers[0].call("member_names", { names: outputNames })).result;
  const tLearn = performance.now();
  const busyLearn = workers.map((w) => w.busy.seconds);

  const named = items.map((item, i) => ({ ...item, member: members[i], learned: read[i] }));
  const made = [];
  const lines = [];
  let hits = 0;
  if (container === "files") fs.mkdirSync(out);
  const writes = [];
  const shareOptions = { ...options, learned, container };
  const finished = await shareOut(workers, "deid_share", shareOptions, named, (step, item, parts) => {
    if (step.error) made[item.index - 1] = null;
    else if (container === "files") writes.push(writeFile(out, step.member.name, resolve(parts)));
    else made[item.index - 1] = { member: step.member, parts: resolve(parts) };
    lines[item.index - 1] = step.line;
    hits += step.report ? step.report.residual.length : 0;
  });
  await Promise.all(writes);
  const tDeid = performance.now();
  const busyDeid = workers.map((w, i) => w.busy.seconds - busyLearn[i]);

  // the ZIP in input order (outputs.js OrderedZip), its end from Python, one mapping
  const zipParts = [];
  const directory = [];
  let offset = 0;
  for (const file of made.filter(Boolean)) {
    directory.push({ ...file.member, offset });
    for (const part of file.parts) { zipParts.push(part); offset += part.length; }
  }
  if (container !== "files") {
    const end = await workers[0].call("zip_directory", { members: directory, start: offset, zip_name: "deid.zip" });
    zipParts.push(...resolve(end.parts));
  }
  const tZip = performance.now();
  const merged = await workers[0].call("deid_merge", { options, learned, shares: finished.map((share) => share.mapping),
    failures: [], zip_name: "deid.zip" });
  const mapping = Object.fromEntries(merged.parts.map((p) => [p.name, Buffer.from(p.bytes).toString("utf8")]));
  const report = lines.map((line) => `${line}\n`).join("");
  const tEnd = performance.now();
  const seconds = (tEnd - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  if (container !== "files") fs.writeFileSync(out, Buffer.concat(zipParts));
  const zipWriteSeconds = (performance.now() - tEnd) / 1000;
  fs.writeFileSync(`${out}.mapping.json`, JSON.stringify({ ...mapping, report }));
  console.log(JSON.stringify({
    seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, workers: workers.length, startup: Math.max(...startups), start,
    warmUpSeconds: readies.map((r) => r.warmUp), keySeconds: (tKey - t0) / 1000,
    learnSeconds: (tLearn - tKey) / 1000, deidSeconds: (tDeid - tLearn) / 1000,
    finishSeconds: (tEnd - tDeid) / 1000, zipEndSeconds: (tZip - tDeid) / 1000, zipWriteSeconds, container,
    // each worker's time answering (Python, MEMFS), per phase: the rest is waiting and messages
    busyLearnSeconds: busyLearn, busyDeidSeconds: busyDeid,
    files: names.length, hits, summary: merged.result.summary,
  }));
  await Promise.all(workers.map((w) => w.terminate()));
}

// outputs.js's folder save: a file's parts written under its relative name as its step answers,
// without holding up the steps (the page's writes to a folder are asynchronous too).
async function writeFile(folder, name, parts) {
  const target = path.join(folder, name);
  await fs.promises.mkdir(path.dirname(target), { recursive: true });
  await fs.promises.writeFile(target, parts);
}
