"""``dcmstudio``: the page's tasks on the command line, file by file, on one machine or a cluster.

    dcmstudio SUBCOMMAND [options] INPUT... -o OUTPUT

INPUT is files or folders (walked recursively); OUTPUT a folder (the inputs' relative paths are
kept) or a ``.zip``. Each file's report is one JSON line (standard output, or ``--report FILE``),
then one summary line. Exit status: 0 when every file succeeded, 1 when some failed (each is
named), 2 for bad usage. The per-file work is :mod:`dcmstudio.cli.tasks`, the same calls the
page's tasks make, so the same inputs, options and secret give the same bytes as the page.
"""

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
from concurrent.futures import BrokenExecutor

from dcmstudio import __version__
from dcmstudio.archive import member_name
# The per-file code (dcmstudio.cli.tasks, and with it pydicom, numpy and pydicom's pixel decoders,
# ~0.25 s) is imported by the subcommands that run it, not by --help or a usage error.
from dcmstudio.cli import files, run
from dcmstudio.errors import DicomStudioError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv=None):
    """Run the command with ``argv`` (``sys.argv[1:]`` by default); return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except files.UsageError as exc:
        print(f"dcmstudio {args.command}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except DicomStudioError as exc:
        # a problem with the job as a whole (its options, edits or volume), named before any output
        where = f"{exc.file}: " if exc.file else ""
        print(f"dcmstudio {args.command}: {where}{exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenExecutor:
        print(f"dcmstudio {args.command}: a worker process died (out of memory?); the output is "
              "incomplete. Try fewer --jobs.", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"dcmstudio {args.command}: interrupted; the output is incomplete.", file=sys.stderr)
        return EXIT_FAILED


def console():
    """Entry point of the ``dcmstudio`` console script."""
    sys.exit(main())


# ---- arguments -----------------------------------------------------------------------------------

def _parser():
    parser = argparse.ArgumentParser(
        prog="dcmstudio", description="The dcmstudio page's DICOM tasks on the command line: the same "
        "code, the same bytes. Inputs are never modified.")
    parser.add_argument("--version", action="version", version=f"dcmstudio {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    dump = _per_file(commands, "dump", "each file's elements as text like dcmdump, or DICOM JSON")
    dump.add_argument("--json", action="store_true", help="DICOM JSON (PS3.18 Annex F) instead of text")
    dump.set_defaults(run=_run_dump)

    check = _per_file(commands, "validate", "check each file against its IOD and every element's VR, VM, "
                      "length and format, as the page's Validate tab does")
    check.add_argument("--json", action="store_true", help="the reports as JSON instead of text")
    check.add_argument("--strict", action="store_true", help="exit 1 when any file has an error")
    check.set_defaults(run=_run_validate)

    edit = _per_file(commands, "edit", "edit elements at the byte level (only what is edited changes)")
    edit.add_argument("--edits", metavar="FILE", help="an edit list saved by the page (JSON)")
    for flag, op, text in (("--set", "set", "change PATH's value (like dcmodify -m)"),
                           ("--add", "add", "add PATH, or change it if present (like dcmodify -i)")):
        edit.add_argument(flag, metavar="PATH=VALUE", dest="edit_ops", action=_EditAction, op=op,
                          help=text + "; a VR for a new private element goes after the path: "
                          "'(0009,\"ACME\",02) LO=x'. VALUE may use {index}, {uid}, {name}")
    edit.add_argument("--delete", metavar="PATH", dest="edit_ops", action=_EditAction, op="delete",
                      help="remove PATH (like dcmodify -e)")
    edit.add_argument("--remap-uids", dest="edit_ops", action=_EditAction, op="remap_uids", nargs=0,
                      help="give every instance UID a new one, consistently across the files")
    edit.add_argument("--uid-secret", metavar="TEXT", help="new UIDs keyed by this text: the same in "
                      "every run (default: a key drawn for this run)")
    _dicomdir_flag(edit)
    edit.set_defaults(run=_run_edit, edit_ops=[])

    deid = _per_file(commands, "deid", "de-identify to DICOM PS3.15 Table E.1-1 and its options")
    deid.add_argument("--options", metavar="FILE", help="the options as JSON, as the page sends them")
    deid.add_argument("--option", dest="profile_options", action="append", default=[], metavar="KEY",
                      help="a PS3.15 option, e.g. retain_uids, retain_long_modified_dates, "
                      "retain_patient_characteristics, retain_safe_private, clean_descriptors")
    deid.add_argument("--secret", help="the same secret gives the same UIDs, pseudonyms and date "
                      "offsets every time (better: --secret-file or DCMSTUDIO_SECRET)")
    deid.add_argument("--secret-file", metavar="FILE", help="read the secret from FILE (its first line)")
    deid.add_argument("--prefix", dest="pseudonym_prefix", help="start of every pseudonym (default DEID)")
    deid.add_argument("--date-offset", type=int, metavar="DAYS", help="shift every patient's dates by "
                      "DAYS (default: a keyed offset per patient)")
    deid.add_argument("--keep-names", action="store_true", help="keep the input file names")
    deid.add_argument("--mapping", metavar="FOLDER", help="where the IDENTIFYING mapping files go "
                      "(default: beside OUTPUT, never inside it)")
    _dicomdir_flag(deid)
    deid.set_defaults(run=_run_deid)

    for name, text in (("compress", "rewrite in another transfer syntax, losslessly unless a lossy one is asked for"),
                       ("decompress", "rewrite uncompressed (Explicit VR Little Endian)")):
        sub = _per_file(commands, name, text)
        if name == "compress":
            sub.add_argument("--syntax", default="rle", help="rle, deflated, uncompressed, or a transfer "
                             "syntax UID (default: rle); jpeg-ls, j2k, htj2k where an encoder is registered "
                             "(j2k with pylibjpeg-openjpeg installed); lossy: j2k-lossy (with --ratio), "
                             "jpeg-baseline (8-bit samples, with --quality)")
            sub.add_argument("--ratio", type=float, help="j2k-lossy: the compression ratio aimed at (1.5 to 1000)")
            sub.add_argument("--quality", type=int, help="jpeg-baseline: the quality, 1 (smallest) to 100 (best)")
        sub.add_argument("--no-verify", dest="verify", action="store_false",
                         help="do not decode each output again to compare it with its source")
        _dicomdir_flag(sub)
        sub.set_defaults(run=_run_compress)

    convert = commands.add_parser("convert", help="a volume (NIfTI, NRRD, MetaImage, VTK, a DICOM "
                                  "series) to a DICOM series")
    _common(convert)
    convert.add_argument("--options", metavar="FILE", help="the series options as JSON, as the page sends them")
    convert.add_argument("--modality", help="CT, MR or SC")
    convert.add_argument("--multiframe", action="store_true", help="one multi-frame file")
    convert.set_defaults(run=_run_convert)

    create = commands.add_parser("create", help="new objects: Secondary Capture from pictures, "
                                 "Encapsulated PDF")
    create.add_argument("kind", choices=("sc", "pdf"), help="sc: a PNG or JPEG each; pdf: a PDF each")
    _common(create)
    create.add_argument("--multiframe", action="store_true", help="sc: one multi-frame SC from all pictures")
    create.add_argument("--patient", metavar="FILE", help="patient attributes as JSON")
    create.add_argument("--study", metavar="FILE", help="study attributes as JSON")
    create.add_argument("--options", metavar="FILE", help="other attributes as JSON")
    create.set_defaults(run=_run_create)
    return parser


def _common(sub):
    sub.add_argument("inputs", nargs="+", metavar="INPUT", help="files or folders (recursive)")
    sub.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="a folder or a .zip")
    sub.add_argument("--report", metavar="FILE", help="JSON lines here instead of standard output")
    sub.add_argument("-q", "--quiet", action="store_true", help="no progress, only failures")


def _per_file(commands, name, text):
    sub = commands.add_parser(name, help=text, description=text)
    _common(sub)
    sub.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                     help="worker processes at most (default: the number of cores); see --pool")
    sub.add_argument("--pool", choices=("auto", "always"), default="auto",
                     help="auto (default): start the worker processes only when the files left would "
                     "keep this one busy for a second or more (timed on the first files) and a core is "
                     "idle, since starting them costs more than a few hundred small files take; "
                     "always: start them after the first file")
    sub.add_argument("--dask", metavar="ADDRESS", help="run on the Dask cluster at ADDRESS (its "
                     "scheduler); inputs and a folder OUTPUT must be reachable by every worker")
    return sub


def _dicomdir_flag(sub):
    sub.add_argument("--dicomdir", action="store_true", help="OUTPUT being a folder: name the files by DICOM "
                     "File IDs (DICOM/PT000001/ST000001/SE000001/IM000001, by patient, study and series in "
                     "the order of the inputs) and write a DICOMDIR listing every file written")


class _EditAction(argparse.Action):
    """--set/--add/--delete/--remap-uids, kept in the order given (edits apply in order)."""

    def __init__(self, *args, op, **kwargs):
        self.op = op
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, value, option_string=None):
        edits = list(getattr(namespace, self.dest) or [])
        try:
            edits.append(edit_from_text(self.op, value))
        except ValueError as exc:
            parser.error(f"{option_string} {value}: {exc}")
        setattr(namespace, self.dest, edits)


def edit_from_text(op, text):
    """One edit dict from dcmodify-like text: ``PATH=VALUE``, ``PATH VR=VALUE`` or ``PATH``.

    The first ``=`` outside double quotes ends the path (a private creator may hold one).
    """
    if op == "remap_uids":
        return {"op": "remap_uids"}
    if op == "delete":
        return {"op": "delete", "path": text.strip()}
    quoted = False
    for i, char in enumerate(text):
        quoted = quoted != (char == '"')
        if char == "=" and not quoted:
            path, value = text[:i].strip(), text[i + 1:]
            break
    else:
        raise ValueError("write PATH=VALUE")
    edit = {"op": op, "path": path, "value": value}
    head, _, vr = path.rpartition(" ")
    if head and len(vr) == 2 and vr.isalpha() and vr.isupper():
        edit.update(path=head.strip(), vr=vr)
    return edit


def _read_json(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise files.UsageError(f"{path}: cannot read {what} ({exc})") from None


# ---- per-file commands --------------------------------------------------------------------------

def _run_dump(args):
    return _run_per_file(args, {"command": "dump", "json": args.json})


def _run_validate(args):
    errors = []

    def merge(result):
        if "error" not in result and result["report"]["errors"]:
            errors.append(result["file"])

    status = _run_per_file(args, {"command": "validate", "json": args.json}, merge=merge,
                           summary=lambda: {"files_with_errors": len(errors)})
    if args.strict and errors and status == EXIT_OK:
        print(f"{len(errors)} file(s) have errors, e.g. {errors[0]}", file=sys.stderr)
        return EXIT_FAILED
    return status


def _run_edit(args):
    from dcmstudio import api, edit
    edits = []
    if args.edits:
        try:
            with open(args.edits, encoding="utf-8") as f:
                edits = api.load_edits(f.read(), args.edits)["edits"]
        except OSError as exc:
            raise files.UsageError(f"{args.edits}: cannot read the edit list ({exc.strerror})") from None
    edits += args.edit_ops
    if not edits:
        raise files.UsageError("give the edits: --edits FILE, or --set/--add/--delete/--remap-uids.")
    edit.validate_edits(edits)
    key = _key_text(args.uid_secret)
    spec = {"command": "edit", "edits": edits, "key": key}
    return _run_per_file(args, spec)


def _key_text(secret):
    """The job's key as hex: from a secret (repeatable) or drawn for this run."""
    import hashlib
    if secret:
        return hashlib.sha256(b"dcmstudio-cli-uid\x00" + secret.encode("utf-8")).hexdigest()
    return secrets.token_hex(32)


