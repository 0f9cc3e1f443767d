"""A person validates loaded files in Chromium: each file's errors with their path, module and rule,
warnings that can be hidden, and the JSON and text reports downloaded from the task bar."""

import json

import pydicom

from conftest import ARTIFACTS, open_files
from test_page_inspect import CT, MR, TEST_FILES, assert_same_origin_only, wait_for_files

RTPLAN = TEST_FILES / "rtplan.dcm"


def test_validate_the_selection_and_download_both_reports(page, server, tmp_path):
    broken = tmp_path / "broken_CT.dcm"
    ds = pydicom.dcmread(CT)
    del ds.PatientID            # Type 2 in the Patient module
    ds.StudyInstanceUID = ""    # Type 1 in the General Study module
    ds.ConversionType = "WSD"   # of the SC Equipment module, which a CT lacks: a warning
    ds.save_as(broken)
    open_files(page, [CT, MR, RTPLAN, broken])
    wait_for_files(page, 4)
    page.click("#tab-validate")
    assert "4 files" in page.inner_text("#validate-scope")
    page.click("#validate-run")
    page.wait_for_selector("#validate-summary", timeout=60000)
    assert page.inner_text("#validate-report h2") == "2 files with errors of 4 files"
    report = page.inner_text("#validate-report")
    assert "broken_CT.dcm — CT Image: 2 errors, 1 warning" in report
    assert "StudyInstanceUID" in report and "type1-empty" in report and "General Study" in report
    assert "PatientID" in report and "type2-missing" in report and "Patient" in report
    assert "rtplan.dcm — RT Plan: 1 error" in report and "MediaStorageSOPInstanceUID" in report
    assert "No findings:" in report and "MR_small.dcm" in report
    assert "2024b" in page.inner_text("#validate-summary")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "validate-report.png"))

    # Warnings hide and show again.
    warning = page.locator("#validate-report tr.warning", has_text="SC Equipment")
    assert warning.is_visible()
    page.uncheck("#validate-warnings")
    assert not warning.is_visible()
    page.check("#validate-warnings")
    assert warning.is_visible()

    # Both reports wait in the task bar.
    saved = {}
    for suffix in ("json", "txt"):
        link = page.locator(f".download-list a[download$='_validation.{suffix}']").first
        with page.expect_download() as info:
            link.click()
        saved[suffix] = tmp_path / info.value.suggested_filename
        info.value.save_as(saved[suffix])
    document = json.loads(saved["json"].read_text(encoding="utf-8"))
    by_name = {f["name"].split("/")[-1]: f for f in document["files"]}
    assert by_name["broken_CT.dcm"]["errors"] == 2 and by_name["CT_small.dcm"]["errors"] == 0
    assert {(f["rule"], f["path"]) for f in by_name["broken_CT.dcm"]["findings"] if f["severity"] == "error"} == {
        ("type1-empty", "StudyInstanceUID"), ("type2-missing", "PatientID")}
    text = saved["txt"].read_text(encoding="utf-8")
    assert "ERROR: PatientID (0010,0020) [Patient] type2-missing" in text
    assert not page.page_errors
    assert_same_origin_only(page, server)


# --- shared out over the worker pool --------------------------------------------------------------

def validate_and_save_reports(page, tmp_path, count):
    page.click("#tab-validate")
    page.click("#validate-run")
    page.wait_for_selector(f".task.done:has-text('Validated {count} files')", timeout=120000)
    saved = {}
    for suffix in ("json", "txt"):
        with page.expect_download() as info:
            page.locator(f".download-list a[download$='_validation.{suffix}']").first.click()
        saved[suffix] = info.value.path().read_bytes()
    return saved, page.inner_text("#validate-summary")


def test_one_worker_or_two_write_the_same_reports_byte_for_byte(browser, server, tmp_path):
    from test_page_io import many_files, pool_page
    broken = tmp_path / "broken.dcm"
    ds = pydicom.dcmread(CT)
    del ds.PatientID
    ds.save_as(broken)
    paths = many_files(tmp_path, 24) + [RTPLAN, broken, MR]
    runs = {}
    for workers in (1, 2):
        context, page = pool_page(browser, server, workers, paths)
        runs[workers] = validate_and_save_reports(page, tmp_path, len(paths))
        assert page.evaluate("window.dcmstudio.workbenches.find((w) => w.id === 'validate').lastRun.workers") == workers
        assert not page.page_errors
        context.close()
    assert runs[1] == runs[2]
    document = json.loads(runs[2][0]["json"])
    # every file once, whichever worker checked it
    assert sorted(f["name"] for f in document["files"]) == sorted(p.name for p in paths)
    errors = sum(f["errors"] for f in document["files"])
    assert errors >= 2 and runs[2][1].startswith(f"{errors} errors")  # rtplan's and broken's at least
    assert runs[2][0]["txt"].decode().count("\n\n") == len(paths) - 1  # one block per file


def test_cancel_stops_every_worker_and_offers_no_report(browser, server, tmp_path):
    from test_page_io import many_files, pool_page
    context, page = pool_page(browser, server, 2, many_files(tmp_path, 300))
    page.click("#tab-validate")
    page.click("#validate-run")
    page.locator(".task.running:has-text('Validating') button", has_text="Cancel").click()
    page.wait_for_selector(".task.failed:has-text('Validation cancelled')", timeout=5000)
    page.wait_for_timeout(500)
    assert page.locator(".download-list a[download$='_validation.json']").count() == 0
    assert not page.is_disabled("#validate-run")
    assert not page.page_errors
    context.close()
