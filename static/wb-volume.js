// The Volume → DICOM workbench: open a NIfTI, NRRD, MetaImage or VTK volume (or take the DICOM
// series selected at left), see its geometry and middle slices, choose the series' attributes,
// check what will be written, then write it as a ZIP (or one multi-frame file).
import { button, el, errorLine, plural, terms } from "./dom.js";
import { Op } from "./protocol.js";
import { Workbench } from "./workbench.js";

const num = (x, digits = 4) => Number(x).toFixed(digits).replace(/\.?0+$/, "");
const vec = (v) => `(${v.map((x) => num(x)).join(", ")})`;

// The options form: [key, label, input type, default].
const FIELDS = [
  ["pattern", "File names", "text", "IM%04d.dcm"],
  ["series_description", "Series description", "text", ""],
  ["series_number", "Series number", "number", ""],
  ["modality", "Modality", "select:OT,CT,MR,PT,NM,US,SC", "OT"],
  ["first_instance_number", "First instance number", "number", "1"],
  ["patient_name", "Patient name", "text", ""],
  ["patient_id", "Patient ID", "text", ""],
  ["study_description", "Study description", "text", ""],
  ["study_instance_uid", "Study Instance UID", "select:,keep,new", ""],
  ["series_instance_uid", "Series Instance UID", "select:,new", ""],
  ["multiframe", "One multi-frame file instead of a series", "checkbox", false],
  ["exact", "Refuse if values cannot be stored exactly", "checkbox", false],
];

const FORMATS_HINT = "NIfTI (.nii, .nii.gz), NRRD (.nrrd, or .nhdr with its data file), MetaImage (.mha, or .mhd " +
  "with its .raw/.zraw), Analyze or NIfTI pairs (.hdr with its .img), VTK legacy structured points (.vtk). Pick " +
  "both files of a two-file format together: a header's data file is only ever one of the files picked with it.";

export class VolumeWorkbench extends Workbench {
  id = "volume";
  title = "Volume → DICOM";

  constructor(app) {
    super(app);
    this.opened = null;
    this.plan = null;
  }

  mount(panel) {
    const input = el("input", { type: "file", multiple: true, id: "volume-files", className: "visually-hidden",
      accept: ".nii,.gz,.nrrd,.nhdr,.raw,.mha,.mhd,.zraw,.vtk,.img,.hdr" });
    input.addEventListener("change", () => { this.openFiles([...input.files]); input.value = ""; });
    this.useSeries = button("Use the DICOM series selected at left", () => this.openSeries(),
      { id: "volume-use-series" });
    this.sourceInfo = el("div", { className: "volume-info", id: "volume-info" });
    this.previews = el("div", { className: "volume-previews", id: "volume-previews" });
    this.form = el("form", { className: "volume-form", id: "volume-form" });
    this.form.addEventListener("submit", (e) => { e.preventDefault(); this.check(); });
    this.inputs = {};
    for (const [key, label, type, def] of FIELDS) {
      const id = `volume-${key.replaceAll("_", "-")}`;
      let field;
      if (type.startsWith("select:")) {
        const labels = { "": "default (kept from a DICOM source, else new)", keep: "keep the source's", new: "new" };
        field = el("select", { id }, type.slice(7).split(",")
          .map((v) => el("option", { value: v, textContent: labels[v] ?? v })));
        field.value = def;
      } else if (type === "checkbox") {
        field = el("input", { type: "checkbox", id, checked: def });
      } else {
        field = el("input", { type, id, value: def, autocomplete: "off" });
      }
      field.addEventListener("change", () => { this.plan = null; this.renderPlan(); });
      this.inputs[key] = field;
      if (type === "checkbox") this.form.append(el("label", { className: "check", htmlFor: id }, field, ` ${label}`));
      else this.form.append(el("label", { htmlFor: id, textContent: label }), field);
    }
    this.checkButton = el("button", { type: "submit", textContent: "Check", id: "volume-check" });
    this.writeButton = button("Write series", () => this.write(), { className: "primary", id: "volume-write" });
    this.form.append(el("div", { className: "actions" }, this.checkButton, this.writeButton));
    this.planView = el("div", { className: "volume-plan", id: "volume-plan", "aria-live": "polite" });
    this.error = errorLine("volume-error");
    panel.append(el("div", { className: "volume-layout" },
      el("div", { className: "volume-source" },
        el("div", { className: "toolbar-inline" },
          el("label", { htmlFor: "volume-files", className: "button primary", textContent: "Open a volume…" }), input,
          this.useSeries),
        el("p", { className: "hint", textContent: FORMATS_HINT }),
        this.error, this.sourceInfo, this.previews),
      el("div", { className: "volume-options" },
        el("h2", { textContent: "The series to write" }), this.form, this.planView)));
    this.renderPlan();
  }

