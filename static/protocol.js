// The one message protocol between the page (app.js) and the Python worker (worker.js).
// Every request carries an id; every reply and progress event carries the same id.

// Start-up phases, in order, with the share of the progress bar each one fills.
export const PHASES = [
  { name: "runtime", label: "Starting the Python runtime", weight: 0.5 },
  { name: "packages", label: "Loading pydicom and numpy", weight: 0.3 },
  { name: "code", label: "Loading dcmstudio", weight: 0.2 },
  { name: "ready", label: "Python ready", weight: 0 },
];

// Page → worker: { id, op, args }
export const Op = Object.freeze({
  MOUNT: "mount",             // args: { batch, files: [{ key, file }] } — File handles, read in place
  ADD_FILES: "add-files",     // args: { batch, files: [{ key, file }], describe: [{ key, name }] } —
                              // mounts the batch if needed, then describes the files named
  REMOVE_FILES: "remove-files", // args: { paths: [path] } — forget what Python cached about them
  PUT_FILES: "put-files",     // args: { dir, files: [{ name, buffer }] } — inputs that are not opened as DICOM
  CALL: "call",               // args: { fn, args } — one api.py function
  JOB: "job",                 // args: { kind, options, items: [...] } — a long task, step by step
  JOB_OPEN: "job-open",       // args: { kind, options, count } — one worker's share of a pooled task
  JOB_STEPS: "job-steps",     // args: { job, items: [...] } — the next items of that share
  JOB_CLOSE: "job-close",     // args: { job, cancel } — finish (or drop) that share
  CANCEL: "cancel",           // args: { target: id of the request to stop }
});

// Worker → page: { kind, ... }
export const Reply = Object.freeze({
  PHASE: "phase",       // { phase, label, fraction } during start-up
  PROGRESS: "progress", // { id, done, total, label }
  PART: "part",         // { id, output, buffer | blob } a piece of a streamed download: bytes
                        // (transferred), or a Blob, a slice of an opened file (never copied)
  PARTS: "parts",       // { id, parts: [{ output, buffer | blob }] } several PARTs in one message
  DONE: "done",         // { id, result } where result is { ok: true, ... } or { ok: false, error }
  FATAL: "fatal",       // { message } the worker cannot go on
  NOTICE: "notice",     // { message } something failed that some features need; the worker goes on
  SETTLED: "settled",   // {} the later stage and the codecs are loaded (or failed): start-up is over
});

// What a cancelled request or task answers, in the worker and in the page alike.
export const CANCELLED = Object.freeze({
  ok: false, error: Object.freeze({ type: "Cancelled", message: "Cancelled: no output was kept.", file: null }),
});

// How long start-up may take before the page says it is stuck (a wrong MIME type hangs silently).
export const STARTUP_TIMEOUT_MS = 60000;

// Where opened files appear inside each worker: /in/<batch>/<key>, mounted read-only (WORKERFS),
// their bytes read from the user's disk on demand and never copied into the worker.
export const INPUT_DIR = "/in";
export const OUTPUT_DIR = "/out";
