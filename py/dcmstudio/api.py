"""The one boundary between the page's web worker and dcmstudio.

The worker calls :func:`call` only, with a function name and JSON arguments, and gets JSON back:
``{"ok": true, ...}`` or ``{"ok": false, "error": {"type", "message", "file"}}``. Nothing raises
across the boundary. Large data never crosses it as Python objects: inputs and outputs are paths in
the worker's in-memory file system (MEMFS), which the worker reads and writes on its side (FACTS.md:
buffers above 2 GiB of the wasm heap come back corrupt through ``to_js``).

A result may name files for the page to download:

- ``"outputs": [{"path", "name", "mime"}]`` — whole files, moved to the page and deleted here;
- ``"chunks": [{"path", "name", "mime", "final"}]`` — successive pieces of one download being
  streamed (a ZIP written file by file), so it never sits whole in memory.
"""

import errno
import functools
import importlib
import itertools
import json
import os
import sys

from . import archive, catalog, inspector, jobs
from .errors import DicomStudioError, unreadable_message

_ENDPOINTS = {}
_TREE_CACHE_SIZE = 8


def endpoint(function):
    """Make ``function`` callable from the worker under its own name."""
    _ENDPOINTS[function.__name__] = function
    return function


def call(name, args_json):
    """Run the endpoint ``name`` with the JSON object ``args_json``; return a JSON result.

    Parameters
    ----------
    name : str
        An endpoint of this module.
    args_json : str
        The keyword arguments, as a JSON object.

    Returns
    -------
    str
        ``{"ok": true, ...}`` with the endpoint's result, or ``{"ok": false, "error": {...}}``.
    """
    args = {}
    try:
        args = json.loads(args_json) if args_json else {}
        function = _ENDPOINTS.get(name)
        if function is None:
            raise DicomStudioError(f"the page asked for '{name}', which this version of dcmstudio does not have")
        result = function(**args)
        return json.dumps({"ok": True, **(result or {})})
    except DicomStudioError as exc:
        return _error(type(exc).__name__, exc.message, exc.file or args.get("name"))
    except KeyboardInterrupt:
        return _error("Cancelled", "Cancelled.", args.get("name"))
    except OSError as exc:
        if exc.errno != errno.EIO:
            return _error("InternalError", f"dcmstudio failed unexpectedly in {name}: {exc}", args.get("name"))
        # an opened file the browser can no longer read (moved or changed on disk)
        return _error("UnreadableFileError", unreadable_message(args.get("name") or "a file"), args.get("name"))
    except MemoryError:
        return _error("MemoryError", "The browser tab ran out of memory for this file; close other tabs "
                      "or process fewer files at once.", args.get("name"))
    except Exception as exc:  # the boundary must answer, whatever went wrong underneath
        return _error("InternalError", f"dcmstudio failed unexpectedly in {name}: "
                      f"{exc.__class__.__name__}: {exc}", args.get("name"))


def _error(kind, message, file):
    return json.dumps({"ok": False, "error": {"type": kind, "message": message, "file": file}})


# ---- Loaded files ------------------------------------------------------------------------------

@endpoint
def describe(path, name, head=None):
    """Header summary of one loaded file for the grouped file list (see :mod:`dcmstudio.catalog`).

    ``head``, if given, is a scratch file holding the file's first bytes, fetched ahead by the
    worker; it is read and deleted. ``header_end`` in the answer says how many of them hold the
    whole header (see :func:`dcmstudio.catalog.header_end`): the page keeps those bytes for
    deid's first pass, which then need not read the file again.
    """
    head_bytes = None
    if head:
        with open(head, "rb") as f:
            head_bytes = f.read()
        os.remove(head)
    try:
        info = catalog.describe_file(path, name, head=head_bytes)
        # A cut file is still listed (its header is whole), with a mark saying so.
        return {"dicom": True, **info, "truncated": catalog.pixel_data_truncation(path, name, head_bytes),
                "header_end": catalog.header_end(head_bytes, info["size"])}
    except DicomStudioError as exc:
        # A skipped file is a normal answer, not a failure: the page lists it with the reason.
        return {"dicom": False, "name": name, "reason": exc.message, "size": os.path.getsize(path)}


