// The loaded files, grouped patient → study → series → instance, and the skipped ones with why.
// Selecting rows (tree.js: one ARIA tree, by keyboard or pointer) makes them the scope of every
// workbench. Files cut short and files repeating another's SOP Instance UID are marked; the
// selection's files can be removed from the list.
import { button, el, plural } from "./dom.js";
import { Op } from "./protocol.js";
import { TreeView } from "./tree.js";

// What puts a file in its patient, study and series in the file tree: [patient, study, series].
// A folder save with a DICOMDIR numbers its File IDs by the same grouping (jobs.js).
export function groupOf(f) {
  return [`${f.patient.name}\u0000${f.patient.id}`, f.study.uid, f.series.uid];
}

// While files are opening, the file tree is redrawn at most this often, and less often when
// drawing it takes long (thousands of files): never more than a tenth of the time.
const RENDER_EVERY_MS = 500;
// The workbenches hear of a growing selection at most this often while files are opening (each
// hears of it at once when opening ends), and half as often after each time: each of them redraws
// its choice of files (thousands of <option>s) and some read the selection's first file anew. That
// is garbage the page frees only in a full collection, which rarely comes while workers do the work:
// at 20,000 files, telling them every 2 s left ~100 MB of it.
const ANNOUNCE_EVERY_MS = 2000;
// The headers kept from opening the files (each file's bytes up to its pixel data, a few kB: see
// worker.js headToKeep), so that deid's first pass, which only learns from them, does not ask the
// browser for them again, a request per file. (Steps that write outputs read the file: a file
// changed on disk since it was opened is then named, not half written.) No more than this in all:
// past it, files are read again (20,000 CT files hold about 50 MB of headers).
const KEPT_HEADS_MAX_BYTES = 64 * 1024 * 1024;
// A series with more files than this starts folded: thousands of rows cost the page more than
// they help a person, who scrolls a series in the Image workbench.
const LARGE_SERIES = 500;

// An item's level from its id: "all", or p:, s:, r:, i: before a patient, study, series or file.
const LEVELS = { p: "patient", s: "study", r: "series", i: "instance" };
const levelOf = (id) => LEVELS[id[0]] && id[1] === ":" ? LEVELS[id[0]] : "all";
const LEVEL_NAMES = { patient: ["patient"], study: ["study", "studies"], series: ["series", "series"],
  instance: ["file"], all: ["everything loaded"] };

// The parts of a file's description that many files share: one object for each distinct value, not
// one per file (a study of 20,000 files has a handful of patients, studies and series). They are
// never changed once described.
const SHARED_PARTS = ["patient", "study", "series", "sop_class", "transfer_syntax"];

const byNumberThenName = (a, b) =>
  (a.instance.number ?? Infinity) - (b.instance.number ?? Infinity) || a.name.localeCompare(b.name);

function formatDate(da) {
  return /^\d{8}$/.test(da || "") ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6)}` : da || "";
}

function formatSize(bytes) {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(bytes / 1e3))} kB`;
}

// Small pictures of the first frame beside each file, made by Python only for rows in view, one
// at a time, so a user's own request never waits behind hundreds of them.
class Thumbnails {
  constructor(python) {
    this.python = python;
    this.cache = new Map(); // key → ImageData, or null where there is nothing to show
    this.queue = [];
    this.busy = false;
    this.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        this.observer.unobserve(entry.target);
        this.queue.push(entry.target);
      }
      this.pump();
    }, { rootMargin: "200px" });
  }

  attach(canvas, file) {
    canvas.file = file;
    if (this.cache.has(file.key)) this.draw(canvas, this.cache.get(file.key));
    else this.observer.observe(canvas);
  }

  draw(canvas, image) {
    if (!image) { canvas.classList.add("none"); return; }
    canvas.width = image.width;
    canvas.height = image.height;
    canvas.getContext("2d").putImageData(image, 0, 0);
  }

  async pump() {
    if (this.busy) return;
    this.busy = true;
    // Pictures wait until the files being opened are described: opening is what a person waits for.
    await this.settled?.();
    while (this.queue.length) {
      const canvas = this.queue.shift();
      const file = canvas.file;
      if (!this.cache.has(file.key)) {
        let buffer = null;
        const result = await this.python.callAny("thumbnail", { path: file.path, name: file.name, size: 40 },
          { onPart: (part) => { buffer = part.buffer; } });
        this.cache.set(file.key, result.ok && buffer
          ? new ImageData(new Uint8ClampedArray(buffer), result.width, result.height) : null);
      }
      if (canvas.isConnected) this.draw(canvas, this.cache.get(file.key));
    }
    this.busy = false;
  }
}

