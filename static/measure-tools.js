// Measuring on the Image workbench: length, polygon, ellipse, point and angle drawn over the frame in
// image coordinates (an SVG whose viewBox is the image, placed exactly over the canvas, so zoom and
// pan move it with the image), edited by dragging handles or with keys, listed per image, and
// exported as a TID 1500 SR or a GSPS. Every number shown comes from Python (dcmstudio.measure);
// shapes of loaded SRs and presentation states are drawn over the images they reference.

import { button, el } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const svg = (tag, attributes = {}) => {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
  return node;
};
const n1 = (x) => Number(x).toFixed(1);

export const TOOLS = [
  { id: "length", label: "Length", key: "l", prefix: "L", points: 2 },
  { id: "polygon", label: "Polygon", key: "r", prefix: "R", points: Infinity },
  { id: "ellipse", label: "Ellipse", key: "e", prefix: "E", points: 2 },
  { id: "point", label: "Point", key: "p", prefix: "P", points: 1 },
  { id: "angle", label: "Angle", key: "a", prefix: "A", points: 3 },
];
const TOOL = Object.fromEntries(TOOLS.map((t) => [t.id, t]));
const SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.";
const PR_CLASS = "1.2.840.10008.5.1.4.1.1.11.";
const NOTHING_DRAWN = "Nothing was drawn: draw a length, a region or a point first.";
// Screen pixels: how near a click must be to a polygon's first point to close it; handle radius.
const CLOSE_DISTANCE = 8;
const HANDLE_RADIUS = 5;
export const MEASURE_HELP = "L length · R polygon · E ellipse · P point · A angle: then arrows move the cursor, " +
  "Enter places a point (C closes a polygon), Esc stops · N selects the next drawing, [ ] its handle, " +
  "arrows move it (Shift: ×10), Delete removes it";

// An ellipse is kept as two opposite corners of its box; SR and GSPS take its axes' four ends,
// the major axis first (PS3.3 C.18.6.1.2).
export function ellipseAxes([[x0, y0], [x1, y1]]) {
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const across = [[Math.min(x0, x1), cy], [Math.max(x0, x1), cy]];
  const down = [[cx, Math.min(y0, y1)], [cx, Math.max(y0, y1)]];
  return Math.abs(x1 - x0) >= Math.abs(y1 - y0) ? [...across, ...down] : [...down, ...across];
}
// A qualitative evaluation is chosen as "concept keyword|value keyword".
const qualitativePair = (choice) => {
  const [name, value] = choice.split("|");
  return { name, value };
};
const measuredPoints = (item) =>
  (item.kind === "ellipse" && item.points.length === 2 ? ellipseAxes(item.points) : item.points);

export class MeasureTools {
  constructor(viewer) {
    this.viewer = viewer;
    this.app = viewer.app;
    this.tool = null;
    this.pending = null; // the points of the drawing being placed
    this.cursor = null; // the keyboard's cursor, in image coordinates
    this.items = new Map(); // "file key:frame" → drawings on that frame
    this.selected = null;
    this.handle = -1; // -1: the whole drawing
    this.counters = {};
    this.imported = new Map(); // SOP instance UID → shapes from loaded SR / GSPS
    this.readObjects = new Map(); // file key → what shapes() said of it
    this.choices = null;
  }

  // ---- Building the controls -------------------------------------------------------------------

