"""De-identification shared out over workers as the page does it: a pooled first pass merged in
input order, then pooled de-identifying steps, then one merged mapping; the same bytes whatever the
number of workers, and the same as one process."""

import json
import os
import zlib

import pytest
from test_deid_layouts import series

from dcmstudio import archive, catalog, header, jobs, replay
from dcmstudio.deid import Deidentifier, derive_key

SECRET = "pool secret"
CHUNK = 4  # items a worker takes at a time, as client.js STEP_CHUNK


def plain(value):
    """What crosses postMessage: JSON."""
    return json.loads(json.dumps(value))


def shares_of(items, workers, deal=None):
    """The items of each worker: chunks of ``CHUNK`` dealt out in turn (each worker's in input
    order, as the page's queue gives them), or chunk ``c`` to worker ``deal[c]`` (in the page,
    whichever worker is free takes the next chunk)."""
    chunks = [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)]
    deal = deal or [c % workers for c in range(len(chunks))]
    return [[item for c, chunk in enumerate(chunks) if deal[c] == w for item in chunk] for w in range(workers)]


def run_shares(kind, options, items, workers, scratch, deal=None, backwards=False):
    """Each worker's share of a task: its step answers by index, and its finish answer.
    ``backwards``: each worker takes its items last first (in the page, the items a worker held
    back come again at the end)."""
    steps, finished = {}, []
    for w, share in enumerate(shares_of(items, workers, deal)):
        job = jobs.start(kind, plain(options), len(items), lambda name, w=w: str(scratch / f"w{w}-{name}"))
        for item in share[::-1] if backwards else share:
            steps[item["index"]] = plain(jobs.step(job, plain(item)))
        finished.append(plain(jobs.finish(job)))
    return [steps[i] for i in sorted(steps)], finished


def with_head(item, scratch, heads, tag=""):
    """``item`` with ``head``, a scratch copy of its file's first bytes as the page's worker hands
    them to a step that reads heads: the first :data:`dcmstudio.jobs.HEAD_BYTES` it fetched
    (``heads`` True), or ("kept") the header the page kept from opening the file, up to its pixel
    data's value (:func:`dcmstudio.catalog.header_end`)."""
    with open(item["path"], "rb") as f:
        data = f.read(jobs.HEAD_BYTES)
    if heads == "kept":
        end = catalog.header_end(data, os.path.getsize(item["path"]))
        assert end is not None and end < len(data)
        data = data[:end]
    head = scratch / f"head{tag}-{item['index']}"
    head.write_bytes(data)
    return {**item, "head": str(head)}


def pooled(paths, workers, scratch, options=None, deal=None, container="files", heads=False, backwards=False):
    """The page's pooled deid: every output file's bytes, each report line, the mapping's files,
    the summary. ``container``: "files" (a folder) or "members" (a ZIP's); ``heads``: each file's
    first :data:`dcmstudio.jobs.HEAD_BYTES` fetched ahead, as the page's worker does for a folder;
    "kept": the headers the page kept from opening the files for the first pass (see
    :func:`with_head`), and heads fetched ahead for the steps; ``backwards``: see
    :func:`run_shares`."""
    scratch.mkdir()
    key = derive_key(SECRET)[0].hex()
    options = {"secret": SECRET, **(options or {}), "key": key}
    items = [{"path": str(p), "name": p.name, "index": i} for i, p in enumerate(paths, start=1)]
    first_pass = [with_head(item, scratch, heads, "-learn") for item in items] if heads == "kept" else items
    learned_steps, learned_shares = run_shares("deid_learn", options, first_pass, workers, scratch)
    # as static/wb-deid.js: only the answers that taught something are folded
    taught = [s for s in learned_steps if s["identifiers"]["texts"] or s["identifiers"]["ideographs"] or s["patients"]]
    learned = plain(jobs.fold_learned(taught, learned_shares))
    assert learned == plain(jobs.fold_learned(learned_steps, learned_shares))
    names = archive.member_names([s["output"] or item["name"] for s, item in zip(learned_steps, items)])
    items = [{**item, "member": name, "learned": s["learned"]} for item, name, s in zip(items, names, learned_steps)]
    if heads and container == "files":  # a ZIP's steps read whole files
        items = [with_head(item, scratch, True) for item in items]
    steps, finished = run_shares("deid_share", {**options, "learned": learned, "container": container}, items,
                                 workers, scratch, deal, backwards)
    members = {s["member"]["name"]: file_bytes(s) for s in steps if not s.get("error")}
    merged = jobs.merge_deid_shares(options, learned, [f["mapping"] for f in finished], str(scratch / "map"))
    mapping = {}
    for output in merged["outputs"]:
        with open(output["path"], encoding="utf-8") as f:
            mapping[output["name"]] = f.read()
    return members, [s["line"] for s in steps], mapping, merged["summary"]


