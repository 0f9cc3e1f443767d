// The Validate workbench: the selection at left checked against its IODs (PS3.3 module and attribute
// tables) and PS3.5's encoding rules, each finding with its severity, path, module and rule. Python does
// the work (the "validate" job over dcmstudio.validate); the JSON and text reports wait in the task bar.
import { Op } from "./protocol.js";
import { el, plural } from "./wb-compress.js";

const COLUMNS = ["Severity", "Where", "Tag", "Module", "Rule", "What is wrong"];

export class ValidateWorkbench {
  id = "validate";
  title = "Validate";

  constructor(app) {
    this.app = app;
    this.selection = { files: [], label: "" };
  }

  mount(panel) {
    this.scope = el("p", { className: "validate-scope", id: "validate-scope" });
    this.run = el("button", { type: "button", className: "primary", id: "validate-run", disabled: true });
    this.run.onclick = () => this.start();
    this.showWarnings = el("input", { type: "checkbox", id: "validate-warnings", checked: true });
    this.showWarnings.onchange = () => this.report.classList.toggle("errors-only", !this.showWarnings.checked);
    this.error = el("p", { className: "error", role: "alert", id: "validate-error" });
    this.report = el("div", { className: "report validate-report", id: "validate-report", "aria-live": "polite" });
    panel.append(el("div", { className: "validate-layout" },
      el("div", { className: "validate-main" },
        el("h2", { textContent: "Check the selection against the DICOM standard" }),
        this.scope,
        el("p", { className: "hint", textContent: "Each file against its IOD: every mandatory module's Type 1 " +
          "attributes present with a value and Type 2 attributes present, inside sequences too (conditional " +
          "Types 1C and 2C are not judged); then every element's VR, value multiplicity, length, format, " +
          "character set, padding and group lengths. The reports download as JSON and text." }),
        el("label", { className: "check", htmlFor: "validate-warnings" }, this.showWarnings, " Show warnings"),
        el("div", { className: "actions" }, this.run),
        this.error),
      this.report));
    this.renderScope();
  }

  setSelection(selection) {
    this.selection = selection;
    this.renderScope();
  }

  renderScope() {
    const n = this.selection.files.length;
    this.scope.textContent = n
      ? `Acts on the selection at left: ${this.selection.label} (${plural(n, "file")}). Nothing is changed.`
      : "Select files at left (a file, a series, a study or everything loaded).";
    this.run.disabled = !n;
    this.run.textContent = n ? `Validate ${plural(n, "file")}` : "Validate";
  }

  async start() {
    const files = this.selection.files;
    if (!files.length) return;
    this.error.textContent = "";
    const stem = (this.selection.level === "all" ? "dcmstudio" : this.selection.label)
      .replace(/[^\p{L}\p{N}]+/gu, "_").replace(/^_+|_+$/g, "") || "dcmstudio";
    const task = this.app.tasks.start(`Validating ${plural(files.length, "file")}`);
    const collected = this.app.tasks.collector();
    this.run.disabled = true;
    const request = this.app.python.request(Op.JOB, {
      kind: "validate", options: { report_stem: stem }, items: files.map((f) => ({ path: f.path, name: f.name })),
    }, { onProgress: (p) => task.progress(p.done, p.total, p.label), onPart: collected.onPart });
    task.onCancel = () => this.app.python.cancel(request.id);
    const result = await request.done;
    this.renderScope();
    if (!result.ok) {
      const cancelled = result.error.type === "Cancelled";
      task.fail(cancelled ? "Validation cancelled." : result.error.message);
      if (!cancelled) this.error.textContent = result.error.message;
      return;
    }
    this.app.tasks.offer(collected);
    const s = result.summary;
    task.finish(`Validated ${plural(s.files, "file")}: ${plural(s.errors, "error")}, ${plural(s.warnings, "warning")}`);
    this.render(result.steps.map((step, i) => step.ok ? step.report
      : { name: files[i].name, iod: null, errors: 1, warnings: 0, edition: "",
          findings: [{ severity: "error", path: "", tag: "", module: "", rule: "unreadable", message: step.error.message }] }), s);
  }

  render(reports, summary) {
    const clean = reports.filter((r) => !r.findings.length);
    const withFindings = reports.filter((r) => r.findings.length);
    this.report.replaceChildren(
      el("h2", { textContent: `${plural(summary.files_with_errors, "file")} with errors of ${plural(summary.files, "file")}` }),
      el("p", { className: "detail", id: "validate-summary", textContent:
        `${plural(summary.errors, "error")}, ${plural(summary.warnings, "warning")}; ` +
        `${reports[0]?.edition || ""}.` }),
      ...withFindings.map((r) => this.fileReport(r)),
      clean.length ? el("p", { className: "ok", textContent:
        `No findings: ${clean.slice(0, 20).map((r) => r.name).join(", ")}${clean.length > 20 ? ` and ${clean.length - 20} more` : ""}.` }) : null);
  }

  fileReport(r) {
    const rows = r.findings.map((f) => el("tr", { className: f.severity },
      el("td", { textContent: f.severity }),
      el("td", { className: "path", textContent: f.path }),
      el("td", { className: "path", textContent: f.tag }),
      el("td", { textContent: f.module }),
      el("td", { textContent: f.rule }),
      el("td", { textContent: f.message })));
    return el("details", { className: "validate-file", open: r.errors > 0 },
      el("summary", { textContent: `${r.name} — ${r.iod || "IOD unknown"}: ${plural(r.errors, "error")}, ${plural(r.warnings, "warning")}` }),
      el("table", { className: "changes validate-findings" },
        el("thead", {}, el("tr", {}, ...COLUMNS.map((h) => el("th", { textContent: h })))),
        el("tbody", {}, ...rows)));
  }
}