  mount(stage) {
    this.svg = svg("svg", { class: "measure-layer", id: "measure-layer", "aria-hidden": "true" });
    stage.append(this.svg);
    this.buttons = TOOLS.map((t) => {
      return button(t.label, () => {
        this.setTool(this.tool === t.id ? null : t.id);
        stage.focus({ preventScroll: true });
      }, { className: "small", id: `tool-${t.id}`, "aria-pressed": "false", "aria-keyshortcuts": t.key.toUpperCase() });
    });
    this.toolbar = el("div", { className: "toolbar measure-tools", role: "toolbar", "aria-label": "Measuring tools" },
      el("span", { className: "detail", textContent: "Measure" }), ...this.buttons);
    this.list = el("ul", { className: "measure-list", id: "measure-list", "aria-label": "Measurements on this image" });
    this.summary = el("p", { className: "hint", id: "measure-summary", "aria-live": "polite" });
    this.status = el("p", { className: "hint", id: "measure-status", role: "status" });
    this.importedNote = el("p", { className: "hint", id: "measure-imported", "aria-live": "polite" });
    this.observer = el("input", { id: "measure-observer", placeholder: "Family^Given", autocomplete: "off" });
    this.procedure = el("select", { id: "measure-procedure" });
    const srButton = button("Export SR", () => this.exportReport(), { className: "small", id: "measure-export-sr" });
    const prButton = button("Export GSPS", () => this.exportPresentation(),
      { className: "small", id: "measure-export-gsps" });
    this.exportNote = el("p", { className: "hint", id: "measure-export-note", "aria-live": "polite" });
    this.panel = el("section",
      { className: "measure-panel", id: "measure-panel", "aria-labelledby": "measure-summary" },
      el("h2", { className: "measure-title", textContent: "Measurements" }), this.summary, this.status, this.list,
      this.importedNote,
      el("details", { className: "measure-export", id: "measure-export" },
        el("summary", { textContent: "Export as a TID 1500 SR or a GSPS" }),
        el("div", { className: "toolbar" },
          el("label", { htmlFor: "measure-observer", textContent: "Observer" }), this.observer,
          el("label", { htmlFor: "measure-procedure", textContent: "Procedure" }), this.procedure, srButton, prButton),
        this.exportNote));
    return { toolbar: this.toolbar, panel: this.panel };
  }

  async loadChoices() {
    if (this.choices) return this.choices;
    const result = await this.app.python.call("create_choices", {});
    if (!result.ok) return null;
    this.choices = result.sr;
    const options = (entries, none) => [el("option", { value: "", textContent: none }),
      ...entries.map((c) => el("option", { value: c.keyword, textContent: c.meaning }))];
    this.procedure.replaceChildren(...options(this.choices.procedures, "choose…").slice(1));
    const ct = this.choices.procedures.find((p) => p.keyword === "LN.CTUnspecifiedBodyRegion");
    if (ct) this.procedure.value = ct.keyword;
    this.findingOptions = () => options(this.choices.findings, "Finding: none");
    this.siteOptions = () => options(this.choices.finding_sites, "Site: none");
    this.renderList();
    return this.choices;
  }

  setTool(tool) {
    this.tool = tool;
    this.pending = null;
    if (tool) this.select(null);
    this.buttons.forEach((b, i) => b.setAttribute("aria-pressed", String(TOOLS[i].id === tool)));
    this.viewer.stage.classList.toggle("measuring", Boolean(tool));
    const count = TOOL[tool]?.points;
    const what = count === Infinity ? "each corner, C or a click on the first corner to close"
      : `${count} point${count > 1 ? "s" : ""}`;
    this.say(tool ? `${TOOL[tool].label}: click or press Enter to place ${what}.` : "");
    this.draw();
  }

  // What the tools say goes to a status line a screen reader reads (the readout changes too often).
  say(text) { this.status.textContent = text; }

  // ---- Where things are ------------------------------------------------------------------------

  get slice() { return this.viewer.painted; }
  keyOf(slice) { return `${slice.file.key}:${slice.frame}`; }
  current() { return this.slice ? this.items.get(this.keyOf(this.slice)) || [] : []; }
  scale() {
    const rect = this.viewer.canvas.getBoundingClientRect();
    return rect.width / (this.viewer.canvas.width || 1);
  }

  imagePoint(event) {
    const rect = this.viewer.canvas.getBoundingClientRect();
    return [(event.clientX - rect.left) / rect.width * this.viewer.canvas.width,
      (event.clientY - rect.top) / rect.height * this.viewer.canvas.height];
  }