export class FileList {
  constructor(treeRoot, skippedRoot, onSelect, python) {
    this.thumbnails = python ? new Thumbnails(python) : null;
    if (this.thumbnails) this.thumbnails.settled = () => this.whenSettled();
    this.treeRoot = treeRoot;
    this.skippedRoot = skippedRoot;
    this.onSelect = onSelect;
    this.files = new Map(); // key → described DICOM file
    this.skipped = [];
    this.counter = 0;
    this.collapsed = new Set();
    this.renderTimer = null;
    this.lastRender = 0;
    this.renderCost = 0;
    this.lastAnnounce = 0;
    this.announceEvery = ANNOUNCE_EVERY_MS;
    this.unfolded = new Set(); // large series the person unfolded
    this.pending = 0;       // files handed to Python and not described yet
    this.settledWaiters = [];
    this.selection = null;  // { level, id, label, ids? }: its files are looked up when asked for
    this.python = python;
    this.labels = new Map(); // item id → its name, for the selection's label
    this.shared = new Map(); // a shared part's JSON → the one object that stands for it (SHARED_PARTS)
    this.keptHeadBytes = 0;  // the kept headers' bytes in all (KEPT_HEADS_MAX_BYTES)
    this.tree = new TreeView(treeRoot, "Loaded files", {
      select: (ids) => this.select(ids),
      open: (id, open) => this.setOpen([id], open),
      openAll: (ids) => this.setOpen(ids.filter((id) => !this.large.has(id)), true),
      remove: () => this.removeSelected(),
      picked: () => treeRoot.dispatchEvent(new CustomEvent("files-picked", { bubbles: true })),
    });
    this.large = new Set(); // ids of the series over LARGE_SERIES files: `*` leaves them folded
    this.removeButton = button("", () => this.removeSelected(),
      { className: "small remove-files", id: "remove-files", hidden: true });
    treeRoot.before(this.removeButton);
  }

  removeSelected() {
    return this.remove(this.filesOf(this.selection).map((f) => f.key));
  }

  // Takes files out of the list (the user's files are untouched); every worker forgets what it
  // cached about them.
  async remove(keys) {
    const paths = keys.map((key) => this.files.get(key)?.path).filter(Boolean);
    for (const key of keys) {
      this.keptHeadBytes -= this.files.get(key)?.keptHead?.byteLength || 0;
      this.files.delete(key);
      this.thumbnails?.cache.delete(key);
    }
    this.selection = null;
    this.render();
    this.selectAll();
    if (this.python && paths.length) {
      await Promise.all(this.python.available().map((worker) => worker.request(Op.REMOVE_FILES, { paths }).done));
    }
  }

  instanceItem(f, byUid) {
    const frames = f.instance.frames > 1 ? ` · ${f.instance.frames} frames` : "";
    const id = `i:${f.key}`;
    const row = this.row("instance", id, f.name, `#${f.instance.number ?? "–"}${frames} · ${formatSize(f.size)}`);
    const item = this.tree.item(id, f.name, row);
    const marks = this.marks(f, byUid);
    if (marks.length) {
      row.classList.add("marked");
      row.querySelector(".detail").append(...marks);
      row.title = marks.map((m) => m.title).join("\n");
      item.setAttribute("aria-description", row.title);
    }
    if (this.thumbnails && f.instance.rows) {
      const thumb = el("canvas", { className: "thumb", width: 40, height: 40, "aria-hidden": "true" });
      row.prepend(thumb);
      row.classList.add("with-thumb");
      this.thumbnails.attach(thumb, f);
    }
    return item;
  }

  // Marks on a file's row: cut short, or another file with its SOP Instance UID.
  marks(f, byUid) {
    const marks = [];
    if (f.truncated) marks.push(["truncated", `${f.name} is truncated: ${f.truncated}.`]);
    const others = (byUid.get(f.sop_instance_uid) || []).filter((o) => o !== f);
    if (others.length) {
      const names = others.slice(0, 3).map((o) => o.name).join(", ") + (others.length > 3 ? ", …" : "");
      marks.push(["duplicate", `duplicate of ${names}: the same SOP Instance UID`]);
    }
    // The reason is the row's description (its title), not part of its name: a duplicate's reason
    // names the other file, which would make the two rows' names alike.
    return marks.map(([kind, reason]) => el("span", { className: `mark ${kind}`, title: reason }, `⚠ ${kind}`));
  }

  // `count` more files are being described; returns a function to call with how many of them
  // will never be (an opening cancelled part way).
  expect(count) {
    this.pending += count;
    return (never) => this.described(never);
  }

  described(count) {
    this.pending = Math.max(0, this.pending - count);
    if (this.pending === 0) {
      for (const resolve of this.settledWaiters.splice(0)) resolve();
      this.requestRender();
    }
  }