  selectionChanged() {
    this.useSeries.disabled = !this.selection.files.length;
  }

  options() {
    const options = {};
    for (const [key, , type] of FIELDS) {
      const field = this.inputs[key];
      if (type === "checkbox") options[key] = field.checked;
      else if (type === "number") { if (field.value !== "") options[key] = Number(field.value); }
      else if (field.value !== "") options[key] = field.value;
    }
    return options;
  }

  async openFiles(files) {
    if (!files.length) return;
    const buffers = await Promise.all(files.map((f) => f.arrayBuffer()));
    const named = files.map((f, i) => ({ name: f.name, buffer: buffers[i] }));
    const put = await this.app.python.request(Op.PUT_FILES, { dir: "/volume", files: named },
      { transfer: buffers }).done;
    if (!put.ok) return this.fail(put.error.message);
    await this.open(put.paths, files.map((f) => f.name).join(" + "));
  }

  async openSeries() {
    // what the selection holds now, files still being described included
    const files = await this.app.files.resolve();
    if (!files.length) return;
    await this.open(files.map((f) => f.path), `${plural(files.length, "DICOM file")} (${this.selection.label})`,
      files.map((f) => f.name));
  }

  fail(message) {
    this.error.textContent = message;
    this.opened = null;
    this.plan = null;
    this.sourceInfo.replaceChildren();
    this.previews.replaceChildren();
    this.renderPlan();
  }

  // names: the user's names of the files (the loaded ones live under internal keys).
  async open(paths, label, names = null) {
    this.error.textContent = "";
    this.sourceInfo.textContent = `Reading ${label}…`;
    const collected = this.app.tasks.collector();
    const result = await this.app.python.call("volume_open", { paths, names }, { onPart: collected.onPart });
    if (!result.ok) return this.fail(`${result.error.file ? `${result.error.file}: ` : ""}${result.error.message}`);
    this.opened = result.volume;
    this.plan = null;
    const v = result.volume;
    const d = v.direction;
    const axes = `i ${vec(d.slice(0, 3))}, j ${vec(d.slice(3, 6))}, k ${vec(d.slice(6, 9))}`;
    this.sourceInfo.replaceChildren(
      el("h2", { textContent: `${v.source_name} (${v.source_format})` }),
      terms([
        ["Size", `${v.shape.join(" × ")} voxels${v.components > 1 ? ", RGB" : ""}, ${v.dtype}`],
        ["Spacing", `${v.spacing.map((x) => num(x)).join(" × ")} mm`],
        ["Origin (LPS)", `${vec(v.origin)} mm`],
        ["Axes (LPS)", `${axes}${v.right_handed ? "" : " (left-handed)"}`],
        v.slope !== 1 || v.intercept !== 0 ? ["Scaling", `× ${v.slope} + ${v.intercept}`] : null]),
      ...v.notes.map((n) => el("p", { className: "hint", textContent: n })));
    this.previews.replaceChildren();
    for (const { name, blob } of collected.finished) {
      const plane = name.replace(".rgba", "");
      const p = result.previews[plane];
      const canvas = el("canvas", { width: p.columns, height: p.rows });
      const pixels = new Uint8ClampedArray(await blob.arrayBuffer());
      canvas.getContext("2d").putImageData(new ImageData(pixels, p.columns, p.rows), 0, 0);
      // Keep the physical aspect ratio: rows are pixel_spacing[0] mm apart, columns [1].
      canvas.style.aspectRatio = `${p.columns * p.pixel_spacing[1]} / ${p.rows * p.pixel_spacing[0]}`;
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", `${plane} middle slice`);
      this.previews.append(el("figure", {}, canvas, el("figcaption", { textContent: plane })));
    }
    const modality = v.dicom?.Modality;
    if (modality) {
      const select = this.inputs.modality;
      if (![...select.options].some((o) => o.value === modality)) {
        select.append(el("option", { value: modality, textContent: modality }));
      }
      select.value = modality;
    }
    await this.check();
  }

