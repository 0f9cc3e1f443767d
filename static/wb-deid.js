// The De-identify workbench: the pinned PS3.15 profile and its options, a secret for mappings
// that agree across sessions, a preview of every action on one file, optional pixel masks drawn
// on the frame, and the de-identified files, shared out over the workers, into a folder, a ZIP
// file or a ZIP download, with the mapping and a residual-PHI report.
import { BlobWriter, InOrder } from "./outputs.js";
import { chooseTarget, newErrorsNote, runSharedJob, saveTargetChoice } from "./jobs.js";
import { button, el, errorLine, plural } from "./dom.js";
import { Workbench } from "./workbench.js";
import { CANCELLED } from "./protocol.js";

// Options other than dates, which are one choice of three (PS3.15 allows one longitudinal option).
const DATE_KEYS = ["retain_long_full_dates", "retain_long_modified_dates"];

// dcmstudio.deid.keys: the key is PBKDF2-HMAC-SHA256 of the secret with this salt and count
// (a test compares the bytes). Derived here once, natively (~0.3 s in each worker's Python).
const KEY_SALT = "dcmstudio-deid-1";
const KEY_ITERATIONS = 100000;
let sessionKey = null;

const hex = (bytes) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");

// The key of a run (hex), the same for every worker: from the secret, or without one a random key
// drawn once per page session, so the preview and the run agree (tests set `app.jobKey`).
export async function deidKey(secret, app = {}) {
  if (!secret) {
    sessionKey ??= hex(crypto.getRandomValues(new Uint8Array(32)));
    return app.jobKey || sessionKey;
  }
  const encode = (text) => new TextEncoder().encode(text);
  const material = await crypto.subtle.importKey("raw", encode(secret), "PBKDF2", false, ["deriveBits"]);
  return hex(await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: encode(KEY_SALT), iterations: KEY_ITERATIONS }, material, 256));
}

export class DeidWorkbench extends Workbench {
  id = "deid";
  title = "De-identify";
  warmUpKind = "deid";

  constructor(app) {
    super(app);
    this.profile = null;
    this.masks = [];
  }

