// Where a task's files go, as they are made: a folder the user picks, a ZIP file the user names
// (File System Access API, in Chromium-based browsers), or a download the browser saves (a Blob:
// everywhere, e.g. Firefox and Safari). Python makes the bytes and the ZIP records; this module
// only puts the parts in order and writes them.

export const SAVE_TARGETS = Object.freeze({
  DOWNLOAD: "download",
  ZIP_FILE: "zip-file",
  FOLDER: "folder",
});

const partSize = (part) => (part instanceof Blob ? part.size : part.byteLength);

// Writes run one after another, so a slow disk holds parts in a queue (references to the opened
// files and small header buffers), never the whole output.
class WriteQueue {
  constructor() {
    this.tail = Promise.resolve();
    this.error = null;
  }

  push(write) {
    this.tail = this.tail.then(() => (this.error ? undefined : write())).catch((error) => { this.error ??= error; });
    return this.tail;
  }

  async drain() {
    await this.tail;
    if (this.error) throw this.error;
  }
}

// Values that arrive in any order (several workers make them) and are handed to `take` in the
// job's order: only those that came before their turn wait.
export class InOrder {
  constructor(take) {
    this.take = take;
    this.next = 0;
    this.waiting = new Map();
  }

  // The value of the job's item `index` (0-based).
  put(index, value) {
    this.waiting.set(index, value);
    while (this.waiting.has(this.next)) {
      const ready = this.waiting.get(this.next);
      this.waiting.delete(this.next++);
      this.take(ready);
    }
  }
}

// A ZIP whose members arrive in any order and leave in the job's order, so the archive is the
// same whatever the number of workers. `write(part)` takes each part; `members` (name, size, crc,
// offset) is what Python needs to write the central directory.
export class OrderedZip {
  constructor(write) {
    this.write = write;
    this.offset = 0;
    this.members = [];
    this.order = new InOrder(({ member, parts }) => {
      if (!member) return;
      this.members.push({ ...member, offset: this.offset });
      for (const part of parts) {
        this.offset += partSize(part);
        this.write(part);
      }
    });
  }

  // The job's item `index` (0-based) made `member` ({ name, size, crc }) from `parts`, or nothing
  // (member null: the file failed and is left out).
  put(index, member, parts) {
    this.order.put(index, { member, parts });
  }
}

// Directory handles for the folders of a relative path, made as needed.
async function folderOf(root, path, { create }) {
  let dir = root;
  for (const name of path.split("/").slice(0, -1)) dir = await dir.getDirectoryHandle(name, { create });
  return dir;
}

// The members of `names` that already exist under `root`: one listing per folder they go into.
export async function existingFiles(root, names) {
  const byFolder = new Map();
  for (const name of names) {
    const folder = name.includes("/") ? name.slice(0, name.lastIndexOf("/")) : "";
    if (!byFolder.has(folder)) byFolder.set(folder, []);
    byFolder.get(folder).push(name);
  }
  const found = [];
  for (const [folder, inFolder] of byFolder) {
    let dir;
    try {
      dir = folder ? await folderOf(root, `${folder}/x`, { create: false }) : root;
    } catch {
      continue; // the folder is not there: nothing in it can be
    }
    const present = new Set();
    for await (const key of dir.keys()) present.add(key);
    for (const name of inFolder) if (present.has(name.split("/").pop())) found.push(name);
  }
  return found;
}

// Each output file written under a folder, at its relative path. Several files are written at
// once: each write is a round trip to the browser's file system (open a swap file, write, move it
// into place), and one after another they took longer than making the files. 16 at once, each
// file in one write, saved about a fifth of the time against 8 at once, a write per part.
const FOLDER_WRITES_AT_ONCE = 16;

export class FolderWriter {
  constructor(root) {
    this.root = root;
    this.waiting = [];   // files not started yet: { path, parts }
    this.running = new Set();
    this.error = null;
    this.written = 0;
    this.bytes = 0;
    this.onError = () => {};  // called once, with the first write's failure
    this.paths = [];     // the files written so far
    this.folders = new Map();  // folder path → its handle (a promise), looked up once
  }

  file(path, parts) {
    this.waiting.push({ path, parts });
    this.pump();
  }

  pump() {
    while (this.running.size < FOLDER_WRITES_AT_ONCE && this.waiting.length && !this.error) {
      const { path, parts } = this.waiting.shift();
      const write = this.write(path, parts)
        .catch((error) => {
          if (this.error) return;
          this.error = error;
          this.onError(error);
        })
        .finally(() => { this.running.delete(write); this.pump(); });
      this.running.add(write);
    }
  }

