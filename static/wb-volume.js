// The Volume → DICOM workbench: open a NIfTI, NRRD, MetaImage or VTK volume (or take the DICOM
// series selected at left), see its geometry and middle slices, choose the series' attributes,
// check what will be written, then write it as a ZIP (or one multi-frame file).
import { Op } from "./protocol.js";

const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
};

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

export class VolumeWorkbench {
  id = "volume";
  title = "Volume → DICOM";

  constructor(app) {
    this.app = app;
    this.selection = { files: [] };
    this.opened = null;
    this.plan = null;
  }

  mount(panel) {
    const input = el("input", { type: "file", multiple: true, id: "volume-files", className: "visually-hidden",
      accept: ".nii,.gz,.nrrd,.nhdr,.raw,.mha,.mhd,.zraw,.vtk,.img,.hdr" });
    input.addEventListener("change", () => { this.openFiles([...input.files]); input.value = ""; });
    this.useSeries = el("button", { type: "button", id: "volume-use-series", textContent: "Use the DICOM series selected at left" });
    this.useSeries.onclick = () => this.openSeries();
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
        field = el("select", { id }, ...type.slice(7).split(",").map((v) => el("option", { value: v, textContent: labels[v] ?? v })));
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
    this.writeButton = el("button", { type: "button", className: "primary", textContent: "Write series", id: "volume-write" });
    this.writeButton.onclick = () => this.write();
    this.form.append(el("div", { className: "actions" }, this.checkButton, this.writeButton));
    this.planView = el("div", { className: "volume-plan", id: "volume-plan", "aria-live": "polite" });
    this.error = el("p", { className: "error", role: "alert", id: "volume-error" });
    panel.append(el("div", { className: "volume-layout" },
      el("div", { className: "volume-source" },
        el("div", { className: "toolbar-inline" },
          el("label", { htmlFor: "volume-files", className: "button primary", textContent: "Open a volume…" }), input, this.useSeries),
        el("p", { className: "hint", textContent: "NIfTI (.nii, .nii.gz), NRRD (.nrrd, or .nhdr with its data file), MetaImage (.mha, or .mhd with its .raw/.zraw), Analyze or NIfTI pairs (.hdr with its .img), VTK legacy structured points (.vtk). Pick both files of a two-file format together: a header's data file is only ever one of the files picked with it." }),
        this.error, this.sourceInfo, this.previews),
      el("div", { className: "volume-options" }, el("h2", { textContent: "The series to write" }), this.form, this.planView)));
    this.renderPlan();
  }

  setSelection(selection) {
    this.selection = selection;
    this.useSeries.disabled = !selection.files.length;
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
    const put = await this.app.python.request(Op.PUT_FILES, { dir: "/volume", files: files.map((f, i) => ({ name: f.name, buffer: buffers[i] })) },
      { transfer: buffers }).done;
    if (!put.ok) return this.fail(put.error.message);
    await this.open(put.paths, files.map((f) => f.name).join(" + "));
  }