  mount(panel) {
    this.edition = el("p", { className: "hint", id: "deid-edition", textContent: "Loading the profile…" });
    this.optionBoxes = el("div", { className: "deid-options", id: "deid-options" });
    this.dates = el("fieldset", { className: "deid-dates" }, el("legend", { textContent: "Dates and times" }),
      ...[["", "Replace with dummies or remove (Basic Profile)"],
        ["retain_long_modified_dates", "Shift by a per-patient offset that keeps intervals"],
        ["retain_long_full_dates", "Keep full dates"]].map(([value, label], i) => el("div", {},
        el("input", { type: "radio", name: "deid-dates", value, id: `deid-dates-${i}`, checked: i === 0 }),
        el("label", { htmlFor: `deid-dates-${i}`, textContent: ` ${label}` }))));
    this.secret = el("input", { type: "password", id: "deid-secret", autocomplete: "off" });
    const show = button("Show", () => {
      this.secret.type = this.secret.type === "password" ? "text" : "password";
      show.textContent = this.secret.type === "password" ? "Show" : "Hide";
    }, { className: "small" });
    this.prefix = el("input",
      { type: "text", id: "deid-prefix", value: "DEID", autocomplete: "off", maxLength: 16 });
    this.keepNames = el("input", { type: "checkbox", id: "deid-keep-names" });
    this.cleanPixels = el("input", { type: "checkbox", id: "deid-clean-pixels" });
    this.burnedIn = el("select", { id: "deid-burned-in" },
      el("option", { value: "flag", textContent: "write them, flagged in the report" }),
      el("option", { value: "refuse", textContent: "leave them out unless a mask covers them" }));
    this.cleanPixels.addEventListener("change", () => this.renderMasks());
    this.maskArea = el("div", { className: "deid-masks", id: "deid-masks" });
    this.preview = button("Preview on the first file", () => this.runPreview(), { id: "deid-preview" });
    this.run = button("De-identify", () => this.runJob(), { className: "primary", id: "deid-run" });
    ({ select: this.saveTo, label: this.saveToLabel, dicomdir: this.saveDicomdir } =
      saveTargetChoice("deid-save-to"));
    this.error = errorLine("deid-error");
    this.report = el("div", { className: "report", id: "deid-report", "aria-live": "polite" });
    panel.append(el("div", { className: "edit-layout" },
      el("div", { className: "edit-main" },
        el("h2", { textContent: "De-identify to DICOM PS3.15" }), this.edition,
        el("fieldset", {}, el("legend", { textContent: "Options (each keeps or cleans more than the Basic Profile)" }),
          this.optionBoxes),
        this.dates,
        el("div", { className: "deid-secret" },
          el("label", { htmlFor: "deid-secret", textContent: "Secret" }), this.secret, show,
          el("label", { htmlFor: "deid-prefix", textContent: "Pseudonym prefix" }), this.prefix),
        el("p", { className: "hint", textContent: "With a secret, the same patient gets the same pseudonym and " +
          "date offset and the same UID the same new UID, in any session on any day. Without one, the mapping " +
          "holds for this run only." }),
        el("div", {}, this.keepNames, el("label",
          { htmlFor: "deid-keep-names", textContent: " Keep file names (otherwise pseudonym/00001.dcm …)" })),
        el("div", {}, this.cleanPixels, el("label", { htmlFor: "deid-clean-pixels",
          textContent: " Clean Pixel Data: black out rectangles drawn on the frame below" })),
        el("div", {}, el("label", { htmlFor: "deid-burned-in",
          textContent: "Files that may have text burned into their pixels " +
            "(Burned In Annotation YES, ultrasound, screenshots): " }),
        this.burnedIn),
        this.maskArea, this.error,
        el("div", { className: "actions" },
          this.preview, this.run, this.saveToLabel, this.saveDicomdir)),
      this.report));
    this.app.python.ready.then(() => this.loadProfile(), () => {});
    this.renderMasks();
  }

  async loadProfile() {
    const result = await this.app.python.call("deid_profile_info", {});
    if (!result.ok) { this.edition.textContent = result.error.message; return; }
    const p = result.profile;
    this.profile = p;
    // What the profile does first; where its table comes from only on request.
    this.edition.replaceChildren(
      `${p.basic.meaning}: each of the ${p.rows} attributes PS3.15 Table E.1-1 (edition ${p.edition}) lists is ` +
      "removed, emptied, replaced by a dummy value or, for UIDs, replaced consistently across the files; other " +
      "private elements are removed. The options below keep or clean some of them.",
      el("details", {}, el("summary", { textContent: "Where the table comes from" }),
        el("p", { textContent: `Basic Profile edition ${p.edition}; option columns edition ${p.options_edition} ` +
          `(${p.rows_new_since_options_edition} rows newer than that get theirs by rule). ${p.source}.` })));
    const boxes = p.options.filter((o) => !DATE_KEYS.includes(o.key) && o.key !== "clean_pixel_data")
      .map((o) => el("div", {},
        el("input", { type: "checkbox", id: `deid-${o.key}`, value: o.key }),
        el("label", { htmlFor: `deid-${o.key}`, textContent: ` ${o.meaning.replace(/ Option$/, "")} (${o.code})` })));
    this.optionBoxes.replaceChildren(...boxes);
  }

  selectionChanged() {
    const n = this.selection.files.length;
    this.run.textContent = n > 1 ? `De-identify ${n} files` : "De-identify";
    this.run.disabled = !n;
    this.preview.disabled = !n;
    this.masks = [];
    this.renderMasks();
  }