def file_bytes(step):
    """The output file of a share's step: its parts (a ZIP member's: without its local header, its
    CRC checked)."""
    data = archive.read_parts(step["chunks"])
    member = step["member"]
    if member["crc"] is None:
        return data
    data = data[len(data) - member["size"]:]
    assert zlib.crc32(data) == member["crc"]
    return data


def test_one_worker_or_three_give_the_same_files_reports_and_mapping(tmp_path):
    # two patients, interleaved, and a UID met again in a later file (each refers to the one before)
    paths = series(tmp_path / "in", count=11, changes={
        i: {"PatientName": "Second^Person", "PatientID": "ID-2"} for i in (2, 5, 6, 9)})
    one = pooled(paths, 1, tmp_path / "one")
    three = pooled(paths, 3, tmp_path / "three")
    assert one[0] == three[0] and len(one[0]) == 11
    assert one[1] == three[1]
    # each line is what json.dumps writes for the file's whole report (its element list encoded
    # once per layout)
    for line in one[1]:
        assert line == json.dumps(json.loads(line)) and json.loads(line)["elements"]
    assert one[2] == three[2]
    assert one[3] == three[3]
    assert one[3]["files"] == 11 and one[3]["patients"] == 2
    # the same mapping and files as the single task a page with one worker used to run
    job = Deidentifier({"secret": SECRET})
    learned = {p for p in paths if job.learn_file(str(p), p.name)}
    for index, path in enumerate(paths, start=1):
        pieces, report, _ = jobs.deidentify_item(job, {"path": str(path), "name": path.name}, index, path in learned)
        assert b"".join(pieces) == one[0][archive.member_name(report["output"])]
    assert json.loads(one[2]["IDENTIFYING-deid-mapping.json"]) == plain(job.mapping())
    assert one[2]["IDENTIFYING-deid-mapping.csv"] == job.mapping_csv()
    patients = json.loads(one[2]["IDENTIFYING-deid-mapping.json"])["patients"]
    assert [p["files"] for p in patients] == [7, 4]


@pytest.mark.parametrize("deal", [(1, 0, 0), (0, 1, 1), (1, 1, 0), (0, 0, 1)])
@pytest.mark.parametrize("backwards", [False, True])
def test_the_mapping_does_not_depend_on_which_worker_took_which_files(tmp_path, deal, backwards):
    """In the page a free worker takes the next chunk, so any worker may meet a UID or a patient
    first, and a worker's items may come out of order."""
    paths = series(tmp_path / "in", count=11, changes={
        i: {"PatientName": "Second^Person", "PatientID": "ID-2"} for i in (2, 5, 6, 9)})
    one = pooled(paths, 1, tmp_path / "one")
    dealt = pooled(paths, 2, tmp_path / "dealt", deal=list(deal), backwards=backwards)
    assert one[0] == dealt[0]
    assert one[2] == dealt[2]
    assert one[3] == dealt[3]


