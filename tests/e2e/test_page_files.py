"""The file list and the task bar: downloads that fold, non-DICOM inputs sent where they belong,
integrity marks (truncated files, repeated SOP Instance UIDs) and removing files.
"""

from conftest import ARTIFACTS, open_files
from test_page_inspect import CT, wait_for_files


def test_downloads_fold_behind_n_more_and_clear(page):
    open_files(page, [CT])
    wait_for_files(page, 1)
    page.click("#tab-edit")
    apply_box = page.locator("#edit-apply").bounding_box()
    bar_before = page.locator("#tasks").bounding_box()["height"]
    page.evaluate("""() => {
      for (let i = 1; i <= 12; i++) {
        window.dcmstudio.tasks.addDownload(new Blob([new Uint8Array(1000 * i)]), `edited_series_${i}.zip`);
      }
    }""")
    shown = page.locator(".download-list li:visible")
    assert shown.count() == 3
    assert shown.first.inner_text().startswith("edited_series_12.zip")
    more = page.locator(".download-more")
    assert more.inner_text() == "9 more"
    bar_after = page.locator("#tasks").bounding_box()["height"]
    assert bar_after <= bar_before + 4, f"the task bar grew from {bar_before} to {bar_after} px"
    # the action button is where it was and nothing lies over it
    assert page.locator("#edit-apply").bounding_box() == apply_box
    x, y = apply_box["x"] + apply_box["width"] / 2, apply_box["y"] + apply_box["height"] / 2
    assert page.evaluate("([x, y]) => document.elementFromPoint(x, y).closest('#edit-apply') !== null", [x, y])
    page.screenshot(path=str(ARTIFACTS / "files-downloads-folded.png"))
    more.click()
    assert page.locator(".download-list li:visible").count() == 12
    assert more.get_attribute("aria-expanded") == "true"
    page.screenshot(path=str(ARTIFACTS / "files-downloads-expanded.png"))
    more.click()
    # removing one shows the next; Clear empties the bar
    page.locator(".download-list li:visible button").first.click()
    assert page.locator(".download-list li:visible").count() == 3
    assert more.inner_text() == "8 more"
    page.click(".download-clear")
    assert page.locator(".download-list li").count() == 0
    assert not page.locator(".downloads").is_visible()
    assert not page.page_errors


def picture(path, fmt):
    from PIL import Image  # noqa: PLC0415 -- only these tests make pictures
    Image.new("RGB", (32, 24), (200, 40, 90)).save(path, fmt)
    return path


def test_non_dicom_inputs_go_where_they_belong_and_the_rest_is_counted(page, tmp_path):
    import pydicom  # noqa: PLC0415

    from test_page_create import create_and_download
    from test_page_io import many_files
    from test_page_volume import oblique_nifti

    dicom = many_files(tmp_path, 3)
    oblique_nifti(tmp_path / "brain.nii")
    photo = picture(tmp_path / "photo.png", "PNG")
    disguised = picture(tmp_path / "scan_0001.dcm", "JPEG")
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image\n" * 20)
    open_files(page, [*dicom, tmp_path / "brain.nii", photo, disguised, notes])
    wait_for_files(page, 3)
    page.wait_for_selector(".task.done:has-text('Opened 3 DICOM files; 2 skipped')", timeout=60000)
    # the volume opened in Volume → DICOM, as its own "Open a volume…" would, and that tab is shown
    assert page.get_attribute("#tab-volume", "aria-selected") == "true"
    page.wait_for_selector("#volume-plan dl", timeout=30000)
    assert "brain.nii" in page.inner_text("#panel-volume h2")
    page.screenshot(path=str(ARTIFACTS / "files-routed-volume.png"))
    # the picture is Create's Secondary Capture input
    page.click("#tab-create")
    assert page.is_checked("#create-kind-sc")
    assert "photo.png" in page.inner_text("#create-sc-chosen")
    # the JPEG named .dcm says what it is
    page.click("#skipped summary")
    skipped = page.inner_text("#skipped")
    assert "scan_0001.dcm is not DICOM: its first bytes say it is a JPEG picture" in skipped
    assert "notes.txt is not DICOM" in skipped
    assert "photo.png" not in skipped and "brain.nii" not in skipped
    page.screenshot(path=str(ARTIFACTS / "files-routed-create.png"))
    created = pydicom.dcmread(create_and_download(page, tmp_path))
    assert (created.Rows, created.Columns) == (24, 32)
    # a PDF alone goes to Create's Encapsulated PDF
    from PIL import Image  # noqa: PLC0415
    Image.new("RGB", (50, 50), "white").save(tmp_path / "letter.pdf", "PDF")
    open_files(page, [tmp_path / "letter.pdf"])
    page.wait_for_function("document.querySelector('#create-kind-pdf').checked")
    assert page.get_attribute("#tab-create", "aria-selected") == "true"
    assert "letter.pdf" in page.inner_text("#create-pdf-chosen")
    assert not page.page_errors


