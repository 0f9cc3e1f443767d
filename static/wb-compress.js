// The Compress workbench: the selection at left written again in another transfer syntax, losslessly
// (RLE Lossless, Deflated, uncompressed Explicit VR Little Endian, and whatever the wasm codecs write:
// compress_choices lists them), as one file or a ZIP, with a report per file. Python does the work
// (the "compress" job over dcmstudio.codecs) and decodes each output again to compare it with its
// source before it is offered. Lossy JPEG 2000 (at a ratio) and JPEG Baseline (at a quality) are a
// separate choice, never the default: picking one shows its setting and asks the person to confirm
// that pixel values change; its report gives ratio, PSNR and largest error.
import { chooseTarget, newErrorsNote, runSharedJob, saveTargetChoice } from "./jobs.js";
import { SAVE_TARGETS } from "./outputs.js";
import { button, checkbox, el, errorLine, onFirstShow, plural, selectionStem } from "./dom.js";
import { NOTHING_SELECTED, Workbench } from "./workbench.js";

const kilobytes = (bytes) => `${(bytes / 1e3).toLocaleString("en", { maximumFractionDigits: 1 })} kB`;
const ratio = (input, output) => (input ? `${Math.round((100 * output) / input)}%` : "");
// "120 kB → 60 kB (50%)" for a report with input_bytes and output_bytes.
const sizes = (r) =>
  `${kilobytes(r.input_bytes)} → ${kilobytes(r.output_bytes)} (${ratio(r.input_bytes, r.output_bytes)})`;

export class CompressWorkbench extends Workbench {
  id = "compress";
  title = "Compress";

  constructor(app) {
    super(app);
    this.targets = [];
    this.lossyTargets = [];
  }

  mount(panel) {
    this.scope = el("p", { className: "compress-scope", id: "compress-scope" });
    this.targetList = el("div", { className: "compress-targets", id: "compress-targets" },
      el("p", { className: "hint", textContent: "Loading the transfer syntaxes…" }));
    this.lossyList = el("div", { className: "compress-targets", id: "compress-lossy-targets" });
    this.setting = el("input", { type: "number", id: "compress-setting", required: true });
    this.settingLabel = el("label", { htmlFor: "compress-setting" });
    this.settingHint = el("span", { className: "detail", id: "compress-setting-hint" });
    this.setting.setAttribute("aria-describedby", "compress-setting-hint");
    this.setting.addEventListener("input", () => this.renderScope());
    let confirmLabel;
    [this.confirmLossy, confirmLabel] = checkbox("compress-lossy-confirm",
      "I understand that pixel values change: each output gets a new SOP Instance UID, is marked lossy " +
      "((0028,2110) 01, ratio and method), and references to it from the other selected files follow it",
      { onchange: () => this.renderScope() });
    this.lossyControls = el("div", { className: "compress-lossy", id: "compress-lossy-controls", hidden: true },
      el("div", { className: "field" }, this.settingLabel, this.setting, this.settingHint), confirmLabel);
    this.lossyFieldset = el("fieldset", { className: "scope", hidden: true },
      el("legend", { textContent: "Lossy (changes pixel values)" }), this.lossyList, this.lossyControls);
    let verifyLabel;
    [this.verify, verifyLabel] = checkbox("compress-verify",
      "Check every output: decode it again and compare each frame with the source", { checked: true });
    this.run = button("", () => this.start(), { className: "primary", id: "compress-run", disabled: true });
    // Several files are shared out over the workers and written as they are made (jobs.js).
    ({ select: this.saveTo, label: this.saveToLabel, dicomdir: this.saveDicomdir } =
      saveTargetChoice("compress-save-to", () => this.renderScope()));
    this.error = errorLine("compress-error");
    this.report = el("div", { className: "report compress-report", id: "compress-report", "aria-live": "polite" });
    panel.append(el("div", { className: "compress-layout" },
      el("div", { className: "compress-main" },
        el("h2", { textContent: "Write the selection in another transfer syntax" }),
        this.scope,
        el("fieldset", { className: "scope" }, el("legend", { textContent: "Transfer syntax" }), this.targetList),
        this.lossyFieldset,
        verifyLabel,
        el("p", { className: "hint", textContent: "Lossless syntaxes keep every pixel value, so SOP Instance UIDs " +
          "are kept. Trailing padding and digital signatures, which re-encoding invalidates, are left out and " +
          "listed. One file downloads as itself; several go, with their names and folders, into a ZIP or, where " +
          "the browser allows, a folder you pick." }),
        el("div", { className: "actions" }, this.run, this.saveToLabel, this.saveDicomdir),
        this.error),
      this.report));
    onFirstShow(panel, () => this.loadTargets());
    this.renderScope();
  }