@endpoint
def zip_members(path, name):
    """The files inside a ZIP the user opened, as outputs, for the page to open as dropped files;
    ``members`` gives each output's name inside the archive."""
    members, outputs = [], []
    try:
        for index, (member, data) in enumerate(archive.opened_members(path, name)):
            out_name = f"{index}-{os.path.basename(member) or 'member'}"
            members.append({"member": member, "output": out_name})
            outputs.append(offer(out_name, data, "application/octet-stream"))
    except DicomStudioError:
        for output in outputs:  # nothing half-opened is offered, nor left in memory
            os.remove(output["path"])
        raise
    return {"members": members, "outputs": outputs}


@endpoint
def forget(paths):
    """Drop what is cached for files the page has removed."""
    for path in paths:
        for key in [k for k in _trees if k[0] == path]:
            del _trees[key]
    if "dcmstudio.pixels" in sys.modules:
        for path in paths:
            sys.modules["dcmstudio.pixels"].forget(path)
    return {}


# ---- Inspect -----------------------------------------------------------------------------------

_trees = {}


def _tree(path, name):
    """The element tree of a file, from a small cache so that searching does not re-read it."""
    key = (path, os.path.getmtime(path))
    if key not in _trees:
        if len(_trees) >= _TREE_CACHE_SIZE:
            del _trees[next(iter(_trees))]
        _trees[key] = inspector.element_tree(path, name)
    return _trees[key]


@endpoint
def tree(path, name):
    """The full element tree of one file (see :func:`dcmstudio.inspector.element_tree`)."""
    return {"tree": _tree(path, name)}


@endpoint
def search(path, name, query):
    """Ids of the nodes matching ``query`` and of the items that must open to show them."""
    return inspector.search(_tree(path, name), query)


_output_counter = itertools.count(1)


def output_path(name):
    """A fresh MEMFS path for an output the worker will move to the page."""
    return os.path.join("/out" if os.path.isdir("/out") else _scratch_dir(), f"{next(_output_counter)}-{name}")


@functools.lru_cache(maxsize=1)
def _scratch_dir():
    import tempfile
    return tempfile.mkdtemp(prefix="dcmstudio-out-")


def offer(out_name, data, mime):
    """Write ``data`` (text as UTF-8, or bytes) to a fresh output; return its ``outputs`` entry."""
    out = output_path(out_name)
    if isinstance(data, str):
        with open(out, "w", encoding="utf-8") as f:
            f.write(data)
    else:
        with open(out, "wb") as f:
            f.write(data)
    return {"path": out, "name": out_name, "mime": mime}


def _stem(name):
    return os.path.splitext(os.path.basename(name))[0] or "file"


@endpoint
def export_text(path, name):
    """The dump of one file as a text download."""
    text = inspector.dump_text(path, name)
    return {"outputs": [offer(f"{_stem(name)}_dump.txt", text, "text/plain;charset=utf-8")]}


@endpoint
def export_json(path, name):
    """The DICOM JSON model (PS3.18 Annex F) of one file as a download."""
    text = inspector.dicom_json(path, name)
    return {"outputs": [offer(f"{_stem(name)}.json", text, "application/dicom+json")]}


@endpoint
def later_stage_loading():
    """The page starts loading numpy and Pillow: until :func:`later_stage_loaded`, they are not
    imported (:func:`dcmstudio.startup.hold_back_later_stage`)."""
    from . import startup
    startup.hold_back_later_stage()
    return {}


@endpoint
def later_stage_loaded():
    """The page has loaded the packages it loads after start-up (numpy, Pillow): put them to use.

    When numpy has arrived, pydicom and dcmstudio are imported again (:mod:`dcmstudio.startup`) and
    ``imported_again`` is true: this module is then no longer the one in use, and the caller takes
    :func:`call` again from the fresh ``dcmstudio.api``.
    """
    from . import startup
    imported_again = startup.import_again_with_numpy()
    codecs = importlib.import_module("dcmstudio.codecs")  # the fresh module once imported again
    return {"imported_again": imported_again, "pillow_decodes": codecs.adopt_late_pillow()}


# ---- View ----------------------------------------------------------------------------------------

