"""De-identify a series in Chromium with a secret; judge the ZIP with pydicom; same secret, same bytes."""

import io
import json
import zipfile

import pydicom
import pytest

from conftest import ARTIFACTS, open_files
from dcmstudio.deid import derive_key
from dcmstudio.deid.mapping import FILE_NAMES
from test_page_edit import SERIES_SIZE, make_series
from test_page_inspect import assert_same_origin_only, wait_for_files
from test_page_io import OPFS_PICKERS, many_files, pool_page, read_opfs

MAPPING_FILES = list(FILE_NAMES)


def reads_of_opened_files(page):
    """How many reads of the opened files the page's workers have asked the browser for
    (static/worker.js ``spent.reads``; opening them included)."""
    return sum(w.evaluate("() => self.dcmstudio?.spent?.reads || 0") for w in page.workers)


def run_deid(page, tmp_path, label):
    with page.expect_download(timeout=60000) as download_info:
        page.click("#deid-run")
    path = tmp_path / f"{label}.zip"
    download_info.value.save_as(path)
    page.wait_for_selector("#deid-report h2")
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def test_deidentify_series_consistently_and_reproducibly(page, server, tmp_path):
    paths = make_series(tmp_path)
    originals = [pydicom.dcmread(p) for p in paths]
    open_files(page, paths)
    wait_for_files(page, SERIES_SIZE)
    page.locator(".file-tree .row.series").first.click()
    page.click("#tab-deid")
    page.wait_for_selector("#deid-options input")
    assert "2026c" in page.inner_text("#deid-edition")
    page.fill("#deid-secret", "correct horse battery staple")
    page.check("#deid-dates-1")  # shift dates by a per-patient offset

    page.click("#deid-preview")
    page.wait_for_selector("#deid-report table.changes")
    preview = page.inner_text("#deid-report")
    assert "null" not in preview and "(removed)" in preview  # old → new, no stray null
    # each change says what it does (dcmstudio.deid.actions) and what decided it
    assert "removed (basic)" in preview
    assert "shifted by the patient's date offset; a time stays (retain_long_modified_dates)" in preview
    pseudonym = page.inner_text("#deid-report h2").split("→")[1].strip().split("/")[0]
    # a tag is read on one line, (0008,0020), not broken over three
    lines = page.eval_on_selector_all("#deid-report .changes .tag code", "codes => codes.map((c) => c.getClientRects().length)")
    assert lines and set(lines) == {1}, lines
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "deid-preview.png"))

    first = run_deid(page, tmp_path, "first")
    assert len(first) == SERIES_SIZE
    # every download offered, folded ones included (the bar shows the newest few)
    tasks = " ".join(page.eval_on_selector_all("#tasks a.download", "links => links.map((a) => a.textContent)"))
    assert "IDENTIFYING-deid-mapping.csv" in tasks and "IDENTIFYING-uid_mapping.csv" in tasks
    assert "IDENTIFYING-patient_id_mapping.csv" in tasks and "IDENTIFYING-deidentified_report.jsonl" in tasks
    assert "none of the original identifying values is left" in page.inner_text("#deid-report")

    new_uid_of = {}
    for data in first.values():
        ds = pydicom.dcmread(io.BytesIO(data))
        assert b"CompressedSamples" not in data
        assert ds.PatientIdentityRemoved == "YES"
        codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
        assert {"113100", "113107"} <= codes
        assert ds.SOPInstanceUID not in {o.SOPInstanceUID for o in originals}
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        new_uid_of[int(ds.InstanceNumber)] = ds.SOPInstanceUID
    # References follow: each file refers to the new UID of the one before it.
    for data in first.values():
        ds = pydicom.dcmread(io.BytesIO(data))
        if "ReferencedImageSequence" in ds:
            assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == new_uid_of[int(ds.InstanceNumber) - 1]
    assert {pydicom.dcmread(io.BytesIO(d)).PatientID for d in first.values()} == {pseudonym}  # the preview's

    second = run_deid(page, tmp_path, "second")
    assert second == first, "the same secret must give identical bytes"
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_a_run_with_residual_hits_waits_for_the_persons_choice(page, server, tmp_path):
    paths = make_series(tmp_path)[:2]
    leaky = pydicom.dcmread(paths[1])
    family = str(leaky.PatientName).split("^")[0]
    leaky.Manufacturer = f"{family} Imaging"  # kept by the table: the scan must catch it
    leaky.save_as(paths[1], enforce_file_format=True)
    open_files(page, paths)
    wait_for_files(page, 2)
    page.locator(".file-tree .row.series").first.click()
    page.click("#tab-deid")
    page.wait_for_selector("#deid-options input")
    downloads = []
    page.on("download", lambda download: downloads.append(download))
    page.click("#deid-run")
    page.wait_for_selector("#deid-choice")
    report = page.inner_text("#deid-report")
    assert "was not offered" in report and "Manufacturer" in report and family in report
    assert not downloads  # nothing offered before the choice
    with page.expect_download(timeout=60000) as download_info:
        page.click("#deid-keep-anyway")
    assert download_info.value.suggested_filename == "deidentified.zip"
    assert not page.page_errors
    assert_same_origin_only(page, server)


