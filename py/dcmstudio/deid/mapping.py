"""The mapping of a job, original → new identities: identifying, downloaded apart from the data."""

import csv
import io
import json
import os


def as_dict(job):
    """Original → new identities of this job (identifying: keep it secret).

    Returns
    -------
    dict
        ``{"identifying": True, "warning", "profile", "deterministic", "patients": [...],
        "uids": [{"original", "new"}]}``; each patient is ``{"original_patient_id",
        "issuer", "original_patient_name", "original_birth_date", "pseudonym",
        "date_offset_days", "files"}``.
    """
    return {
        "identifying": True,
        "warning": "IDENTIFYING: this file links de-identified data to real people. Keep it "
                   "apart from the data and share it with no one who may not re-identify.",
        "profile": job.profile.label,
        "options": sorted(job.options.chosen),
        "deterministic": job.deterministic,
        "patients": [{"original_patient_id": p.original_id, "issuer": p.issuer,
                      "original_patient_name": p.original_name,
                      "original_birth_date": p.birth_date, "pseudonym": p.pseudonym,
                      "date_offset_days": p.date_offset_days, "files": p.files}
                     for p in job.patients.values()],
        # sorted: the order UIDs were met in depends on which worker took which file
        "uids": [{"original": old, "new": new} for old, new in sorted(job.uid_map.items())],
        "other_patient_ids": [{"original": old, "new": new} for old, new in sorted(job.other_ids.items())],
    }


