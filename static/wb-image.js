// The Image workbench: the selected file's frame, rendered by Python (modality LUT, VOI LUT or
// window, photometric, overlays), windowed by dragging or presets, frames scrolled, values read out.

const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
};

const fmt = (x) => (Number.isInteger(x) ? String(x) : Number(x).toFixed(Math.abs(x) < 10 ? 2 : 1));

export class ImageWorkbench {
  id = "image";
  title = "Image";

  constructor(app) {
    this.app = app;
    this.file = null;
    this.info = null;
    this.frame = 0;
    this.window = null; // null: the file's own VOI
    this.rendering = false;
    this.pendingRender = false;
  }

  mount(panel) {
    this.fileSelect = el("select", { id: "image-file" });
    this.fileSelect.addEventListener("change", () => this.show(this.app.files.get(this.fileSelect.value)));
    this.presets = el("select", { id: "image-preset" });
    this.presets.setAttribute("aria-label", "Window preset");
    this.presets.addEventListener("change", () => this.applyPreset());
    this.frameInput = el("input", { type: "range", id: "image-frame", min: 0, max: 0, value: 0 });
    this.frameInput.setAttribute("aria-label", "Frame");
    this.frameInput.addEventListener("input", () => this.setFrame(Number(this.frameInput.value)));
    this.frameLabel = el("span", { className: "detail", id: "image-frame-label" });
    const reset = el("button", { type: "button", className: "small", textContent: "Reset window" });
    reset.onclick = () => { this.window = null; this.presets.value = "file"; this.render(); };
    this.canvas = el("canvas", { id: "image-canvas", tabIndex: 0 });
    this.canvas.setAttribute("role", "img");
    this.canvas.setAttribute("aria-label", "The selected frame. Drag to window (left-right: width, up-down: level); arrow keys or wheel: frames.");
    this.status = el("div", { className: "image-status", id: "image-status", "aria-live": "polite" });
    this.readout = el("div", { className: "image-readout", id: "image-readout" });
    this.message = el("p", { className: "empty", textContent: "Pick a file with an image at left to view it." });
    panel.append(
      el("div", { className: "toolbar" }, el("label", { htmlFor: "image-file", textContent: "File" }), this.fileSelect,
        this.presets, reset, el("span", { className: "spacer" }), this.frameInput, this.frameLabel),
      el("div", { className: "image-stage" }, this.message, this.canvas),
      el("div", { className: "image-footer" }, this.status, this.readout));
    this.canvas.hidden = true;
    this.bindPointer();
  }

  setSelection(selection) {
    this.fileSelect.replaceChildren(...selection.files.slice(0, 2000).map((f) => el("option", { value: f.key, textContent: f.name })));
    if (selection.files.length) this.show(selection.files[0]);
  }

  async show(file) {
    if (!file) return;
    this.file = file;
    this.fileSelect.value = file.key;
    this.frame = 0;
    this.window = null;
    this.readout.textContent = "";
    const result = await this.app.python.call("frame_info", { path: file.path, name: file.name });
    if (this.file !== file) return;
    if (!result.ok || !result.info.has_pixels || !result.info.decodable) {
      this.info = null;
      this.canvas.hidden = true;
      this.message.hidden = false;
      this.message.textContent = !result.ok ? result.error.message
        : !result.info.has_pixels ? `${file.name} has no pixel data to show.` : result.info.why_not;
      this.status.textContent = "";
      this.readout.textContent = "";
      return;
    }
    this.info = result.info;
    this.message.hidden = true;
    this.canvas.hidden = false;
    const presets = [el("option", { value: "file", textContent: "Window: from the file" })];
    const list = [...this.info.window_presets, ...this.info.suggested_presets];
    list.forEach((p, i) => presets.push(el("option", { value: `w${i}`, textContent: `${p.explanation || "Window"} (C ${fmt(p.center)} / W ${fmt(p.width)})` })));
    this.info.voi_luts.forEach((v) => presets.push(el("option", { value: `lut${v.index}`, textContent: `VOI LUT: ${v.explanation || v.index + 1}` })));
    this.presetList = list;
    this.presets.replaceChildren(...presets);
    this.frameInput.max = String(this.info.frames - 1);
    this.frameInput.value = "0";
    this.frameInput.hidden = this.info.frames <= 1;
    this.render();
  }

  applyPreset() {
    const value = this.presets.value;
    if (value === "file") this.window = null;
    else if (value.startsWith("lut")) this.window = { voi_lut: Number(value.slice(3)) };
    else {
      const p = this.presetList[Number(value.slice(1))];
      this.window = { center: p.center, width: p.width, function: p.function || "LINEAR" };
    }
    this.render();
  }