@endpoint
def frame_info(path, name):
    """What the viewer needs to know of a file's pixels (see :func:`dcmstudio.pixels.frame_info`)."""
    from . import pixels
    return {"info": pixels.frame_info(path, name)}


@endpoint
def render_frame(path, name, frame=0, window=None):
    """One frame as RGBA bytes (an output the worker moves to the page) and how it was drawn."""
    from . import pixels
    rgba, info = pixels.render_frame(path, name, frame, window)
    return {"render": info, "outputs": [offer("frame.rgba", rgba, "application/octet-stream")]}


@endpoint
def thumbnail(path, name, size=40):
    """A small RGBA picture of the first frame, for the file list."""
    from . import pixels
    rgba, width, height = pixels.thumbnail(path, name, size)
    return {"width": width, "height": height, "outputs": [offer("thumb.rgba", rgba, "application/octet-stream")]}


@endpoint
def pixel_value(path, name, frame, row, col):
    """The stored and rescaled value under the cursor."""
    from . import pixels
    return {"pixel": pixels.pixel_value(path, name, frame, row, col)}


@endpoint
def measure(path, name, frame, kind, points):
    """Length, angle, area and region statistics of a drawn shape (see :func:`dcmstudio.measure.measure`)."""
    from . import measure as measuring
    return {"measurement": measuring.measure(path, name, frame, kind, points)}


# ---- Volume → DICOM --------------------------------------------------------------------------

_volume = {}


def _opened_volume():
    if "volume" not in _volume:
        raise DicomStudioError("open a volume first (a NIfTI, NRRD, MetaImage or VTK file, or a DICOM series)")
    return _volume["volume"]


@endpoint
def volume_open(paths, names=None):
    """Read one volume (see :func:`dcmstudio.volume.read_volume`); keep it for planning and writing.

    ``names`` are the user's names of the files, for messages (default: the paths' base names).

    Returns its summary and the middle slice across each axis as 8-bit grey RGBA outputs.
    """
    import numpy as np

    from . import volume
    _volume.clear()
    opened = volume.read_volume(paths, names)
    _volume["volume"] = opened
    previews, outputs = {}, []
    slices = volume.preview_slices(opened)
    for plane in ("axial", "coronal", "sagittal"):
        picture = slices[plane]
        rgba = np.empty(picture.shape[:2] + (4,), np.uint8)
        rgba[..., :3] = picture[..., None] if picture.ndim == 2 else picture
        rgba[..., 3] = 255
        outputs.append(offer(f"{plane}.rgba", rgba.tobytes(), "application/octet-stream"))
        previews[plane] = {"rows": picture.shape[0], "columns": picture.shape[1],
                           "pixel_spacing": [float(v) for v in slices["pixel_spacing"][plane]]}
    return {"volume": opened.summary(), "previews": previews, "window": [float(v) for v in slices["window"]],
            "outputs": outputs}


@endpoint
def volume_plan(options):
    """What writing the opened volume with ``options`` will give (see :func:`dcmstudio.series.plan_series`)."""
    from . import series
    return {"plan": series.plan_series(_opened_volume(), options)}


# ---- Create --------------------------------------------------------------------------------------

def _create(out_name, build, source=None):
    """Run ``build(out_path)`` for a new object called ``out_name``; return what the page gets.

    Returns ``{"created": the builder's report with "name" instead of "path", "outputs": [the
    file]}``. The builders name the object being made in their errors; the person has not seen
    that name yet, so such an error names no file (its sentence says which field is at fault).
    """
    folder = output_path("create")
    os.makedirs(folder, exist_ok=True)
    try:
        report = build(os.path.join(folder, out_name))
    except DicomStudioError as exc:
        if exc.file == out_name:
            exc.file = None
        raise
    path = report.pop("path")
    _refuse_if_invalid(path, out_name, source)
    return {"created": {**report, "name": out_name},
            "outputs": [{"path": path, "name": out_name, "mime": "application/dicom"}]}