def as_csv(job):
    """The mapping as CSV: ``kind,original,new,detail`` rows after a warning line."""
    out = io.StringIO()
    mapping = as_dict(job)
    out.write(f"# {mapping['warning']}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["kind", "original", "new", "detail"])
    for p in mapping["patients"]:
        writer.writerow(["patient_id", p["original_patient_id"], p["pseudonym"],
                         f"issuer={p['issuer']}"])
        writer.writerow(["patient_name", p["original_patient_name"], p["pseudonym"], ""])
        writer.writerow(["date_offset_days", p["original_patient_id"] or
                         p["original_patient_name"], p["date_offset_days"], ""])
    for u in mapping["uids"]:
        writer.writerow(["uid", u["original"], u["new"], ""])
    return out.getvalue()


def as_id_pairs(pairs):
    """``id_old,id_new`` CSV, the form the MIDI-B de-identification scorer reads (no comment
    line: its reader takes the first line as the header)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id_old", "id_new"])
    writer.writerows(pairs)
    return out.getvalue()


# The files :func:`write` writes.
FILE_NAMES = ("IDENTIFYING-deid-mapping.csv", "IDENTIFYING-deid-mapping.json",
              "IDENTIFYING-uid_mapping.csv", "IDENTIFYING-patient_id_mapping.csv")


def report_name(stem):
    """The name of a job's JSON-lines report beside ``<stem>.zip``: identifying (it holds the
    input names and the values the residual scan found)."""
    return f"IDENTIFYING-{stem}_report.jsonl"


def write(job, folder):
    """Write the mapping into ``folder``: CSV and JSON of everything, and the MIDI-B pair files
    for UIDs and patient IDs; return ``[{"path", "name", "mime"}]`` (each name starts with
    ``IDENTIFYING-``)."""
    patient_ids = [(p.original_id, p.pseudonym) for p in job.patients.values() if p.original_id]
    patient_ids += sorted(job.other_ids.items())
    outputs = []
    texts = (as_csv(job), json.dumps(as_dict(job), indent=1), as_id_pairs(sorted(job.uid_map.items())),
             as_id_pairs(patient_ids))
    mimes = ("text/csv;charset=utf-8", "application/json", "text/csv;charset=utf-8", "text/csv;charset=utf-8")
    for name, mime, text in zip(FILE_NAMES, mimes, texts):
        path = os.path.join(folder, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        outputs.append({"path": path, "name": name, "mime": mime})
    return outputs


def merge_file(merged, report):
    """Fold one file's mapping into the job ``merged`` (a :class:`~dcmstudio.deid.Deidentifier`),
    in input order, as one process would have met it: the command's workers and the page's
    give each file's ``report["mapping"]`` (``{"patients": [Patient], "uids": [(old, new)],
    "other_ids": [(old, new)]}``, popped here) with its report's ``residual``, ``burned_in``
    and ``pixels_cleaned``."""
    met = report.pop("mapping")
    for patient in met["patients"]:
        known = merged.patients.get(patient.key)
        if known is None:
            merged.patients[patient.key] = patient
        else:
            known.files += patient.files
    for old, new in met["uids"]:
        merged.uid_map.setdefault(old, new)
    for old, new in met["other_ids"]:
        merged.other_ids.setdefault(old, new)
    merged.totals["files"] += 1
    merged.totals["residual_hits"] += len(report["residual"])
    merged.totals["burned_in_flagged"] += report["burned_in"]["flag"]
    merged.totals["pixels_cleaned"] += report["pixels_cleaned"]


class Share:
    """One worker's share of a job's mapping and totals (the page shares a job's files out over
    its workers): folded file by file, in whatever order the worker took them, and handed over
    once (:meth:`to_plain`) for :func:`merge_shares`. Nothing is kept per file."""

    def __init__(self):
        self.patients = {}  # key → [index of its first file here, the patient (plain), files]
        self.uids = {}
        self.other_ids = {}
        self.totals = {"files": 0, "residual_hits": 0, "burned_in_flagged": 0, "pixels_cleaned": 0,
                       "files_with_new_errors": 0}
        self.failures = []  # [index, file, message]

    def add(self, index, patient, uids, other_ids, report):
        """Fold in the ``index``-th file of the job (1-based): its ``patient`` (a
        :class:`~dcmstudio.deid.job.Patient`), the ``(old, new)`` pairs of ``uids`` and
        ``other_ids`` it added, and its ``report`` (``residual``, ``burned_in``,
        ``pixels_cleaned``, ``new_errors``)."""
        known = self.patients.get(patient.key)
        if known is None:
            self.patients[patient.key] = [index, {**vars(patient), "files": 0}, 1]
        else:
            if index < known[0]:  # input order decides which file met the patient first
                known[0], known[1] = index, {**vars(patient), "files": 0}
            known[2] += 1
        self.uids.update(uids)
        self.other_ids.update(other_ids)
        self.totals["files"] += 1
        self.totals["residual_hits"] += len(report["residual"])
        self.totals["burned_in_flagged"] += report["burned_in"]["flag"]
        self.totals["pixels_cleaned"] += report["pixels_cleaned"]
        self.totals["files_with_new_errors"] += bool(report["new_errors"])

    def fail(self, index, file, message):
        """The ``index``-th file of the job failed: named in the summary, in input order."""
        self.failures.append([index, file, message])

    def to_plain(self):
        """The share as plain JSON data."""
        return {"patients": list(self.patients.values()), "uids": list(self.uids.items()),
                "other_ids": list(self.other_ids.items()), "totals": self.totals, "failures": self.failures}


def merge_shares(merged, shares, failures=()):
    """Fold every worker's :class:`Share` (``shares``: their :meth:`~Share.to_plain`) into the
    job ``merged`` (a :class:`~dcmstudio.deid.Deidentifier`), with ``failures`` (``[index, file,
    message]`` of files no share accounted for), as one process would have met the files in input
    order (see :func:`merge_file`): patients the job does not know yet by their first file, the
    failures by index; UIDs and IDs are keyed, the same in every share.

    Returns
    -------
    int
        The files whose output gained a validation error.
    """
    from .job import Patient
    firsts = {}
    for share in shares:
        for index, plain, files in share["patients"]:
            known = firsts.get(plain["key"])
            if known is None or index < known[0]:
                firsts[plain["key"]] = [index, plain, files + (known[2] if known else 0)]
            else:
                known[2] += files
    for _, plain, files in sorted(firsts.values(), key=lambda first: first[0]):
        patient = merged.patients.setdefault(plain["key"], Patient(**plain))
        patient.files += files
    with_new_errors = 0
    for share in shares:
        for old, new in share["uids"]:
            merged.uid_map.setdefault(old, new)
        for old, new in share["other_ids"]:
            merged.other_ids.setdefault(old, new)
        for name in merged.totals:
            merged.totals[name] += share["totals"][name]
        with_new_errors += share["totals"]["files_with_new_errors"]
    failed = sorted([failure for share in shares for failure in share["failures"]] + list(failures),
                    key=lambda failure: failure[0])
    merged.failures.extend({"file": file, "message": message} for _, file, message in failed)
    return with_new_errors