  setFrame(frame) {
    if (!this.info) return;
    this.frame = Math.max(0, Math.min(this.info.frames - 1, frame));
    this.frameInput.value = String(this.frame);
    this.render();
  }

  // Renders the current frame; while one render runs, only the latest request is kept.
  async render() {
    if (!this.file || !this.info) return;
    if (this.rendering) { this.pendingRender = true; return; }
    this.rendering = true;
    const file = this.file;
    const collected = this.app.tasks.collector();
    const result = await this.app.python.call("render_frame",
      { path: file.path, name: file.name, frame: this.frame, window: this.window }, { onPart: collected.onPart });
    this.rendering = false;
    if (this.file === file) {
      if (!result.ok) {
        this.status.textContent = result.error.message;
      } else {
        const r = result.render;
        const buffer = await collected.finished[0].blob.arrayBuffer();
        this.canvas.width = r.columns;
        this.canvas.height = r.rows;
        this.canvas.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(buffer), r.columns, r.rows), 0, 0);
        this.rendered = r;
        const w = r.window;
        this.status.textContent = [`${r.columns} × ${r.rows}`, this.info.frames > 1 ? `frame ${r.frame + 1} of ${r.frames}` : null,
          r.photometric, w ? `window C ${fmt(w.center)} / W ${fmt(w.width)} (${w.source})` : null,
          r.voi_lut !== null && r.voi_lut !== undefined ? `VOI LUT ${r.voi_lut + 1}` : null,
          r.overlays?.length ? `overlays ${r.overlays.join(", ")}` : null].filter(Boolean).join(" · ");
        this.frameLabel.textContent = this.info.frames > 1 ? `${r.frame + 1} / ${r.frames}` : "";
      }
    }
    if (this.pendingRender) { this.pendingRender = false; this.render(); }
  }

  // The image pixel under the pointer; the canvas is letterboxed by object-fit: contain.
  pixelAt(event) {
    const rect = this.canvas.getBoundingClientRect();
    const scale = Math.min(rect.width / this.canvas.width, rect.height / this.canvas.height);
    const left = rect.left + (rect.width - this.canvas.width * scale) / 2;
    const top = rect.top + (rect.height - this.canvas.height * scale) / 2;
    return { row: Math.floor((event.clientY - top) / scale), col: Math.floor((event.clientX - left) / scale) };
  }

  bindPointer() {
    let drag = null;
    this.canvas.addEventListener("pointerdown", (event) => {
      if (!this.rendered?.window) return;
      const w = this.window?.center !== undefined ? this.window : this.rendered.window;
      drag = { x: event.clientX, y: event.clientY, center: w.center, width: w.width };
      this.canvas.setPointerCapture(event.pointerId);
    });
    this.canvas.addEventListener("pointermove", (event) => {
      if (drag) {
        // One screen pixel moves the window by a share of the data range, so any modality feels alike.
        const range = this.rendered.range ? this.rendered.range[1] - this.rendered.range[0] : 256;
        const step = Math.max(range / 512, 1e-6);
        this.window = { center: drag.center - (event.clientY - drag.y) * step,
          width: Math.max(step, drag.width + (event.clientX - drag.x) * step), function: "LINEAR" };
        this.presets.value = "file";
        this.render();
        return;
      }
      this.readValue(event);
    });
    this.canvas.addEventListener("pointerup", () => { drag = null; });
    this.canvas.addEventListener("wheel", (event) => {
      if (!this.info || this.info.frames <= 1) return;
      event.preventDefault();
      this.setFrame(this.frame + Math.sign(event.deltaY));
    }, { passive: false });
    this.canvas.addEventListener("keydown", (event) => {
      const delta = { ArrowUp: -1, ArrowLeft: -1, ArrowDown: 1, ArrowRight: 1, PageUp: -10, PageDown: 10 }[event.key];
      if (delta === undefined || !this.info) return;
      event.preventDefault();
      this.setFrame(this.frame + delta);
    });
  }

  async readValue(event) {
    if (!this.info || this.reading) return;
    const { row, col } = this.pixelAt(event);
    if (row < 0 || col < 0 || row >= this.canvas.height || col >= this.canvas.width) return;
    this.reading = true;
    const result = await this.app.python.call("pixel_value", { path: this.file.path, name: this.file.name, frame: this.frame, row, col });
    this.reading = false;
    if (!result.ok) return;
    const p = result.pixel;
    const stored = Array.isArray(p.stored) ? p.stored.join(", ") : p.stored;
    this.readout.textContent = `row ${p.row}, col ${p.col}: stored ${stored}` +
      (p.rescaled !== null ? ` · value ${fmt(p.rescaled)}${p.units ? ` ${p.units}` : ""}` : "");
  }
}