def _refuse_if_invalid(path, out_name, source=None):
    """A created object with a validation error is deleted, and the error says why: nothing is offered
    that fails :mod:`dcmstudio.validate`, except errors copied from ``source`` (the loaded file the
    object was made from), which the person already has."""
    from . import validate
    problems = validate.new_errors(source, path)
    if problems:
        os.remove(path)
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DicomStudioError(f"{out_name} was not offered: it fails validation at {first['path'] or 'the file'} "
                               f"({first['rule']}): {first['message']}{more}")


def _remove_inputs(paths):
    """Pictures and PDFs put in MEMFS for one object are not needed once it is written or refused."""
    for path in paths:
        if os.path.isfile(path):
            os.remove(path)


@endpoint
def create_choices():
    """The codes the measurement report form offers (see :func:`dcmstudio.create.measurement_report_choices`)."""
    from . import create
    return {"sr": create.measurement_report_choices()}


@endpoint
def create_patient_study(path, name):
    """``{"patient", "study"}`` of a loaded file, for a new object to join (see :func:`dcmstudio.create.patient_study_from`)."""
    from . import create
    return create.patient_study_from(path, name)


@endpoint
def create_image(image_paths, image_names, patient=None, study=None, options=None, multiframe=False):
    """A Secondary Capture from one PNG or JPEG, or a multi-frame SC from several (frames in order).

    Returns ``{"created": report, "outputs": [the DICOM file]}``; the report is that of
    :func:`dcmstudio.create.create_secondary_capture` with ``name`` instead of ``path``.
    """
    from . import create
    try:
        if not image_paths:
            raise DicomStudioError("Choose a PNG or JPEG picture first.")
        if multiframe:
            return _create(f"{_stem(image_names[0])}_multiframe.dcm", lambda out: create.create_multiframe(
                image_paths, out, patient, study, options, image_names=image_names))
        if len(image_paths) > 1:
            raise DicomStudioError(f"A Secondary Capture holds one picture and {len(image_paths)} were "
                                   "chosen: make a multi-frame one instead.")
        return _create(f"{_stem(image_names[0])}_SC.dcm", lambda out: create.create_secondary_capture(
            image_paths[0], out, patient, study, options, image_name=image_names[0]))
    finally:
        _remove_inputs(image_paths)


@endpoint
def create_pdf(pdf_path, pdf_name, patient=None, study=None, options=None):
    """An Encapsulated PDF object (see :func:`dcmstudio.create.create_encapsulated_pdf`), as a download."""
    from . import create
    try:
        return _create(f"{_stem(pdf_name)}_pdf.dcm", lambda out: create.create_encapsulated_pdf(
            pdf_path, out, patient, study, options, pdf_name=pdf_name))
    finally:
        _remove_inputs([pdf_path])


@endpoint
def create_report(form, patient=None, study=None, options=None, evidence=()):
    """A Comprehensive SR measurement report (TID 1500) filled from the page's form, as a download.

    ``evidence`` lists the loaded images the measurements were made on, as ``{"path", "name"}``
    (see :func:`dcmstudio.create.create_measurement_report`).
    """
    from . import create
    return _create("measurement_report.dcm", lambda out: create.create_measurement_report(
        form, out, patient, study, options, evidence_paths=[e["path"] for e in evidence],
        evidence_names=[e["name"] for e in evidence]))


@endpoint
def create_presentation_state(path, name, text, window_center, window_width, options=None):
    """A GSPS for one loaded grayscale image, with a text note and a window (see :func:`dcmstudio.create.create_gsps`)."""
    from . import create
    return _create(f"{_stem(name)}_GSPS.dcm", lambda out: create.create_gsps(
        path, out, text, window_center, window_width, options, image_name=name), source=path)


@endpoint
def create_report_from_drawn(drawn, images, observer, procedure, options=None):
    """A TID 1500 SR of the measurements drawn in the viewer (see :mod:`dcmstudio.create.drawn`), as a download."""
    from .create import drawn as drawn_objects
    return _create(f"{_stem(images[0]['name'])}_measurements_SR.dcm" if images else "measurements_SR.dcm",
                   lambda out: drawn_objects.create_report_from_drawn(drawn, images, out, observer, procedure,
                                                                      options))