  layout() {
    const c = this.viewer.canvas;
    const { left, top, width, height } = c.style;
    Object.assign(this.svg.style, { left, top, width, height });
    this.svg.setAttribute("viewBox", `0 0 ${c.width} ${c.height}`);
    this.draw();
  }

  // Called when a slice is painted (or none is): its drawings are shown and listed.
  show() {
    this.svg.style.display = this.slice ? "" : "none";
    if (this.selected && !this.current().includes(this.selected)) this.select(null);
    this.pending = null;
    this.readLoadedObjects();
    this.layout();
    this.renderList();
    if (!this.choices) this.loadChoices();
  }

  // ---- Drawing ---------------------------------------------------------------------------------

  draw() {
    if (!this.slice) { this.svg.replaceChildren(); return; }
    const s = this.scale();
    const nodes = [];
    for (const shape of this.importedHere()) nodes.push(...this.shapeNodes(shape, s, "imported"));
    for (const item of this.current()) {
      nodes.push(...this.shapeNodes(item, s, item === this.selected ? "selected" : ""));
    }
    if (this.pending) {
      const following = this.cursor && this.pendingPreview;
      const preview = { kind: this.tool, points: following ? [...this.pending, this.cursor] : this.pending };
      nodes.push(...this.shapeNodes(preview, s, "pending"));
    }
    if (this.tool && this.cursor) {
      const r = 8 / s;
      const [x, y] = this.cursor;
      nodes.push(svg("path", { class: "measure-cursor", d: `M${x - r} ${y}H${x + r}M${x} ${y - r}V${y + r}` }));
    }
    this.svg.replaceChildren(...nodes);
  }

  shapeNodes(item, s, state) {
    const p = item.points;
    if (!p.length) return [];
    const cls = `measure-shape ${state}`;
    const nodes = [];
    const data = item.id ? { "data-item": item.id } : {};
    if (item.kind === "ellipse" && p.length >= 2) {
      const axes = p.length === 4 ? p : ellipseAxes(p);
      const [a0, a1, b0, b1] = axes;
      const rx = Math.hypot(a1[0] - a0[0], a1[1] - a0[1]) / 2;
      const ry = Math.hypot(b1[0] - b0[0], b1[1] - b0[1]) / 2;
      const angle = Math.atan2(a1[1] - a0[1], a1[0] - a0[0]) * 180 / Math.PI;
      const cx = (a0[0] + a1[0]) / 2;
      const cy = (a0[1] + a1[1]) / 2;
      nodes.push(svg("ellipse", { class: cls, cx, cy, rx, ry, transform: `rotate(${angle} ${cx} ${cy})`, ...data }));
    } else if (item.kind === "point" || item.kind === "points" || item.kind === "text" || p.length === 1) {
      if (item.kind !== "text") {
        for (const [x, y] of p) nodes.push(svg("circle", { class: `${cls} point`, cx: x, cy: y, r: 3 / s, ...data }));
      }
    } else {
      const tag = item.kind === "polygon" && state !== "pending" ? "polygon" : "polyline";
      nodes.push(svg(tag, { class: cls, points: p.map(([x, y]) => `${x},${y}`).join(" "), ...data }));
    }
    if (state === "selected" || (state === "" && item.id)) {
      p.forEach(([x, y], i) => {
        const active = state === "selected" && i === this.handle ? " active" : "";
        nodes.push(svg("circle", { class: `measure-handle${active}`, cx: x, cy: y, r: HANDLE_RADIUS / s,
          "data-item": item.id, "data-handle": i }));
      });
    }
    const label = this.labelOf(item);
    if (label) {
      const [x, y] = p.at(-1);
      const text = svg("text", { class: `measure-label ${state}`, x: x + 6 / s, y: y - 6 / s, "font-size": 12 / s });
      text.textContent = label;
      nodes.push(text);
    }
    return nodes;
  }

  labelOf(item) {
    if (!item.id) return item.label || "";
    return [item.label, this.numbers(item.result, true)].filter(Boolean).join(" ");
  }