def _run_deid(args):
    from dcmstudio.deid import Deidentifier, mapping
    options = _read_json(args.options, "the options") if args.options else {}
    if not isinstance(options, dict):
        raise files.UsageError(f"{args.options}: the options must be a JSON object.")
    options.pop("zip_name", None)
    for key in args.profile_options:
        options[key] = True
    for key in ("pseudonym_prefix", "date_offset", "keep_names"):
        value = getattr(args, key)
        if value not in (None, False):
            options["date_offset_days" if key == "date_offset" else key] = value
    secret = args.secret or options.get("secret") or os.environ.get("DCMSTUDIO_SECRET") or ""
    if args.secret_file:
        try:
            with open(args.secret_file, encoding="utf-8") as f:
                secret = f.readline().rstrip("\r\n")
        except OSError as exc:
            raise files.UsageError(f"{args.secret_file}: cannot read the secret ({exc.strerror})") from None
    # Without a secret the page draws a key for the job; here one is drawn once and handed to
    # every worker, so the files of this run stay consistent with one another.
    drawn = not secret
    options["secret"] = secret or secrets.token_urlsafe(32)
    merged = Deidentifier(options)  # checks the options before any file is read
    if drawn:
        merged.deterministic = False
    # the page's report, named as the page names it beside <stem>.zip
    report_name = mapping.report_name(_zip_stem(os.path.normpath(args.output)))
    mapping_folder = _mapping_folder(args, report_name)
    scratch = tempfile.mkdtemp(prefix="dcmstudio-cli-")
    page_report = open(os.path.join(scratch, report_name), "w", encoding="utf-8")

    def first_pass(runner, spec, items, folder):
        """Learn every file's identifying values (in parallel, merged in input order as the page
        learns them) before any output; every worker then gets the job-wide set."""
        if not args.quiet:
            print(f"first pass: learning the identifying values of {len(items)} files", file=sys.stderr)
        from dcmstudio.cli import tasks
        unlearned = set()
        for learned in run.in_order(runner, tasks.learn_file, spec, items, count=len(items)):
            merged.identifiers.update(learned["identifiers"])
            for patient in learned["patients"]:
                merged.patients.setdefault(patient.key, patient)
            if not learned["learned"]:
                unlearned.add(learned["index"])
        return runner.share(merged.identifiers, folder), lambda item: {
            **item, "learned": item["index"] not in unlearned}

    def merge(result):
        if "error" in result:
            page_report.write(json.dumps({"file": result["file"], "error": result["error"]}) + "\n")
        else:
            mapping.merge_file(merged, result["report"])
            # as the page's job: each line names the file's member in the output
            member = json.dumps(member_name(result["report"]["output"]))
            page_report.write(run.with_key(run.encode_report(result["report"]), "member", member) + "\n")

    spec = {"command": "deid", "options": options}
    try:
        status = _run_per_file(args, spec, merge=merge, first_pass=first_pass,
                               # "files" stays the command's (the inputs), as for every command
                               summary=lambda: {k: v for k, v in merged.summary().items()
                                                if k not in ("failed", "files")})
        page_report.close()
        if merged.totals["files"]:
            os.makedirs(mapping_folder, exist_ok=True)
            shutil.copyfile(page_report.name, os.path.join(mapping_folder, report_name))
            for written in merged.write_mapping(mapping_folder) + [{"path": os.path.join(mapping_folder,
                                                                                         report_name)}]:
                if not args.quiet:
                    print(f"IDENTIFYING: {written['path']}", file=sys.stderr)
    finally:
        page_report.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return status