  options() {
    const options = {};
    for (const box of this.optionBoxes.querySelectorAll("input[type=checkbox]")) options[box.value] = box.checked;
    const dates = this.dates.querySelector("input:checked").value;
    for (const key of DATE_KEYS) options[key] = dates === key;
    options.secret = this.secret.value;
    options.pseudonym_prefix = this.prefix.value.trim().toUpperCase();
    options.keep_names = this.keepNames.checked;
    options.clean_pixel_data = this.cleanPixels.checked;
    options.burned_in = this.burnedIn.value;
    if (this.cleanPixels.checked) {
      options.pixel_masks = this.masks.map(({ x, y, width, height }) => ({ x, y, width, height }));
    }
    return options;
  }

  // Mask rectangles are drawn by dragging on the first selected file's frame.
  async renderMasks() {
    if (!this.cleanPixels.checked || !this.selection.files.length) {
      this.maskArea.replaceChildren();
      return;
    }
    const file = this.selection.files[0];
    const collected = this.app.tasks.collector();
    const result = await this.app.python.call("render_frame", { path: file.path, name: file.name, frame: 0 },
      { onPart: collected.onPart });
    if (!result.ok) {
      this.maskArea.replaceChildren(el("p", { className: "error", textContent: result.error.message }));
      return;
    }
    const r = result.render;
    const pixels = new Uint8ClampedArray(await collected.finished[0].blob.arrayBuffer());
    const frame = new ImageData(pixels, r.columns, r.rows);
    const canvas = el("canvas",
      { width: r.columns, height: r.rows, className: "deid-mask-canvas", id: "deid-mask-canvas" });
    canvas.setAttribute("aria-label", "Drag to add a rectangle to black out");
    const list = el("ul", { className: "deid-mask-list" });
    const draw = (extra) => {
      const g = canvas.getContext("2d");
      g.putImageData(frame, 0, 0);
      g.fillStyle = "rgba(220, 20, 60, 0.55)";
      for (const m of [...this.masks, ...(extra ? [extra] : [])]) g.fillRect(m.x, m.y, m.width, m.height);
      list.replaceChildren(...this.masks.map((m, i) => {
        const remove = button("Remove", () => {
          this.masks.splice(i, 1);
          draw();
        }, { className: "small" });
        return el("li", {}, `x ${m.x}, y ${m.y}, ${m.width} × ${m.height} px `, remove);
      }));
    };
    const at = (event) => {
      const rect = canvas.getBoundingClientRect();
      return { x: Math.round(((event.clientX - rect.left) / rect.width) * r.columns),
        y: Math.round(((event.clientY - rect.top) / rect.height) * r.rows) };
    };
    let start = null;
    const box = (a, b) => ({ x: Math.max(0, Math.min(a.x, b.x)), y: Math.max(0, Math.min(a.y, b.y)),
      width: Math.abs(a.x - b.x), height: Math.abs(a.y - b.y) });
    canvas.addEventListener("pointerdown", (e) => { start = at(e); canvas.setPointerCapture(e.pointerId); });
    canvas.addEventListener("pointermove", (e) => { if (start) draw(box(start, at(e))); });
    canvas.addEventListener("pointerup", (e) => {
      const m = box(start, at(e));
      start = null;
      if (m.width > 0 && m.height > 0) this.masks.push(m);
      draw();
    });
    draw();
    // The same rectangles from the keyboard: a corner and a size in pixels.
    const field = (key, label, max) => el("label", {}, `${label} `,
      el("input", { type: "number", min: 0, max, step: 1, required: true, id: `deid-mask-${key}`,
        className: "small" }));
    const form = el("form", { className: "deid-mask-form", id: "deid-mask-form" },
      field("x", "x", r.columns - 1), field("y", "y", r.rows - 1),
      field("width", "width", r.columns), field("height", "height", r.rows),
      el("button", { type: "submit", textContent: "Add rectangle" }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = (key) => Number(form.querySelector(`#deid-mask-${key}`).value);
      const m = { x: value("x"), y: value("y"), width: Math.min(value("width"), r.columns - value("x")),
        height: Math.min(value("height"), r.rows - value("y")) };
      if (m.width > 0 && m.height > 0) this.masks.push(m);
      draw();
    });
    this.maskArea.replaceChildren(el("p", { className: "hint",
      textContent: `${file.name}: drag to add a rectangle, or type one below; it is blacked out in every frame ` +
        "of every file." }),
    canvas, form, list);
  }

