"""The command's per-file work: one function per subcommand, run wherever a file is processed.

Each ``*_file(spec, item)`` takes the job's spec (plain data: options, edits, key) and one input
``{"path", "name", "index"}``, and does to that file exactly what the page's task does to it:
the per-file functions of :mod:`dcmstudio.jobs` (edit, deid, compress) or the same calls into
:mod:`dcmstudio.inspector` (dump). It never depends on which files ran before
it in the same process, so a process pool or a Dask cluster gives the same bytes as one process:

- the job-wide state is keyed, not accumulated: de-identification's UIDs, pseudonyms and date
  offsets are HMACs of the original values under the job's key (given by a secret, or drawn once
  by the command and handed to every worker), and new UIDs of an edit are keyed the same way;
- the mapping is returned per file and merged by the caller in input order, so it is written
  exactly as one process would write it;
- de-identification's first pass (:func:`learn_file`) is merged the same way, and the job-wide
  set it gives is handed to every worker once; each file scans with it and keeps what it adds.

The result is a plain dict: ``{"file", "index", "outputs", "report"}`` or ``{"file", "index",
"error"}``. With ``spec["folder"]`` set the outputs are written there (a folder every worker can
reach) and listed by name; otherwise they come back as ``(name, bytes)`` for the caller's ZIP.
"""

import hashlib
import hmac
import json
import os

from dcmstudio import jobs, uids
from dcmstudio.archive import piece_length
from dcmstudio.cli import run
from dcmstudio.cli.files import FromInput, write_checked
from dcmstudio.errors import DicomStudioError

# State a worker process builds once per job and keeps between files (no effect on the bytes).
_per_process = {}


class KeyedUidMap(uids.UidMap):
    """Old UID → ``2.25.`` and a keyed 128-bit number: the same answer in every process.

    :class:`dcmstudio.uids.UidMap` draws random UIDs, which is right for one process but would
    give two workers two different new UIDs for one old UID.

    Parameters
    ----------
    key : bytes
    """

    def __init__(self, key):
        super().__init__()
        self._key = key

    def __getitem__(self, old):
        new = self._map.get(old)
        if new is None:
            number = int.from_bytes(hmac.new(self._key, old.encode("utf-8", "surrogatepass"),
                                             hashlib.sha256).digest()[:16], "big")
            # a version 8 UUID's layout (RFC 9562), as PS3.5 B.2 asks of 2.25 UIDs
            number = number & ~(0xF << 76) | 0x8 << 76
            number = number & ~(0x3 << 62) | 0x2 << 62
            new = self._map[old] = "2.25." + str(number)
        return new


def run_file(spec, item, shared=None):
    """Process one input for the job ``spec``; never raises for a problem with the file (its
    result then carries ``error``, a sentence naming it). ``shared`` is what the job hands every
    worker (see :meth:`dcmstudio.cli.run.Serial.share`): deid's learned identifying values."""
    work = _COMMANDS[spec["command"]]
    try:
        outputs, report = work(spec, item, *([] if shared is None else [run.resolve(shared)]))
        delivered = []
        for name, pieces, dicom, *source in outputs:
            name = item.get("member") or name  # with --dicomdir: its File ID
            if spec.get("folder"):
                write_checked(spec["folder"], name, pieces, dicom=dicom, source=source[0] if source else None)
                delivered.append(name)
            else:
                delivered.append((name, b"".join(pieces)))
        record = {"directory_record": _directory_record(spec["folder"], delivered[0], item)} \
            if spec.get("dicomdir") else {}
    except DicomStudioError as exc:
        return {"file": item["name"], "index": item["index"], "error": exc.message}
    except (OSError, MemoryError) as exc:
        return {"file": item["name"], "index": item["index"],
                "error": f"{item['name']}: {exc.__class__.__name__}: {exc}"}
    except Exception as exc:  # as the page's boundary does: one file's failure is that file's alone
        return {"file": item["name"], "index": item["index"],
                "error": f"dcmstudio failed unexpectedly on {item['name']}: {exc.__class__.__name__}: {exc}"}
    return {"file": item["name"], "index": item["index"], "outputs": delivered, "report": report, **record}


def _directory_record(folder, name, item):
    """What the DICOMDIR needs of the file written as ``folder/name`` (see
    :func:`dcmstudio.dicomdir.record_source`); a file it cannot list is removed, not left unlisted."""
    from dcmstudio import dicomdir
    path = os.path.join(folder, name)
    try:
        return dicomdir.record_source(path, item["name"], item["index"])
    except DicomStudioError:
        os.remove(path)
        raise


def _stem(name):
    return os.path.splitext(name)[0]


def _dump(spec, item):
    from dcmstudio import inspector
    if spec["json"]:
        text, suffix = inspector.dicom_json(item["path"], item["name"]), ".json"
    else:
        text, suffix = inspector.dump_text(item["path"], item["name"]), ".txt"
    return [(_stem(item["name"]) + suffix, [text.encode("utf-8")], False)], {"file": item["name"]}


def _validate(spec, item):
    from dcmstudio import validate
    report = validate.validate_file(item["path"], item["name"])
    if spec["json"]:
        text, suffix = validate.report_json([report]), "_validation.json"
    else:
        text, suffix = validate.report_text([report]), "_validation.txt"
    summary = {"file": item["name"], "iod": report["iod"], "errors": report["errors"], "warnings": report["warnings"]}
    return [(_stem(item["name"]) + suffix, [text.encode("utf-8")], False)], summary