def _mapping_folder(args, report_name):
    """Where the mapping and the report go: never inside the output or an input, never over an
    earlier run's."""
    from dcmstudio.deid import mapping
    folder = args.mapping or os.path.dirname(os.path.abspath(args.output))
    target = os.path.realpath(folder)
    for given in args.inputs:
        source = os.path.realpath(given)
        if os.path.isdir(source) and os.path.commonpath([target, source]) == source:
            raise files.UsageError(f"the mapping would go inside the input {given}: dcmstudio never "
                                   "writes into its inputs; choose --mapping elsewhere.")
    output = os.path.realpath(args.output)
    if os.path.commonpath([target, output]) == output:
        raise files.UsageError(f"the mapping would go inside the output {args.output}; it identifies "
                               "people and must be kept apart from the data: choose --mapping elsewhere.")
    if os.path.isdir(folder):
        earlier = sorted(set(os.listdir(folder)) & {*mapping.FILE_NAMES, report_name})
        if earlier:
            raise files.UsageError(f"{os.path.join(folder, earlier[0])} exists (an earlier run's mapping): "
                                   "move it, or choose another folder with --mapping.")
    return folder


_SYNTAXES = {"rle": "1.2.840.10008.1.2.5", "deflated": "1.2.840.10008.1.2.1.99",
             "jpeg-ls": "1.2.840.10008.1.2.4.80", "j2k": "1.2.840.10008.1.2.4.90",
             "htj2k": "1.2.840.10008.1.2.4.201", "uncompressed": "1.2.840.10008.1.2.1",
             "j2k-lossy": "1.2.840.10008.1.2.4.91", "jpeg-baseline": "1.2.840.10008.1.2.4.50"}


