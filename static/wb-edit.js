// The Edit workbench: pending changes (made here or in the Tags tree), their scope, a preview of
// exactly what changes in one file, and the edited files as a download. Python does the editing.
import { Op } from "./protocol.js";
import { describeEdit } from "./edits.js";
import { chooseTarget, newErrorsNote, runSharedJob, saveTargetChoice } from "./jobs.js";
import { button, el, plural } from "./dom.js";
import { Workbench } from "./workbench.js";

const VRS = ["", "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV",
  "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV"];
const PATH_EXAMPLES = "PatientName, (0010,0020), RequestAttributesSequence[0].RequestedProcedureID, " +
  "(0040,0275)[*].(0040,1001)";
const option = (value, text = value) => el("option", { value, textContent: text });
const HINT = "Edit values in place in the Tags tab too (click a value, Enter to keep, Esc to drop). Only the edited " +
  "elements and the lengths around them change; every other byte stays identical, and each output is checked.";
// The edited files whose input was cut short (the file tree marks them once described): an edit
// changes only what it edits, so their outputs are cut short in the same place. `files`: the
// job's, in its order; `failed`: [{ index }] of those it could not edit (their 1-based place).
function cutShortInputs(files, failed) {
  const left = new Set(failed.map((f) => f.index));
  return files.filter((f, i) => f.truncated && !left.has(i + 1));
}

// Those files, a line each under what it means; null when there are none.
function cutShortNote(cut) {
  if (!cut.length) return null;
  return el("div", { className: "error cut-short" },
    el("p", { textContent: `${plural(cut.length, "input")} ${cut.length === 1 ? "was" : "were"} cut short: ` +
      `${cut.length === 1 ? "its output is" : "their outputs are"} cut short in the same place ` +
      "(only the edited elements changed)." }),
    el("ul", {}, ...cut.slice(0, 200).map((f) => el("li", { textContent: `${f.name}: ${f.truncated}` }))));
}

const failures = (failed) => (failed.length
  ? el("ul", { className: "error" }, failed.map((f) => el("li", { textContent: `${f.file}: ${f.message}` }))) : null);

function stem(name) {
  const base = name.split("/").pop();
  return base.includes(".") ? base.slice(0, base.lastIndexOf(".")) : base;
}

export class EditWorkbench extends Workbench {
  id = "edit";
  title = "Edit";
  warmUpKind = "edit";