@endpoint
def create_gsps_from_drawn(drawn, images, window_center, window_width, displayed_area=None, options=None):
    """A GSPS of what was drawn in the viewer, its window and zoom (see :mod:`dcmstudio.create.drawn`)."""
    from .create import drawn as drawn_objects
    if not images:
        raise DicomStudioError("Nothing was drawn: draw a length, a region or a point on the image first.")
    return _create(f"{_stem(images[0]['name'])}_measurements_GSPS.dcm",
                   lambda out: drawn_objects.create_gsps_from_drawn(drawn, images, out, window_center,
                                                                    window_width, displayed_area, options),
                   source=images[0]["path"])


@endpoint
def shapes(path, name):
    """What a loaded SR or GSPS draws on images (see :func:`dcmstudio.shapes.shapes_of`)."""
    from . import shapes as drawn_shapes
    return {"shapes": drawn_shapes.shapes_of(path, name)}


# ---- Compress ------------------------------------------------------------------------------------

@endpoint
def compress_choices():
    """The transfer syntaxes the Compress workbench can write now.

    Returns ``{"targets": [{"uid", "name", "compressed", "suffix"}], "lossy_targets": [...]}``: RLE
    Lossless, Deflated Explicit VR Little Endian and Explicit VR Little Endian (uncompressed)
    always, then every lossless syntax a codec registered with
    :func:`dcmstudio.codecs.register_encoder` writes; apart, the lossy ones that can be written
    now, each with its setting (see :func:`dcmstudio.codecs.lossy_choices`).
    """
    from pydicom import uid

    from . import codecs
    always = [uid.RLELossless, uid.DeflatedExplicitVRLittleEndian, uid.ExplicitVRLittleEndian]
    registered = [uid.UID(ts) for ts in codecs.registered_encoders()
                  if ts in codecs.LOSSLESS_TARGETS and ts not in always]
    return {"targets": [{**codecs.describe_transfer_syntax(ts), "compressed": ts.is_compressed or ts.is_deflated,
                         "suffix": jobs.compress_suffix(ts)} for ts in always + registered],
            "lossy_targets": [{**t, "suffix": jobs.compress_suffix(t["uid"])} for t in codecs.lossy_choices()]}


@endpoint
def compress_summary(options, reports, failures, unwritten):
    """The summary of a compress task shared out over several workers, from every written file's
    report in the order of the files (see :func:`dcmstudio.jobs.compress_summary`)."""
    return {"summary": jobs.compress_summary(options, reports, failures, unwritten)}


# ---- Edit ----------------------------------------------------------------------------------------

@endpoint
def check_edits(edits):
    """Raise a clear EditError when an edit list is malformed; used before anything runs."""
    from . import edit
    edit.validate_edits(edits)
    return {}


@endpoint
def preview_edits(path, name, edits):
    """What the edits would change in one file (its report), without offering any output."""
    from . import edit
    out = output_path("preview.dcm")
    try:
        report = edit.apply_edits(path, out, edits, context={"name": name})
    finally:
        if os.path.exists(out):
            os.remove(out)
    return {"report": report}


@endpoint
def export_edits(edits, kind):
    """The edit list as JSON the page can load again (``kind="json"``) or a pydicom script."""
    from . import edit
    edit.validate_edits(edits)
    if kind == "json":
        out_name, mime, text = "edits.json", "application/json", json.dumps({"dcmstudio_edits": 1, "edits": edits}, indent=1)
    else:
        out_name, mime, text = "apply_edits.py", "text/x-python", edit.codify(edits)
    return {"outputs": [offer(out_name, text, mime)]}


@endpoint
def load_edits(text, name):
    """Read an edit list saved by :func:`export_edits` (its text, as the page read it)."""
    from . import edit
    try:
        data = json.loads(text)
        edits = data["edits"] if isinstance(data, dict) else data
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise DicomStudioError("this is not an edit list saved by dcmstudio (JSON with \"edits\")", file=name) from None
    edit.validate_edits(edits)
    return {"edits": edits}


# ---- De-identify ---------------------------------------------------------------------------------

@endpoint
def deid_profile_info():
    """The pinned PS3.15 Table E.1-1 edition, its source, and the options with their codes
    (see :func:`dcmstudio.deid.profile_info`). The work itself is ``job_start("deid", ...)``."""
    from . import deid
    return {"profile": deid.profile_info()}