def _run_compress(args):
    from dcmstudio import api, codecs, lossy
    asked = getattr(args, "syntax", "uncompressed")
    syntax = _SYNTAXES.get(asked.lower(), asked)
    codecs.register_pylibjpeg_openjpeg()  # JPEG 2000 where pylibjpeg-openjpeg is installed
    # what the page's Compress workbench would offer in this Python (JPEG-LS, JPEG 2000 and HTJ2K
    # need an encoder registered with dcmstudio.codecs; the page registers its wasm ones)
    choices = api.compress_choices()
    offered = {target["uid"]: target["name"] for target in choices["targets"] + choices["lossy_targets"]}
    if syntax not in offered:
        raise files.UsageError(f"{asked} is not a transfer syntax dcmstudio can write here; choose "
                               + ", ".join(f"{name} ({uid})" for uid, name in offered.items()) + ".")
    setting = {key: value for key, value in (("ratio", getattr(args, "ratio", None)),
                                             ("quality", getattr(args, "quality", None))) if value is not None}
    spec = {"command": "compress", "transfer_syntax": syntax, "verify": args.verify}
    if syntax not in lossy.LOSSY_TARGETS:
        if setting:
            raise files.UsageError(f"{offered[syntax]} is lossless: --ratio and --quality are for j2k-lossy and "
                                   "jpeg-baseline.")
        return _run_per_file(args, spec)
    try:
        lossy.LossySettings(syntax, **setting)  # lossy is never chosen without its setting
    except DicomStudioError as exc:
        raise files.UsageError(exc.message) from None
    spec.update(lossy=setting, key=os.urandom(32).hex())

    def first_pass(runner, spec, items, folder):
        # every input's new UID is known before the first output, so references follow
        return runner.share(_instance_uids(items), folder), None
    return _run_per_file(args, spec, first_pass=first_pass)