  async runPreview() {
    const file = this.selection.files[0];
    if (!file) return;
    const options = this.options();
    const result = await this.app.python.call("deid_preview",
      { path: file.path, name: file.name, options: { ...options, key: await deidKey(options.secret, this.app) } });
    if (!result.ok) {
      this.error.textContent = `${result.error.file || file.name}: ${result.error.message}`;
      return;
    }
    this.error.textContent = "";
    const r = result.report;
    // What each element became (the preview holds original values: it stays on this page).
    const shown = (value) => (value === null || value === undefined ? ""
      : Array.isArray(value) ? value.join("\\") : String(value));
    const changed = new Map(r.changed.map((c) => [c.path, c]));
    const rows = r.elements.map((e) => {
      const c = changed.get(e.path);
      const after = !c ? "(kept)" : c.op === "delete" ? "(removed)" : shown(c.new);
      // what was done and what decided it, under the element's name (the value columns keep their width)
      return el("tr", {}, el("td", { className: "tag" }, el("code", { textContent: e.tag })),
        el("td", {}, e.path, el("div", { className: "detail", textContent: `${e.does} (${e.by})` })),
        el("td", { className: `action action-${e.action[0]}`, textContent: e.action }),
        el("td", { className: "old", textContent: c ? shown(c.old) : "" }),
        el("td", { className: "new", textContent: after }));
    });
    // showReport, not replaceChildren: a null (no burned-in note) would show as the text "null"
    this.showReport(
      el("h2", { textContent: `${r.file} → ${r.output}` }),
      el("p", { className: "hint", textContent: "Identifying: this preview shows original values. " +
        "It uses the run's key: the same pseudonym, new UIDs and date offset." }),
      el("p", { textContent: Object.entries(r.actions).map(([a, n]) => `${a}: ${n}`).join(" · ") +
        ` · ${r.changes} byte-level changes` }),
      this.burnedInNote(r), this.residualList([r]),
      el("table", { className: "changes" },
        el("thead", {}, el("tr", {}, ...["Tag", "Element", "Action", "Old", "New"]
          .map((h) => el("th", { textContent: h })))),
        el("tbody", {}, ...rows)));
  }

  showReport(...children) {
    this.report.replaceChildren(...children.filter((child) => child !== null && child !== undefined));
  }

  burnedInNote(report) {
    if (!report.burned_in?.flag) return null;
    const reasons = report.burned_in.reasons.join("; ");
    return el("p", { className: "error", textContent: `${report.file}: may have text burned into its pixels ` +
      `(${reasons}). Check the image, and use Clean Pixel Data to black it out.` });
  }

  residualList(reports) {
    const hits = reports.flatMap((r) => (r.residual || []).map((h) => ({ file: r.file, ...h })));
    if (!hits.length) {
      return el("p", { className: "ok",
        textContent: "Residual scan: none of the original identifying values is left." });
    }
    return el("div", { className: "error" },
      el("strong", { textContent: `Residual scan: ${plural(hits.length, "hit")}` }),
      el("ul", {}, ...hits.slice(0, 200).map((h) => {
        const where = h.where === "file name" ? "the file name" : h.where === "preamble" ? "the preamble"
          : `${h.path}${h.tag ? ` ${h.tag}` : ""}`;
        const what = `the original ${h.kind || "value"} “${h.found}”`;
        return el("li", { textContent: `${h.file}: ${where} still holds ${what}` });
      })));
  }