  // Resolves once no file is being described.
  whenSettled() {
    return this.pending === 0 ? Promise.resolve() : new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  // The files a selection stands for, now, in display order. A task calls this when it starts,
  // after every file still being described was: "everything loaded" means everything, not what the
  // file tree showed when it was last drawn.
  async resolve(selection = this.selection) {
    await this.whenSettled();
    return this.filesOf(selection);
  }

  filesOf(selection) {
    if (!selection?.id) return [];
    if (selection.ids) {
      const seen = new Set();
      return selection.ids.flatMap((id) => this.filesOf({ level: levelOf(id), id }))
        .filter((f) => !seen.has(f.key) && seen.add(f.key));
    }
    const { level, id } = selection;
    if (level === "instance") return [this.files.get(id.slice(2))].filter(Boolean);
    const out = [];
    for (const [pKey, { studies }] of this.groups()) {
      if (level === "patient" && id !== `p:${pKey}`) continue;
      for (const [studyUid, { series }] of studies) {
        if (level === "study" && id !== `s:${studyUid}`) continue;
        for (const [seriesUid, { files }] of series) {
          if (level === "series" && id !== `r:${seriesUid}`) continue;
          out.push(...files.sort(byNumberThenName));
        }
      }
    }
    return out;
  }

  // The whole tree is drawn anew, at a cost that grows with the files loaded: while a folder of
  // thousands of files opens batch by batch, draw at most every RENDER_EVERY_MS.
  requestRender() {
    if (this.renderTimer) return;
    const every = Math.max(RENDER_EVERY_MS, 10 * this.renderCost);
    const wait = this.pending ? Math.max(0, this.lastRender + every - performance.now()) : 0;
    this.renderTimer = setTimeout(() => {
      this.renderTimer = null;
      this.lastRender = performance.now();
      this.render();
      this.renderCost = performance.now() - this.lastRender;
      if (!this.selection && this.files.size) this.selectAll();
      else if (this.selection && (!this.pending || performance.now() - this.lastAnnounce > this.announceEvery)) {
        this.announceEvery = this.pending ? 2 * this.announceEvery : ANNOUNCE_EVERY_MS;
        this.announce(); // a selected group may have grown
      }
    }, wait);
  }

  newKey() {
    return `f${++this.counter}`;
  }

  count() {
    return this.files.size;
  }

  get(key) {
    return this.files.get(key);
  }

  // Files described by Python (`described`), from the opened entries `sent` ({ key, file, name }).
  add(described, sent) {
    const sources = new Map(sent.map((b) => [b.key, b]));
    for (const d of described) {
      if (d.ok && d.dicom) {
        const { keptHead, ...description } = d;
        const file = { ...description, ...this.sharedParts(d), file: sources.get(d.key).file };
        this.keptHeadBytes -= this.files.get(d.key)?.keptHead?.byteLength || 0;
        if (keptHead && this.keptHeadBytes + keptHead.byteLength <= KEPT_HEADS_MAX_BYTES) {
          file.keptHead = keptHead;
          this.keptHeadBytes += keptHead.byteLength;
        }
        this.files.set(d.key, file);
      } else {
        const reason = d.ok ? d.reason : d.error.message;
        this.skipped.push({ name: d.name || sources.get(d.key)?.name || d.key, reason });
      }
    }
    this.described(sent.length);
    this.requestRender();
  }

  // `described`'s SHARED_PARTS, each the object already held for an equal value.
  sharedParts(described) {
    const parts = {};
    for (const name of SHARED_PARTS) {
      const value = described[name];
      if (value == null) continue;
      const key = `${name}\u0000${JSON.stringify(value)}`;
      if (!this.shared.has(key)) this.shared.set(key, value);
      parts[name] = this.shared.get(key);
    }
    return parts;
  }

  // patient → study → series → [files], in a stable display order.
  groups() {
    const patients = new Map();
    for (const f of this.files.values()) {
      const [pKey, studyUid, seriesUid] = groupOf(f);
      if (!patients.has(pKey)) patients.set(pKey, { patient: f.patient, studies: new Map() });
      const studies = patients.get(pKey).studies;
      if (!studies.has(studyUid)) studies.set(studyUid, { study: f.study, series: new Map() });
      const series = studies.get(studyUid).series;
      if (!series.has(seriesUid)) series.set(seriesUid, { series: f.series, files: [] });
      series.get(seriesUid).files.push(f);
    }
    return patients;
  }

  selectAll() {
    this.tree.setSelection(this.files.size ? ["all"] : [], "all");
  }

  // The selected items' ids, in display order: one item is a selection of its level; several
  // are their files together.
  select(ids) {
    if (ids.length === 1) {
      this.selection = { level: levelOf(ids[0]), id: ids[0], label: this.labels.get(ids[0]) || "everything loaded" };
    } else if (!ids.length) {
      this.selection = { level: "none", id: null, ids, label: "nothing" };
    } else {
      // "2 series, 3 files": how many of each level, from patients down
      const names = Object.entries(LEVEL_NAMES).map(([level, [one, many]]) => {
        const n = ids.filter((id) => levelOf(id) === level).length;
        return n ? plural(n, one, many) : null;
      });
      const label = ids.includes("all") ? "everything loaded" : names.filter(Boolean).join(", ");
      this.selection = { level: "several", id: "several", ids, label };
    }
    this.announce();
    const count = this.filesOf(this.selection).length;
    this.removeButton.hidden = !count;
    this.removeButton.textContent = `Remove ${count === 1 ? "this file" : `these ${count} files`} from the list`;
  }

  // Tells the workbenches what is selected, with the files it holds now.
  announce() {
    this.lastAnnounce = performance.now();
    const files = this.filesOf(this.selection);
    this.onSelect({ ...this.selection, keys: files.map((f) => f.key), files });
  }

  // A row of the tree: what a person reads and clicks; `level` is its class (tests and styles).
  row(level, id, text, detail) {
    this.labels.set(id, level === "all" ? "everything loaded" : text);
    return el("div", { className: `row ${level}` },
      el("span", { className: "label", textContent: text }),
      detail ? el("span", { className: "detail", textContent: detail }) : null);
  }

  // An item with children, its triangle before its row (a pointer's way to open it; the
  // keyboard's is the arrow keys, so the triangle is no Tab stop).
  parent(level, id, text, detail, group, size = 0) {
    const open = this.isOpen(id, size);
    if (size > LARGE_SERIES) this.large.add(id);
    const line = el("div", { className: "line" },
      el("span", { className: "toggle", textContent: open ? "▾" : "▸", "aria-hidden": "true" }),
      this.row(level, id, text, detail));
    return this.tree.item(id, text, line, group, open);
  }

  isOpen(id, size = 0) {
    return size > LARGE_SERIES ? this.unfolded.has(id) : !this.collapsed.has(id);
  }

  setOpen(ids, open) {
    for (const id of ids) {
      const large = this.large.has(id);
      const set = large ? this.unfolded : this.collapsed;
      if (open === large) set.add(id); else set.delete(id);
    }
    this.render();
  }

  render() {
    const hadFocus = this.treeRoot.contains(document.activeElement);
    this.large.clear();
    this.labels.clear();
    const byUid = new Map();
    for (const f of this.files.values()) {
      if (!f.sop_instance_uid) continue;
      if (!byUid.has(f.sop_instance_uid)) byUid.set(f.sop_instance_uid, []);
      byUid.get(f.sop_instance_uid).push(f);
    }
    const tree = this.tree;
    const patients = [];
    for (const [pKey, { patient, studies }] of this.groups()) {
      const studyItems = [];
      for (const [studyUid, { study, series }] of studies) {
        const seriesItems = [];
        for (const [seriesUid, { series: se, files }] of series) {
          files.sort(byNumberThenName);
          const rid = `r:${seriesUid}`;
          const shown = this.isOpen(rid, files.length) ? files : [];
          const instances = el("ul", {}, tree.place(shown.map((f) => this.instanceItem(f, byUid)), 4));
          const title = `${se.modality || "??"} ${se.number ?? ""} ${se.description || "(no description)"}`;
          seriesItems.push(this.parent("series", rid, title.replace(/\s+/g, " "), plural(files.length, "file"),
            instances, files.length));
        }
        const sid = `s:${studyUid}`;
        const title = `${formatDate(study.date)} ${study.description || "(no study description)"}`.trim();
        studyItems.push(this.parent("study", sid, title, study.accession ? `Acc ${study.accession}` : "",
          el("ul", {}, tree.place(seriesItems, 3))));
      }
      patients.push(this.parent("patient", `p:${pKey}`, patient.name || "(no patient name)",
        patient.id ? `ID ${patient.id}` : "", el("ul", {}, tree.place(studyItems, 2))));
    }
    this.treeRoot.replaceChildren();
    if (this.files.size) {
      const all = tree.item("all", "Everything loaded",
        this.row("all", "all", "Everything loaded", plural(this.files.size, "file")));
      this.treeRoot.append(tree.root([all, ...patients]));
    }
    tree.drawn(hadFocus);

    this.skippedRoot.replaceChildren();
    if (this.skipped.length) {
      const items = this.skipped.map((s) => el("li", {}, el("strong", { textContent: s.name }), ` — ${s.reason}`));
      this.skippedRoot.append(el("details", {},
        el("summary", { textContent: `Skipped: ${this.skipped.length} file${this.skipped.length === 1 ? "" : "s"}` }),
        el("ul", {}, ...items)));
    }
  }
}
