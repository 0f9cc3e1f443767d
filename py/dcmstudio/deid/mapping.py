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
        "profile": f"PS3.15-{job.profile.edition} Table E.1-1",
        "options": sorted(job.options.chosen),
        "deterministic": job.deterministic,
        "patients": [{"original_patient_id": p.original_id, "issuer": p.issuer,
                      "original_patient_name": p.original_name,
                      "original_birth_date": p.birth_date, "pseudonym": p.pseudonym,
                      "date_offset_days": p.date_offset_days, "files": p.files}
                     for p in job.patients.values()],
        "uids": [{"original": old, "new": new} for old, new in job.uid_map.items()],
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

def write(job, folder):
    """Write the mapping as CSV and JSON into ``folder``; return ``[{"path", "name", "mime"}]``."""
    outputs = []
    for suffix, mime, text in (
            ("csv", "text/csv;charset=utf-8", as_csv(job)),
            ("json", "application/json", json.dumps(as_dict(job), indent=1))):
        name = f"IDENTIFYING-deid-mapping.{suffix}"
        path = os.path.join(folder, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        outputs.append({"path": path, "name": name, "mime": mime})
    return outputs
