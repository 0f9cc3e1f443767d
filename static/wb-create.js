// The Create workbench: a new DICOM object from a picture, several pictures, a PDF, a measurement
// form, or a window and note over an image selected at left. Patient and study are copied from a
// loaded file or typed in. Python builds and checks the object (dcmstudio.create); this is the form.
import { Op } from "./protocol.js";
import { button, el, errorLine, onFirstShow, plural, terms } from "./dom.js";
import { Workbench } from "./workbench.js";

const byName = (a, b) => a.name.localeCompare(b.name, undefined, { numeric: true });
const dicomDateToInput = (da) => (/^\d{8}$/.test(da || "") ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6)}` : "");

// Where pictures and PDFs wait in the worker's file system while one object is made.
const INPUT_DIR = "/create";
// More evidence than this makes a report nobody reads and a long wait; pick a series instead.
const MAX_EVIDENCE = 1000;
const PICTURE_TYPES = ".png,.jpg,.jpeg,image/png,image/jpeg";

const KINDS = [
  { id: "sc", label: "Secondary Capture", hint: "One PNG or JPEG picture as a DICOM image." },
  { id: "multiframe", label: "Multi-frame Secondary Capture",
    hint: "Several PNG or JPEG pictures as the frames of one file, in the order of their names." },
  { id: "pdf", label: "Encapsulated PDF", hint: "A PDF document carried whole inside a DICOM file." },
  { id: "sr", label: "Measurement report (SR)",
    hint: "A Comprehensive SR following TID 1500 “Measurement Report”, filled in below." },
  { id: "gsps", label: "Presentation state (GSPS)",
    hint: "A window and a text note for a grayscale image selected at left; the image itself is not changed." },
];

// Patient and study attributes that can be typed in: [keyword, label, input type or
// [[value, label], ...] for a choice, placeholder].
const PATIENT_STUDY_FIELDS = [
  ["PatientName", "Patient's name", "text", "Family^Given"],
  ["PatientID", "Patient ID", "text"],
  ["PatientBirthDate", "Birth date", "date"],
  ["PatientSex", "Sex", [["", "not given"], ["M", "M (male)"], ["F", "F (female)"], ["O", "O (other)"]]],
  ["StudyDescription", "Study description", "text"],
  ["StudyDate", "Study date", "date"],
  ["AccessionNumber", "Accession number", "text"],
  ["ReferringPhysicianName", "Referring physician", "text", "Family^Given"],
];
const PATIENT_KEYWORDS = new Set(["PatientName", "PatientID", "PatientBirthDate", "PatientSex"]);

// Series and object options: [keyword, label, input type or choice, the kinds it applies to, placeholder].
const OPTION_FIELDS = [
  ["SeriesDescription", "Series description", "text", "sc multiframe pdf sr gsps"],
  ["SeriesNumber", "Series number", "number", "sc multiframe pdf sr gsps", "1"],
  ["DocumentTitle", "Document title", "text", "pdf", "the PDF's name"],
  ["BurnedInAnnotation", "Names or dates visible in it", [["YES", "yes"], ["NO", "no"]], "sc multiframe pdf"],
  ["ImageComments", "Image comments", "text", "sc multiframe"],
  ["CompletionFlag", "Completion", [["COMPLETE", "complete"], ["PARTIAL", "partial"]], "sr"],
  ["ContentLabel", "Content label", "text", "gsps", "ANNOTATION"],
  ["ContentDescription", "Content description", "text", "gsps"],
  ["ContentCreatorName", "Made by", "text", "gsps", "Family^Given"],
];

const option = (value, text = value) => el("option", { value, textContent: text });

// A form field: its label above its control (which has an id); `wide` ones take a whole row.
const labelled = (text, control, wide = false) => el("div", { className: wide ? "create-field wide" : "create-field" },
  el("label", { htmlFor: control.id, textContent: text }), control);

function field(id, type, placeholder = "") {
  if (Array.isArray(type)) return el("select", { id }, type.map(([value, label]) => option(value, label)));
  return el("input", { id, type, placeholder, autocomplete: "off" });
}

// A file picker: a visually hidden input, a label that looks like a button, and what was chosen.
function picker(id, text, accept, multiple, onChange) {
  const input = el("input", { type: "file", id, accept, multiple, className: "visually-hidden" });
  input.addEventListener("change", () => onChange([...input.files]));
  return el("div", { className: "toolbar-inline" }, input,
    el("label", { htmlFor: id, className: "button", textContent: text }));
}

function codeOptions(codes, blank) {
  return [blank === undefined ? null : el("option", { value: "", textContent: blank }),
    ...codes.map((c) => option(c.keyword, c.scheme === "UCUM" ? `${c.value} (${c.meaning})` : c.meaning))];
}

export class CreateWorkbench extends Workbench {
  id = "create";
  title = "Create";

  constructor(app) {
    super(app);
    this.kind = "sc";
    this.chosen = { sc: [], multiframe: [], pdf: [] }; // File objects picked per kind
    this.copied = null; // { key, patient, study } of the file whose patient and study are copied
    this.choices = null; // the SR form's codes, from Python
    this.groups = []; // the SR form's measurement groups
    this.psMode = null; // "copy" or "type"
    this.psChosen = false; // whether the person picked the mode (else it follows the selection)
  }

  mount(panel) {
    const kinds = el("fieldset", { className: "create-kinds" }, el("legend", { textContent: "Object to create" }),
      ...KINDS.map((k) => {
        const radio = el("input", { type: "radio", name: "create-kind", id: `create-kind-${k.id}`, value: k.id,
          checked: k.id === this.kind });
        radio.addEventListener("change", () => this.setKind(k.id));
        return el("div", { className: "kind" }, radio, el("label", { htmlFor: radio.id },
          el("strong", { textContent: k.label }), el("span", { className: "detail", textContent: ` ${k.hint}` })));
      }));

    this.sources = {
      sc: this.pictureSource("sc", "Choose a PNG or JPEG…", false),
      multiframe: this.pictureSource("multiframe", "Choose PNG or JPEG pictures…", true),
      pdf: this.pdfSource(),
      sr: this.reportSource(),
      gsps: this.presentationSource(),
    };

    this.patientStudy = this.patientStudyFieldset();
    this.optionsFieldset = el("fieldset", { className: "create-options" },
      el("legend", { textContent: "Series and object" }));
    const grid = el("div", { className: "create-fields" });
    this.optionInputs = {};
    for (const [keyword, label, type, kinds, placeholder] of OPTION_FIELDS) {
      const input = field(`create-opt-${keyword}`, type, placeholder);
      const wrap = labelled(label, input);
      wrap.dataset.kinds = kinds;
      this.optionInputs[keyword] = input;
      grid.append(wrap);
    }
    this.optionsFieldset.append(grid);

    this.run = button("Create and download", () => this.create(), { className: "primary", id: "create-run" });
    this.error = errorLine("create-error");
    this.result = el("div", { className: "report create-result", id: "create-result", "aria-live": "polite" },
      el("p", { className: "hint", textContent: "The object is checked (read back) before it is offered; " +
        "it downloads and stays in the task bar." }));
    panel.append(el("div", { className: "create-layout" },
      el("div", { className: "create-main" }, kinds, ...Object.values(this.sources), this.patientStudy,
        this.optionsFieldset, el("div", { className: "actions" }, this.run), this.error),
      this.result));
    onFirstShow(panel, () => this.loadChoices());
    this.setKind(this.kind);
    this.selectionChanged();
  }

  // Pictures or a PDF opened from the page's file picker or dropped on it: one picture makes a
  // Secondary Capture, several a multi-frame one, a PDF an Encapsulated PDF.
  choose(files) {
    const pdf = files.filter((f) => /\.pdf$/i.test(f.name));
    const pictures = files.filter((f) => !pdf.includes(f));
    const kind = pictures.length > 1 ? "multiframe" : pictures.length ? "sc" : "pdf";
    this.chosen[kind] = kind === "pdf" ? pdf.slice(0, 1) : [...pictures].sort(byName);
    if (pdf.length && kind !== "pdf") this.chosen.pdf = pdf.slice(0, 1);
    for (const k of ["sc", "multiframe", "pdf"]) this.renderChosen(k, this.sources[k].querySelector(".create-chosen"));
    document.getElementById(`create-kind-${kind}`).checked = true;
    this.setKind(kind);
  }

  // ---- Sources, one per kind -------------------------------------------------------------------

  pictureSource(kind, text, multiple) {
    const chosen = el(multiple ? "ol" : "p", { className: "create-chosen", id: `create-${kind}-chosen` });
    const section = el("section", { className: "create-source", id: `create-source-${kind}` },
      picker(`create-${kind}-file`, text, PICTURE_TYPES, multiple, (files) => {
        this.chosen[kind] = multiple ? files.sort(byName) : files.slice(0, 1);
        this.renderChosen(kind, chosen);
      }), chosen);
    this.renderChosen(kind, chosen);
    return section;
  }

  pdfSource() {
    const chosen = el("p", { className: "create-chosen", id: "create-pdf-chosen" });
    const section = el("section", { className: "create-source", id: "create-source-pdf" },
      picker("create-pdf-file", "Choose a PDF…", ".pdf,application/pdf", false, (files) => {
        this.chosen.pdf = files.slice(0, 1);
        this.renderChosen("pdf", chosen);
      }), chosen);
    this.renderChosen("pdf", chosen);
    return section;
  }

  renderChosen(kind, node) {
    const files = this.chosen[kind];
    if (!files.length) {
      node.replaceChildren(el(kind === "multiframe" ? "li" : "span",
        { className: "hint", textContent: "Nothing chosen yet." }));
      return;
    }
    const line = (f) => `${f.name} (${Math.max(1, Math.round(f.size / 1e3))} kB)`;
    if (kind === "multiframe") node.replaceChildren(...files.map((f) => el("li", { textContent: line(f) })));
    else node.replaceChildren(el("span", { textContent: line(files[0]) }));
  }

  reportSource() {
    this.srObserver = el("input", { id: "create-sr-observer", type: "text", placeholder: "Family^Given",
      autocomplete: "off" });
    this.srOrganization = el("input", { id: "create-sr-organization", type: "text", autocomplete: "off" });
    this.srProcedure = el("select", { id: "create-sr-procedure" });
    this.srGroups = el("div", { className: "sr-groups", id: "create-sr-groups" });
    this.srEvidence = el("input", { type: "checkbox", id: "create-sr-evidence", checked: true });
    this.srEvidenceLabel = el("span");
    const addGroup = button("Add a measurement group", () => {
      this.groups.push(this.newGroup());
      this.renderGroups();
      this.srGroups.querySelector(".sr-group:last-child input")?.focus();
    }, { id: "create-sr-add-group" });
    this.srSource = el("p", { className: "hint" });
    return el("section", { className: "create-source", id: "create-source-sr" },
      el("div", { className: "create-fields" },
        labelled("Observer (who measured)", this.srObserver),
        labelled("Organization", this.srOrganization),
        labelled("Procedure reported", this.srProcedure, true)),
      this.srGroups, addGroup,
      el("label", { className: "check", htmlFor: "create-sr-evidence" }, this.srEvidence, this.srEvidenceLabel),
      this.srSource);
  }

  defaultCode(list, keyword) {
    return list.find((c) => c.keyword === keyword)?.keyword || list[0]?.keyword || "";
  }

  newMeasurement() {
    const c = this.choices;
    return { name: this.defaultCode(c.measurements, "SCT.Diameter"), value: "",
      unit: c.units.find((u) => u.value === "mm")?.keyword || c.units[0]?.keyword || "" };
  }

  newGroup() {
    return { tracking_id: `lesion ${this.groups.length + 1}`, finding: "", finding_site: "",
      measurements: [this.newMeasurement()] };
  }

  // The measurement groups, drawn from `this.groups`; every control writes back to it.
  renderGroups() {
    const c = this.choices;
    const bind = (control, object, key) => {
      control.value = object[key];
      control.addEventListener(control.tagName === "SELECT" ? "change" : "input", () => {
        object[key] = control.value;
      });
      return control;
    };
    this.srGroups.replaceChildren(...this.groups.map((group, g) => {
      const n = g + 1;
      const id = (part) => `create-sr-g${n}-${part}`;
      const remove = button("Remove group", () => { this.groups.splice(g, 1); this.renderGroups(); },
        { className: "small", disabled: this.groups.length === 1, "aria-label": `Remove measurement group ${n}` });
      const rows = group.measurements.map((m, i) => {
        const where = `Measurement group ${n}, measurement ${i + 1}`;
        const name = bind(el("select", { id: id(`m${i + 1}-name`) }, ...codeOptions(c.measurements)), m, "name");
        const value = bind(el("input", { id: id(`m${i + 1}-value`), type: "number", step: "any",
          placeholder: "value" }), m, "value");
        const unit = bind(el("select", { id: id(`m${i + 1}-unit`) }, ...codeOptions(c.units)), m, "unit");
        name.setAttribute("aria-label", `${where}: what was measured`);
        value.setAttribute("aria-label", `${where}: value`);
        unit.setAttribute("aria-label", `${where}: unit`);
        const drop = button("×", () => { group.measurements.splice(i, 1); this.renderGroups(); },
          { className: "small", disabled: group.measurements.length === 1,
            "aria-label": `Remove ${where.toLowerCase()}` });
        return el("div", { className: "sr-measurement" }, name, value, unit, drop);
      });
      const add = el("button", { type: "button", className: "small", textContent: "Add measurement" });
      add.setAttribute("aria-label", `Add a measurement to group ${n}`);
      add.onclick = () => {
        group.measurements.push(this.newMeasurement());
        this.renderGroups();
        document.getElementById(id(`m${group.measurements.length}-name`))?.focus();
      };
      return el("fieldset", { className: "sr-group" }, el("legend", { textContent: `Measurement group ${n}` }),
        el("div", { className: "create-fields" },
          labelled("Tracking identifier",
            bind(el("input", { id: id("tracking"), type: "text", autocomplete: "off" }), group, "tracking_id")),
          labelled("Finding",
            bind(el("select", { id: id("finding") }, codeOptions(c.findings, "not stated")), group, "finding")),
          labelled("Finding site", bind(el("select", { id: id("site") }, codeOptions(c.finding_sites, "not stated")),
            group, "finding_site"), true)),
        ...rows, el("div", { className: "toolbar-inline" }, add, remove));
    }));
  }

  presentationSource() {
    this.gspsImage = el("select", { id: "create-gsps-image" });
    this.gspsImage.addEventListener("change", () => this.loadWindow());
    this.gspsText = el("textarea", { id: "create-gsps-text", rows: 2, maxLength: 1024,
      placeholder: "e.g. Compare with the prior study" });
    this.gspsCenter = el("input", { id: "create-gsps-center", type: "number", step: "any" });
    this.gspsWidth = el("input", { id: "create-gsps-width", type: "number", step: "any", min: 1 });
    this.gspsExplanation = el("input", { id: "create-gsps-explanation", type: "text", autocomplete: "off",
      placeholder: "e.g. soft tissue" });
    this.gspsInfo = el("p", { className: "hint", id: "create-gsps-info" });
    return el("section", { className: "create-source", id: "create-source-gsps" },
      el("div", { className: "create-fields" },
        labelled("Image (selected at left)", this.gspsImage, true),
        labelled("Text shown on the image", this.gspsText, true),
        labelled("Window centre", this.gspsCenter),
        labelled("Window width", this.gspsWidth),
        labelled("Window name", this.gspsExplanation, true)),
      this.gspsInfo,
      el("p", { className: "hint",
        textContent: "A presentation state belongs to its image's patient and study: they are copied from it." }));
  }

  // ---- Patient and study -----------------------------------------------------------------------

  patientStudyFieldset() {
    this.psCopy = el("input", { type: "radio", name: "create-ps", id: "create-ps-copy", value: "copy" });
    this.psType = el("input", { type: "radio", name: "create-ps", id: "create-ps-type", value: "type" });
    this.psFile = el("select", { id: "create-ps-file" });
    this.psFile.setAttribute("aria-label", "The loaded file whose patient and study are copied");
    for (const radio of [this.psCopy, this.psType]) {
      radio.addEventListener("change", () => { this.psChosen = true; this.setPatientStudyMode(radio.value); });
    }
    this.psFile.addEventListener("change", () => this.loadCopied());
    this.psInputs = {};
    const grid = el("div", { className: "create-fields" });
    for (const [keyword, label, type, placeholder] of PATIENT_STUDY_FIELDS) {
      const input = field(`create-${keyword}`, type, placeholder);
      this.psInputs[keyword] = input;
      grid.append(labelled(label, input));
    }
    this.psNote = el("p", { className: "hint", id: "create-ps-note" });
    return el("fieldset", { className: "create-patient" }, el("legend", { textContent: "Patient and study" }),
      el("div", { className: "mode" }, this.psCopy,
        el("label", { htmlFor: "create-ps-copy", textContent: "The same as" }), this.psFile),
      el("div", { className: "mode" }, this.psType,
        el("label", { htmlFor: "create-ps-type", textContent: "A new study, typed in below" })),
      grid, this.psNote);
  }

  setPatientStudyMode(mode) {
    this.psMode = mode;
    this.psCopy.checked = mode === "copy";
    this.psType.checked = mode === "type";
    for (const input of Object.values(this.psInputs)) {
      input.disabled = mode === "copy";
      // A placeholder in a copied, empty field would read as a value.
      if (input.placeholder || input.dataset.placeholder) {
        input.dataset.placeholder ||= input.placeholder;
        input.placeholder = mode === "copy" ? "" : input.dataset.placeholder;
      }
    }
    if (mode === "copy") this.loadCopied();
    else this.renderPatientStudyNote();
  }

  async loadCopied() {
    const file = this.app.files.get(this.psFile.value);
    if (!file || this.psMode !== "copy") return;
    if (this.copied?.key === file.key) return this.showCopied();
    this.copied = null;
    this.psNote.textContent = `Reading ${file.name}…`;
    const result = await this.app.python.call("create_patient_study", { path: file.path, name: file.name });
    if (this.psFile.value !== file.key) return; // another file was chosen meanwhile
    if (!result.ok) {
      this.psNote.textContent = "";
      this.copied = { key: file.key, error: `${file.name}: ${result.error.message}` };
      this.error.textContent = this.copied.error;
      return;
    }
    this.copied = { key: file.key, patient: result.patient, study: result.study };
    this.showCopied();
  }

  showCopied() {
    if (this.copied.error) return;
    const values = { ...this.copied.patient, ...this.copied.study };
    for (const [keyword, , type] of PATIENT_STUDY_FIELDS) {
      this.psInputs[keyword].value = type === "date" ? dicomDateToInput(values[keyword]) : values[keyword] || "";
    }
    this.renderPatientStudyNote();
  }

  renderPatientStudyNote() {
    if (this.psMode === "copy" && this.copied?.study) {
      this.psNote.textContent = `The new object joins study ${this.copied.study.StudyInstanceUID}.`;
    } else if (this.psMode === "type") {
      this.psNote.textContent = "The new object starts a new study (a new Study Instance UID; " +
        "date and time now unless given).";
    }
  }

  // { patient, study } for the request, or throws a sentence.
  patientAndStudy() {
    if (this.psMode === "copy") {
      if (!this.copied || this.copied.key !== this.psFile.value) {
        throw new Error("The patient and study of the chosen file are still being read; try again.");
      }
      if (this.copied.error) throw new Error(this.copied.error);
      return { patient: this.copied.patient, study: this.copied.study };
    }
    const patient = {};
    const study = {};
    for (const [keyword, input] of Object.entries(this.psInputs)) {
      if (input.value.trim() !== "") (PATIENT_KEYWORDS.has(keyword) ? patient : study)[keyword] = input.value.trim();
    }
    return { patient, study };
  }

  // ---- Selection and kind ----------------------------------------------------------------------

  selectionChanged() {
    const files = this.selection.files;
    const options = () => (files.length ? files.slice(0, 2000).map((f) => option(f.key, f.name))
      : [option("", "a file selected at left (none yet)")]);
    const previousCopy = this.psFile.value;
    const previousImage = this.gspsImage.value;
    this.psFile.replaceChildren(...options());
    this.gspsImage.replaceChildren(...options());
    if (files.some((f) => f.key === previousCopy)) this.psFile.value = previousCopy;
    if (files.some((f) => f.key === previousImage)) this.gspsImage.value = previousImage;
    this.psCopy.disabled = this.psFile.disabled = !files.length;
    this.gspsImage.disabled = !files.length;
    const evidence = files.length;
    this.srEvidence.disabled = !evidence || evidence > MAX_EVIDENCE;
    this.srEvidenceLabel.textContent = evidence > MAX_EVIDENCE
      ? ` ${evidence} files are selected at left: select one series (at most ${MAX_EVIDENCE} files) ` +
        "to list the images measured"
      : ` List the ${plural(evidence, "file")} selected at left as the images measured`;
    // Copy from a loaded file by default, until the person chooses.
    if (!files.length) this.setPatientStudyMode("type");
    else this.setPatientStudyMode(this.psChosen ? this.psMode : "copy");
    if (this.kind === "gsps" && this.gspsImage.value !== previousImage) this.loadWindow();
    this.updateRun();
  }

  setKind(kind) {
    this.kind = kind;
    for (const [id, section] of Object.entries(this.sources)) section.hidden = id !== kind;
    this.patientStudy.hidden = kind === "gsps";
    for (const wrap of this.optionsFieldset.querySelectorAll(".create-field")) {
      wrap.hidden = !wrap.dataset.kinds.split(" ").includes(kind);
    }
    this.error.textContent = "";
    if (kind === "gsps") this.loadWindow();
    this.updateRun();
  }

  updateRun() {
    const label = KINDS.find((k) => k.id === this.kind).label;
    this.run.textContent = `Create ${label} and download`;
  }

  async loadChoices() {
    const result = await this.app.python.call("create_choices", {});
    if (!result.ok) {
      this.error.textContent = result.error.message;
      return;
    }
    this.choices = result.sr;
    this.srProcedure.replaceChildren(...codeOptions(this.choices.procedures, "choose…"));
    this.srSource.textContent = `Codes from ${this.choices.source}.`;
    this.groups = [this.newGroup()];
    this.renderGroups();
  }

  // The image's own window (or a usual one for its modality) as the starting point.
  async loadWindow() {
    const file = this.app.files.get(this.gspsImage.value);
    if (!file) {
      this.gspsInfo.textContent = "Select a grayscale image at left.";
      return;
    }
    const result = await this.app.python.call("frame_info", { path: file.path, name: file.name });
    if (this.gspsImage.value !== file.key) return;
    if (!result.ok) {
      this.gspsInfo.textContent = `${file.name}: ${result.error.message}`;
      return;
    }
    const info = result.info;
    if (!info.has_pixels) {
      this.gspsInfo.textContent = `${file.name} has no pixels to present.`;
      return;
    }
    const preset = info.window_presets?.[0] || info.suggested_presets?.[0];
    if (preset) {
      this.gspsCenter.value = preset.center;
      this.gspsWidth.value = preset.width;
    }
    const units = info.rescale?.type ? ` (values in ${info.rescale.type})` : "";
    const frames = info.frames > 1 ? `, ${info.frames} frames` : "";
    const windowNote = preset ? `The window starts from its preset “${preset.explanation || "window"}” ` +
      `(${preset.center} / ${preset.width}).` : "It has no window preset: give one.";
    this.gspsInfo.textContent =
      `${file.name}: ${info.columns} × ${info.rows}, ${info.photometric}${frames}${units}. ${windowNote}`;
  }

  options() {
    const options = {};
    for (const [keyword, , type, kinds] of OPTION_FIELDS) {
      const value = this.optionInputs[keyword].value.trim();
      if (!kinds.split(" ").includes(this.kind) || value === "") continue;
      options[keyword] = type === "number" ? Number(value) : value;
    }
    const explanation = this.gspsExplanation.value.trim();
    if (this.kind === "gsps" && explanation) options.WindowExplanation = explanation;
    return options;
  }

  // ---- Creating --------------------------------------------------------------------------------

  // Puts the chosen files in the worker's file system; returns their paths and the names people know.
  async put(files) {
    const buffers = await Promise.all(files.map((f) => f.arrayBuffer()));
    const put = await this.app.python.request(Op.PUT_FILES, {
      dir: INPUT_DIR, files: files.map((f, i) => ({ name: `${i}-${f.name}`, buffer: buffers[i] })),
    }, { transfer: buffers }).done;
    if (!put.ok) throw new Error(put.error.message);
    return { paths: put.paths, names: files.map((f) => f.name) };
  }

  async request() {
    const kind = this.kind;
    const options = this.options();
    if (kind === "gsps") {
      const file = this.app.files.get(this.gspsImage.value);
      if (!file) throw new Error("Select the image the presentation state is for at left.");
      return ["create_presentation_state", { path: file.path, name: file.name, text: this.gspsText.value,
        window_center: this.gspsCenter.value, window_width: this.gspsWidth.value, options }];
    }
    const { patient, study } = this.patientAndStudy();
    if (kind === "sr") {
      if (!this.choices) throw new Error("The report form is still loading; try again in a moment.");
      if (!this.srProcedure.value) throw new Error("Choose the procedure reported.");
      const evidence = this.srEvidence.checked && !this.srEvidence.disabled
        ? this.selection.files.map((f) => ({ path: f.path, name: f.name })) : [];
      const form = {
        observer: { name: this.srObserver.value.trim(), organization: this.srOrganization.value.trim() },
        procedure: this.srProcedure.value,
        groups: this.groups.map((g) => ({ tracking_id: g.tracking_id, finding: g.finding || null,
          finding_site: g.finding_site || null,
          measurements: g.measurements.map((m) => ({ name: m.name, value: m.value, unit: m.unit })) })),
      };
      return ["create_report", { form, patient, study, options, evidence }];
    }
    const files = this.chosen[kind];
    if (!files.length) throw new Error(kind === "pdf" ? "Choose a PDF first." : "Choose a PNG or JPEG picture first.");
    const { paths, names } = await this.put(files);
    if (kind === "pdf") return ["create_pdf", { pdf_path: paths[0], pdf_name: names[0], patient, study, options }];
    return ["create_image", { image_paths: paths, image_names: names, patient, study, options,
      multiframe: kind === "multiframe" }];
  }

  async create() {
    this.error.textContent = "";
    const label = KINDS.find((k) => k.id === this.kind).label;
    let fn, args;
    try {
      [fn, args] = await this.request();
    } catch (error) {
      this.error.textContent = error.message;
      return;
    }
    // One call, usually well under a second: no task with a Cancel that could not stop it.
    this.run.disabled = true;
    this.run.textContent = `Creating the ${label}…`;
    const collected = this.app.tasks.collector();
    const result = await this.app.python.call(fn, args, { onPart: collected.onPart });
    this.run.disabled = false;
    this.updateRun();
    if (!result.ok) {
      const { file, message } = result.error;
      this.error.textContent = file && !message.includes(file) ? `${file}: ${message}` : message;
      return;
    }
    this.app.tasks.offer(collected, { click: true });
    this.renderResult(result.created);
  }

  renderResult(r) {
    const facts = [
      ["Object", r.sop_class_name],
      ["Size", `${(r.size / 1e3).toFixed(1)} kB`],
      r.rows ? ["Pixels", `${r.columns} × ${r.rows}${r.frames > 1 ? ` × ${r.frames} frames` : ""}, ` +
        `${r.bits_allocated}-bit ${r.photometric_interpretation}`] : null,
      r.document_title !== undefined
        ? ["Document", `${r.document_title} (${(r.document_bytes / 1e3).toFixed(1)} kB PDF)`] : null,
      r.groups !== undefined ? ["Content", `${plural(r.groups, "measurement group")}, ` +
        `${plural(r.measurements, "measurement")}, ${plural(r.evidence, "image")} referenced`] : null,
      r.referenced_sop_instance_uid ? ["Presents", r.referenced_sop_instance_uid] : null,
      r.window_width !== undefined ? ["Window", `centre ${r.window_center}, width ${r.window_width}`] : null,
      ["SOP Instance UID", r.sop_instance_uid],
      ["Series Instance UID", r.series_instance_uid],
      ["Study Instance UID", r.study_instance_uid],
    ].filter(Boolean);
    this.result.replaceChildren(
      el("h2", { textContent: `Created ${r.name}` }),
      Object.assign(terms(facts), { className: "create-facts" }),
      ...(r.notes || []).map((n) => el("p", { className: "hint", textContent: n })),
      el("p", { className: "hint",
        textContent: "It was read back before it was offered; the download is also in the task bar." }));
  }
}