def _instance_uids(items):
    """The SOP Instance UIDs of the inputs that have one (headers only)."""
    import warnings

    import pydicom
    found = []
    for item in items:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                uid = pydicom.dcmread(item["path"], stop_before_pixels=True, force=True,
                                      specific_tags=["SOPInstanceUID"]).get("SOPInstanceUID")
        except Exception:  # noqa: BLE001 -- an unreadable file is reported when its turn comes
            continue
        if uid:
            found.append(str(uid))
    return found


def _run_per_file(args, spec, merge=None, summary=None, first_pass=None):
    """Check the inputs and output, run ``spec`` over every file, write the reports; the exit status.

    ``merge(result)`` sees each file's result in input order; ``first_pass(runner, spec, items,
    scratch)`` runs before the first file and returns what every worker gets (a handle from the
    runner's ``share``) and a function that completes each item."""
    from dcmstudio.cli import tasks
    if args.jobs < 1:
        raise files.UsageError("--jobs must be at least 1.")
    files.check_output(args.output, args.inputs)
    with_dicomdir = getattr(args, "dicomdir", False)
    if with_dicomdir:
        _check_dicomdir_output(args.output)
    items = files.Inputs(args.inputs)
    output = files.Output(args.output)
    scratch = tempfile.mkdtemp(prefix="dcmstudio-cli-")
    spec = {**spec, "folder": os.path.abspath(output.folder) if output.folder else None,
            "scratch": None if args.dask else scratch, **({"dicomdir": True} if with_dicomdir else {})}
    spec["job"] = tasks.job_id(spec)
    workers = min(args.jobs, len(items))
    runner = (run.DaskCluster(args.dask) if args.dask else
              run.Serial() if workers == 1 else
              # results bring a ZIP's outputs back as bytes: one file per task then
              run.ProcessPool(workers, always=args.pool == "always", batch=8 if output.folder else 1))
    reports, progress = run.Reports(args.report, args.quiet), run.Progress(len(items), args.quiet)
    written = 0
    with_new_errors = 0  # outputs that gained a validation error (edit, deid, compress)
    cut_short = []  # edit: the files cut short inside their pixel data, edited as they are
    try:
        shared, complete = first_pass(runner, spec, items, scratch) if first_pass else (None, None)
        todo = items if complete is None else map(complete, items)
        listed = []  # with --dicomdir: what the DICOMDIR lists of each file written
        if with_dicomdir:
            from dcmstudio import dicomdir
            file_ids = dicomdir.file_ids([dicomdir.grouping_key(item["path"]) for item in items])
            todo = ({**item, "member": file_id} for item, file_id in zip(todo, file_ids))
        for result in run.in_order(runner, tasks.run_file, spec, todo, shared, count=len(items)):
            if "error" not in result:
                if output.zip is not None:
                    result["outputs"] = [output.add(name, [data]) for name, data in result["outputs"]]
                written += len(result["outputs"])
                if with_dicomdir:
                    listed.append({"file_id": result["outputs"][0], "record": result.pop("directory_record"),
                                   "name": result["file"]})
            with_new_errors += bool((result.get("report") or {}).get("new_errors"))
            if run.cut_short(result):
                cut_short.append({"file": result["file"], "message": run.cut_short(result)})
            if merge is not None:
                merge(result)
            progress.update(result)
            reports.write(result)
        totals = {"summary": {"command": args.command, "files": len(items),
                               "succeeded": len(items) - len(reports.failed),
                               "failed": reports.failed, "outputs": written, "output": args.output,
                               "worker_processes": runner.workers if runner.started else 0,
                               **({"files_with_new_errors": with_new_errors}
                                  if spec["command"] not in ("dump", "validate") else {}),
                               **({"cut_short": cut_short} if spec["command"] == "edit" else {}),
                               **(summary() if summary else {}),
                               **({"dicomdir": _write_dicomdir(output.folder, listed)} if with_dicomdir else {})}}
        reports.write(totals)
    finally:
        progress.close()
        runner.shutdown()
        output.close()
        reports.close()
        shutil.rmtree(scratch, ignore_errors=True)
    for failure in reports.failed:
        print(f"failed: {failure['file']}: {failure['message']}", file=sys.stderr)
    return EXIT_FAILED if reports.failed else EXIT_OK