  async runJob() {
    const zipName = "deidentified.zip";
    this.warmUp();
    // The picker first: it needs the click that is still being handled.
    const target = await chooseTarget(this.saveTo.value, zipName, this.saveDicomdir);
    if (!target) return;
    // what the selection holds now, files still being described included
    const files = await this.app.files.resolve();
    if (!files.length) return;
    const task = this.app.tasks.start(`De-identifying ${plural(files.length, "file")} into ${target.label}`);
    const options = { ...this.options(), zip_name: zipName };
    options.key = await deidKey(options.secret, this.app);
    // Nothing is kept per file for the whole job (issue 11: 20,000 files): the report's lines go
    // into Blobs as their turn comes, the mapping is each worker's share, handed over at its end.
    const report = new BlobWriter("application/x-ndjson");
    const encoder = new TextEncoder();
    const lines = new InOrder((line) => report.write(encoder.encode(`${line}\n`)));
    const failures = [];  // [index, file, message] of the steps no worker's share accounts for
    const reports = [];   // the reports the page shows (residual hits, burned-in flags, new errors)
    let learned = null;
    let merged = null;
    // each step checks that its file still starts with the header the first pass learned from
    const itemOf = (f) => ({ checkHead: f.keptHead });
    const result = await runSharedJob(this.app, { task, kind: "deid_share", options, files, target, zipName, itemOf, hooks: {
      before: async (items) => {
        // it learns from the headers kept from opening the files (files.js), read again only
        // where none was kept; the steps then read each file (a changed file is named there)
        const first = await this.firstPass(task, options, items.map((item, i) => ({ ...item, keptHead: files[i].keptHead })));
        learned = first.options?.learned;
        return first;
      },
      step: (step, item) => {
        const message = step.error?.message || `${item.name} could not be read.`;
        if (!step.ok) failures.push([item.index, item.name, message]);
        lines.put(item.index - 1, step.line || JSON.stringify({ file: item.name, error: message }));
        const r = step.report;
        if (r && (r.residual.length || r.burned_in?.flag || r.new_errors?.length)) reports[item.index - 1] = r;
      },
      settle: async ({ shares }) => {
        merged = await this.merge(options, learned, shares.map((share) => share.mapping), failures, report.finish(),
          zipName);
        if (!merged.ok) return false;
        return this.settle(task, merged, reports.filter(Boolean), target);
      },
    } });
    if (!result.ok) {
      if (merged && !merged.ok) return this.failed(task, merged.error);
      if (result.error.type === "Discarded") return task.fail("De-identified, then discarded: nothing was kept.");
      return this.failed(task, result.error, "De-identification cancelled: nothing was kept.");
    }
    this.error.textContent = "";
    if (result.blob) this.app.tasks.offer({ finished: [{ name: zipName, blob: result.blob }] }, { click: true });
    this.app.tasks.offer({ finished: merged.outputs });
    const s = merged.summary;
    const gained = reports.filter((r) => r?.new_errors?.length).length;
    // as Edit's: the files left out are counted where the person looks first, named in the report
    const failed = s.failed?.length || 0;
    const count = failed ? `${s.files} of ${plural(files.length, "file")}` : plural(s.files, "file");
    task.finish(`De-identified ${count} of ${plural(s.patients, "patient")} into ${target.label}` +
      (failed ? `; ${failed} could not be de-identified (see De-identify)` : "") +
      (gained ? `; ${gained} gained a validation error (see De-identify)` : ""));
    this.lastRun = { files: files.length, written: result.written, workers: result.workers };
  }