def test_the_profile_is_described_and_a_pixel_mask_can_be_added_from_the_keyboard(page, server, tmp_path):
    paths = make_series(tmp_path)
    open_files(page, paths[:1])
    wait_for_files(page, 1)
    page.click("#tab-deid")
    page.wait_for_selector("#deid-options input")
    # what the profile does comes first; where its table comes from only on request
    edition = page.inner_text("#deid-edition")
    assert edition.startswith("Basic Application Confidentiality Profile") and ".whl" not in edition.split("\n")[0]
    page.check("#deid-clean-pixels")
    page.wait_for_selector("#deid-mask-form")
    page.focus("#deid-mask-x")
    for key, value in (("x", "2"), ("y", "3"), ("width", "20"), ("height", "10")):
        if key != "x":
            page.keyboard.press("Tab")
        page.keyboard.type(value)
    page.keyboard.press("Enter")
    assert page.inner_text(".deid-mask-list").strip().startswith("x 2, y 3, 20 × 10 px")
    outputs = run_deid(page, tmp_path, "masked")
    [data] = outputs.values()
    pixels = pydicom.dcmread(io.BytesIO(data)).pixel_array
    source = pydicom.dcmread(paths[0]).pixel_array
    masked = pixels[3:13, 2:22]
    assert (masked == masked.flat[0]).all() and not (source[3:13, 2:22] == masked.flat[0]).all()  # one black
    assert (pixels[20:, 30:] == source[20:, 30:]).all()


def offered(page, skip=("deidentified.zip",)):
    """Every download the task bar offers, saved by clicking it as a person would: name → bytes."""
    saved = {}
    if page.locator("#tasks .download-more").is_visible():
        page.click("#tasks .download-more")  # the folded ones too
    links = page.locator("#tasks a.download")
    for i in range(links.count()):
        link = links.nth(i)
        name = link.get_attribute("download")
        if name in skip:
            continue
        with page.expect_download(timeout=30000) as info:
            link.click()
        saved[name] = info.value.path().read_bytes()
    return saved


# Records what the page sends its workers: each task's kind and options, each call's function and
# arguments (as JSON).
SENT_TO_WORKERS = """() => {
    const python = window.dcmstudio.python;
    const job = python.job.bind(python);
    const call = python.call.bind(python);
    window.sentToWorkers = [];
    python.job = (request) => {
        window.sentToWorkers.push({ kind: request.kind, args: JSON.stringify(request.options) });
        return job(request);
    };
    python.call = (fn, args, ...rest) => {
        window.sentToWorkers.push({ kind: fn, args: JSON.stringify(args) });
        return call(fn, args, ...rest);
    };
}"""