def _check_dicomdir_output(output):
    """Refuse --dicomdir for a ZIP, or for a folder that has a DICOMDIR already (an earlier run's:
    replacing it would leave the files it lists unlisted)."""
    if files.is_zip(output):
        raise files.UsageError("--dicomdir writes into a folder; OUTPUT is a ZIP.")
    if os.path.exists(os.path.join(output, "DICOMDIR")):
        raise files.UsageError(f"{os.path.join(output, 'DICOMDIR')} exists (an earlier run's): move it, or choose "
                               "another output folder.")


def _write_dicomdir(folder, listed):
    """The DICOMDIR of the files written (``listed``, in input order) at the root of ``folder``;
    its summary (see :func:`dcmstudio.dicomdir.write_dicomdir`), or why there is none."""
    from dcmstudio import dicomdir
    if not listed:
        return {"written": False, "reason": "no file was written"}
    return {"written": True, **dicomdir.write_dicomdir(listed, os.path.join(folder, "DICOMDIR"))}


# ---- whole-job commands -----------------------------------------------------------------------

def _run_convert(args):
    from dcmstudio import series, volume
    options = _read_json(args.options, "the options") if args.options else {}
    if args.modality:
        options["modality"] = args.modality
    if args.multiframe:
        options["multiframe"] = True
    files.check_output(args.output, args.inputs)
    paths = [item["path"] for item in files.Inputs(args.inputs)]
    opened = volume.read_volume(paths)
    reports = run.Reports(args.report, args.quiet)
    try:
        if files.is_zip(args.output):
            folder = tempfile.mkdtemp(prefix="dcmstudio-cli-")
            try:
                result = series.write_series(opened, options, os.path.join(folder, _zip_stem(args.output)),
                                             zip_to=args.output, keep_files=False)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        else:
            result = series.write_series(opened, options, args.output, zip_to=None)
        result.pop("paths", None)
        reports.write({"summary": {"command": "convert", "output": args.output, **result}})
    finally:
        reports.close()
    return EXIT_OK


