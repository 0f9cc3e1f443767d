// The Compress workbench: the selection at left written again in another transfer syntax, losslessly
// (RLE Lossless, Deflated, uncompressed Explicit VR Little Endian, and whatever the wasm codecs write:
// compress_choices lists them), as one file or a ZIP, with a report per file. Python does the work (the "compress" job over dcmstudio.codecs) and decodes each
// output again to compare it with its source before it is offered.
import { Op } from "./protocol.js";
import { newErrorsNote } from "./jobs.js";
import { el, onFirstShow, plural } from "./dom.js";

export { el, onFirstShow, plural }; // first written here; now in dom.js
const kilobytes = (bytes) => `${(bytes / 1e3).toLocaleString("en", { maximumFractionDigits: 1 })} kB`;
const ratio = (input, output) => (input ? `${Math.round((100 * output) / input)}%` : "");

export class CompressWorkbench {
  id = "compress";
  title = "Compress";

  constructor(app) {
    this.app = app;
    this.selection = { files: [], label: "" };
    this.targets = [];
  }

  mount(panel) {
    this.scope = el("p", { className: "compress-scope", id: "compress-scope" });
    this.targetList = el("div", { className: "compress-targets", id: "compress-targets" },
      el("p", { className: "hint", textContent: "Loading the transfer syntaxes…" }));
    this.verify = el("input", { type: "checkbox", id: "compress-verify", checked: true });
    this.run = el("button", { type: "button", className: "primary", id: "compress-run", disabled: true });
    this.run.onclick = () => this.start();
    this.error = el("p", { className: "error", role: "alert", id: "compress-error" });
    this.report = el("div", { className: "report compress-report", id: "compress-report", "aria-live": "polite" });
    panel.append(el("div", { className: "compress-layout" },
      el("div", { className: "compress-main" },
        el("h2", { textContent: "Write the selection in another transfer syntax" }),
        this.scope,
        el("fieldset", { className: "scope" }, el("legend", { textContent: "Transfer syntax" }), this.targetList),
        el("label", { className: "check", htmlFor: "compress-verify" }, this.verify,
          " Check every output: decode it again and compare each frame with the source"),
        el("p", { className: "hint", textContent: "Only lossless syntaxes: pixel values never change, so SOP Instance UIDs are kept. " +
          "Trailing padding and digital signatures, which re-encoding invalidates, are left out and listed. " +
          "One file downloads as itself; several as a ZIP with their names and folders." }),
        el("div", { className: "actions" }, this.run),
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
    this.targetList.replaceChildren(...this.targets.map((t, i) => {
      const id = `compress-target-${i}`;
      const radio = el("input", { type: "radio", name: "compress-target", id, value: t.uid, checked: i === 0 });
      radio.addEventListener("change", () => this.renderScope());
      return el("div", {}, radio, el("label", { htmlFor: id },
        el("span", { textContent: ` ${t.name}${t.compressed ? "" : " (uncompressed)"}` }), el("span", { className: "detail", textContent: ` ${t.uid}` })));
    }));
    this.renderScope();
  }

  target() {
    const checked = this.targetList.querySelector("input:checked");
    return this.targets.find((t) => t.uid === checked?.value) || null;
  }

  setSelection(selection) {
    this.selection = selection;
    this.renderScope();
  }

  // What the action will touch: how many files, and in which transfer syntaxes they are now.
  renderScope() {
    const files = this.selection.files;
    const bySyntax = new Map();
    for (const f of files) bySyntax.set(f.transfer_syntax.name, (bySyntax.get(f.transfer_syntax.name) || 0) + 1);
    const now = [...bySyntax].map(([name, n]) => `${n} ${name}`).join(", ");
    this.scope.textContent = files.length
      ? `Acts on the selection at left: ${this.selection.label} (${plural(files.length, "file")}; now ${now}).`
      : "Select files at left (a file, a series, a study or everything loaded).";
    const target = this.target();
    this.run.disabled = !files.length || !target;
    if (!target) this.run.textContent = "Write";
    else if (files.length === 1) this.run.textContent = `Write ${files[0].name.split("/").pop()} as ${target.name}`;
    else this.run.textContent = `Write ${plural(files.length, "file")} as ${target.name} (ZIP)`;
  }

  async start() {
    // what the selection holds now, files still being described included
    const files = await this.app.files.resolve();
    const target = this.target();
    if (!files.length || !target) return;
    this.error.textContent = "";
    const single = files.length === 1;
    const stem = (this.selection.level === "all" ? "dcmstudio" : this.selection.label)
      .replace(/[^\p{L}\p{N}]+/gu, "_").replace(/^_+|_+$/g, "") || "dcmstudio";
    const task = this.app.tasks.start(`Writing ${single ? files[0].name : plural(files.length, "file")} as ${target.name}`);
    const collected = this.app.tasks.collector();
    this.run.disabled = true;
    const request = this.app.python.request(Op.JOB, {
      kind: "compress",
      options: { transfer_syntax: target.uid, verify: this.verify.checked, single, zip_stem: stem },
      items: files.map((f) => ({ path: f.path, name: f.name })),
    }, { onProgress: (p) => task.progress(p.done, p.total, p.label), onPart: collected.onPart });
    task.onCancel = () => this.app.python.cancel(request.id);
    const result = await request.done;
    this.renderScope();
    if (!result.ok) {
      const cancelled = result.error.type === "Cancelled";
      task.fail(cancelled ? "Compressing cancelled: nothing was kept." : result.error.message);
      if (!cancelled) this.error.textContent = `${result.error.file ? `${result.error.file}: ` : ""}${result.error.message}`;
      return;
    }
    const s = result.summary;
    // An empty ZIP (every file refused) is not worth a download.
    if (s.files) this.app.tasks.offer(collected, { click: true });
    const failed = files.length - s.files;
    const gained = s.files_with_new_errors ? `; ${s.files_with_new_errors} gained a validation error (see Compress)` : "";
    task.finish(`Wrote ${plural(s.files, "file")} as ${target.name}${failed ? `; ${failed} could not be written (see Compress)` : ""}${gained}`);
    this.renderReport(files, result.steps, s);
  }

  renderReport(files, steps, summary) {
    const rows = steps.map((step, i) => {
      const r = step.ok ? step.report : null;
      const problem = !step.ok ? step.error.message : step.error?.message;
      if (!r) {
        return el("tr", { className: "failed" }, el("td", { textContent: files[i].name }),
          el("td", { colSpan: 5, className: "error", textContent: problem || "not written" }));
      }
      const notes = [...r.dropped.map((d) => `left out ${d}`), r.not_verified_because].filter(Boolean);
      return el("tr", {},
        el("td", { textContent: r.file }),
        el("td", { textContent: `${r.source_transfer_syntax.name} → ${r.transfer_syntax.name}` }),
        el("td", { className: "number", textContent: String(r.frames) }),
        el("td", { className: "number", textContent: `${kilobytes(r.input_bytes)} → ${kilobytes(r.output_bytes)} (${ratio(r.input_bytes, r.output_bytes)})` }),
        el("td", { className: r.verified ? "ok" : "", textContent: r.verified ? "✓ pixels identical" : "not checked" }),
        el("td", { className: "detail", textContent: notes.join("; ") }));
    });
    const failed = steps.length - summary.files;
    this.report.replaceChildren(
      el("h2", { textContent: `Wrote ${plural(summary.files, "file")} as ${summary.transfer_syntax.name}` }),
      el("p", { className: "detail", id: "compress-summary", textContent:
        `${kilobytes(summary.input_bytes)} → ${kilobytes(summary.output_bytes)} (${ratio(summary.input_bytes, summary.output_bytes)}); ` +
        `${summary.verified} of ${summary.files} checked pixel-identical${failed ? `; ${failed} not written` : ""}.` }),
      el("table", { className: "changes compress-files" },
        el("thead", {}, el("tr", {}, ...["File", "Transfer syntax", "Frames", "Size", "Check", "Notes"].map((h) => el("th", { textContent: h })))),
        el("tbody", {}, ...rows)),
      ...[newErrorsNote(steps.filter((step) => step.ok && step.report?.new_errors?.length)
        .map((step) => ({ file: step.report.file, new_errors: step.report.new_errors })))].filter(Boolean));
  }
}