  async openSeries() {
    const files = this.selection.files;
    if (!files.length) return;
    await this.open(files.map((f) => f.path), `${files.length} DICOM file${files.length === 1 ? "" : "s"} (${this.selection.label})`,
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
    this.sourceInfo.replaceChildren(
      el("h2", { textContent: `${v.source_name} (${v.source_format})` }),
      el("dl", {},
        el("dt", { textContent: "Size" }), el("dd", { textContent: `${v.shape.join(" × ")} voxels${v.components > 1 ? ", RGB" : ""}, ${v.dtype}` }),
        el("dt", { textContent: "Spacing" }), el("dd", { textContent: `${v.spacing.map((x) => num(x)).join(" × ")} mm` }),
        el("dt", { textContent: "Origin (LPS)" }), el("dd", { textContent: `${vec(v.origin)} mm` }),
        el("dt", { textContent: "Axes (LPS)" }), el("dd", { textContent: `i ${vec(d.slice(0, 3))}, j ${vec(d.slice(3, 6))}, k ${vec(d.slice(6, 9))}${v.right_handed ? "" : " (left-handed)"}` }),
        v.slope !== 1 || v.intercept !== 0 ? el("dt", { textContent: "Scaling" }) : null,
        v.slope !== 1 || v.intercept !== 0 ? el("dd", { textContent: `× ${v.slope} + ${v.intercept}` }) : null),
      ...v.notes.map((n) => el("p", { className: "hint", textContent: n })));
    this.previews.replaceChildren();
    for (const { name, blob } of collected.finished) {
      const plane = name.replace(".rgba", "");
      const p = result.previews[plane];
      const canvas = el("canvas", { width: p.columns, height: p.rows });
      canvas.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(await blob.arrayBuffer()), p.columns, p.rows), 0, 0);
      // Keep the physical aspect ratio: rows are pixel_spacing[0] mm apart, columns [1].
      canvas.style.aspectRatio = `${p.columns * p.pixel_spacing[1]} / ${p.rows * p.pixel_spacing[0]}`;
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", `${plane} middle slice`);
      this.previews.append(el("figure", {}, canvas, el("figcaption", { textContent: plane })));
    }
    const modality = v.dicom?.Modality;
    if (modality) {
      const select = this.inputs.modality;
      if (![...select.options].some((o) => o.value === modality)) select.append(el("option", { value: modality, textContent: modality }));
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
      this.planView.replaceChildren(el("p", { className: "hint", textContent: this.opened ? "Check to see what will be written." : "Open a volume first." }));
      return;
    }
    const p = this.plan;
    const names = p.file_names.length > 2 ? `${p.file_names[0]} … ${p.file_names.at(-1)}` : p.file_names.join(", ");
    this.writeButton.textContent = p.multiframe ? "Write multi-frame file" : `Write ${p.file_count} files as ZIP`;
    this.planView.replaceChildren(el("dl", {},
      el("dt", { textContent: "SOP class" }), el("dd", { textContent: `${p.sop_class_name} (${p.modality})` }),
      el("dt", { textContent: "Files" }), el("dd", { textContent: `${p.file_count}: ${names}` }),
      el("dt", { textContent: "Pixels" }), el("dd", { textContent: `${p.columns} × ${p.rows} × ${p.slices}, ${p.bits_allocated}-bit ${p.pixel_representation ? "signed" : "unsigned"} ${p.photometric_interpretation}` }),
      el("dt", { textContent: "Values" }), el("dd", { id: "volume-error-bound",
        textContent: p.exact ? "stored exactly" : `rescale slope ${p.rescale_slope}, intercept ${p.rescale_intercept}; largest error ${p.max_abs_error.toPrecision(3)}` }),
      el("dt", { textContent: "Geometry" }), el("dd", { textContent: `first slice at ${vec(p.first_position)}, last at ${vec(p.last_position)}; slices ${num(p.slice_spacing)} mm apart` }),
      el("dt", { textContent: "Positions" }), el("dd", { id: "volume-position-error",
        textContent: p.max_position_error ? `axes made perpendicular; largest position error ${p.max_position_error.toPrecision(3)} mm` : "exact" }),
      el("dt", { textContent: "Size" }), el("dd", { textContent: `about ${(p.estimated_bytes / 1e6).toFixed(1)} MB` })),
      ...(p.notes || []).map((n) => el("p", { className: "hint", textContent: n })));
  }

  async write() {
    if (!(await this.check())) return;
    const p = this.plan;
    const base = (this.inputs.series_description.value || this.opened.source_name.replace(/\..*$/, "") || "series").replace(/[^\p{L}\p{N}]+/gu, "_");
    const steps = p.multiframe ? p.slices : p.file_count;
    const task = this.app.tasks.start(`Writing ${p.multiframe ? "a multi-frame file" : `${steps} DICOM files`}`);
    const collected = this.app.tasks.collector();
    const request = this.app.python.request(Op.JOB, {
      kind: "write_series", options: { options: this.options(), zip_name: `${base}.zip` },
      items: Array.from({ length: steps }, (_, i) => ({ name: p.file_names[i] || `frame ${i + 1}` })),
    }, { onProgress: (x) => task.progress(x.done, x.total, x.label), onPart: collected.onPart });
    task.onCancel = () => this.app.python.cancel(request.id);
    const result = await request.done;
    if (!result.ok) return task.fail(result.error.type === "Cancelled" ? "Writing cancelled: nothing was kept." : result.error.message);
    this.app.tasks.offer(collected, { click: true });
    task.finish(`Wrote ${p.multiframe ? "1 multi-frame file" : `${p.file_count} files`} in ${result.result.seconds.toFixed(1)} s`);
  }
}
