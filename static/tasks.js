// The task bar: long work with progress and Cancel, and the downloads it produced.
import { el } from "./dom.js";

// Downloads shown before the rest fold behind "N more": the bar must never grow over the page.
const DOWNLOADS_SHOWN = 3;
const PROGRESS_MS = 100;  // the shortest time between two drawings of a task's progress


function formatSize(bytes) {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(2)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${(bytes / 1e3).toFixed(1)} kB`;
}

export class TaskBar {
  constructor(root, python) {
    this.python = python;
    this.list = el("ul", { className: "task-list" });
    this.downloads = el("ul", { className: "download-list" });
    this.downloads.setAttribute("aria-label", "Downloads ready");
    this.downloadItems = []; // { item, url }, newest first
    this.showAll = false;
    this.more = el("button", { type: "button", className: "small download-more" });
    this.more.setAttribute("aria-expanded", "false");
    this.more.onclick = () => { this.showAll = !this.showAll; this.foldDownloads(); };
    this.clear = el("button", { type: "button", className: "small download-clear", textContent: "Clear" });
    this.clear.setAttribute("aria-label", "Clear the downloads");
    this.clear.onclick = () => this.clearDownloads();
    this.downloadBox = el("div", { className: "downloads", hidden: true }, this.downloads, this.more, this.clear);
    root.append(this.list, this.downloadBox);
  }

  // Shows the newest few downloads and folds the rest behind "N more".
  foldDownloads() {
    const hidden = this.downloadItems.length - DOWNLOADS_SHOWN;
    this.downloadItems.forEach(({ item }, i) => { item.hidden = !this.showAll && i >= DOWNLOADS_SHOWN; });
    this.more.hidden = hidden <= 0;
    if (hidden <= 0) this.showAll = false;
    this.more.textContent = this.showAll ? "Fewer" : `${hidden} more`;
    this.more.setAttribute("aria-expanded", String(this.showAll));
    this.downloadBox.classList.toggle("expanded", this.showAll);
    this.downloadBox.hidden = !this.downloadItems.length;
  }

  clearDownloads() {
    for (const { url } of this.downloadItems) URL.revokeObjectURL(url);
    this.downloadItems = [];
    this.downloads.replaceChildren();
    this.foldDownloads();
  }

  // A visible task; returns a handle to report progress and the end.
  start(label) {
    const bar = el("progress", { max: 1, value: 0 });
    bar.setAttribute("aria-label", label);
    const text = el("span", { className: "task-text", textContent: label });
    const cancel = el("button", { type: "button", textContent: "Cancel", className: "small" });
    text.setAttribute("role", "status"); // on the text: a list item cannot be a status
    const item = el("li", { className: "task running" }, text, bar, cancel);
    this.list.prepend(item);
    // Progress is drawn at most every PROGRESS_MS: a job over thousands of files reports each
    // one, and redrawing the page for each would take the CPU the workers need.
    let latest = null;
    let drawn = 0;
    let timer = null;
    const draw = () => {
      timer = null;
      drawn = performance.now();
      const [done, total, detail] = latest;
      bar.value = total ? done / total : 0;
      const percent = total ? Math.floor((100 * done) / total) : 0;
      text.textContent = `${label} … ${percent}%${detail ? ` · ${detail}` : ""}`;
    };
    const stopDrawing = () => { clearTimeout(timer); timer = null; };
    let cancelClicked;
    const task = {
      cancelled: false,
      onCancel: null,
      // resolves when Cancel is clicked: a step that waits for a busy worker races it
      whenCancelled: new Promise((resolve) => { cancelClicked = resolve; }),
      progress(done, total, detail) {
        latest = [done, total, detail];
        if (timer) return;
        const wait = PROGRESS_MS - (performance.now() - drawn);
        if (wait <= 0) draw();
        else timer = setTimeout(draw, wait);
      },
      finish(message) {
        stopDrawing();
        item.className = "task done";
        text.textContent = message || `${label}: done`;
        bar.remove();
        cancel.remove();
        setTimeout(() => item.remove(), 8000);
      },
      fail(message) {
        stopDrawing();
        item.className = "task failed";
        text.textContent = message;
        bar.remove();
        cancel.textContent = "Dismiss";
        cancel.onclick = () => item.remove();
      },
    };
    cancel.onclick = () => {
      stopDrawing();
      task.cancelled = true;
      cancel.disabled = true;
      text.textContent = `${label} … cancelling`;
      task.onCancel?.();
      cancelClicked();
    };
    return task;
  }

  // Offers a finished output as a download link.
  addDownload(blob, name) {
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: name, textContent: name, className: "download" });
    const remove = el("button", { type: "button", className: "small", textContent: "×" });
    remove.setAttribute("aria-label", `Remove ${name} from the downloads`);
    const size = el("span", { className: "detail", textContent: formatSize(blob.size) });
    const item = el("li", {}, link, size, remove);
    const entry = { item, url };
    remove.onclick = () => {
      URL.revokeObjectURL(url);
      item.remove();
      this.downloadItems = this.downloadItems.filter((d) => d !== entry);
      this.foldDownloads();
    };
    this.downloads.prepend(item);
    this.downloadItems.unshift(entry);
    this.foldDownloads();
    return link;
  }

  // Collects the PART messages of a request into Blobs (a streamed ZIP arrives in pieces; a part
  // may be a slice of an opened file, which is referenced, not copied).
  collector() {
    const parts = new Map();
    const finished = [];
    return {
      onPart: ({ output, buffer, blob }) => {
        if (!parts.has(output.name)) parts.set(output.name, []);
        parts.get(output.name).push(blob || buffer);
        if (output.final) {
          finished.push({ name: output.name, blob: new Blob(parts.get(output.name), { type: output.mime }) });
          parts.delete(output.name);
        }
      },
      finished,
    };
  }

  // Offers every output a request produced, after the request ended.
  offer(collected, { click = false } = {}) {
    for (const { name, blob } of collected.finished) {
      const link = this.addDownload(blob, name);
      if (click) link.click();
    }
  }
}
