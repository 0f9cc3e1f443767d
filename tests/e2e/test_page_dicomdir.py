"""A folder save with a DICOMDIR: files named by File IDs, the DICOMDIR read back by pydicom and
judged by dciodvfy, a second save into the same folder asks first, a run where every file failed
writes none. The folder is one of the origin's private file system (test_page_io's pickers)."""

import io

import pydicom
from pydicom.fileset import FileSet

from conftest import open_files
from test_page_create import dciodvfy_errors
from test_page_edit import make_series
from test_page_inspect import assert_same_origin_only, wait_for_files
from test_page_deid import LIST_PICKED_FOLDER
from test_page_io import OPFS_PICKERS, pool_page, read_opfs, start_edit

# the second folder of a run, as many entries as it holds
COUNT_SECOND_FOLDER = """async () => {
    const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle('second-folder');
    let count = 0;
    for await (const _ of dir.keys()) count++;
    return count;
}"""


def picked_files(page):
    """The files under the picked folder, by path."""
    return [name for name in page.evaluate(LIST_PICKED_FOLDER) if not name.endswith("/")]


def save_with_dicomdir(page):
    """Edit the files open into the picked folder with a DICOMDIR; wait for the end."""
    start_edit(page)
    page.select_option("#edit-save-to", "folder")
    page.check("#edit-save-to-dicomdir")
    page.click("#edit-apply")
    page.wait_for_selector(".task.done:has-text('with a DICOMDIR')", timeout=60000)


def test_an_edited_series_saved_into_a_folder_with_a_dicomdir(page, server, tmp_path):
    paths = make_series(tmp_path)
    assert page.evaluate(OPFS_PICKERS), "this Chromium offers no File System Access pickers"
    open_files(page, paths)
    wait_for_files(page, len(paths))
    start_edit(page)

    box = page.locator("#edit-save-to-dicomdir")
    assert not box.is_visible()  # only with the folder
    page.select_option("#edit-save-to", "folder")
    assert box.is_visible()
    # a labelled box, one per workbench that saves into folders
    assert page.evaluate("document.getElementById('edit-save-to-dicomdir').labels[0].textContent.trim()") == \
        "with a DICOMDIR (files renamed to DICOM File IDs)"
    assert page.get_by_label("with a DICOMDIR (files renamed to DICOM File IDs)").count() == 3
    box.focus()
    page.keyboard.press("Space")
    assert box.is_checked()
    page.click("#edit-apply")
    page.wait_for_selector(".task.done:has-text('Edited 5 files into the folder “picked-folder” with a DICOMDIR')",
                           timeout=60000)

    file_ids = [f"DICOM/PT000001/ST000001/SE000001/IM00000{i}" for i in range(1, 6)]
    assert picked_files(page) == sorted(["DICOMDIR", *file_ids])
    saved = tmp_path / "saved"
    for name in ["DICOMDIR", *file_ids]:
        (saved / name).parent.mkdir(parents=True, exist_ok=True)
        (saved / name).write_bytes(read_opfs(page, f"picked-folder/{name}"))
    fs = FileSet(pydicom.dcmread(saved / "DICOMDIR"))
    assert sorted("/".join(i.ReferencedFileID) for i in fs) == file_ids
    for instance in fs:
        written = pydicom.dcmread(instance.path)
        assert written.PatientName == "POOL^TEST"  # the edit is in the file, and in its records
        for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID", "InstanceNumber"):
            assert instance[keyword].value == written[keyword].value, keyword
        assert instance.ReferencedSOPInstanceUIDInFile == written.SOPInstanceUID
    # in the order of the files: IM000001 is the first file opened
    assert pydicom.dcmread(saved / file_ids[0]).PixelData == pydicom.dcmread(paths[0]).PixelData
    assert dciodvfy_errors(saved / "DICOMDIR") == []

    # The same folder again: the DICOMDIR there is not replaced without asking.
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("#edit-apply")
    page.wait_for_selector(".task.failed:has-text('already holds a DICOMDIR')", timeout=60000)
    assert asked == ["“picked-folder” already has a DICOMDIR and 5 of these 5 files. Replace them?"]

    # Every file changed on disk since it was opened: nothing is written, and no DICOMDIR.
    page.evaluate("""async () => {
        const outputs = await import('./static/outputs.js');
        const root = await navigator.storage.getDirectory();
        outputs.pickers.folder = async () => root.getDirectoryHandle('second-folder', { create: true });
    }""")
    for path in paths:
        path.write_bytes(path.read_bytes() + b"changed")
    page.click("#edit-apply")
    page.wait_for_selector(".task.done:has-text('(no DICOMDIR: no file was written)')", timeout=60000)
    assert page.evaluate(COUNT_SECOND_FOLDER) == 0
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_one_worker_or_two_write_the_same_folder_and_dicomdir(browser, server, tmp_path):
    second = tmp_path / "second"
    second.mkdir()
    paths = make_series(tmp_path) + make_series(second)  # two series of one study: SE000001, SE000002
    for path in paths:  # a Study ID left empty (Type 2 in an image), which a STUDY record must have
        ds = pydicom.dcmread(path)
        ds.StudyID = ""
        ds.save_as(path)
    folders = []
    for workers in (1, 2):
        context, page = pool_page(browser, server, workers, paths)
        assert page.evaluate(OPFS_PICKERS)
        save_with_dicomdir(page)
        assert page.locator(".task.done:has-text('with a DICOMDIR (10 files lacked StudyID, made up for its "
                            "records)')").count() == 1
        names = picked_files(page)
        folders.append({name: read_opfs(page, f"picked-folder/{name}") for name in names})
        assert not page.page_errors
        context.close()
    assert folders[0] == folders[1]
    saved = tmp_path / "saved"
    for name, data in folders[0].items():
        (saved / name).parent.mkdir(parents=True, exist_ok=True)
        (saved / name).write_bytes(data)
    records = pydicom.dcmread(saved / "DICOMDIR").DirectoryRecordSequence
    [study] = [r for r in records if r.DirectoryRecordType == "STUDY"]
    assert study.StudyID == "1"
    assert dciodvfy_errors(saved / "DICOMDIR") == []
    assert len(folders[0]) == 11 and "DICOM/PT000001/ST000001/SE000002/IM000005" in folders[0]