  // What a measurement says, short (on the image) or whole (in the list).
  numbers(r, short) {
    if (!r) return "";
    if (r.error) return short ? "" : r.error;
    const u = r.units === "mm" ? "mm" : "px";
    const parts = [];
    if (r.length !== undefined) parts.push(`${n1(r.length)} ${u}`);
    if (r.angle !== undefined && r.angle !== null) parts.push(`${n1(r.angle)}°`);
    if (r.area !== undefined) parts.push(`${n1(r.area)} ${u}²`);
    const st = r.stats;
    const units = st?.units ? ` ${st.units}` : "";
    if (st) {
      parts.push(short ? `mean ${n1(st.mean)}${units}`
        : `mean ${n1(st.mean)}${units} · SD ${n1(st.sd)} · min ${n1(st.min)} · max ${n1(st.max)} · ${st.count} px`);
    }
    if (r.value !== undefined && r.value !== null) {
      parts.push(`${n1(r.value)}${r.value_units ? ` ${r.value_units}` : ""}`);
    }
    if (!short && r.spacing) {
      const source = r.spacing.source === "ImagerPixelSpacing" ? "Imager Pixel Spacing" : "Pixel Spacing";
      parts.push(`(${source} ${r.spacing.row} × ${r.spacing.column} mm)`);
    }
    if (!short) parts.push(...r.notes);
    return parts.join(short ? " " : " · ");
  }

  // ---- Placing and editing ---------------------------------------------------------------------

  addPoint(point) {
    const tool = TOOL[this.tool];
    if (!this.pending) this.pending = [];
    const [first] = this.pending;
    const closeTo = this.pending.length >= 3
      && Math.hypot(point[0] - first[0], point[1] - first[1]) * this.scale() < CLOSE_DISTANCE;
    if (tool.id === "polygon" && closeTo) return this.finish();
    this.pending.push(point);
    if (this.pending.length >= tool.points) return this.finish();
    this.draw();
    return true;
  }

  finish() {
    const tool = TOOL[this.tool];
    const points = this.pending || [];
    if (tool.id === "polygon" && points.length < 3) { this.say("A polygon needs at least 3 corners."); return false; }
    this.pending = null;
    this.counters[tool.prefix] = (this.counters[tool.prefix] || 0) + 1;
    const item = { id: `m${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`, kind: tool.id, points,
      label: `${tool.prefix}${this.counters[tool.prefix]}`, slice: this.slice, finding: "", site: "", qualitative: "" };
    const key = this.keyOf(this.slice);
    this.items.set(key, [...(this.items.get(key) || []), item]);
    this.measure(item);
    this.select(item);
    return true;
  }

  select(item, handle = -1) {
    this.selected = item;
    this.handle = handle;
    this.draw();
    this.renderList();
  }

  remove(item) {
    const key = this.keyOf(item.slice);
    this.items.set(key, (this.items.get(key) || []).filter((i) => i !== item));
    if (this.selected === item) this.selected = null;
    this.say(`${item.label} deleted.`);
    this.draw();
    this.renderList();
  }

  move(item, handle, dx, dy) {
    item.points = item.points.map(([x, y], i) => (handle < 0 || handle === i ? [x + dx, y + dy] : [x, y]));
    this.draw();
  }

  async measure(item) {
    const { file, frame } = item.slice;
    const asked = JSON.stringify(item.points);
    item.asked = asked;
    const result = await this.app.python.call("measure",
      { path: file.path, name: file.name, frame, kind: item.kind, points: measuredPoints(item) });
    if (item.asked !== asked) return;
    item.result = result.ok ? result.measurement : { error: result.error.message };
    this.say(`${item.label}: ${result.ok ? this.numbers(item.result, true) : item.result.error}`);
    this.draw();
    this.renderList();
  }

  // ---- Pointer: returns true when it took the event ---------------------------------------------