  // The first pass over the pool: every file's identifying values, learned before any output is
  // made (see runSharedJob's `before`), then folded once for the whole job by a worker
  // (dcmstudio.jobs.fold_learned): in input order, whichever worker learned which file. Only the
  // answers that taught something are kept for it.
  async firstPass(task, options, items) {
    let done = 0;
    const outputs = [];
    const read = [];
    const taught = [];
    // a first pass step is a header read and learned: more of them per round trip
    const job = this.app.python.job({ kind: "deid_learn", options, items, chunk: 16, onPart: () => {},
      onStep: (step, item) => {
        const { identifiers, patients } = step.ok ? step : {};
        if (identifiers?.texts.length || identifiers?.ideographs.length || patients?.length) {
          taught.push({ index: item.index, identifiers, patients });
        }
        outputs[item.index - 1] = step.output || item.name;
        read[item.index - 1] = Boolean(step.learned);
        task.progress(++done, items.length, `first pass: ${item.name}`);
      } });
    let cancelled = false;
    task.onCancel = () => { cancelled = true; job.cancel(); };
    const result = await job.done;
    if (!result.ok) return result;
    if (cancelled) return CANCELLED;
    const folded = await this.app.python.call("deid_learned", { files: taught.sort((a, b) => a.index - b.index),
      shares: result.shares.map((share) => ({ identifiers: share.identifiers })) });
    if (!folded.ok) return folded;
    return { ok: true, options: { learned: folded.learned }, names: outputs,
      items: read.map((was) => ({ learned: was })) };
  }

  // One mapping and summary from every worker's share (Python, dcmstudio.jobs.merge_deid_shares),
  // and the report (`report`: every file's line in input order).
  async merge(options, learned, shares, failures, report, zipName) {
    const collected = this.app.tasks.collector();
    const result = await this.app.python.call("deid_merge", { options, learned, shares, failures, zip_name: zipName },
      { onPart: collected.onPart });
    if (!result.ok) return result;
    return { ok: true, summary: result.summary,
      outputs: [...collected.finished, { name: result.report_name, blob: report }] };
  }

  // Shows the run's report; with residual hits, the output is finished (ZIP closed, folder kept,
  // download offered) only if the person chooses so. Resolves with whether to keep it.
  settle(task, merged, reports, target) {
    const s = merged.summary;
    const gained = reports.filter((r) => r.new_errors?.length).map((r) => ({ file: r.file, new_errors: r.new_errors }));
    let choice = null;
    let decided = Promise.resolve(true);
    if (s.residual_hits) {
      decided = new Promise((resolve) => {
        const keep = button(`Keep it anyway (${target.label})`, () => {
          choice.replaceChildren(el("p", { textContent: `Kept: ${target.label}.` }));
          resolve(true);
        }, { id: "deid-keep-anyway" });
        const discard = button("Discard it", () => {
          choice.replaceChildren(el("p", { textContent: "Discarded: nothing was kept." }));
          resolve(false);
        }, { id: "deid-discard" });
        task.onCancel = () => discard.click();
        choice = el("div", { className: "error", id: "deid-choice" },
          el("p", { textContent: `The residual scan found ${plural(s.residual_hits, "original identifying value")} ` +
            `in the output (listed below). It was not offered: keep it (${target.label}) or discard it.` }),
          keep, discard);
      });
      task.progress(1, 1, "waiting for your choice (see De-identify)");
    }
    this.showReport(
      el("h2", { textContent: `De-identified ${s.files} files (${s.profile})` }),
      el("p", { textContent: `${s.uids_replaced} UIDs replaced consistently · ${s.patients} patients · ` +
        (s.deterministic ? "reproducible with this secret" : "random mapping (no secret)") }),
      choice,
      el("p", { className: "hint", textContent: "The mapping (original → new IDs, UIDs, date offsets; " +
        "also as id_old,id_new " +
        "CSVs for UIDs and patient IDs) and the report are in the task bar; their names start with IDENTIFYING: " +
        "they link the data to real people, keep them apart and safe." }),
      ...(s.failed || []).map((f) => el("p", { className: "error", textContent: `${f.file}: ${f.message}` })),
      newErrorsNote(gained),
      ...reports.map((r) => this.burnedInNote(r)).filter(Boolean),
      this.residualList(reports));
    return decided;
  }
}