def test_nothing_per_file_crosses_to_the_shares_or_the_merge(tmp_path):
    """Issue 11 (20,000 files): the shares get the first pass folded once, and hand over their
    mapping once, at their end; a step answers no share of the mapping. The more files of the
    same patient, the more UIDs (one per instance) and nothing else."""
    learned_without_uids = {}
    for count in (8, 24):
        paths = series(tmp_path / f"in{count}", count=count,
                       changes={i: {"ReferringPhysicianName": "WHO^REFERRED"} for i in range(count)})
        items = [{"path": str(p), "name": p.name, "index": i} for i, p in enumerate(paths, start=1)]
        options = {"secret": SECRET, "key": derive_key(SECRET)[0].hex()}
        steps, shares = run_shares("deid_learn", options, items, 2, tmp_path / f"learn{count}")
        learned = plain(jobs.fold_learned(steps, shares))
        assert set(learned) == {"identifiers", "patients"} and len(learned["patients"]) == 1
        learned_without_uids[count] = {**learned["identifiers"], "instance_uids": []}
        items = [{**item, "member": item["name"], "learned": s["learned"]} for item, s in zip(items, steps)]
        steps, finished = run_shares("deid_share", {**options, "learned": learned, "container": "members"}, items,
                                     2, tmp_path / f"share{count}")
        assert all(set(s) == {"report", "line", "member", "chunks"} for s in steps)
        for share in finished:
            mapping = share["mapping"]
            assert len(mapping["patients"]) == 1 and not mapping["other_ids"] and not mapping["failures"]
            assert mapping["totals"]["files"] == count // 2 == mapping["patients"][0][2]
            assert len(mapping["uids"]) >= count // 2
    assert learned_without_uids[8] == learned_without_uids[24]


def test_a_name_first_met_in_another_workers_file_is_scrubbed_from_every_file(tmp_path):
    """File 1 (worker 1) holds, in a kept element, the name of file 6's patient (worker 2's):
    only the merged first pass finds it in file 1."""
    paths = series(tmp_path / "in", count=8, changes={0: {"ManufacturerModelName": "Hidden^Person"},
                                                      5: {"PatientName": "Hidden^Person"}})
    members, lines, _, summary = pooled(paths, 2, tmp_path / "two")
    first = json.loads(lines[0])
    assert [hit["found"] for hit in first["residual"]] == ["Hidden^Person"]
    assert summary["residual_hits"] == 1
    assert all(b"Hidden" not in data for name, data in members.items() if name != first["member"])


def test_a_file_the_first_pass_cannot_read_is_named_and_the_others_are_written(tmp_path):
    paths = series(tmp_path / "in", count=5)
    paths[2].write_bytes(b"not DICOM at all")
    members, lines, mapping, summary = pooled(paths, 2, tmp_path / "two")
    assert len(members) == 4
    assert json.loads(lines[2]) == {"file": paths[2].name, "error": json.loads(lines[2])["error"]}
    assert [f["file"] for f in summary["failed"]] == [paths[2].name]
    assert summary["files"] == 4


def test_failures_are_named_in_input_order_whoever_accounted_for_them(tmp_path):
    """A file a share could not de-identify is in its mapping's failures; one whose step the
    worker answered with an error instead (the page's ``failures``) is in none: both are named,
    in input order, and the other files are counted."""
    paths = series(tmp_path / "in", count=8)
    paths[5].write_bytes(b"not DICOM at all")
    options = {"secret": SECRET, "key": derive_key(SECRET)[0].hex()}
    items = [{"path": str(p), "name": p.name, "index": i, "member": p.name} for i, p in enumerate(paths, start=1)]
    steps, shares = run_shares("deid_learn", options, items, 2, tmp_path)
    learned = plain(jobs.fold_learned(steps, shares))
    items = [{**item, "learned": s["learned"]} for item, s in zip(items, steps) if item["index"] != 2]
    _, finished = run_shares("deid_share", {**options, "learned": learned, "container": "members"}, items, 2,
                             tmp_path)
    merged = jobs.merge_deid_shares(options, learned, [f["mapping"] for f in finished], str(tmp_path / "map"),
                                    failures=[[2, paths[1].name, "The worker failed."]])
    summary = merged["summary"]
    assert [f["file"] for f in summary["failed"]] == [paths[1].name, paths[5].name]
    assert summary["failed"][0]["message"] == "The worker failed." and summary["files"] == 6


def test_the_key_a_share_is_given_is_the_key_it_uses():
    """The page derives the key once: a share given it makes the UIDs the secret would."""
    key = derive_key(SECRET)[0]
    given = Deidentifier({"secret": SECRET}, key=key)
    assert given.deterministic and given.new_uid("1.2.3") == Deidentifier({"secret": SECRET}).new_uid("1.2.3")
    other = Deidentifier({"secret": SECRET}, key=bytes(32))
    assert other.new_uid("1.2.3") != given.new_uid("1.2.3")
    assert not Deidentifier({}, key=key).deterministic
    with pytest.raises(Exception, match="no option 'key'"):
        Deidentifier({"key": key.hex()})


