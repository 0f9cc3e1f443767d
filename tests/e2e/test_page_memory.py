"""What the page keeps per opened file stays small (issue 11: memory does not grow with the study).

bench/e2e.py measures the memory at 20,000 files; these tests pin the behaviours that keep it down.
"""

import pydicom

from conftest import open_files
from test_page_inspect import wait_for_files
from test_page_io import edit_to_download, many_files, pool_page, start_edit

SHARED = """() => {
    const files = [...window.dcmstudio.files.files.values()];
    const byName = Object.fromEntries(files.map((f) => [f.name, f]));
    const parts = ['patient', 'study', 'series', 'sop_class', 'transfer_syntax'];
    // for each part: how many distinct objects, and how many distinct values, among the records
    const counts = Object.fromEntries(parts.map((p) => [p, [new Set(files.map((f) => f[p])).size,
        new Set(files.map((f) => JSON.stringify(f[p]))).size]]));
    return { counts, names: Object.keys(byName).length,
             otherSeries: byName['other_series.dcm'].series.uid, otherStudy: byName['other_series.dcm'].study.uid };
}"""


def test_file_records_share_one_object_per_patient_study_and_series(page, tmp_path):
    paths = many_files(tmp_path, 12)
    ds = pydicom.dcmread(paths[0])
    ds.SeriesInstanceUID, ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.900", "1.2.826.0.1.3680043.8.498.901"
    ds.save_as(tmp_path / "other_series.dcm")
    ds.PatientName, ds.PatientID, ds.StudyInstanceUID = "OTHER^PATIENT", "OTHER-1", "1.2.826.0.1.3680043.8.498.902"
    ds.SeriesInstanceUID, ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.904", "1.2.826.0.1.3680043.8.498.903"
    ds.save_as(tmp_path / "other_patient.dcm")
    open_files(page, [*paths, tmp_path / "other_series.dcm", tmp_path / "other_patient.dcm"])
    wait_for_files(page, 14)
    shared = page.evaluate(SHARED)
    assert shared["names"] == 14
    # one object per distinct value: 14 records hold 2 patients, 2 studies, 3 series, one SOP class
    assert shared["counts"] == {"patient": [2, 2], "study": [2, 2], "series": [3, 3], "sop_class": [1, 1],
                                "transfer_syntax": [1, 1]}
    assert shared["otherSeries"] == "1.2.826.0.1.3680043.8.498.900"
    # the file tree still groups them: 2 patients, 3 series
    assert page.locator(".file-tree .row.patient").count() == 2
    assert page.locator(".file-tree .row.series").count() == 3


def test_no_fetched_copy_is_left_in_any_worker_after_opening_and_a_job(browser, server, tmp_path):
    """What a worker fetched ahead (heads to describe, whole files to edit) is gone once used."""
    context, page = pool_page(browser, server, 2, many_files(tmp_path, 40))
    start_edit(page)
    assert edit_to_download(page)
    left = [worker.evaluate("() => self.dcmstudio.pyodide.FS.readdir('/prefetch')") for worker in page.workers]
    assert len(left) == 2
    assert all(sorted(names) == [".", ".."] for names in left), left
    context.close()