def test_one_worker_or_two_give_the_same_files_mapping_and_report(browser, server, tmp_path):
    """The first pass and the de-identifying steps are shared out over the workers; the
    outputs are the same, byte for byte: every member, the mapping's four files, the report.
    Nothing per file goes back to the workers (issue 11: 20,000 files): the shares get the first
    pass folded once, and the merge gets each share's mapping."""
    paths = make_series(tmp_path)
    # a name met first in the last file (another worker's, with two) and named in the first
    # file's description, which Clean Descriptors keeps cleaned of every name the job learned
    named = pydicom.dcmread(paths[0])
    named.SeriesDescription = "follow-up for Quentin"
    named.save_as(paths[0], enforce_file_format=True)
    other = pydicom.dcmread(paths[4])
    other.PatientName, other.PatientID = "Zyx^Quentin", "OTHER-ID-9"
    other.save_as(paths[4], enforce_file_format=True)
    runs = {}
    for workers in (1, 2):
        context, page = pool_page(browser, server, workers, paths)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.evaluate(SENT_TO_WORKERS)
        page.click("#tab-deid")
        page.wait_for_selector("#deid-options input")
        page.fill("#deid-secret", "one secret, any pool")
        page.check("#deid-dates-1")
        page.check("#deid-clean_descriptors")
        reads = reads_of_opened_files(page)
        members = run_deid(page, tmp_path, f"pool{workers}")
        page.wait_for_selector(".task.done:has-text('De-identified 5 files')", timeout=60000)
        # the first pass learns from the headers kept from opening the files: only the ZIP's
        # steps read them (each whole, for its CRC)
        assert reads_of_opened_files(page) - reads == SERIES_SIZE
        assert page.evaluate("window.dcmstudio.workbenches.find((w) => w.id === 'deid').lastRun.workers") == workers
        runs[workers] = (members, offered(page))
        assert not errors
        sent = {s["kind"]: json.loads(s["args"]) for s in page.evaluate("window.sentToWorkers")}
        assert set(sent["deid_share"]["learned"]) == {"identifiers", "patients"}
        taught = sent["deid_learned"]["files"]  # only the first pass' answers that taught something
        assert all(f["identifiers"]["texts"] or f["identifiers"]["ideographs"] or f["patients"] for f in taught)
        assert set(sent["deid_merge"]) == {"options", "learned", "shares", "failures", "zip_name"}
        assert len(sent["deid_merge"]["shares"]) == workers and not sent["deid_merge"]["failures"]
        context.close()
    assert runs[1][0] == runs[2][0] and len(runs[1][0]) == SERIES_SIZE
    assert sorted(runs[1][1]) == sorted(MAPPING_FILES + ["IDENTIFYING-deidentified_report.jsonl"])
    assert runs[1][1] == runs[2][1]
    lines = [json.loads(line) for line in runs[2][1]["IDENTIFYING-deidentified_report.jsonl"].splitlines()]
    assert [line["file"] for line in lines] == [p.name for p in paths]
    assert sorted(line["member"] for line in lines) == sorted(runs[2][0])
    for data in runs[2][0].values():
        assert b"Quentin" not in data and b"QUENTIN" not in data
    first = pydicom.dcmread(io.BytesIO(runs[2][0][lines[0]["member"]]))
    assert first.SeriesDescription == "follow-up for"
    mapping = json.loads(runs[2][1]["IDENTIFYING-deid-mapping.json"])
    assert [p["files"] for p in mapping["patients"]] == [SERIES_SIZE - 1, 1]
    assert len(mapping["uids"]) == len({u["original"] for u in mapping["uids"]})


def test_a_file_whose_header_changed_since_it_was_opened_is_left_out(page, server, tmp_path):
    """The first pass learns from the headers kept from opening the files. A step whose file no
    longer starts with that header (as a browser that reads a file changed on disk would give it)
    leaves the file out with a sentence naming it, and de-identifies the others."""
    paths = make_series(tmp_path)
    open_files(page, paths)
    wait_for_files(page, SERIES_SIZE)
    # one byte of the third file's kept header differs from the file now (its preamble's first)
    page.evaluate("""(name) => {
        const file = [...window.dcmstudio.files.files.values()].find((f) => f.name === name);
        new Uint8Array(file.keptHead)[0] ^= 1;
    }""", paths[2].name)
    page.click("#tab-deid")
    page.wait_for_selector("#deid-options input")
    page.fill("#deid-secret", "a changed file")
    members = run_deid(page, tmp_path, "changed")
    assert len(members) == SERIES_SIZE - 1
    page.wait_for_selector(".task.done:has-text('De-identified 4 of 5 files of 1 patient')")
    assert f"{paths[2].name} changed on disk since it was opened" in page.inner_text("#deid-report")
    assert not page.page_errors


def test_the_page_derives_the_key_python_would(page):
    """The page derives the run's key once (WebCrypto) for every worker: the bytes of
    dcmstudio.deid.keys.derive_key."""
    for secret in ("correct horse battery staple", "Grüße 秘密", "x" * 100):
        key = page.evaluate("async (s) => (await import('./static/wb-deid.js')).deidKey(s)", secret)
        assert key == derive_key(secret)[0].hex()
    # without a secret: one random key per page session, the same for the preview and the run
    keys = page.evaluate("async () => { const m = await import('./static/wb-deid.js'); "
                         "return [await m.deidKey(''), await m.deidKey('')]; }")
    assert keys[0] == keys[1] and len(keys[0]) == 64