  mount(panel) {
    const edits = this.app.edits;
    edits.onChange(() => this.renderPending());

    // Scope: the file picked here, or every file selected at left.
    this.fileSelect = el("select", { id: "edit-file", "aria-label": "The file to apply to" });
    this.scopeFile = el("input", { type: "radio", name: "edit-scope", value: "file", id: "edit-scope-file",
      checked: true });
    this.scopeAll = el("input", { type: "radio", name: "edit-scope", value: "all", id: "edit-scope-all" });
    this.scopeAllLabel = el("label", { htmlFor: "edit-scope-all" });
    for (const input of [this.scopeFile, this.scopeAll]) input.addEventListener("change", () => this.renderScope());
    this.fileSelect.addEventListener("change", () => this.renderScope());
    this.scopeSummary = el("p", { className: "hint", id: "edit-scope-summary", "aria-live": "polite" });
    const scope = el("fieldset", { className: "scope" }, el("legend", { textContent: "Apply to" }),
      el("div", {}, this.scopeAll, this.scopeAllLabel),
      el("div", {}, this.scopeFile, el("label", { htmlFor: "edit-scope-file", textContent: "this file: " }),
        this.fileSelect),
      this.scopeSummary);

    // A new change, typed in (the Tags tree adds them too).
    this.op = el("select", { id: "edit-op" }, ["set", "add", "delete"].map((o) => option(o)));
    this.path = el("input", { id: "edit-path", placeholder: PATH_EXAMPLES, autocomplete: "off" });
    this.value = el("input", { id: "edit-value", autocomplete: "off",
      placeholder: "value; templates {index}, {index:04d}, {uid}, {name}" });
    this.vr = el("select", { id: "edit-vr", "aria-label": "VR, for adding an element the dictionary does not know" },
      VRS.map((v) => option(v, v || "VR (auto)")));
    const add = button("Add change", () => this.addFromForm(), { id: "edit-add" });
    this.formError = el("p", { className: "error", role: "alert" });
    for (const input of [this.path, this.value]) {
      input.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); this.addFromForm(); } });
    }
    const remap = button("New UIDs for all instances (consistent)", () => edits.add({ op: "remap_uids" }),
      { id: "edit-remap" });
    const form = el("div", { className: "edit-form" },
      el("label", { htmlFor: "edit-op", textContent: "Change" }), this.op,
      el("label", { htmlFor: "edit-path", className: "visually-hidden", textContent: "Element path" }), this.path,
      el("label", { htmlFor: "edit-value", className: "visually-hidden", textContent: "New value" }), this.value,
      this.vr, add, remap);

    // The pending list.
    this.pending = el("ol", { className: "pending", id: "edit-pending" });
    this.pendingTitle = el("h2", { textContent: "Pending changes" });
    const undo = button("Undo last", () => edits.undo(), { className: "small" });
    const clear = button("Clear", () => edits.replace([]), { className: "small" });
    const load = el("input", { type: "file", accept: ".json,application/json", id: "edit-load",
      className: "visually-hidden", onchange: () => this.loadList(load) });
    const exportJson = button("Save edit list (JSON)", () => this.exportEdits("json"),
      { className: "small", id: "edit-export-json" });
    const exportScript = button("Export pydicom script", () => this.exportEdits("script"),
      { className: "small", id: "edit-export-script" });

    this.preview = button("Preview on this file", () => this.runPreview(), { id: "edit-preview" });
    this.apply = button("", () => this.runApply(), { className: "primary", id: "edit-apply" });
    // Where a series goes: written as it is made where the browser lets a page write to disk.
    ({ select: this.saveTo, label: this.saveToLabel, dicomdir: this.saveDicomdir } =
      saveTargetChoice("edit-save-to", () => this.renderScope()));
    this.report = el("div", { className: "report", id: "edit-report", "aria-live": "polite" });

    panel.append(el("div", { className: "edit-layout" },
      el("div", { className: "edit-main" },
        scope,
        el("div", { className: "pending-head" }, this.pendingTitle, undo, clear,
          el("label", { htmlFor: "edit-load", className: "button small", textContent: "Load edit list…" }), load,
          exportJson, exportScript),
        this.pending, form, this.formError,
        el("p", { className: "hint", textContent: HINT }),
        el("div", { className: "actions" },
          this.preview, this.apply, this.saveToLabel, this.saveDicomdir)),
      this.report));
    this.renderPending();
    this.renderScope();
  }

  selectionChanged() {
    const files = this.selection.files;
    this.fileSelect.replaceChildren(...files.slice(0, 2000).map((f) => option(f.key, f.name)));
    // The scope follows the selection: a series (or more) selected means all of it.
    (files.length > 1 ? this.scopeAll : this.scopeFile).checked = true;
    this.renderScope();
  }

  scopeFiles() {
    if (this.scopeAll.checked) return this.selection.files;
    const file = this.app.files.get(this.fileSelect.value);
    return file ? [file] : [];
  }

  renderScope() {
    const n = this.selection.files.length;
    const label = this.selection.label || "nothing";
    this.scopeAllLabel.textContent = `the selection at left: ${label} (${plural(n, "file")})`;
    const files = this.scopeFiles();
    const count = files.length;
    this.apply.textContent = count > 1 ? `Apply to ${count} files` : "Apply and download";
    this.saveTo.hidden = this.saveToLabel.hidden = count <= 1;
    const saved = (this.saveTo.selectedOptions[0]?.textContent || "").replace(/…$/, "");
    this.scopeSummary.textContent = !count ? "Nothing selected: open files or pick some at left."
      : count > 1 ? `Apply writes ${count} edited files, saved ${saved}.`
        : `Apply writes 1 edited file: ${files[0].name}.`;
    this.updateButtons();
  }

  updateButtons() {
    const hasEdits = this.app.edits.list.length > 0;
    this.apply.disabled = !hasEdits || !this.scopeFiles().length;
    this.preview.disabled = !hasEdits || !this.app.files.get(this.fileSelect.value);
  }

  renderPending() {
    const list = this.app.edits.list;
    this.pendingTitle.textContent = `Pending changes (${list.length})`;
    this.pending.replaceChildren(...list.map((edit, i) => {
      const remove = button("Remove", () => this.app.edits.remove(i),
        { className: "small", "aria-label": `Remove: ${describeEdit(edit)}` });
      return el("li", {}, el("span", { className: `op op-${edit.op}`, textContent: edit.op }),
        el("span", { textContent: describeEdit(edit) }), remove);
    }));
    if (!list.length) {
      const none = "None yet: add one below, or click a value in the Tags tab.";
      this.pending.append(el("li", { className: "empty", textContent: none }));
    }
    this.app.setBadge?.("edit", list.length);
    this.updateButtons?.();
  }

  async addFromForm() {
    const edit = { op: this.op.value, path: this.path.value.trim() };
    if (edit.op !== "delete") edit.value = this.value.value;
    if (this.vr.value) edit.vr = this.vr.value;
    const check = await this.app.python.call("check_edits", { edits: [edit] });
    if (!check.ok) {
      this.formError.textContent = check.error.message;
      return;
    }
    this.formError.textContent = "";
    this.app.edits.add(edit);
    // The next change may have been typed while this one was checked: clear only what was sent.
    if (this.path.value.trim() === edit.path && (edit.value === undefined || this.value.value === edit.value)) {
      this.path.value = "";
      this.value.value = "";
      this.path.focus();
    }
  }

  async loadList(input) {
    const file = input.files[0];
    input.value = "";
    if (!file) return;
    const result = await this.app.python.call("load_edits", { text: await file.text(), name: file.name });
    if (!result.ok) {
      this.formError.textContent = `${file.name}: ${result.error.message}`;
      return;
    }
    this.formError.textContent = "";
    this.app.edits.replace(result.edits);
  }

  async exportEdits(kind) {
    const collected = this.app.tasks.collector();
    const result = await this.app.python.call("export_edits", { edits: this.app.edits.list, kind },
      { onPart: collected.onPart });
    if (!result.ok) {
      this.formError.textContent = result.error.message;
      return;
    }
    this.app.tasks.offer(collected, { click: true });
  }

  async runPreview() {
    const file = this.app.files.get(this.fileSelect.value);
    if (!file) return;
    this.report.replaceChildren(el("p", { textContent: `Previewing on ${file.name}…` }));
    const result = await this.app.python.call("preview_edits", { path: file.path, name: file.name,
      edits: this.app.edits.list });
    if (!result.ok) {
      const message = `${result.error.file || file.name}: ${result.error.message}`;
      this.report.replaceChildren(el("p", { className: "error", role: "alert", textContent: message }));
      return;
    }
    this.report.replaceChildren(this.reportView(result.report));
  }

  reportView(report) {
    const rows = report.changes.map((c) => el("tr", {},
      el("td", { textContent: c.op }), el("td", {}, el("code", { textContent: c.path || c.tag || "" })),
      el("td", { className: "old", textContent: c.old ?? "" }),
      el("td", { className: "new", textContent: c.new ?? "" }),
      el("td", { className: "range", textContent: c.byte_range ? `${c.byte_range[0]}–${c.byte_range[1]}` : "" })));
    const absent = (report.absent || [])
      .map((a) => el("li", { textContent: `${a.op} ${a.path}: not in this file, nothing done` }));
    const sizes = `${report.size_in} → ${report.size_out} bytes · every other byte verified identical`;
    return el("div", {},
      el("h2", { textContent: `${report.file}: ${plural(report.changes.length, "change")}` }),
      el("p", { className: "detail", textContent: sizes + (report.deflated ? " · deflated again" : "") }),
      el("table", { className: "changes" },
        el("thead", {}, el("tr", {},
          ["Change", "Element", "Old", "New", "Output bytes"].map((h) => el("th", { textContent: h })))),
        el("tbody", {}, rows)),
      absent.length ? el("ul", { className: "absent" }, absent) : null);
  }

  async runApply() {
    if (!this.app.edits.list.length) return;
    const many = this.scopeAll.checked && this.selection.files.length > 1;
    if (!many) {
      await this.applyToOne();
      return;
    }
    const series = this.selection.level === "series";
    const base = series ? stem(this.selection.label).replace(/\W+/g, "_").replace(/^_+|_+$/g, "") : "";
    const zipName = `${base || "dcmstudio"}_edited.zip`;
    this.warmUp();
    // The picker first: it needs the click that is still being handled.
    const target = await chooseTarget(this.saveTo.value, zipName, this.saveDicomdir);
    if (!target) return;
    // The scope is decided now, with every file that is still being described.
    const files = await this.app.files.resolve();
    const task = this.app.tasks.start(`Editing ${files.length} files into ${target.label}`);
    const result = await runSharedJob(this.app, {
      task, kind: "edit", options: { edits: this.app.edits.list, zip_name: zipName }, files, target, zipName,
    });
    if (!result.ok) {
      const nothing = result.error.message.startsWith("Nothing");
      return this.failed(task, result.error, nothing ? result.error.message : "Editing cancelled: nothing was kept.");
    }
    if (result.blob) this.app.tasks.offer({ finished: [{ name: zipName, blob: result.blob }] }, { click: true });
    this.app.tasks.offer({ finished: result.reports });
    const { summary } = result;
    const failed = summary.failed;
    const count = result.written === files.length ? `${files.length}` : `${result.written} of ${files.length}`;
    const gained = summary.newErrors.length;
    const cutShort = cutShortInputs(files, failed);
    const cut = cutShort.length;
    task.finish(`Edited ${count} ${files.length === 1 ? "file" : "files"} into ${target.label}` +
      (failed.length ? `; ${failed.length} could not be edited (see Edit)` : "") +
      (gained ? `; ${gained} gained a validation error (see Edit)` : "") +
      (cut ? `; ${cut} ${cut === 1 ? "is cut short, as its input was" : "are cut short, as their inputs were"} (see Edit)`
        : ""));
    this.lastRun = { files: files.length, written: result.written, bytes: result.bytes, workers: result.workers };
    this.report.replaceChildren(...[
      el("h2", { textContent:
        `Edited ${plural(summary.files, "file")}, ${summary.changes} changes, into ${target.label}` }),
      failures(failed),
      newErrorsNote(summary.newErrors),
      cutShortNote(cutShort),
      result.firstReport ? this.reportView(result.firstReport) : null].filter(Boolean));
  }

  // One file: edited by the first worker and offered under its own name.
  async applyToOne() {
    const files = this.scopeFiles();
    if (!files.length) return;
    const task = this.app.tasks.start(`Editing ${files[0].name}`);
    const collected = this.app.tasks.collector();
    const request = this.app.python.request(Op.JOB, {
      kind: "edit",
      options: { edits: this.app.edits.list, single: true },
      items: files.map((f) => ({ path: f.path, name: f.name })),
    }, { onProgress: (p) => task.progress(p.done, p.total, p.label), onPart: collected.onPart });
    task.onCancel = () => this.app.python.cancel(request.id);
    const result = await request.done;
    if (!result.ok) {
      task.fail(result.error.type === "Cancelled" ? "Editing cancelled: nothing was kept." : result.error.message);
      return;
    }
    this.app.tasks.offer(collected, { click: true });
    const failed = result.summary.failed;
    const newErrors = result.first_report?.new_errors || [];
    const gained = newErrors.length ? [{ file: files[0].name, new_errors: newErrors }] : [];
    const cutShort = cutShortInputs(files, failed);
    task.finish(failed.length ? `${files[0].name} could not be edited: ${failed[0].message}`
      : `Edited ${files[0].name}${gained.length ? "; it gained a validation error (see Edit)" : ""}` +
        (cutShort.length ? "; it is cut short, as its input was (see Edit)" : ""));
    this.report.replaceChildren(...[
      failures(failed),
      newErrorsNote(gained),
      cutShortNote(cutShort),
      result.first_report ? this.reportView(result.first_report) : null].filter(Boolean));
  }
}