  pointerDown(event) {
    if (!this.slice || event.button !== 0 || event.shiftKey) return false;
    const target = event.target.dataset || {};
    if (this.tool) {
      const point = this.imagePoint(event);
      this.cursor = null;
      const tool = TOOL[this.tool];
      if ((tool.id === "length" || tool.id === "ellipse") && !this.pending) {
        this.pending = [point];
        this.drag = { kind: "new", start: point, moved: false };
        this.pendingPreview = true;
        this.draw();
      } else {
        this.addPoint(point);
      }
      return true;
    }
    const item = this.current().find((i) => i.id === target.item);
    if (!item) return false;
    const handle = target.handle !== undefined ? Number(target.handle) : -1;
    this.select(item, handle);
    this.drag = { kind: "edit", item, handle, last: this.imagePoint(event) };
    return true;
  }

  pointerMove(event) {
    if (!this.drag) {
      if (this.tool && this.pending && this.pendingPreview) { this.cursor = this.imagePoint(event); this.draw(); }
      return false;
    }
    const point = this.imagePoint(event);
    if (this.drag.kind === "new") {
      this.drag.moved ||= Math.hypot(point[0] - this.drag.start[0], point[1] - this.drag.start[1]) * this.scale() > 3;
      this.cursor = point;
    } else {
      this.move(this.drag.item, this.drag.handle, point[0] - this.drag.last[0], point[1] - this.drag.last[1]);
      this.drag.last = point;
    }
    this.draw();
    return true;
  }

  pointerUp(event) {
    const drag = this.drag;
    if (!drag) return false;
    this.drag = null;
    if (drag.kind === "new") {
      if (drag.moved) { this.cursor = null; this.addPoint(this.imagePoint(event)); }
    } else {
      this.measure(drag.item);
    }
    return true;
  }

  doubleClick() {
    if (this.tool === "polygon" && this.pending?.length >= 3) { this.finish(); return true; }
    return false;
  }

  // ---- Keys: returns true when it took the key --------------------------------------------------