  // The handle of the folder `path` goes into, made as needed, looked up once per folder: the files
  // of a DICOMDIR's tree (DICOM/PT…/ST…/SE…/IM…) would each walk four folders again.
  folderFor(path) {
    const folder = path.slice(0, path.lastIndexOf("/") + 1);
    if (!this.folders.has(folder)) this.folders.set(folder, folderOf(this.root, path, { create: true }));
    return this.folders.get(folder);
  }

  async write(path, parts) {
    const dir = await this.folderFor(path);
    const handle = await dir.getFileHandle(path.split("/").pop(), { create: true });
    const writable = await handle.createWritable();
    try {
      await writable.write(parts.length === 1 ? parts[0] : new Blob(parts));
      await writable.close();
      this.paths.push(path);
    } catch (error) {
      await writable.abort().catch(() => {});
      throw error;
    }
    this.written++;
    this.bytes += parts.reduce((sum, part) => sum + partSize(part), 0);
  }

  async finish() {
    while (this.running.size) await Promise.all([...this.running]);
    if (this.error) throw this.error;
  }

  // A task cancelled or discarded: the files it wrote are removed (those not started never will
  // be), then the folders they were in if that left them empty (a folder still holding anything
  // refuses to be removed).
  async discard() {
    this.waiting = [];
    while (this.running.size) await Promise.all([...this.running]);
    const folders = new Set();
    for (const path of this.paths) {
      const dir = await folderOf(this.root, path, { create: false }).catch(() => null);
      await dir?.removeEntry(path.split("/").pop()).catch(() => {});
      for (let end = path.lastIndexOf("/"); end > 0; end = path.lastIndexOf("/", end - 1)) {
        folders.add(path.slice(0, end));
      }
    }
    for (const folder of [...folders].sort((a, b) => b.length - a.length)) {
      const parent = await folderOf(this.root, folder, { create: false }).catch(() => null);
      await parent?.removeEntry(folder.split("/").pop()).catch(() => {});
    }
    this.paths = [];
  }
}

// One file written part by part: a ZIP into a file the user named.
export class StreamWriter {
  constructor(handle) {
    this.queue = new WriteQueue();
    this.handle = handle;
    this.writable = null;
    this.bytes = 0;
    this.created = false;  // the file was empty before: most likely made by the save dialog
    this.queue.push(async () => {
      this.created = (await handle.getFile()).size === 0;
      this.writable = await handle.createWritable();
    });
  }

  write(part) {
    this.bytes += partSize(part);
    this.queue.push(() => this.writable.write(part));
  }

  async finish() {
    this.queue.push(() => this.writable.close());
    try {
      await this.queue.drain();
    } catch (error) {
      await this.discard();
      throw error;
    }
  }

  async abort() {
    await this.queue.tail;
    await this.discard();
  }

  // Nothing written is kept (the writes went to a swap file): a file that held something before
  // keeps it, and one the save dialog made empty is removed where the browser can remove it.
  async discard() {
    await this.writable?.abort().catch(() => {});
    if (this.created) await this.handle.remove?.().catch(() => {});
  }
}

// A download: parts kept as Blob parts (the opened files' slices stay references), one Blob at the end.
// Every few hundred parts are folded into a Blob of their own. One Blob made at the end of 40,000
// parts (a ZIP of 20,000 members: a header buffer and a slice of a file each, alternating) grew
// Chromium's browser process by ~380 MB and the page's by ~130 MB while it was made (bench/e2e.py),
// and kept every slice and buffer alive until then; folded as they come, the final Blob of Blobs
// costs next to nothing, and the parts can be collected as the job goes.
const PARTS_PER_FOLD = 512;

export class BlobWriter {
  constructor(mime) {
    this.mime = mime;
    this.folded = [];  // Blobs of PARTS_PER_FOLD parts each, in order
    this.parts = [];   // the parts since
    this.bytes = 0;
  }

  write(part) {
    this.bytes += partSize(part);
    this.parts.push(part);
    if (this.parts.length >= PARTS_PER_FOLD) {
      this.folded.push(new Blob(this.parts));
      this.parts = [];
    }
  }

  finish() {
    return new Blob([...this.folded, ...this.parts], { type: this.mime });
  }
}

// The pickers, one place to replace them (tests hand back folders of the origin's private file
// system, which a headless browser can write without a dialog).
export const pickers = {
  available: typeof globalThis.showDirectoryPicker === "function"
    && typeof globalThis.showSaveFilePicker === "function",
  folder: () => globalThis.showDirectoryPicker({ id: "dcmstudio-output", mode: "readwrite" }),
  zipFile: (suggestedName) => globalThis.showSaveFilePicker({
    id: "dcmstudio-output", suggestedName,
    types: [{ description: "ZIP archive", accept: { "application/zip": [".zip"] } }],
  }),
};
