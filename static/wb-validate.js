// The Validate workbench: the selection at left checked against its IODs (PS3.3 module and attribute
// tables) and PS3.5's encoding rules, each finding with its severity, path, module and rule. Python
// does the work (the "validate" job over dcmstudio.validate); the JSON and text reports wait in the
// task bar.
import { button, checkbox, el, errorLine, plural, selectionStem, statusLine } from "./dom.js";
import { Workbench } from "./workbench.js";

const COLUMNS = ["Severity", "Where", "Tag", "Module", "Rule", "What is wrong"];
const HINT = "Each file against its IOD: every mandatory module's Type 1 attributes present with a value and " +
  "Type 2 attributes present, inside sequences too (conditional Types 1C and 2C are not judged); then every " +
  "element's VR, value multiplicity, length, format, character set, padding and group lengths. The reports " +
  "download as JSON and text.";
const counts = (r) => `${plural(r.errors, "error")}, ${plural(r.warnings, "warning")}`;

export class ValidateWorkbench extends Workbench {
  id = "validate";
  title = "Validate";

  mount(panel) {
    this.scope = statusLine("validate-scope", "validate-scope");
    this.run = button("Validate", () => this.start(), { className: "primary", id: "validate-run", disabled: true });
    const [warnings, warningsLabel] = checkbox("validate-warnings", "Show warnings", { checked: true,
      onchange: () => this.report.classList.toggle("errors-only", !warnings.checked) });
    this.error = errorLine("validate-error");
    this.report = el("div", { className: "report validate-report", id: "validate-report", "aria-live": "polite" });
    panel.append(el("div", { className: "validate-layout" },
      el("div", { className: "validate-main" },
        el("h2", { textContent: "Check the selection against the DICOM standard" }),
        this.scope, el("p", { className: "hint", textContent: HINT }), warningsLabel,
        el("div", { className: "actions" }, this.run), this.error),
      this.report));
    this.selectionChanged();
  }

  selectionChanged() {
    const n = this.selection.files.length;
    this.scope.textContent = this.scopeText(n ? ". Nothing is changed." : "");
    this.run.disabled = !n;
    this.run.textContent = n ? `Validate ${plural(n, "file")}` : "Validate";
  }

  // Shared out over the workers (client.js WorkerPool.job); the reports of every file, in the
  // order of the files, then make the same two downloads whatever the number of workers.
  async start() {
    if (!this.selection.files.length) return;
    const task = this.app.tasks.start(`Validating ${plural(this.selection.files.length, "file")}`);
    // what the selection holds now, files still being described included
    const files = await this.app.files.resolve();
    if (!files.length) return task.fail("Nothing to validate: the selected files were removed.");
    if (task.cancelled) return task.fail("Validation cancelled."); // while the last files were being listed
    this.error.textContent = "";
    this.run.disabled = true;
    const steps = new Array(files.length);
    let done = 0;
    const job = this.app.python.job({ kind: "validate", options: { shared: true },
      items: files.map((f, i) => ({ path: f.path, name: f.name, index: i + 1 })),
      onPart: () => {},
      onStep: (step, item) => {
        steps[item.index - 1] = step;
        task.progress(++done, files.length, item.name);
      } });
    task.onCancel = () => job.cancel();
    const ran = await job.done;
    const reports = steps.filter((step) => step?.ok).map((step) => step.report);
    const collected = this.app.tasks.collector();
    const result = ran.ok ? await this.app.python.call("validation_reports",
      { reports, report_stem: selectionStem(this.selection) }, { onPart: collected.onPart }) : ran;
    this.selectionChanged();
    if (!result.ok) return this.failed(task, result.error, "Validation cancelled.");
    this.app.tasks.offer(collected);
    this.lastRun = { files: files.length, workers: ran.workers };
    const s = result.summary;
    task.finish(`Validated ${plural(s.files, "file")}: ${counts(s)}`);
    this.render(steps.map((step, i) => (step.ok ? step.report : {
      name: files[i].name, iod: null, errors: 1, warnings: 0, edition: "",
      findings: [{ severity: "error", path: "", tag: "", module: "", rule: "unreadable", message: step.error.message }],
    })), s);
  }

  render(reports, summary) {
    const clean = reports.filter((r) => !r.findings.length).map((r) => r.name);
    const more = clean.length > 20 ? ` and ${clean.length - 20} more` : "";
    const head = `${plural(summary.files_with_errors, "file")} with errors of ${plural(summary.files, "file")}`;
    this.report.replaceChildren(el("h2", { textContent: head }),
      el("p", { className: "detail", id: "validate-summary",
        textContent: `${counts(summary)}; ${reports[0]?.edition || ""}.` }),
      ...reports.filter((r) => r.findings.length).map((r) => this.fileReport(r)),
      clean.length ? el("p", { className: "ok", textContent: `No findings: ${clean.slice(0, 20).join(", ")}${more}.` })
        : null);
  }

  fileReport(r) {
    const cells = (f) => [f.severity, f.path, f.tag, f.module, f.rule, f.message]
      .map((text, i) => el("td", { className: i === 1 || i === 2 ? "path" : "", textContent: text }));
    return el("details", { className: "validate-file", open: r.errors > 0 },
      el("summary", { textContent: `${r.name} — ${r.iod || "IOD unknown"}: ${counts(r)}` }),
      el("table", { className: "changes validate-findings" },
        el("thead", {}, el("tr", {}, COLUMNS.map((h) => el("th", { textContent: h })))),
        el("tbody", {}, r.findings.map((f) => el("tr", { className: f.severity }, cells(f))))));
  }
}