  key(event) {
    if (!this.slice || event.altKey || event.ctrlKey || event.metaKey) return false;
    const k = event.key;
    const tool = TOOLS.find((t) => t.key === k.toLowerCase());
    if (tool && !event.shiftKey) { this.setTool(this.tool === tool.id ? null : tool.id); return true; }
    const arrows = { ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0] };
    const step = event.shiftKey ? 10 : 1;
    if (this.tool) {
      if (k === "Escape") {
        if (this.pending) { this.pending = null; this.draw(); } else this.setTool(null);
        return true;
      }
      if ((k === "c" || k === "C") && this.tool === "polygon") { this.finish(); return true; }
      if (arrows[k]) {
        const c = this.cursor || [this.viewer.canvas.width / 2, this.viewer.canvas.height / 2];
        this.cursor = [c[0] + arrows[k][0] * step, c[1] + arrows[k][1] * step];
        this.pendingPreview = this.tool !== "point";
        this.say(`Cursor at column ${n1(this.cursor[0])}, row ${n1(this.cursor[1])}`);
        this.draw();
        return true;
      }
      if (k === "Enter" || k === " ") {
        const point = this.cursor || [this.viewer.canvas.width / 2, this.viewer.canvas.height / 2];
        this.cursor = point;
        this.pendingPreview = true;
        this.addPoint([...point]);
        return true;
      }
      return false;
    }
    const items = this.current();
    if (k === "n" || k === "N") {
      if (!items.length) return false;
      this.select(items[(items.indexOf(this.selected) + 1) % items.length]);
      this.say(`${this.selected.label} selected: arrows move it, [ ] pick a handle, Delete removes it.`);
      return true;
    }
    const item = this.selected;
    if (!item) return false;
    if (k === "Escape") { this.select(null); return true; }
    if (k === "Delete" || k === "Backspace") { this.remove(item); return true; }
    if (k === "[" || k === "]") {
      const count = item.points.length + 1;
      this.select(item, ((this.handle + 1 + (k === "]" ? 1 : -1) + count) % count) - 1);
      this.say(this.handle < 0 ? `${item.label}: moving all of it` : `${item.label}: moving point ${this.handle + 1}`);
      return true;
    }
    if (arrows[k]) {
      this.move(item, this.handle, arrows[k][0] * step, arrows[k][1] * step);
      clearTimeout(this.keyTimer);
      this.keyTimer = setTimeout(() => this.measure(item), 150);
      return true;
    }
    return false;
  }

  // ---- The list --------------------------------------------------------------------------------

  allItems() {
    const inStack = new Set(this.viewer.stack.map((s) => `${s.file.key}:${s.frame}`));
    return [...this.items.entries()].filter(([key]) => inStack.has(key)).flatMap(([, items]) => items);
  }

  renderList() {
    const here = this.current();
    const all = this.allItems();
    this.summary.textContent = all.length ? `${here.length} on this image, ${all.length} in this series.`
      : "Nothing measured yet: pick a tool above the image.";
    this.list.replaceChildren(...here.map((item) => this.listEntry(item)));
  }

  listEntry(item) {
    const label = el("input",
      { value: item.label, className: "measure-name", "aria-label": `Label of ${item.kind} ${item.label}` });
    label.addEventListener("change", () => { item.label = label.value.trim() || item.label; this.draw(); });
    const pick = (options, value, name, apply) => {
      const s = el("select", { "aria-label": `${name} of ${item.label}` }, options);
      s.value = value;
      s.addEventListener("change", () => apply(s.value));
      return s;
    };
    const coded = [];
    if (this.choices) {
      coded.push(pick(this.findingOptions(), item.finding, "Finding", (v) => { item.finding = v; }));
      coded.push(pick(this.siteOptions(), item.site, "Finding site", (v) => { item.site = v; }));
      const pairs = [el("option", { value: "", textContent: "Evaluation: none" }),
        ...this.choices.qualitative.flatMap((q) => q.values.map((v) =>
          el("option", { value: `${q.keyword}|${v.keyword}`, textContent: `${q.meaning}: ${v.meaning}` })))];
      coded.push(pick(pairs, item.qualitative, "Qualitative evaluation", (v) => { item.qualitative = v; }));
    }
    const selectButton = button("Select", () => {
      this.select(item);
      this.viewer.stage.focus({ preventScroll: true });
    }, { className: "small", "aria-label": `Select ${item.label} to move it with the keys` });
    const del = button("Delete", () => this.remove(item), { className: "small", "aria-label": `Delete ${item.label}` });
    return el("li", { className: item === this.selected ? "selected" : "" }, label,
      el("span", { className: "detail measure-kind", textContent: TOOL[item.kind].label }),
      el("span", { className: "measure-numbers",
        textContent: item.result ? this.numbers(item.result, false) : "measuring…" }),
      ...coded, selectButton, del);
  }

  // ---- Export ----------------------------------------------------------------------------------

  // The drawings of this series with the images they are on, the shown image first.
  drawn() {
    const items = this.allItems();
    const files = [];
    const indexOf = (file) => {
      if (!files.includes(file)) files.push(file);
      return files.indexOf(file);
    };
    if (this.slice) indexOf(this.slice.file);
    const drawn = items.map((item) => ({ kind: item.kind, points: measuredPoints(item), label: item.label,
      image: indexOf(item.slice.file), frame: item.slice.frame, finding: item.finding || null,
      finding_site: item.site || null, uid: item.uid || null,
      qualitative: item.qualitative ? [qualitativePair(item.qualitative)] : [] }));
    return { drawn, images: files.map((f) => ({ path: f.path, name: f.name })) };
  }

  refuse(message) { this.exportNote.textContent = message; }

  async exportObject(fn, args) {
    this.exportNote.textContent = "Writing…";
    const collected = this.app.tasks.collector();
    const result = await this.app.python.call(fn, args, { onPart: collected.onPart });
    if (!result.ok) {
      const { file, message } = result.error;
      this.exportNote.textContent = file && !message.includes(file) ? `${file}: ${message}` : message;
      return;
    }
    this.app.tasks.offer(collected, { click: true });
    const c = result.created;
    const content = c.groups !== undefined ? `${c.groups} measurement groups, ${c.regions} regions`
      : `${c.graphics} graphics`;
    this.exportNote.textContent = `${c.name}: ${c.sop_class_name}, ${(c.size / 1e3).toFixed(1)} kB, read back and ` +
      `validated; ${content}.`;
  }

  exportReport() {
    const { drawn, images } = this.drawn();
    if (!drawn.length) return this.refuse(NOTHING_DRAWN);
    if (!this.observer.value.trim()) {
      this.observer.focus();
      return this.refuse("The report needs an observer: type the name of the person reporting (Family^Given).");
    }
    return this.exportObject("create_report_from_drawn",
      { drawn, images, observer: this.observer.value.trim(), procedure: this.procedure.value });
  }

  exportPresentation() {
    const { drawn, images } = this.drawn();
    if (!drawn.length) return this.refuse(NOTHING_DRAWN);
    const w = this.viewer.currentWindow();
    if (!w) return this.refuse("This image has no window to keep (it is shown through a VOI LUT or in colour).");
    return this.exportObject("create_gsps_from_drawn",
      { drawn, images, window_center: w.center, window_width: w.width, displayed_area: this.displayedArea() });
  }

  // The part of the image the stage shows, as 1-based pixel numbers; null when fitted and centred.
  displayedArea() {
    const v = this.viewer;
    if (v.zoom === null && !v.pan.x && !v.pan.y) return null;
    const stage = v.stage.getBoundingClientRect();
    const rect = v.canvas.getBoundingClientRect();
    const x = (px) => (px - rect.left) / rect.width * v.canvas.width;
    const y = (py) => (py - rect.top) / rect.height * v.canvas.height;
    return [Math.floor(x(stage.left)) + 1, Math.floor(y(stage.top)) + 1,
      Math.ceil(x(stage.right)), Math.ceil(y(stage.bottom))];
  }

  // ---- Shapes of loaded SRs and presentation states --------------------------------------------

  // Every loaded file, selected or not (FileList keeps them by key).
  loadedFiles() { return this.app.files?.files instanceof Map ? [...this.app.files.files.values()] : []; }

  async readLoadedObjects() {
    const files = this.loadedFiles();
    const drawsShapes = (f) => [SR_CLASS, PR_CLASS].some((prefix) => (f.sop_class?.uid || "").startsWith(prefix));
    const objects = files.filter(drawsShapes);
    const fresh = objects.filter((f) => !this.readObjects.has(f.key));
    if (!fresh.length) return;
    for (const f of fresh) this.readObjects.set(f.key, null);
    for (const f of fresh) {
      const result = await this.app.python.call("shapes", { path: f.path, name: f.name });
      const found = result.ok ? result.shapes : { shapes: [], not_shown: [result.error.message] };
      this.readObjects.set(f.key, { name: f.name, ...found });
      for (const shape of found.shapes) {
        const list = this.imported.get(shape.sop_instance_uid) || [];
        list.push({ ...shape, from: f.name });
        this.imported.set(shape.sop_instance_uid, list);
      }
    }
    this.draw();
    this.describeImported();
  }

  importedHere() {
    const slice = this.slice;
    if (!slice) return [];
    const shapes = this.imported.get(slice.file.sop_instance_uid) || [];
    return shapes.filter((s) => s.frame === null || s.frame === slice.frame);
  }

  describeImported() {
    const loaded = new Set(this.loadedFiles().map((f) => f.sop_instance_uid));
    const lines = [];
    for (const o of this.readObjects.values()) {
      if (!o) continue;
      const shown = o.shapes.filter((s) => loaded.has(s.sop_instance_uid)).length;
      const away = o.shapes.length - shown;
      lines.push(`${o.name} (${o.object}): ${shown} shape${shown === 1 ? "" : "s"} drawn on loaded images`
        + (away ? `; ${away} refer to images not loaded` : "")
        + (o.not_shown.length ? `; not shown: ${o.not_shown.join(" ")}` : "."));
    }
    this.importedNote.textContent = lines.join(" ");
  }
}