@pytest.mark.parametrize("phase", ["first pass", "De-identifying"])
def test_cancel_in_either_phase_stops_every_worker_and_leaves_nothing(browser, server, tmp_path, phase):
    context, page = pool_page(browser, server, 2, many_files(tmp_path, 300))
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    downloads = []
    page.on("download", lambda d: downloads.append(d))
    page.click("#tab-deid")
    page.wait_for_selector("#deid-options input")
    page.click("#deid-run")
    running = page.locator(".task.running:has-text('De-identifying')")
    if phase == "first pass":
        page.locator(".task.running:has-text('first pass')").wait_for(timeout=60000)
    else:
        page.wait_for_function("() => { const t = document.querySelector('.task.running'); "
                               "return t && t.textContent.includes('%') && !t.textContent.includes('first pass'); }",
                               timeout=60000, polling=20)
    # timed in the page, from the click to the task's end (not the test's own round trips)
    page.evaluate("""() => {
        window.cancelTimes = {};
        document.addEventListener('click', () => { window.cancelTimes.clicked ??= performance.now(); }, true);
        new MutationObserver(() => {
            if (document.querySelector('.task.failed')) window.cancelTimes.ended ??= performance.now();
        }).observe(document.body, { subtree: true, attributes: true, childList: true });
    }""")
    running.locator("button", has_text="Cancel").click()
    page.wait_for_selector(".task.failed:has-text('cancelled')", timeout=5000)
    times = page.evaluate("window.cancelTimes")
    assert times["ended"] - times["clicked"] < 500, times
    page.wait_for_timeout(500)
    assert not downloads
    assert page.locator("#tasks a.download").count() == 0
    assert not errors
    context.close()


LIST_ORIGIN_FILES = """async () => {
    const names = [];
    for await (const [name, handle] of (await navigator.storage.getDirectory()).entries()) {
        names.push(name + (handle.kind === 'directory' ? '/' : ''));
    }
    return names.sort();
}"""

LIST_PICKED_FOLDER = """async () => {
    const root = await navigator.storage.getDirectory();
    const names = [];
    const walk = async (dir, at) => {
        for await (const [name, handle] of dir.entries()) {
            names.push(at + name + (handle.kind === 'directory' ? '/' : ''));
            if (handle.kind === 'directory') await walk(handle, `${at}${name}/`);
        }
    };
    await walk(await root.getDirectoryHandle('picked-folder', { create: true }), '');
    return names.sort();
}"""


def test_deidentified_files_go_into_a_folder_as_they_are_made(page, server, tmp_path):
    """The pickers hand back folders of the origin's private file system; the mapping and the
    report are kept apart from the data (downloads), never written into its folder."""
    paths = make_series(tmp_path)
    assert page.evaluate(OPFS_PICKERS), "this Chromium offers no File System Access pickers"
    open_files(page, paths)
    wait_for_files(page, SERIES_SIZE)
    page.click("#tab-deid")
    page.wait_for_selector("#deid-options input")
    page.fill("#deid-secret", "folder secret")
    page.select_option("#deid-save-to", "folder")
    reads = reads_of_opened_files(page)
    page.click("#deid-run")
    page.wait_for_selector(".task.done:has-text('De-identified 5 files of 1 patient into the folder')", timeout=60000)
    # the first pass learned from the headers kept from opening the files; each step fetched its
    # file's head (a file changed on disk since is named there)
    assert reads_of_opened_files(page) - reads == SERIES_SIZE
    lines = [json.loads(line) for line in offered(page)["IDENTIFYING-deidentified_report.jsonl"].splitlines()]
    written = {line["member"]: read_opfs(page, f"picked-folder/{line['member']}") for line in lines}
    assert len(written) == SERIES_SIZE
    for path, line in zip(paths, lines):
        ds = pydicom.dcmread(io.BytesIO(written[line["member"]]))
        assert ds.PatientIdentityRemoved == "YES" and ds.PixelData == pydicom.dcmread(path).PixelData
    folders = sorted({name.split("/")[0] + "/" for name in written})
    assert page.evaluate(LIST_PICKED_FOLDER) == sorted([*written, *folders])
    assert not page.page_errors


@pytest.mark.parametrize("target", ["folder", "zip-file"])
def test_a_run_that_the_person_discards_leaves_no_file(page, server, tmp_path, target):
    """Discarded into a folder: the files written are removed. Into a ZIP file: what was written is
    dropped, and the empty file the save dialog made is removed too."""
    paths = make_series(tmp_path)[:2]
    leaky = pydicom.dcmread(paths[1])
    leaky.Manufacturer = f"{str(leaky.PatientName).split('^')[0]} Imaging"  # kept by the table: a hit
    leaky.save_as(paths[1], enforce_file_format=True)
    assert page.evaluate(OPFS_PICKERS), "this Chromium offers no File System Access pickers"
    open_files(page, paths)
    wait_for_files(page, 2)
    page.click("#tab-deid")
    page.wait_for_selector("#deid-options input")
    page.select_option("#deid-save-to", target)
    page.click("#deid-run")
    page.wait_for_selector("#deid-choice")
    page.click("#deid-discard")
    page.wait_for_selector(".task.failed:has-text('discarded')", timeout=30000)
    assert page.evaluate(LIST_PICKED_FOLDER) == []
    assert page.evaluate(LIST_ORIGIN_FILES) == ["picked-folder/"]  # no ZIP file beside it
    assert not page.page_errors
    assert_same_origin_only(page, server)