  async loadTargets() {
    const result = await this.app.python.call("compress_choices", {});
    if (!result.ok) {
      this.error.textContent = result.error.message;
      return;
    }
    this.targets = result.targets;
    this.lossyTargets = result.lossy_targets || [];
    const radio = (t, id, checked) => {
      const input = el("input", { type: "radio", name: "compress-target", id, value: t.uid, checked });
      input.addEventListener("change", () => this.chose());
      return input;
    };
    this.targetList.replaceChildren(...this.targets.map((t, i) => {
      const id = `compress-target-${i}`;
      return el("div", {}, radio(t, id, i === 0), el("label", { htmlFor: id },
        el("span", { textContent: ` ${t.name}${t.compressed ? "" : " (uncompressed)"}` }),
        el("span", { className: "detail", textContent: ` ${t.uid}` })));
    }));
    // the same radio group: one choice, lossless by default
    this.lossyList.replaceChildren(...this.lossyTargets.map((t, i) => {
      const id = `compress-lossy-${i}`;
      return el("div", {}, radio(t, id, false), el("label", { htmlFor: id },
        el("span", { textContent: ` ${t.name} (lossy, ${t.setting === "ratio" ? "at a compression ratio"
          : "at a quality; 8-bit samples"})` }),
        el("span", { className: "detail", textContent: ` ${t.uid}` })));
    }));
    this.lossyFieldset.hidden = !this.lossyTargets.length;
    this.renderScope();
  }

  // A lossy choice shows its setting (at its default) and asks again for confirmation.
  chose() {
    const lossy = this.lossyTarget();
    this.lossyControls.hidden = !lossy;
    this.confirmLossy.checked = false;
    // a lossy output is always decoded again: its report gives the ratio, PSNR and largest error
    if (lossy) this.verify.checked = true;
    this.verify.disabled = Boolean(lossy);
    if (lossy) {
      const ratio = lossy.setting === "ratio";
      Object.assign(this.setting,
        { min: lossy.min, max: lossy.max, step: ratio ? "0.5" : "1", value: lossy.default });
      this.settingLabel.textContent = ratio ? "Compression ratio (uncompressed : compressed) " : "Quality ";
      this.settingHint.textContent = ratio
        ? ` ${lossy.min} to ${lossy.max}; 10 means a tenth of the uncompressed size`
        : ` ${lossy.min} (smallest) to ${lossy.max} (best)`;
    }
    this.renderScope();
  }

  target() {
    const checked = this.panelChecked();
    return [...this.targets, ...this.lossyTargets].find((t) => t.uid === checked?.value) || null;
  }

  panelChecked() {
    return this.targetList.querySelector("input:checked") || this.lossyList.querySelector("input:checked");
  }

  lossyTarget() {
    const checked = this.lossyList.querySelector("input:checked");
    return this.lossyTargets.find((t) => t.uid === checked?.value) || null;
  }

  // {ratio} or {quality} as typed, or null while it is out of range.
  lossySetting() {
    const lossy = this.lossyTarget();
    const value = Number(this.setting.value);
    if (!lossy || this.setting.value === "" || !(value >= lossy.min && value <= lossy.max)) return null;
    if (lossy.setting === "quality" && !Number.isInteger(value)) return null;
    return { [lossy.setting]: value };
  }

  targetLabel(target) {
    const setting = this.lossyTarget() && this.lossySetting();
    if (!setting) return target.name;
    return `${target.name} (lossy, ${setting.ratio ? `${setting.ratio}:1` : `quality ${setting.quality}`})`;
  }

  selectionChanged() {
    this.renderScope();
  }

  // What the action will touch: how many files, and in which transfer syntaxes they are now.
  renderScope() {
    const files = this.selection.files;
    const bySyntax = new Map();
    for (const f of files) {
      bySyntax.set(f.transfer_syntax.name, (bySyntax.get(f.transfer_syntax.name) || 0) + 1);
    }
    const now = [...bySyntax].map(([name, n]) => `${n} ${name}`).join(", ");
    this.scope.textContent = files.length
      ? `Acts on the selection at left: ${this.selection.label} (${plural(files.length, "file")}; now ${now}).`
      : NOTHING_SELECTED;
    const target = this.target();
    const lossyReady = !this.lossyTarget() || (this.lossySetting() && this.confirmLossy.checked);
    this.run.disabled = !files.length || !target || !lossyReady;
    const label = target ? this.targetLabel(target) : "";
    if (!target) this.run.textContent = "Write";
    else if (files.length === 1) this.run.textContent = `Write ${files[0].name.split("/").pop()} as ${label}`;
    else {
      const into = this.saveTo.value === SAVE_TARGETS.FOLDER ? "into a folder" : "ZIP";
      this.run.textContent = `Write ${plural(files.length, "file")} as ${label} (${into})`;
    }
    this.saveTo.hidden = this.saveToLabel.hidden = files.length <= 1;
  }

