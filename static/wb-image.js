// The Image workbench: the selected series as a stack of slices (each multi-frame file adds its
// frames), rendered by Python (modality LUT, VOI LUT or window, photometric, overlays); scrolled,
// zoomed, panned and windowed by mouse or keyboard; values read out. Neighbouring slices are
// rendered ahead while the worker is idle, so scrolling a series does not wait for each one.
// Measuring (measure-tools.js) and touch gestures (image-touch.js) take pointer events first.

import { MEASURE_HELP, MeasureTools } from "./measure-tools.js";
import { bindTouch } from "./image-touch.js";
import { button, el } from "./dom.js";
import { Workbench } from "./workbench.js";

const fmt = (x) => (Number.isInteger(x) ? String(x) : Number(x).toFixed(Math.abs(x) < 10 ? 2 : 1));

// Slices rendered ahead in the direction of scrolling (and one behind), and how many rendered
// slices are kept (a 512 × 512 slice is 1 MB of RGBA).
const AHEAD = 4;
const KEPT_RENDERS = 32;
const PAGE = 10;
// Wheel distance (CSS px) per slice; one notch of a mouse wheel is about 100.
const WHEEL_STEP = 100;
// If the slice asked for is not drawn within this time, the one on screen is dimmed.
const STALE_AFTER_MS = 250;
const WINDOW_SETTLE_MS = 200;
const WINDOW_SOURCES = { file: "the file's", minmax: "from the values", argument: "set here" };

const KEY_HELP = "Wheel, ↑ ↓, PgUp PgDn, Home End: slices · drag: window · Shift+↑ ↓ level, " +
  "Shift+← → width · Ctrl+wheel or + −: zoom · Shift+drag or middle drag: pan · F: fit · 1: 1:1";

// What a rendered slice is kept under: the file, the frame and the window it was drawn with.
const renderKey = ({ file, frame }, window) => `${file.key}:${frame}:${JSON.stringify(window)}`;

function byInstanceThenName(a, b) {
  return (a.instance.number ?? Infinity) - (b.instance.number ?? Infinity) || a.name.localeCompare(b.name);
}

// The slices of `file`'s series among `files`: in position order when every file has a distinct
// position (running the way the instance numbers run), else by instance number, then name.
export function seriesStack(files, file) {
  const series = files.filter((f) => f.series.uid === file.series.uid && f.instance.frames > 0)
    .sort(byInstanceThenName);
  const positions = series.map((f) => f.instance.position);
  if (series.length > 1 && positions.every(Number.isFinite) && new Set(positions).size === series.length) {
    series.sort((a, b) => a.instance.position - b.instance.position);
    if ((series.at(-1).instance.number ?? 0) < (series[0].instance.number ?? 0)) series.reverse();
  }
  return series.flatMap((f) => Array.from({ length: f.instance.frames }, (_, frame) => ({ file: f, frame })));
}

export class ImageWorkbench extends Workbench {
  id = "image";
  title = "Image";

  constructor(app) {
    super(app);
    this.files = [];
    this.stack = [];
    this.index = 0;
    this.direction = 1;
    this.window = null; // null: each file's own VOI
    this.zoom = null; // null: fit the stage; else screen pixels per image pixel
    this.pan = { x: 0, y: 0 };
    this.infos = new Map(); // file key → Promise of frame_info's answer
    this.renders = new Map(); // slice and window → Promise of { ok, image, render } or { ok: false, message }
    this.painted = null; // the slice on the canvas
    this.presetsFor = null; // the series whose presets the preset list shows
    this.drawing = false;
    this.prefetching = false;
    this.wheelDistance = 0;
    this.windowMoved = -Infinity;
  }

