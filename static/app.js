// The app shell: opening files, the grouped file list, the workbench tabs and
// the task bar. DICOM work happens in Python (worker.js → dcmstudio.api); this file is UI only.
import { python } from "./boot.js";
import { Op } from "./protocol.js";
import { FileList } from "./files.js";
import { TaskBar } from "./tasks.js";
import { TagsWorkbench } from "./wb-tags.js";
import { EditWorkbench } from "./wb-edit.js";
import { ImageWorkbench } from "./wb-image.js";
import { VolumeWorkbench } from "./wb-volume.js";
import { DeidWorkbench } from "./wb-deid.js";
import { CreateWorkbench } from "./wb-create.js";
import { CompressWorkbench } from "./wb-compress.js";
import { ValidateWorkbench } from "./wb-validate.js";
import { PendingEdits } from "./edits.js";

const $ = (selector) => document.querySelector(selector);

// Files are sent to the worker in batches: few messages, but never the whole folder in memory.
const BATCH_FILES = 24;
const BATCH_BYTES = 64 * 1024 * 1024;

const tasks = new TaskBar($("#tasks"), python);

const app = {
  python,
  tasks,
  files: null,
  edits: new PendingEdits(),
  workbenches: [],
  active: null,

  select(selection) {
    for (const wb of this.workbenches) wb.setSelection(selection);
  },

  // A count beside a tab's title (e.g. pending edits).
  setBadge(id, count) {
    const wb = this.workbenches.find((w) => w.id === id);
    if (wb?.tab) wb.tab.textContent = count ? `${wb.title} (${count})` : wb.title;
  },

  activate(id) {
    for (const wb of this.workbenches) {
      const on = wb.id === id;
      wb.tab.setAttribute("aria-selected", String(on));
      wb.tab.tabIndex = on ? 0 : -1;
      wb.panel.hidden = !on;
    }
    this.active = id;
  },

  // Reads the dropped or picked files and hands them to Python in transferred batches.
  async open(fileEntries) {
    if (!fileEntries.length) return;
    const task = tasks.start(`Opening ${fileEntries.length} file${fileEntries.length === 1 ? "" : "s"}`);
    let done = 0;
    let batch = [];
    let bytes = 0;
    // One batch is read while Python describes the one before: at most two batches in memory.
    let inPython = Promise.resolve();
    const send = async (sent) => {
      const files = sent.map(({ key, file, buffer }) => ({ key, name: file.relpath || file.name, buffer }));
      const request = python.request(Op.ADD_FILES, { files }, { transfer: files.map((f) => f.buffer) });
      task.onCancel = () => python.cancel(request.id);
      const result = await request.done;
      if (result.ok) this.files.add(result.files, sent);
      else this.files.add(sent.map(({ key }) => ({ key, ok: false, error: result.error })), sent);
      done += sent.length;
      task.progress(done, fileEntries.length, "");
    };
    const flush = async () => {
      await inPython;
      if (batch.length) inPython = send(batch);
      batch = [];
      bytes = 0;
    };
    for (const file of fileEntries) {
      if (task.cancelled) break;
      let buffer;
      try {
        buffer = await file.arrayBuffer();
      } catch (error) {
        this.files.addUnreadable(file, error);
        continue;
      }
      batch.push({ key: this.files.newKey(), file, buffer });
      bytes += buffer.byteLength;
      if (batch.length >= BATCH_FILES || bytes >= BATCH_BYTES) await flush();
    }
    await flush();
    await inPython;
    task.finish(task.cancelled ? "Opening cancelled" : `Opened ${this.files.count()} DICOM file${this.files.count() === 1 ? "" : "s"}`);
  },
};

app.files = new FileList($("#file-tree"), $("#skipped"), (selection) => app.select(selection), python);

// Workbenches: each owns a tab and a panel and acts on the selection at left.
for (const Workbench of [TagsWorkbench, ImageWorkbench, EditWorkbench, DeidWorkbench, VolumeWorkbench, CreateWorkbench, CompressWorkbench, ValidateWorkbench]) {
  const wb = new Workbench(app);
  const tab = document.createElement("button");
  tab.role = "tab";
  tab.id = `tab-${wb.id}`;
  tab.textContent = wb.title;
  tab.setAttribute("aria-controls", `panel-${wb.id}`);
  tab.addEventListener("click", () => app.activate(wb.id));
  $("#tabs").append(tab);
  const panel = document.createElement("section");
  panel.role = "tabpanel";
  panel.id = `panel-${wb.id}`;
  panel.setAttribute("aria-labelledby", tab.id);
  $("#panels").append(panel);
  wb.tab = tab;
  wb.panel = panel;
  app.workbenches.push(wb);
  wb.mount(panel);
}
app.activate(app.workbenches[0].id);

// Arrow keys move between tabs (WAI-ARIA tabs pattern).
$("#tabs").addEventListener("keydown", (event) => {
  const ids = app.workbenches.map((wb) => wb.id);
  const i = ids.indexOf(app.active);
  const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: ids.length - 1 }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  const id = ids[(next + ids.length) % ids.length];
  app.activate(id);
  app.workbenches.find((wb) => wb.id === id).tab.focus();
});

// ---- Opening files: picker, folder picker, drag and drop --------------------------------------

function withRelativePaths(fileList) {
  return [...fileList].map((file) => {
    file.relpath = file.webkitRelativePath || file.name;
    return file;
  });
}

for (const input of [$("#open-files"), $("#open-folder")]) {
  input.addEventListener("change", () => {
    app.open(withRelativePaths(input.files));
    input.value = "";
  });
}

async function entriesToFiles(entry, prefix = "") {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    file.relpath = prefix + file.name;
    return [file];
  }
  const reader = entry.createReader();
  const children = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    children.push(...batch);
  }
  const nested = await Promise.all(children.map((c) => entriesToFiles(c, `${prefix}${entry.name}/`)));
  return nested.flat();
}

let dragDepth = 0;
document.addEventListener("dragenter", (event) => {
  if (![...event.dataTransfer.types].includes("Files")) return;
  dragDepth++;
  document.body.classList.add("dragging");
});
document.addEventListener("dragleave", () => {
  if (--dragDepth <= 0) document.body.classList.remove("dragging");
});
document.addEventListener("dragover", (event) => event.preventDefault());
document.addEventListener("drop", async (event) => {
  event.preventDefault();
  dragDepth = 0;
  document.body.classList.remove("dragging");
  const entries = [...event.dataTransfer.items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  const files = entries.length
    ? (await Promise.all(entries.map((e) => entriesToFiles(e)))).flat()
    : withRelativePaths(event.dataTransfer.files);
  app.open(files);
});

window.dcmstudio = app; // for tests and the curious, from the console