  async start() {
    const target = this.target();
    if (!target) return;
    const lossy = this.lossyTarget() ? this.lossySetting() : null;
    if (this.lossyTarget() && (!lossy || !this.confirmLossy.checked)) return; // never lossy unless confirmed
    if (this.selection.files.length > 1) return this.startShared(target, lossy);
    // what the selection holds now, files still being described included
    const files = await this.app.files.resolve();
    if (!files.length) return;
    this.error.textContent = "";
    const single = files.length === 1;
    const instances = lossy ? files.map((f) => f.sop_instance_uid).filter(Boolean) : [];
    const options = { transfer_syntax: target.uid, verify: this.verify.checked, single,
      zip_stem: selectionStem(this.selection), ...(lossy ? { lossy, instances, key: lossyKey() } : {}) };
    const items = files.map((f) => ({ path: f.path, name: f.name, sop_instance_uid: f.sop_instance_uid || null }));
    const what = single ? files[0].name : plural(files.length, "file");
    this.run.disabled = true;
    const { task, collected, done } = this.job(`Writing ${what} as ${this.targetLabel(target)}`, "compress",
      options, items);
    const result = await done;
    this.renderScope();
    if (!result.ok) return this.failed(task, result.error, "Compressing cancelled: nothing was kept.");
    const s = result.summary;
    // An empty ZIP (every file refused) is not worth a download.
    if (s.files) this.app.tasks.offer(collected, { click: true });
    const failed = files.length - s.files;
    const gained = s.files_with_new_errors
      ? `; ${s.files_with_new_errors} gained a validation error (see Compress)` : "";
    const notWritten = failed ? `; ${failed} could not be written (see Compress)` : "";
    task.finish(`Wrote ${plural(s.files, "file")} as ${this.targetLabel(target)}${notWritten}${gained}`);
    this.renderReport(files, withDeferred(result.steps, result.deferred), s);
  }

  // Several files: shared out over the workers (jobs.js runSharedJob), each output written to the
  // folder, ZIP file or download as it is made. A lossy run's new UIDs are keyed by the run's key,
  // so every worker knows the new UID of every file; files that refer to others come last.
  async startShared(target, lossy) {
    const zipName = `${selectionStem(this.selection)}_${target.suffix}.zip`;
    // The picker first: it needs the click that is still being handled.
    const saveTarget = await chooseTarget(this.saveTo.value, zipName, this.saveDicomdir);
    if (!saveTarget) return;
    // The scope is decided now, with every file that is still being described.
    const files = await this.app.files.resolve();
    if (!files.length) return;
    this.error.textContent = "";
    this.run.disabled = true;
    const options = { transfer_syntax: target.uid, verify: this.verify.checked, zip_stem: selectionStem(this.selection),
      ...(lossy ? { lossy, instances: files.map((f) => f.sop_instance_uid).filter(Boolean) } : {}) };
    const label = this.targetLabel(target);
    const task = this.app.tasks.start(`Writing ${plural(files.length, "file")} as ${label} into ${saveTarget.label}`);
    const result = await runSharedJob(this.app, { task, kind: "compress", options, files, target: saveTarget, zipName,
      itemOf: (f) => ({ sop_instance_uid: f.sop_instance_uid || null }), keepSteps: true });
    this.renderScope();
    if (!result.ok) {
      const nothing = result.error.message.startsWith("Nothing");
      return this.failed(task, result.error, nothing ? result.error.message : "Compressing cancelled: nothing was kept.");
    }
    const { steps } = result;
    // The run's summary from every file's step, whichever worker made it (a share knows only its own).
    const unwritten = Object.fromEntries(files.filter((f, i) => f.sop_instance_uid && !steps[i]?.report)
      .map((f) => [f.sop_instance_uid, f.name]));
    const summarised = await this.app.python.call("compress_summary", { options, unwritten,
      reports: steps.filter((step) => step?.report).map((step) => step.report), failures: result.summary.failed });
    if (!summarised.ok) return this.failed(task, summarised.error);
    const s = summarised.summary;
    // An empty ZIP (every file refused) is not worth a download.
    if (result.blob && s.files) this.app.tasks.offer({ finished: [{ name: zipName, blob: result.blob }] }, { click: true });
    this.lastRun = { files: files.length, written: result.written, workers: result.workers };
    const failed = files.length - s.files;
    const gained = s.files_with_new_errors
      ? `; ${s.files_with_new_errors} gained a validation error (see Compress)` : "";
    const notWritten = failed ? `; ${failed} could not be written (see Compress)` : "";
    task.finish(`Wrote ${plural(s.files, "file")} as ${label} into ${saveTarget.label}${notWritten}${gained}`);
    this.renderReport(files, steps, s);
  }