  mount(panel) {
    this.fileSelect = el("select", { id: "image-file" });
    this.fileSelect.addEventListener("change", () => this.show(this.app.files.get(this.fileSelect.value)));
    this.presets = el("select", { id: "image-preset", "aria-label": "Window preset" });
    this.presets.addEventListener("change", () => this.applyPreset());
    this.frameInput = el("input",
      { type: "range", id: "image-frame", min: 0, max: 0, value: 0, "aria-label": "Slice" });
    this.frameInput.addEventListener("input", () => this.goTo(Number(this.frameInput.value)));
    this.frameLabel = el("span", { className: "detail slice-count", id: "image-frame-label" });
    const small = (text, label, action) => button(text, action, { className: "small", "aria-label": label });
    const reset = small("Reset window", null, () => {
      this.presets.value = "file";
      this.setWindow(null);
    });
    const fit = small("Fit", "Fit the image to the view", () => this.setZoom(null));
    const actual = small("1:1", "1:1, one image pixel per screen pixel", () => this.setZoom(1 / devicePixelRatio));
    this.zoomLabel = el("span", { className: "detail", id: "image-zoom" });
    this.canvas = el("canvas", { id: "image-canvas", role: "img", "aria-label": "The selected slice" });
    this.message = el("p", { className: "empty", id: "image-message", "aria-live": "polite",
      textContent: "Pick a file with an image at left to view it." });
    this.help = el("p", { className: "hint image-help", id: "image-help",
      textContent: `${KEY_HELP} · ${MEASURE_HELP}` });
    this.stage = el("div", { className: "image-stage", id: "image-stage", tabIndex: 0, role: "application",
      "aria-label": "Image viewer", "aria-describedby": this.help.id }, this.message, this.canvas);
    // Not a live region: it changes with every slice and every window drag.
    this.status = el("div", { className: "image-status", id: "image-status" });
    this.readout = el("div", { className: "image-readout", id: "image-readout" });
    this.measuring = new MeasureTools(this);
    const measure = this.measuring.mount(this.stage);
    panel.append(
      el("div", { className: "toolbar" },
        el("label", { htmlFor: "image-file", textContent: "File" }), this.fileSelect,
        this.presets, reset, fit, actual, this.zoomLabel, el("span", { className: "spacer" }),
        this.frameInput, this.frameLabel),
      measure.toolbar,
      this.stage,
      el("div", { className: "image-footer" }, this.status, this.readout),
      measure.panel,
      this.help);
    this.canvas.hidden = true;
    bindTouch(this, this.measuring);
    this.bindPointer();
    this.bindKeys();
    new ResizeObserver(() => this.layout()).observe(this.stage);
  }

  selectionChanged() {
    this.files = this.selection.files;
    this.fileSelect.replaceChildren(...this.files.slice(0, 2000)
      .map((f) => el("option", { value: f.key, textContent: f.name })));
    this.stack = [];
    const first = this.files.find((f) => f.instance.frames > 0) || this.files[0];
    if (first) this.show(first);
  }

  // Shows `file`'s first frame, in the stack of its series within the selection.
  show(file) {
    if (!file) return;
    let index = this.stack.findIndex((s) => s.file === file);
    if (index < 0) {
      this.stack = seriesStack(this.files, file);
      index = this.stack.findIndex((s) => s.file === file);
      if (index < 0) { this.stack = [{ file, frame: 0 }]; index = 0; }
      this.window = null;
      this.zoom = null;
      this.pan = { x: 0, y: 0 };
      this.renders.clear();
      this.presetsFor = null;
      this.frameInput.max = String(this.stack.length - 1);
      this.frameInput.hidden = this.stack.length <= 1;
    }
    this.goTo(index);
  }

  goTo(index) {
    if (!this.stack.length) return;
    index = Math.max(0, Math.min(this.stack.length - 1, index));
    if (index !== this.index) this.direction = Math.sign(index - this.index);
    this.index = index;
    const { file } = this.stack[index];
    this.fileSelect.value = file.key;
    this.frameInput.value = String(index);
    this.frameLabel.textContent = this.stack.length > 1 ? `${index + 1} / ${this.stack.length}` : "";
    this.draw();
  }

  setWindow(window) {
    this.window = window;
    this.renders.clear();
    this.draw();
  }

  applyPreset() {
    const value = this.presets.value;
    if (value === "file") return this.setWindow(null);
    if (value.startsWith("lut")) return this.setWindow({ voi_lut: Number(value.slice(3)) });
    const p = this.presetList[Number(value.slice(1))];
    return this.setWindow({ center: p.center, width: p.width, function: p.function || "LINEAR" });
  }

  infoOf(file) {
    if (!this.infos.has(file.key)) {
      if (this.infos.size > 4000) this.infos.clear();
      this.infos.set(file.key, this.app.python.call("frame_info", { path: file.path, name: file.name }));
    }
    return this.infos.get(file.key);
  }

