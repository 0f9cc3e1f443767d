// The app shell: opening files, the grouped file list, the workbench tabs and
// the task bar. DICOM work happens in Python (worker.js → dcmstudio.api); this file is UI only.
import { python } from "./boot.js";
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
import { Op } from "./protocol.js";

const $ = (selector) => document.querySelector(selector);

const tasks = new TaskBar($("#tasks"), python);

// Files that are not DICOM but that a workbench takes, by name: volumes (with the data files of
// two-file formats, when their header came too) go to Volume → DICOM, pictures and PDFs to Create.
const VOLUME_NAME = /\.(nii|nii\.gz|nrrd|nhdr|mha|mhd|hdr|vtk)$/i;
const VOLUME_DATA_NAME = /\.(img|raw|zraw|raw\.gz|img\.gz)$/i;
const CREATE_NAME = /\.(png|jpe?g|pdf)$/i;
const ZIP_NAME = /\.zip$/i;

function routeByName(files) {
  const volume = files.filter((f) => VOLUME_NAME.test(f.name));
  const data = volume.length ? files.filter((f) => VOLUME_DATA_NAME.test(f.name)) : [];
  const create = files.filter((f) => CREATE_NAME.test(f.name));
  const zips = files.filter((f) => ZIP_NAME.test(f.name));
  const routed = new Set([...volume, ...data, ...create, ...zips]);
  return { volume: [...volume, ...data], create, zips, rest: files.filter((f) => !routed.has(f)) };
}

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
      if (on) wb.warmUp();
    }
    this.active = id;
  },

  // Hands the dropped or picked files to the workers: File handles only, never their bytes (each
  // worker mounts them and reads what it needs when it needs it). Their descriptions arrive
  // chunk by chunk; until the last, `files.pending` counts the rest, which a task on "everything
  // loaded" waits for.
  async open(picked) {
    const { volume, create, zips, rest: fileEntries } = routeByName(picked);
    for (const zip of zips) await this.openZip(zip);
    const workbench = (id) => this.workbenches.find((wb) => wb.id === id);
    if (create.length) workbench("create").choose(create);
    if (volume.length) workbench("volume").openFiles(volume);
    if (volume.length || create.length) this.activate(volume.length ? "volume" : "create");
    for (const [id, sent] of [["volume", volume], ["create", create]]) {
      const names = sent.map((f) => f.name).join(", ");
      if (sent.length) tasks.start(names).finish(`${names}: not DICOM, opened in ${workbench(id).title}`);
    }
    if (!fileEntries.length) return;
    performance.mark("dcmstudio:open");  // bench/e2e.py reads these marks for its breakdown
    const task = tasks.start(`Opening ${fileEntries.length} file${fileEntries.length === 1 ? "" : "s"}`);
    const before = { dicom: this.files.count(), skipped: this.files.skipped.length };
    const entries = fileEntries.map((file) => ({ key: this.files.newKey(), file, name: file.relpath || file.name }));
    const settled = this.files.expect(entries.length);
    let done = 0;
    task.onCancel = () => python.cancelDescribe?.();
    await python.describe(entries, {
      isCancelled: () => task.cancelled,
      onDescribed: (described, sent) => {
        this.files.add(described, sent);
        done += sent.length;
        task.progress(done, entries.length, "");
      },
    });
    settled(entries.length - done);
    performance.mark("dcmstudio:opened");
    const opened = this.files.count() - before.dicom;
    const skipped = this.files.skipped.length - before.skipped;
    const counts = `${opened} DICOM file${opened === 1 ? "" : "s"}${skipped ? `; ${skipped} skipped` : ""}`;
    task.finish(task.cancelled ? `Opening cancelled: ${counts}` : `Opened ${counts}`);
  },
};

// The files inside a ZIP are opened as if they had been dropped, named "archive.zip/folder/file".
app.openZip = async function openZip(zip) {
  const task = tasks.start(`Unzipping ${zip.name}`);
  const buffer = await zip.arrayBuffer();
  const put = await python.request(Op.PUT_FILES, { dir: "/zips", files: [{ name: "archive.zip", buffer }] },
    { transfer: [buffer] }).done;
  if (!put.ok) return task.fail(put.error.message);
  const collected = tasks.collector();
  const result = await python.call("zip_members", { path: put.paths[0], name: zip.name }, { onPart: collected.onPart });
  await python.request(Op.PUT_FILES, { dir: "/zips", files: [] }).done; // the archive's copy is not kept
  if (!result.ok) return task.fail(result.error.message);
  const blobs = new Map(collected.finished.map(({ name, blob }) => [name, blob]));
  const files = result.members.map(({ member, output }) => {
    const file = new File([blobs.get(output)], member.split("/").pop());
    file.relpath = `${zip.relpath || zip.name}/${member}`;
    return file;
  });
  task.finish(`${zip.name}: ${files.length} file${files.length === 1 ? "" : "s"} inside, opened`);
  return this.open(files);
};

app.files = new FileList($("#file-tree"), $("#skipped"), (selection) => app.select(selection), python);

// Workbenches: each owns a tab and a panel and acts on the selection at left.
const WORKBENCHES = [TagsWorkbench, ImageWorkbench, EditWorkbench, DeidWorkbench, VolumeWorkbench, CreateWorkbench,
  CompressWorkbench, ValidateWorkbench];
for (const Workbench of WORKBENCHES) {
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
  for (const event of ["pointerenter", "focusin"]) panel.addEventListener(event, () => wb.warmUp());
}
app.activate(app.workbenches[0].id);
// A helper that starts while a person is in a workbench warms up for its task too.
python.onWorkerReady = () => app.workbenches.find((wb) => wb.id === app.active)?.warmUp();

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