  renderReport(files, steps, summary) {
    const rows = steps.map((step, i) => {
      const r = step.ok ? step.report : null;
      const problem = !step.ok ? step.error.message : step.error?.message;
      if (!r) {
        return el("tr", { className: "failed" }, el("td", { textContent: files[i].name }),
          el("td", { colSpan: 5, className: "error", textContent: problem || "not written" }));
      }
      const newUid = r.sop_instance_uid?.new && r.sop_instance_uid.new !== r.sop_instance_uid.old;
      const followed = r.references_followed?.length;
      const notes = [...r.dropped.map((d) => `left out ${d}`), r.not_verified_because,
        newUid ? "new SOP Instance UID" : null,
        followed ? `${plural(followed, "reference")} to recompressed files followed` : null]
        .filter(Boolean);
      const check = r.lossy ? lossyCheck(r.lossy)
        : r.frames === 0 ? "no pixel data" : r.verified ? "✓ pixels identical" : "not checked";
      return el("tr", {},
        el("td", { textContent: r.file }),
        el("td", { textContent: `${r.source_transfer_syntax.name} → ${r.transfer_syntax.name}` }),
        el("td", { className: "number", textContent: String(r.frames) }),
        el("td", { className: "number", textContent: sizes(r) }),
        el("td", { className: r.verified && !r.lossy ? "ok" : r.lossy ? "lossy" : "", textContent: check }),
        el("td", { className: "detail", textContent: notes.join("; "), title: r.sop_instance_uid?.new || "" }));
    });
    const failed = steps.length - summary.files;
    const dangling = (summary.dangling_references || []).map((d) => el("p", { className: "error",
      textContent: `${d.file} refers to ${d.refers_to.join(", ")}, which could not be written: ` +
        "that reference now names a UID no written file has." }));
    const checked = summary.lossy
      ? "every output decoded again and measured: PSNR against the largest value Bits Stored holds " +
        "(2^BitsStored − 1)"
      : `${summary.verified} of ${summary.files} checked pixel-identical`;
    const wrote = `Wrote ${plural(summary.files, "file")} as ${summary.transfer_syntax.name}`;
    const columns = ["File", "Transfer syntax", "Frames", "Size", summary.lossy ? "Decoded again" : "Check", "Notes"];
    this.report.replaceChildren(
      el("h2", { textContent: `${wrote}${lossyLabel(summary.lossy)}` }),
      el("p", { className: "detail", id: "compress-summary",
        textContent: `${sizes(summary)}; ${checked}${failed ? `; ${failed} not written` : ""}.` }),
      ...dangling,
      el("table", { className: "changes compress-files" },
        el("thead", {}, el("tr", {}, ...columns.map((h) => el("th", { textContent: h })))),
        el("tbody", {}, ...rows)),
      ...[newErrorsNote(steps.filter((step) => step.ok && step.report?.new_errors?.length)
        .map((step) => ({ file: step.report.file, new_errors: step.report.new_errors })))].filter(Boolean));
  }
}

// A random key per lossy run: new SOP Instance UIDs are derived from it (dcmstudio.uids.keyed_uid).
function lossyKey() {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// What decoding a lossy output again found: the ratio it achieved, its PSNR and largest error.
function lossyCheck(l) {
  const psnr = l.psnr_db === null ? "no sample changed" : `PSNR ${l.psnr_db.toFixed(1)} dB`;
  return `ratio ${l.achieved_ratio}:1 · ${psnr} · largest error ${l.max_abs_error}`;
}

// Files without pixel data in a lossy run are written last (with their references followed): their
// steps only said so, and the finish brought their results, in the same order.
function withDeferred(steps, deferred = []) {
  const later = [...deferred];
  return steps.map((step) => (step.ok && step.deferred ? { ok: true, ...later.shift() } : step));
}

// " (lossy, 10:1)" or " (lossy, quality 90)" for a lossy run's summary, else "".
function lossyLabel(l) {
  if (!l) return "";
  return ` (lossy, ${l.ratio ? `${l.ratio}:1` : `quality ${l.quality}`})`;
}