  // The slice rendered with `window`, shared by drawing and rendering ahead; the newest kept.
  renderOf(slice, window) {
    const key = renderKey(slice, window);
    let render = this.renders.get(key);
    if (render) {
      this.renders.delete(key);
    } else {
      render = this.requestRender(slice.file, slice.frame, window);
      while (this.renders.size >= KEPT_RENDERS) this.renders.delete(this.renders.keys().next().value);
    }
    this.renders.set(key, render);
    return render;
  }

  async requestRender(file, frame, window) {
    const collected = this.app.tasks.collector();
    const result = await this.app.python.call("render_frame",
      { path: file.path, name: file.name, frame, window }, { onPart: collected.onPart });
    if (!result.ok) return { ok: false, message: result.error.message };
    const r = result.render;
    const buffer = await collected.finished[0].blob.arrayBuffer();
    return { ok: true, render: r, image: new ImageData(new Uint8ClampedArray(buffer), r.columns, r.rows) };
  }

  // Draws the current slice; while one is being drawn, only the latest request is kept.
  async draw() {
    if (this.drawing) { this.redraw = true; return; }
    this.drawing = true;
    const stale = setTimeout(() => this.canvas.classList.add("stale"), STALE_AFTER_MS);
    do {
      this.redraw = false;
      const slice = this.stack[this.index];
      if (slice) await this.drawSlice(slice);
    } while (this.redraw);
    clearTimeout(stale);
    this.canvas.classList.remove("stale");
    this.drawing = false;
    // While a window is being dragged, rendering ahead would only delay the next window.
    clearTimeout(this.aheadTimer);
    const settle = Math.max(0, this.windowMoved + WINDOW_SETTLE_MS - performance.now());
    this.aheadTimer = setTimeout(() => this.renderAhead(), settle);
  }

  async drawSlice(slice) {
    const { file } = slice;
    const answer = await this.infoOf(file);
    if (slice !== this.stack[this.index]) return;
    if (!answer.ok || !answer.info.has_pixels || !answer.info.decodable) {
      this.fail(!answer.ok ? answer.error.message
        : !answer.info.has_pixels ? `${file.name} has no pixel data to show.` : answer.info.why_not);
      return;
    }
    this.info = answer.info;
    if (this.presetsFor !== file.series.uid) this.fillPresets(answer.info, file);
    const rendered = await this.renderOf(slice, this.window);
    if (slice !== this.stack[this.index]) return;
    if (!rendered.ok) {
      this.fail(rendered.message.includes(file.name) ? rendered.message : `${file.name}: ${rendered.message}`);
      return;
    }
    this.paint(slice, rendered);
  }

  fillPresets(info, file) {
    this.presetsFor = file.series.uid;
    const options = [el("option", { value: "file", textContent: "Window: from the file" })];
    this.presetList = [...info.window_presets, ...info.suggested_presets];
    this.presetList.forEach((p, i) => options.push(el("option", { value: `w${i}`,
      textContent: `${p.explanation || "Window"} (C ${fmt(p.center)} / W ${fmt(p.width)})` })));
    info.voi_luts.forEach((v) => options.push(el("option", { value: `lut${v.index}`,
      textContent: `VOI LUT: ${v.explanation || v.index + 1}` })));
    this.presets.replaceChildren(...options);
  }

  // Nothing of the previous slice stays on screen: the reason takes the image's place.
  fail(message) {
    this.painted = null;
    this.measuring.show();
    this.rendered = null;
    this.canvas.hidden = true;
    this.message.hidden = false;
    this.message.className = "image-problem";
    this.message.textContent = message;
    this.status.textContent = "";
    this.readout.textContent = "";
    this.zoomLabel.textContent = "";
  }

  paint(slice, { image, render: r }) {
    const resized = this.canvas.width !== r.columns || this.canvas.height !== r.rows;
    this.canvas.width = r.columns;
    this.canvas.height = r.rows;
    this.canvas.getContext("2d").putImageData(image, 0, 0);
    this.painted = slice;
    this.rendered = r;
    this.message.hidden = true;
    this.canvas.hidden = false;
    if (resized) this.layout();
    this.measuring.show();
    const w = r.window;
    const position = this.stack.length > 1 ? `slice ${this.index + 1} of ${this.stack.length}` : null;
    this.canvas.setAttribute("aria-label", `${slice.file.name}${position ? `, ${position}` : ""}`);
    this.status.textContent = [`${r.columns} × ${r.rows}`, r.frames > 1 ? `frame ${r.frame + 1} of ${r.frames}` : null,
      r.photometric,
      w ? `window C ${fmt(w.center)} / W ${fmt(w.width)} (${WINDOW_SOURCES[w.source] || w.source})` : null,
      r.voi_lut !== null && r.voi_lut !== undefined ? `VOI LUT ${r.voi_lut + 1}` : null,
      r.overlays?.length ? `overlays ${r.overlays.join(", ")}` : null].filter(Boolean).join(" · ");
  }