def test_a_deidentified_series_saved_with_a_dicomdir_lists_pseudonyms_only(page, server, tmp_path):
    paths = make_series(tmp_path)
    original = pydicom.dcmread(paths[0])
    assert page.evaluate(OPFS_PICKERS), "this Chromium offers no File System Access pickers"
    open_files(page, paths)
    wait_for_files(page, len(paths))
    page.click("#tab-deid")
    page.wait_for_selector("#deid-options input")
    page.fill("#deid-secret", "dicomdir secret")
    page.select_option("#deid-save-to", "folder")
    page.check("#deid-save-to-dicomdir")
    page.click("#deid-run")
    page.wait_for_selector(".task.done:has-text('into the folder “picked-folder” with a DICOMDIR')", timeout=60000)
    names = picked_files(page)
    assert names == sorted(["DICOMDIR", *(f"DICOM/PT000001/ST000001/SE000001/IM00000{i}" for i in range(1, 6))])
    directory = read_opfs(page, "picked-folder/DICOMDIR")
    for identifying in (str(original.PatientName), str(original.PatientID), str(original.StudyInstanceUID)):
        assert identifying.encode() not in directory, identifying
    records = pydicom.dcmread(io.BytesIO(directory)).DirectoryRecordSequence
    [patient] = [r for r in records if r.DirectoryRecordType == "PATIENT"]
    written = pydicom.dcmread(io.BytesIO(read_opfs(page, f"picked-folder/{names[0]}")))
    assert patient.PatientID == written.PatientID and written.PatientIdentityRemoved == "YES"
    assert not page.page_errors