@pytest.mark.parametrize("container", ["files", "members"])
def test_headers_the_page_kept_from_opening_the_files_give_the_same_outputs(tmp_path, monkeypatch, container):
    """The page keeps each file's header from opening it (up to its pixel data's value) and hands
    it to the first pass instead of reading the file again: the same files, report lines and
    mapping as a first pass that reads the files, and no file is read to learn from it."""
    # pydicom's MR is small: its pixel data (8 KiB) is left unread only below the usual piece size
    monkeypatch.setattr(jobs, "SMALL_PIECE", 256)
    monkeypatch.setattr(replay, "SMALL_PIECE", 256)
    # MR_small_implicit ends with its pixel data (CT_small has an element after it)
    paths = series(tmp_path / "in", count=7, changes={
        i: {"PatientName": "Second^Person", "PatientID": "ID-2"} for i in (3, 4)}, source="MR_small_implicit.dcm")
    read = pooled(paths, 2, tmp_path / "read", container=container)

    def no_read(*args, **kwargs):
        raise AssertionError("a file was read although its kept header was enough")
    monkeypatch.setattr(Deidentifier, "learn_file", no_read)
    kept = pooled(paths, 2, tmp_path / "kept", container=container, heads="kept")
    assert kept == read
    assert len(kept[0]) == 7 and kept[3]["patients"] == 2


def test_the_first_pass_learns_from_the_head_the_worker_fetched_and_deletes_it(tmp_path):
    """The page's worker reads each file's first 64 KiB ahead (a scratch copy): what is learned
    from it is what the whole file teaches, and the copy is gone after the step."""
    paths = series(tmp_path / "in", count=2)
    options = {"secret": SECRET, "key": derive_key(SECRET)[0].hex()}
    answers = []
    for head_size in (None, 65536, 200):
        job = jobs.start("deid_learn", options, 2, lambda name: str(tmp_path / f"{head_size}-{name}"))
        steps = []
        for index, path in enumerate(paths, start=1):
            item = {"path": str(path), "name": path.name, "index": index}
            if head_size:
                head = tmp_path / f"head-{head_size}-{index}"
                head.write_bytes(path.read_bytes()[:head_size])
                item["head"] = str(head)
            steps.append(plain(jobs.step(job, item)))
            assert not head_size or not head.exists()
        answers.append((steps, plain(jobs.finish(job))))
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][0][0]["learned"] and answers[0][0][0]["patients"]


@pytest.fixture
def small_pieces(monkeypatch):
    """Heads of 4 KiB, pixel data from 256 bytes on left unread (pydicom's images are small)."""
    monkeypatch.setattr(jobs, "HEAD_BYTES", 4096)
    monkeypatch.setattr(jobs, "SMALL_PIECE", 256)
    monkeypatch.setattr(replay, "SMALL_PIECE", 256)