  async check() {
    if (!this.opened) return;
    const result = await this.app.python.call("volume_plan", { options: this.options() });
    if (!result.ok) {
      this.plan = null;
      this.renderPlan(result.error.message);
      return false;
    }
    this.plan = result.plan;
    this.renderPlan();
    return true;
  }

  renderPlan(problem) {
    this.writeButton.disabled = !this.opened;
    this.checkButton.disabled = !this.opened;
    if (problem) {
      this.planView.replaceChildren(el("p", { className: "error", role: "alert", textContent: problem }));
      this.writeButton.disabled = true;
      return;
    }
    if (!this.plan) {
      const hint = this.opened ? "Check to see what will be written." : "Open a volume first.";
      this.planView.replaceChildren(el("p", { className: "hint", textContent: hint }));
      return;
    }
    const p = this.plan;
    const names = p.file_names.length > 2 ? `${p.file_names[0]} … ${p.file_names.at(-1)}` : p.file_names.join(", ");
    this.writeButton.textContent = p.multiframe ? "Write multi-frame file" : `Write ${p.file_count} files as ZIP`;
    const sign = p.pixel_representation ? "signed" : "unsigned";
    const pixels = `${p.bits_allocated}-bit ${sign} ${p.photometric_interpretation}`;
    const error = `rescale slope ${p.rescale_slope}, intercept ${p.rescale_intercept}; ` +
      `largest error ${p.max_abs_error.toPrecision(3)}`;
    const positions = p.max_position_error
      ? `axes made perpendicular; largest position error ${p.max_position_error.toPrecision(3)} mm` : "exact";
    const geometry = `first slice at ${vec(p.first_position)}, last at ${vec(p.last_position)}; ` +
      `slices ${num(p.slice_spacing)} mm apart`;
    this.planView.replaceChildren(terms([
      ["SOP class", `${p.sop_class_name} (${p.modality})`],
      ["Files", `${p.file_count}: ${names}`],
      ["Pixels", `${p.columns} × ${p.rows} × ${p.slices}, ${pixels}`],
      ["Values", p.exact ? "stored exactly" : error, { id: "volume-error-bound" }],
      ["Geometry", geometry],
      ["Positions", positions, { id: "volume-position-error" }],
      ["Size", `about ${(p.estimated_bytes / 1e6).toFixed(1)} MB`]]),
    ...(p.notes || []).map((n) => el("p", { className: "hint", textContent: n })));
  }

  async write() {
    if (!(await this.check())) return;
    const p = this.plan;
    const stem = this.inputs.series_description.value || this.opened.source_name.replace(/\..*$/, "") || "series";
    const steps = p.multiframe ? p.slices : p.file_count;
    const title = `Writing ${p.multiframe ? "a multi-frame file" : `${steps} DICOM files`}`;
    const zipName = `${stem.replace(/[^\p{L}\p{N}]+/gu, "_")}.zip`;
    const { task, collected, done } = this.job(title, "write_series", { options: this.options(), zip_name: zipName },
      Array.from({ length: steps }, (_, i) => ({ name: p.file_names[i] || `frame ${i + 1}` })));
    const result = await done;
    if (!result.ok) return this.failed(task, result.error, "Writing cancelled: nothing was kept.");
    this.app.tasks.offer(collected, { click: true });
    const wrote = p.multiframe ? "1 multi-frame file" : `${p.file_count} files`;
    task.finish(`Wrote ${wrote} in ${result.result.seconds.toFixed(1)} s`);
  }
}