def _edit(spec, item):
    from dcmstudio import edit, replay
    state = _per_process.get(spec["job"])
    if state is None:
        _per_process.clear()
        state = _per_process[spec["job"]] = {"replay": replay.SeriesReplay()}
    name = item["name"]
    # A fresh keyed map per file: the same new UIDs, and nothing that grows with the job.
    context = {"index": item["index"], "uid_map": KeyedUidMap(bytes.fromhex(spec["key"])),
               "name": name, "replay": state["replay"]}
    # Into a folder, as the page's folder save: only the head is read, and the pixel data that
    # ends the file is copied from the input by the system (see files.write_checked).
    edited = jobs.edit_item(item, spec["edits"], context, head_only=bool(spec.get("folder")), say_cut_short=True)
    return [(name, unread_as_copies(edited.pieces, edited.origins, edited.tail), edited.part10, item["path"])], \
        edited.report


def unread_as_copies(output, origins, tail):
    """``output`` (pieces, with their ``origins``) with the pieces that stand for the input's
    bytes not read (from ``tail`` on, see :func:`dcmstudio.jobs.read_item_for_edit`) replaced by
    :class:`dcmstudio.cli.files.FromInput` ranges, consecutive ones merged."""
    if tail is None:
        return output
    pieces = []
    for piece, origin in zip(output, origins):
        if origin is None or origin < tail:
            pieces.append(piece)
        elif pieces and isinstance(pieces[-1], FromInput) and pieces[-1].offset + pieces[-1].length == origin:
            pieces[-1] = FromInput(pieces[-1].offset, pieces[-1].length + piece_length(piece))
        else:
            pieces.append(FromInput(origin, piece_length(piece)))
    return pieces


def learn_file(spec, item):
    """deid's first pass over one input: ``{"index", "learned", "identifiers", "patients"}``
    (what :meth:`dcmstudio.deid.Deidentifier.learn_file` learned from it), for the caller to
    merge in input order into the job-wide set every worker then gets."""
    from dcmstudio.deid import Deidentifier
    job = Deidentifier(spec["options"])
    job.layouts = _layouts(spec)
    try:
        learned = job.learn_file(item["path"], item["name"])
    except Exception:  # noqa: BLE001 -- the file's own step then names what is wrong with it
        learned = False
    return {"index": item["index"], "learned": learned, "identifiers": job.identifiers,
            "patients": list(job.patients.values())}


def _layouts(spec):
    """The de-identification layouts this worker met in the job ``spec`` (see
    :mod:`dcmstudio.deid.layouts`: state that changes how fast, never what, it writes)."""
    from dcmstudio.deid.layouts import Layouts
    key = ("deid", job_id(spec))
    if key not in _per_process:
        _per_process.clear()
        _per_process[key] = Layouts()
    return _per_process[key]


def _deid(spec, item, identifiers):
    import copy

    from dcmstudio.deid import Deidentifier
    # One Deidentifier per file: its key is the job's (the stretched secret is cached per
    # process); it scans with the job-wide values of the first pass, and what it adds (the UIDs
    # it replaces) stays its own, so the result does not depend on which worker saw which
    # files before: the page's task gives the same.
    job = Deidentifier(spec["options"], scratch=spec.get("scratch"))
    job.layouts = _layouts(spec)
    learned = item.get("learned", False)
    # a file the first pass could not read learns its own values, as the page's task does
    job.identifiers = identifiers if learned else copy.deepcopy(identifiers)
    # Into a folder, the pixel data that ends a file is copied by the system, not read (as for
    # an edit), unless a mask cleans it.
    if spec.get("folder") and not item.get("whole") and not job.options.masks_for(item["name"]):
        try:
            pieces, report, part10, origins, tail = jobs.deidentify_item(job, item, item["index"], learned,
                                                                         head_only=True)
        except jobs.UnreadBytesNeeded:
            return _deid(spec, {**item, "whole": True}, identifiers)
        pieces = unread_as_copies(pieces, origins, tail)
    else:
        pieces, report, part10 = jobs.deidentify_item(job, item, item["index"], learned)
    report["mapping"] = {"patients": list(job.patients.values()), "uids": list(job.uid_map.items()),
                         "other_ids": list(job.other_ids.items())}
    return [(report["output"], pieces, part10, item["path"])], report


def _transcode(spec, item, instances=None):
    import tempfile

    from dcmstudio import codecs, lossy
    codecs.register_pylibjpeg_openjpeg()  # in each worker process: JPEG 2000 where installed
    name = item["name"]
    settings = new_uid_of = None
    if spec.get("lossy") is not None:
        settings = lossy.LossySettings.from_options(spec["transfer_syntax"], spec["lossy"])
        key = bytes.fromhex(spec["key"])
        new_uid_of = {uid: uids.keyed_uid(key, uid) for uid in instances or []}
    with tempfile.TemporaryDirectory(dir=spec.get("scratch")) as folder:
        out = os.path.join(folder, "out.dcm")
        report = jobs.compress_item(item, out, spec["transfer_syntax"], spec["verify"], settings, new_uid_of)
        pieces = [jobs.read_file(out)]
    return [(name, pieces, True)], {"file": name, **report}


_COMMANDS = {"dump": _dump, "validate": _validate, "edit": _edit, "deid": _deid, "compress": _transcode}


def job_id(spec):
    """A short stable name for a job's spec (workers keep per-job state under it)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]