@endpoint
def deid_preview(path, name, options):
    """What de-identifying one loaded file would do: each element's action, burned-in flags,
    residual hits; nothing is written (see :func:`dcmstudio.deid.preview`). ``options["key"]``
    (hex), where given, is the run's key, derived by the page."""
    from . import deid
    with open(path, "rb") as f:
        data = f.read()
    options = dict(options)
    key = options.pop("key", None)
    return {"report": deid.preview(data, name, options, key=bytes.fromhex(key) if key else None)}


@endpoint
def deid_learned(files, shares):
    """What the first pass of a deid job the workers shared learned, folded once for the job
    (see :func:`dcmstudio.jobs.fold_learned`)."""
    return {"learned": jobs.fold_learned(files, shares)}


@endpoint
def deid_merge(options, learned, shares, zip_name, failures):
    """The mapping's files and the summary of a deid job the workers shared (see
    :func:`dcmstudio.jobs.merge_deid_shares`)."""
    return jobs.merge_deid_shares(options, learned, shares, output_path("deid-mapping"), zip_name, failures)


# ---- Validate ------------------------------------------------------------------------------------

@endpoint
def validate(files):
    """Check loaded files against their IODs and PS3.5 (see :func:`dcmstudio.validate.validate_bytes`).

    ``files`` lists ``{"path", "name"}``; the answer is ``{"reports": [one per file]}``. Many files
    go through ``job_start("validate", ...)`` instead, with progress and both reports as downloads.
    """
    from . import validate as checks
    return {"reports": [checks.validate_file(f["path"], f["name"]) for f in files]}


@endpoint
def validation_reports(reports, report_stem):
    """Both reports and the summary of a validation shared out over several workers, from every
    file's report in the order of the files (see :func:`dcmstudio.jobs.validation_reports`)."""
    scratch = output_path("validation")
    os.makedirs(scratch)
    return jobs.validation_reports(reports, report_stem or "dcmstudio", scratch)


# ---- Long tasks ----------------------------------------------------------------------------------

@endpoint
def member_names(names):
    """Safe, unique names inside one output for the files named ``names`` (see
    :func:`dcmstudio.archive.member_names`), decided once before a job is shared out."""
    return {"members": archive.member_names(names)}


@endpoint
def dicomdir_file_ids(keys):
    """The File IDs a folder save with a DICOMDIR writes its files under, one per file, from its
    patient, study and series keys in the job's order (see :func:`dcmstudio.dicomdir.file_ids`)."""
    from . import dicomdir
    return {"file_ids": dicomdir.file_ids(keys)}


@endpoint
def dicomdir_write(entries):
    """The DICOMDIR of the files a folder save wrote (``entries``: ``{"file_id", "record",
    "name"}`` each, see :func:`dcmstudio.dicomdir.write_dicomdir`), as an output named DICOMDIR."""
    from . import dicomdir
    out = output_path("DICOMDIR")
    try:
        summary = dicomdir.write_dicomdir(entries, out)
    except BaseException:
        if os.path.exists(out):
            os.remove(out)
        raise
    return {"summary": summary, "outputs": [{"path": out, "name": "DICOMDIR", "mime": "application/dicom"}]}


@endpoint
def zip_directory(members, start, zip_name):
    """The end of a ZIP whose members several workers wrote (see
    :func:`dcmstudio.archive.central_directory`), as one output part named ``zip_name``."""
    return {"outputs": [offer(zip_name, archive.central_directory(members, start), "application/zip")]}


@endpoint
def job_start(kind, options, count):
    """Start a long task of ``kind`` (see :mod:`dcmstudio.jobs`) over ``count`` items."""
    if kind == "write_series":
        options = {**options, "volume": _opened_volume()}
    job = jobs.start(kind, options, count, output_path)
    return {"job": job, "reads": jobs.reads(job)}


@endpoint
def job_step(job, item):
    """Process one item of a started task."""
    return jobs.step(job, item)


@endpoint
def job_finish(job):
    """Finish a task: its last pieces of output and its report."""
    return jobs.finish(job)


@endpoint
def job_cancel(job):
    """Abandon a task and delete what it wrote."""
    jobs.cancel(job)
    return {}