@pytest.mark.parametrize("way", ["heads", "fallback", "mask", "short_heads"])
def test_a_folder_reads_heads_and_gives_the_zip_members_bytes(tmp_path, monkeypatch, small_pieces, way):
    """Into a folder, a share reads each file's head only (the one the worker fetched; the pixel
    data that ends it is a reference to the input, never read); its files, report and mapping are
    the ZIP's. ``fallback``: each file is found to need its unread bytes (as a defect would) and is
    de-identified again, read whole; ``mask``: Clean Pixel Data with a mask reads every file whole;
    ``short_heads``: heads that end inside the header (a file of a known layout is not replayed from
    the zeros standing for the rest: it is read whole). A file of a layout met before is replayed
    from its head without walking it: only a file that starts a layout has its head walked."""
    # MR_small_implicit ends with its pixel data (CT_small has an element after it)
    paths = series(tmp_path / "in", count=6, changes={3: {"PatientName": "Second^Person"}},
                   source="MR_small_implicit.dcm")
    whole_reads = []
    real_read_file = jobs.read_file

    def read_file(path, name=None):
        whole_reads.append(name)
        return real_read_file(path, name)

    monkeypatch.setattr(jobs, "read_file", read_file)
    walks = []
    real_tail = header.pixel_data_tail
    monkeypatch.setattr(header, "pixel_data_tail", lambda head, size: walks.append(1) or real_tail(head, size))
    if way == "short_heads":
        monkeypatch.setattr(jobs, "HEAD_BYTES", 1024)  # MR_small_implicit's pixel data starts at 1510
    if way == "fallback":
        monkeypatch.setattr(jobs, "unread_kept", lambda pieces, origins, tail, size: tail is None)
    options = {"clean_pixel_data": True, "pixel_masks": [{"x": 0, "y": 0, "width": 4, "height": 4}]} if way == "mask" else {}
    zipped = pooled(paths, 2, tmp_path / "zip", options, container="members")
    assert len(whole_reads) == 6
    whole_reads.clear()
    folder = pooled(paths, 2, tmp_path / "folder", options, heads=True)
    assert folder == zipped and len(folder[0]) == 6
    assert len(whole_reads) == (0 if way == "heads" else 6)
    if way == "heads":  # each worker's first file, and the other patient's (a layout of its own)
        assert len(walks) == 3
    assert not list((tmp_path / "folder").glob("head-*"))  # every fetched head deleted


def test_a_worker_warms_up_once_on_a_made_up_series_and_the_outputs_stay_the_same(tmp_path, monkeypatch):
    paths = series(tmp_path / "in", 5)
    monkeypatch.setattr(jobs, "_warmed_up", set())
    cold = pooled(paths, 2, tmp_path / "cold", container="members")
    replays = []
    with monkeypatch.context() as patched:
        finish = jobs.DeidShareJob.finish
        patched.setattr(jobs.DeidShareJob, "finish", lambda self: replays.append(
            (self.container, self.deidentifier.layouts.replayed)) or finish(self))
        job = jobs.start("deid_prepare", {}, 0, lambda name: str(tmp_path / "prepare" / name))
        assert jobs.finish(job) == {"prepared": True}
    # the made-up series went through both containers, its later files replayed; nothing is left
    assert replays == [("members", jobs._WARM_UP_FILES - 1), ("files", jobs._WARM_UP_FILES - 1)]
    assert not any((tmp_path / "prepare").iterdir())
    job = jobs.start("deid_prepare", {}, 0, lambda name: str(tmp_path / "again" / name))
    assert jobs.finish(job) == {"prepared": False}  # once per process
    assert pooled(paths, 2, tmp_path / "warm", container="members") == cold


def test_a_file_whose_header_changed_since_the_first_pass_is_refused_and_counted(tmp_path):
    """The page's worker marks ``changed`` a file whose read no longer starts with the header the
    first pass learned from (kept from opening it): its step refuses it with a sentence naming it,
    and its share counts it as failed; the other files are de-identified as ever."""
    paths = series(tmp_path / "in", count=3)
    options = {"secret": SECRET, "key": derive_key(SECRET)[0].hex()}
    items = [{"path": str(p), "name": p.name, "index": i} for i, p in enumerate(paths, start=1)]
    steps, shares = run_shares("deid_learn", options, items, 1, tmp_path)
    learned = plain(jobs.fold_learned(steps, shares))
    job = jobs.start("deid_share", plain({**options, "learned": learned, "container": "members"}), 3,
                     lambda name: str(tmp_path / f"s-{name}"))
    answers = [plain(jobs.step(job, {**item, "member": item["name"], "learned": True, "changed": item["index"] == 2}))
               for item in items]
    mapping = plain(jobs.finish(job))["mapping"]
    assert [bool(a.get("error")) for a in answers] == [False, True, False]
    assert answers[1]["error"]["file"] == "001.dcm"
    assert answers[1]["error"]["message"].startswith("001.dcm changed on disk since it was opened")
    assert json.loads(answers[1]["line"])["error"] == answers[1]["error"]["message"]
    merged = jobs.merge_deid_shares(options, learned, [mapping], str(tmp_path / "map"))
    assert merged["summary"]["files"] == 2 and [f["file"] for f in merged["summary"]["failed"]] == ["001.dcm"]