def _zip_stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def _run_create(args):
    from dcmstudio import create
    patient = _read_json(args.patient, "the patient") if args.patient else None
    study = _read_json(args.study, "the study") if args.study else None
    options = _read_json(args.options, "the options") if args.options else None
    files.check_output(args.output, args.inputs)
    items = list(files.Inputs(args.inputs))
    output = files.Output(args.output)
    reports, progress = run.Reports(args.report, args.quiet), run.Progress(len(items), args.quiet)
    scratch = tempfile.mkdtemp(prefix="dcmstudio-cli-")

    def made(name, build):
        out = os.path.join(scratch, "out.dcm")
        report = build(out)
        report.pop("path", None)
        if output.zip is not None:
            name = output.zip.add_file(out, name)
        else:
            with open(out, "rb") as f:
                files.write_checked(output.folder, name, [f.read()])
        os.remove(out)
        return {**report, "outputs": [name]}

    if args.kind == "sc" and args.multiframe:
        jobs = [(items[0]["name"], f"{_stem(items[0]['name'])}_multiframe.dcm",
                 lambda out: create.create_multiframe([i["path"] for i in items], out, patient, study, options,
                                                      image_names=[i["name"] for i in items]))]
    elif args.kind == "sc":
        jobs = [(i["name"], f"{_stem(i['name'])}_SC.dcm",
                 lambda out, i=i: create.create_secondary_capture(i["path"], out, patient, study, options,
                                                                  image_name=i["name"])) for i in items]
    else:
        jobs = [(i["name"], f"{_stem(i['name'])}_pdf.dcm",
                 lambda out, i=i: create.create_encapsulated_pdf(i["path"], out, patient, study, options,
                                                                 pdf_name=i["name"])) for i in items]
    try:
        for source, name, build in jobs:
            try:
                result = {"file": source, **made(name, build)}
            except DicomStudioError as exc:
                result = {"file": source, "error": exc.message}
            progress.update(result)
            reports.write(result)
        reports.write({"summary": {"command": "create", "files": len(jobs), "failed": reports.failed,
                                   "output": args.output}})
    finally:
        progress.close()
        output.close()
        reports.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return EXIT_FAILED if reports.failed else EXIT_OK


def _stem(name):
    return os.path.splitext(name)[0]
