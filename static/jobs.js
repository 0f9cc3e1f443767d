// A task shared out over the worker pool (client.js WorkerPool.job) whose output files are written
// as they are made: into a folder, a ZIP file on disk, or a ZIP download (outputs.js).
import { BlobWriter, FolderWriter, OrderedZip, SAVE_TARGETS, StreamWriter, existingFiles, pickers } from "./outputs.js";
import { checkbox, el, plural } from "./dom.js";
import { groupOf } from "./files.js";
import { CANCELLED } from "./protocol.js";

// A random key per run, shared by every worker, so they make the same new UIDs for the same old
// ones. Tests set `app.jobKey` to compare runs.
function runKey(app) {
  if (app.jobKey) return app.jobKey;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// The "Save …" choice of a task's target (`id`: the select's): { label, select, dicomdir }. The
// pickers are offered where the browser lets a page write to disk; `onChange`, if given, hears the
// choice. `label` holds the select, so the two stay on one line: place the label, not the select.
// `dicomdir`, placed right after the label, is a label holding its checkbox (`dicomdir.control`),
// shown while the folder is chosen (and the label is; style.css).
export function saveTargetChoice(id, onChange) {
  const select = el("select", { id },
    el("option", { value: SAVE_TARGETS.DOWNLOAD, textContent: "as a ZIP download" }),
    pickers.available ? el("option", { value: SAVE_TARGETS.ZIP_FILE, textContent: "into a ZIP file…" }) : null,
    pickers.available ? el("option", { value: SAVE_TARGETS.FOLDER, textContent: "into a folder…" }) : null);
  const [, dicomdir] = checkbox(`${id}-dicomdir`, "with a DICOMDIR (files renamed to DICOM File IDs)");
  dicomdir.classList.add("save-dicomdir");
  dicomdir.hidden = true;
  select.addEventListener("change", () => { dicomdir.hidden = select.value !== SAVE_TARGETS.FOLDER; });
  if (onChange) select.addEventListener("change", onChange);
  return { label: el("label", { htmlFor: id, className: "save-to" }, "Save", select), select, dicomdir };
}

// Asks where the output goes, inside the click that started the task (the pickers need it).
// Returns { kind, handle?, label, dicomdir? } or null when the user closed the picker. `dicomdir`
// (saveTargetChoice's label): a folder gets a DICOMDIR when its box is checked.
export async function chooseTarget(kind, zipName, dicomdir = null) {
  try {
    if (kind === SAVE_TARGETS.FOLDER) {
      const handle = await pickers.folder();
      if (dicomdir?.control.checked) {
        return { kind, handle, dicomdir: true, label: `the folder “${handle.name}” with a DICOMDIR` };
      }
      return { kind, handle, label: `the folder “${handle.name}”` };
    }
    if (kind === SAVE_TARGETS.ZIP_FILE) {
      const handle = await pickers.zipFile(zipName);
      return { kind, handle, label: `“${handle.name}”` };
    }
  } catch (error) {
    if (error.name === "AbortError") return null;
    throw error;
  }
  return { kind: SAVE_TARGETS.DOWNLOAD, label: `the download ${zipName}` };
}

// The outputs that gained a validation error their input did not have (each step's `new_errors`,
// see jobs.py): a line per file, or null when there are none. `flagged`: [{ file, new_errors }].
export function newErrorsNote(flagged) {
  if (!flagged.length) return null;
  const box = document.createElement("div");
  box.className = "error new-errors";
  const head = document.createElement("p");
  head.textContent = `${flagged.length} output${flagged.length === 1 ? "" : "s"} gained a validation error ` +
    "that the input did not have. They were written anyway; check them in Validate.";
  const list = document.createElement("ul");
  for (const { file, new_errors: errors } of flagged.slice(0, 200)) {
    const line = document.createElement("li");
    line.textContent = `${file}: ${errors.map((e) => `${e.path || "the file"} (${e.rule}): ${e.message}`).join("; ")}`;
    list.append(line);
  }
  box.append(head, list);
  return box;
}

const DICOMDIR = "DICOMDIR";

// The DICOMDIR of the files a folder save wrote (`listed`, from each step's `directory_record`),
// at the folder's root, once they are all written; none when no file was (the label says so).
// Returns whether it wrote one.
// Files written but not listed are added to `failures`, with why; values made up for the records
// (a Study ID a file leaves empty…) are named in the label. A DICOMDIR that cannot be made
// throws: the save fails as a write does, and the files are removed again.
async function writeDicomdir(app, folder, target, listed, failures) {
  if (!listed.length) {
    target.label = `the folder “${target.handle.name}” (no DICOMDIR: no file was written)`;
    return false;
  }
  let bytes = null;
  const made = await app.python.call("dicomdir_write", { entries: listed.sort((a, b) => a.index - b.index) },
    { onPart: ({ buffer }) => { bytes = buffer; } });
  if (!made.ok) throw new Error(`its DICOMDIR could not be made: ${made.error.message}`);
  failures.push(...made.summary.left_out);
  const { invented } = made.summary;
  if (invented.length) {
    const lacking = new Set(invented.map((value) => value.file_id)).size;
    target.label += ` (${plural(lacking, "file")} lacked ${[...new Set(invented.map((value) => value.keyword))]
      .join(", ")}, made up for its records)`;
  }
  folder.file(DICOMDIR, [bytes]);
  await folder.finish();
  return true;
}

// Runs task `kind` over `files` (the page's file records) into `target`. Returns
// { ok, summary, firstReport, written, failures, steps } (`steps`, with `keepSteps`: each file's
// step, in the order of the files) or { ok: false, error }. `task` is the task bar's handle
// (progress, cancel); `itemOf(file)`, if given, adds fields of the file to its item. `hooks` (all
// optional) let a task add to the run:
// - `before(items)`: runs first (e.g. a first pass over the pool); resolves with { ok, options,
//   names, items } or a failure: `options` are added to the task's, `names` (one per item) name
//   the outputs instead of the files' names, `items` (one per item) are added to each item;
// - `step(step, item)`: hears every step's answer;
// - `settle(result)`: once every step is done, before the output is finished (ZIP closed,
//   folder kept, download made); resolves with false to discard it.
export async function runSharedJob(app,
  { task, kind, options, files, target, zipName, itemOf, keepSteps, hooks = {} }) {
  performance.mark("dcmstudio:job");
  // While the task is set up (its first pass, its names), a Cancel answers at once: a worker busy
  // with an earlier request (a warm-up, which cannot be stopped) answers later, unheard.
  const unlessCancelled = (promise) => Promise.race([promise, task.whenCancelled.then(() => CANCELLED)]);
  let items = files.map((f, i) => ({ path: f.path, name: f.name, index: i + 1, ...itemOf?.(f) }));
  const first = hooks.before ? await unlessCancelled(hooks.before(items)) : { ok: true };
  if (!first.ok) return first;
  if (hooks.before) performance.mark("dcmstudio:job-before");
  // With a DICOMDIR the files are named by File IDs, from the file tree's grouping and order of them.
  const named = await unlessCancelled(target.dicomdir
    ? app.python.call("dicomdir_file_ids", { keys: files.map(groupOf) })
    : app.python.call("member_names", { names: first.names || files.map((f) => f.name) }));
  if (!named.ok) return named;
  const members = target.dicomdir ? named.file_ids : named.members;
  items = items.map((item, i) => ({ ...item, member: members[i], ...first.items?.[i] }));
  if (target.kind === SAVE_TARGETS.FOLDER) {
    const clash = await unlessCancelled(existingFiles(target.handle, [...(target.dicomdir ? [DICOMDIR] : []), ...members]));
    if (clash === CANCELLED) return clash;
    const hasDicomdir = clash.includes(DICOMDIR);
    const others = clash.filter((name) => name !== DICOMDIR);
    const also = others.length ? ` and ${others.length} of these ${items.length} files` : "";
    const question = !hasDicomdir ? `${others.length} of the ${items.length} files already exist in ` +
      `“${target.handle.name}” (for example ${others[0]}). Replace them?`
      : `“${target.handle.name}” already has a DICOMDIR${also}. Replace ${also ? "them" : "it"}?`;
    if (clash.length && !window.confirm(question)) {
      const held = hasDicomdir ? "a DICOMDIR" : `${others.length} of these files`;
      return { ok: false, error: { type: "Cancelled",
        message: `Nothing was written: the folder “${target.handle.name}” already holds ${held}.` } };
    }
  }
  // (a Cancel clicked during the confirmation above)
  if (task.cancelled) return CANCELLED;
  const folder = target.kind === SAVE_TARGETS.FOLDER ? new FolderWriter(target.handle) : null;
  const writer = folder ? null
    : target.kind === SAVE_TARGETS.ZIP_FILE ? new StreamWriter(target.handle) : new BlobWriter("application/zip");
  const zip = writer ? new OrderedZip((part) => writer.write(part)) : null;

  const partsOf = new Map();   // member → parts received so far
  const extras = new Map();    // other outputs (each worker's report): name → parts
  const failures = [];
  const flagged = [];          // { file, new_errors } of the outputs that gained a validation error
  const listed = [];           // with a DICOMDIR: { index, file_id, record, name } of each file written
  // only for a task that asks: a step holds its file's report, and 20,000 of them weigh
  const steps = keepSteps ? new Array(items.length) : null;
  let done = 0;
  const onPart = ({ output, buffer, blob }, item) => {
    const part = blob || buffer;
    const into = item ? partsOf : extras;
    if (!into.has(output.name)) into.set(output.name, { mime: output.mime, parts: [] });
    into.get(output.name).parts.push(part);
  };
  const onStep = (step, item) => {
    const parts = partsOf.get(item.member)?.parts || [];
    partsOf.delete(item.member);
    const member = step.ok && !step.error ? step.member : null;
    if (!member) {
      failures.push({ file: item.name, index: item.index, message: step.error?.message || `${item.name} could not be read.` });
    }
    if (member && step.new_errors?.length) flagged.push({ file: item.name, new_errors: step.new_errors });
    if (folder && member) folder.file(item.member, parts);
    if (target.dicomdir && member) {
      listed.push({ index: item.index, file_id: item.member, record: step.directory_record, name: item.name });
    }
    if (zip) zip.put(item.index - 1, member, parts);
    if (steps) steps[item.index - 1] = step;
    hooks.step?.(step, item);
    task.progress(++done, items.length, item.name);
  };
  const job = app.python.job({ kind, options: { container: folder ? "files" : "members", key: runKey(app), ...options,
    ...first.options, ...(target.dicomdir ? { dicomdir: true } : {}) }, items, onPart, onStep });
  task.onCancel = () => job.cancel();
  // A folder that cannot be written (a full disk, a quota, a folder removed meanwhile) stops the
  // job at once: making the other files would only fill the queue.
  // What was written is removed again, as after a Cancel: a half-written output is not kept.
  const writeFailed = async (error) => {
    await folder?.discard();  // the writes under way when it failed end first
    const written = folder?.written;
    const removed = !written ? "" : written === 1 ? " The file written was removed again."
      : ` The ${written} files written were removed again.`;
    return { ok: false, error: { type: "WriteError", message: `Writing to ${target.label} failed` +
      `${folder ? ` after ${written} of ${items.length} files` : ""}: ${error.message.replace(/\.?$/, ".")}${removed}` } };
  };
  if (folder) folder.onError = () => job.cancel();
  const result = await job.done;
  performance.mark("dcmstudio:job-steps");
  if (folder?.error) return writeFailed(folder.error);
  if (!result.ok || (hooks.settle && !(await hooks.settle(result)))) {
    await writer?.abort?.();
    await folder?.discard();
    return result.ok ? { ok: false, error: { type: "Discarded", message: "Discarded: nothing was kept." } } : result;
  }
  let withDicomdir = false;
  try {
    if (zip) {
      const end = await app.python.call("zip_directory", { members: zip.members, start: zip.offset, zip_name: zipName },
        { onPart: ({ buffer }) => writer.write(buffer) });
      if (!end.ok) return end;
    }
    await folder?.finish();
    if (target.dicomdir) withDicomdir = await writeDicomdir(app, folder, target, listed, failures);
  } catch (error) {
    return writeFailed(error);
  }
  let blob = null;
  if (writer) blob = await writer.finish();
  performance.mark("dcmstudio:job-written");
  const shares = result.shares;
  const summary = {
    files: shares.reduce((n, s) => n + (s.summary?.files || 0), 0),
    changes: shares.reduce((n, s) => n + (s.summary?.changes || 0), 0),
    failed: failures,
    newErrors: flagged.sort((a, b) => a.file.localeCompare(b.file)),
  };
  const firstReport = shares.map((s) => s.first_report).filter(Boolean).sort((a, b) => a.index - b.index)[0] || null;
  const reports = [...extras].map(([name, { mime, parts }]) => ({ name, blob: new Blob(parts, { type: mime }) }));
  return {
    ok: true, summary, firstReport, reports, blob, steps, workers: result.workers,
    written: folder ? folder.written - withDicomdir : zip.members.length,
    bytes: folder ? folder.bytes : writer.bytes,
  };
}