  // Renders the next slices in the direction of scrolling (and one behind) while nothing is drawn.
  async renderAhead() {
    if (this.prefetching) return;
    this.prefetching = true;
    for (;;) {
      const wanted = [...Array.from({ length: AHEAD }, (_, i) => this.index + (i + 1) * this.direction),
        this.index - this.direction].map((i) => this.stack[i]).filter(Boolean);
      const window = this.window;
      const next = wanted.find((s) => !this.renders.has(renderKey(s, window)));
      if (!next || this.drawing) break;
      const answer = await this.infoOf(next.file);
      if (!answer.ok || !answer.info.has_pixels || !answer.info.decodable) {
        const message = !answer.ok ? answer.error.message
          : answer.info.why_not || `${next.file.name} has no pixel data to show.`;
        this.renders.set(renderKey(next, window), Promise.resolve({ ok: false, message }));
        continue;
      }
      await this.renderOf(next, window);
    }
    this.prefetching = false;
  }

  // ---- Zoom and pan: the canvas is placed in the stage at `zoom` (or fitted), shifted by `pan`.

  fitScale() {
    const stage = this.stage.getBoundingClientRect();
    return Math.max(1e-3, Math.min((stage.width - 16) / this.canvas.width, (stage.height - 16) / this.canvas.height));
  }

  layout() {
    if (!this.canvas.width) return;
    const stage = this.stage.getBoundingClientRect();
    const scale = this.zoom ?? this.fitScale();
    const width = this.canvas.width * scale;
    const height = this.canvas.height * scale;
    Object.assign(this.canvas.style, { width: `${width}px`, height: `${height}px`,
      left: `${(stage.width - width) / 2 + this.pan.x}px`, top: `${(stage.height - height) / 2 + this.pan.y}px` });
    this.zoomLabel.textContent = `${Math.round(scale * devicePixelRatio * 100)}%`;
    this.measuring.layout();
  }

  // Zooms to `zoom` (null: fit) keeping the image point under (x, y) — client coordinates — in place.
  setZoom(zoom, x, y) {
    const before = this.zoom ?? this.fitScale();
    const after = zoom === null ? null : Math.max(0.05, Math.min(32, zoom));
    if (after === null || x === undefined) {
      this.pan = { x: 0, y: 0 };
    } else {
      const stage = this.stage.getBoundingClientRect();
      const cx = x - stage.left - stage.width / 2;
      const cy = y - stage.top - stage.height / 2;
      this.pan = { x: cx - (cx - this.pan.x) * (after / before), y: cy - (cy - this.pan.y) * (after / before) };
    }
    this.zoom = after;
    this.layout();
  }

  // ---- Mouse and keys ---------------------------------------------------------------------------

  // The image pixel under the pointer.
  pixelAt(event) {
    const rect = this.canvas.getBoundingClientRect();
    return { row: Math.floor((event.clientY - rect.top) / rect.height * this.canvas.height),
      col: Math.floor((event.clientX - rect.left) / rect.width * this.canvas.width) };
  }

  currentWindow() {
    return this.window?.center !== undefined ? this.window : this.rendered?.window;
  }

  // One step of windowing: a share of the data range, so any modality feels alike.
  windowStep() {
    const range = this.rendered?.range ? this.rendered.range[1] - this.rendered.range[0] : 256;
    return Math.max(range / 512, 1e-6);
  }

  moveWindow(center, width) {
    this.windowMoved = performance.now();
    this.presets.value = "file";
    this.setWindow({ center, width: Math.max(this.windowStep(), width), function: "LINEAR" });
  }

