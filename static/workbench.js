// What every workbench shares: the app, the selection at left, the error line, and Python jobs
// run as tasks with progress and Cancel. A workbench sets `id` and `title`, builds its panel in
// mount(panel) and hears of a new selection in selectionChanged().
import { Op } from "./protocol.js";
import { plural } from "./dom.js";

export const NOTHING_SELECTED = "Select files at left (a file, a series, a study or everything loaded).";

export class Workbench {
  constructor(app) {
    this.app = app;
    this.selection = { files: [], label: "" };
    this.error = null; // a workbench's error line (dom.js errorLine), where failures are told
    this.warmUpKind = null; // see warmUp
  }

  setSelection(selection) {
    this.selection = selection;
    this.selectionChanged();
  }

  selectionChanged() {}

  // A worker's first task of a kind pays for imports, tables and code run for the first time
  // (0.2-0.45 s of CPU each): every worker that is up does it ahead on a made-up series (Python:
  // jobs.WarmUpJob, `${warmUpKind}_prepare`, once per worker) when the person comes to this
  // workbench, while they set the task up. The app calls this on showing the panel and on the
  // pointer or focus entering it; a workbench whose task has no warm-up leaves `warmUpKind` null.
  warmUp() {
    const python = this.app.python;
    if (!this.warmUpKind || !python.isReady) return;
    const workers = python.available?.().length ?? 1;
    if (workers <= (this.warmed || 0)) return;
    this.warmed = workers;
    python.job({ kind: `${this.warmUpKind}_prepare`, options: {}, items: [], onPart: () => {}, onStep: () => {} })
      .done.then((result) => { if (!result.ok) this.warmed = 0; }, () => { this.warmed = 0; });
  }

  // "Acts on the selection at left: CT 2 (300 files)" and `more`, or what to do when nothing is.
  scopeText(more = "") {
    const n = this.selection.files.length;
    if (!n) return NOTHING_SELECTED;
    return `Acts on the selection at left: ${this.selection.label} (${plural(n, "file")})${more}`;
  }

  // A Python job (jobs.py `kind`) over `items` as a task named `title`: { task, collected, done }.
  // `sources` (key → File) lets parts that refer to opened files come back as slices, not copies.
  job(title, kind, options, items, sources = undefined) {
    const task = this.app.tasks.start(title);
    const collected = this.app.tasks.collector(sources);
    const request = this.app.python.request(Op.JOB, { kind, options, items },
      { onProgress: (p) => task.progress(p.done, p.total, p.label), onPart: collected.onPart });
    task.onCancel = () => this.app.python.cancel(request.id);
    return { task, collected, done: request.done };
  }

  // Ends `task` with `error`: "cancelled" says so, anything else is also told on the error line.
  failed(task, error, cancelled) {
    if (error.type === "Cancelled") return task.fail(cancelled);
    task.fail(error.message);
    if (this.error) this.error.textContent = `${error.file ? `${error.file}: ` : ""}${error.message}`;
  }
}