def test_cut_and_repeated_files_are_marked_and_files_can_be_removed(page, tmp_path):
    import pydicom  # noqa: PLC0415

    data = CT.read_bytes()
    same = tmp_path / "CT_copy_same_uid.dcm"
    same.write_bytes(data)
    cut_ds = pydicom.dcmread(CT)
    cut_ds.SOPInstanceUID = cut_ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.77"
    cut_ds.InstanceNumber = 2
    cut_ds.save_as(tmp_path / "whole.dcm", enforce_file_format=True)
    cut = tmp_path / "CT_cut.dcm"
    cut.write_bytes((tmp_path / "whole.dcm").read_bytes()[:-2000])
    open_files(page, [CT, same, cut])
    wait_for_files(page, 3)
    page.wait_for_selector(".task.done:has-text('Opened 3 DICOM files')", timeout=60000)
    cut_row = page.locator(".row.instance:has(.label:text-is('CT_cut.dcm'))")
    assert cut_row.locator(".mark.truncated").count() == 1
    assert "CT_cut.dcm is truncated: it ends" in cut_row.locator(".mark.truncated").get_attribute("title")
    assert "PixelData" in cut_row.inner_text() or "PixelData" in cut_row.get_attribute("title")
    original = page.locator(".row.instance:has(.label:text-is('CT_small.dcm'))")
    copy = page.locator(".row.instance:has(.label:text-is('CT_copy_same_uid.dcm'))")
    assert "duplicate of CT_copy_same_uid.dcm" in original.locator(".mark.duplicate").get_attribute("title")
    assert "duplicate of CT_small.dcm" in copy.locator(".mark.duplicate").get_attribute("title")
    # the reason is the row's accessible description (not its name, which would then name the other file)
    copy_item = page.locator("[role=treeitem]", has=copy)
    assert "same SOP Instance UID" in copy_item.last.get_attribute("aria-description")
    assert "CT_small.dcm" not in copy.evaluate("(row) => row.textContent")
    assert cut_row.locator(".mark.duplicate").count() == 0
    page.screenshot(path=str(ARTIFACTS / "files-marked.png"))
    # remove the copy: the workers are told to forget it, and the duplicate marks go
    page.evaluate("""() => {
      window.removed = [];
      for (const worker of window.dcmstudio.python.available()) {
        const request = worker.request.bind(worker);
        worker.request = (op, args, options) => { window.removed.push([op, args]); return request(op, args, options); };
      }
    }""")
    copy.click()
    page.click("#remove-files")
    page.wait_for_function("window.dcmstudio.files.count() === 2")
    assert page.locator(".row.instance:has(.label:text-is('CT_copy_same_uid.dcm'))").count() == 0
    assert page.locator(".mark.duplicate").count() == 0
    assert page.locator(".mark.truncated").count() == 1
    removed = [args["paths"] for op, args in page.evaluate("window.removed") if op == "remove-files"]
    workers = page.evaluate("window.dcmstudio.python.available().length")
    assert len(removed) == workers and all(len(paths) == 1 and paths == removed[0] for paths in removed)
    assert page.inner_text(".row.all").endswith("2 files")
    # removing a whole series, then everything, leaves an empty list with no Remove button
    page.click(".row.series")
    assert page.inner_text("#remove-files") == "Remove these 2 files from the list"
    page.click("#remove-files")
    page.wait_for_function("window.dcmstudio.files.count() === 0")
    assert not page.locator("#remove-files").is_visible()
    open_files(page, [CT])
    wait_for_files(page, 1)
    assert page.locator(".mark").count() == 0
    assert not page.page_errors


def test_a_zip_is_opened_and_its_files_listed(page, tmp_path):
    import zipfile  # noqa: PLC0415

    from test_page_io import many_files

    dicom = many_files(tmp_path, 2)
    with zipfile.ZipFile(tmp_path / "study.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for path in dicom:
            z.write(path, f"series 1/{path.name}")
        z.writestr("readme.txt", "notes\n" * 40)
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04" + bytes(60))
    open_files(page, [tmp_path / "study.zip", tmp_path / "broken.zip"])
    wait_for_files(page, 2)
    page.wait_for_selector(".task.done:has-text('study.zip: 3 files inside, opened')", timeout=60000)
    labels = page.locator(".row.instance .label").all_inner_texts()
    assert sorted(labels) == ["study.zip/series 1/im_0000.dcm", "study.zip/series 1/im_0001.dcm"]
    page.wait_for_selector(".task.failed:has-text('broken.zip cannot be opened as a ZIP archive')", timeout=60000)
    page.click("#skipped summary")
    assert "study.zip/readme.txt is not DICOM" in page.inner_text("#skipped")
    page.screenshot(path=str(ARTIFACTS / "files-zip.png"))
    assert not page.page_errors


def test_a_dropped_picture_goes_to_create(page, tmp_path):
    import base64  # noqa: PLC0415

    data = base64.b64encode(picture(tmp_path / "drop.jpg", "JPEG").read_bytes()).decode()
    page.evaluate("""(data) => {
      const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([bytes], "dropped photo.jpg", { type: "image/jpeg" }));
      document.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }""", data)
    page.wait_for_function("document.querySelector('#tab-create').getAttribute('aria-selected') === 'true'")
    assert page.is_checked("#create-kind-sc")
    assert "dropped photo.jpg" in page.inner_text("#create-sc-chosen")
    assert not page.page_errors