  bindPointer() {
    let drag = null;
    this.stage.addEventListener("pointerdown", (event) => {
      if (!this.rendered) return;
      if (this.measuring.pointerDown(event)) {
        event.preventDefault();
        this.stage.focus({ preventScroll: true });
        this.stage.setPointerCapture(event.pointerId);
        return;
      }
      const pan = event.button === 1 || (event.button === 0 && (event.shiftKey || event.ctrlKey || event.metaKey));
      const w = this.currentWindow();
      if (!pan && (event.button !== 0 || !w)) return;
      event.preventDefault();
      this.stage.focus({ preventScroll: true });
      drag = { pan, x: event.clientX, y: event.clientY, start: { ...this.pan }, center: w?.center, width: w?.width };
      this.stage.setPointerCapture(event.pointerId);
      this.stage.classList.toggle("panning", pan);
    });
    this.stage.addEventListener("pointermove", (event) => {
      if (this.measuring.pointerMove(event)) return;
      if (!drag) { this.readValue(event); return; }
      const dx = event.clientX - drag.x;
      const dy = event.clientY - drag.y;
      if (drag.pan) {
        this.pan = { x: drag.start.x + dx, y: drag.start.y + dy };
        this.layout();
      } else {
        this.moveWindow(drag.center - dy * this.windowStep(), drag.width + dx * this.windowStep());
      }
    });
    const end = (event) => {
      this.measuring.pointerUp(event);
      drag = null;
      this.stage.classList.remove("panning");
    };
    this.stage.addEventListener("dblclick", () => this.measuring.doubleClick());
    this.stage.addEventListener("pointerup", end);
    this.stage.addEventListener("pointercancel", end);
    this.stage.addEventListener("wheel", (event) => {
      if (!this.stack.length) return;
      event.preventDefault();
      const distance = event.deltaY * (event.deltaMode === 1 ? 40 : event.deltaMode === 2 ? 800 : 1);
      if (event.ctrlKey || event.metaKey) {
        this.setZoom((this.zoom ?? this.fitScale()) * Math.exp(-distance / 500), event.clientX, event.clientY);
        return;
      }
      // Small trackpad steps add up; a notch of a mouse wheel is one slice.
      this.wheelDistance += distance;
      const steps = Math.trunc(this.wheelDistance / WHEEL_STEP)
        || (Math.abs(distance) >= WHEEL_STEP / 2 ? Math.sign(distance) : 0);
      if (!steps) return;
      this.wheelDistance = 0;
      this.goTo(this.index + steps);
    }, { passive: false });
  }

  bindKeys() {
    this.stage.addEventListener("keydown", (event) => {
      if (this.measuring.key(event)) { event.preventDefault(); return; }
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      const key = event.key;
      const w = this.currentWindow();
      const step = this.windowStep() * 8;
      if (event.shiftKey && w && ["ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight"].includes(key)) {
        const level = { ArrowUp: step, ArrowDown: -step }[key] || 0;
        const width = { ArrowRight: step, ArrowLeft: -step }[key] || 0;
        this.moveWindow(w.center + level, w.width + width);
      } else if (key === "+" || key === "=" || key === "-") {
        const stage = this.stage.getBoundingClientRect();
        this.setZoom((this.zoom ?? this.fitScale()) * (key === "-" ? 1 / 1.25 : 1.25),
          stage.left + stage.width / 2, stage.top + stage.height / 2);
      } else if (key === "f" || key === "F" || key === "0") {
        this.setZoom(null);
      } else if (key === "1") {
        this.setZoom(1 / devicePixelRatio);
      } else {
        const last = this.stack.length - 1;
        const target = { ArrowUp: this.index - 1, ArrowLeft: this.index - 1, ArrowDown: this.index + 1,
          ArrowRight: this.index + 1, PageUp: this.index - PAGE, PageDown: this.index + PAGE, Home: 0, End: last }[key];
        if (target === undefined || event.shiftKey) return;
        this.goTo(target);
      }
      event.preventDefault();
    });
  }

  async readValue(event) {
    const slice = this.painted;
    if (!slice || this.reading || event.target !== this.canvas) return;
    const { row, col } = this.pixelAt(event);
    if (row < 0 || col < 0 || row >= this.canvas.height || col >= this.canvas.width) return;
    this.reading = true;
    const result = await this.app.python.call("pixel_value",
      { path: slice.file.path, name: slice.file.name, frame: slice.frame, row, col });
    this.reading = false;
    if (!result.ok || slice !== this.painted) return;
    const p = result.pixel;
    const stored = Array.isArray(p.stored) ? p.stored.join(", ") : p.stored;
    this.readout.textContent = `row ${p.row}, col ${p.col}: stored ${stored}` +
      (p.rescaled !== null ? ` · value ${fmt(p.rescaled)}${p.units ? ` ${p.units}` : ""}` : "");
  }
}
