"""Files of one layout replay what de-identifying the first gave: always what a full run gives."""

import copy
import io
import json

import pydicom
import pytest
from conftest import bundled

from dcmstudio import jobs
from dcmstudio.deid import Deidentifier
from dcmstudio.deid.layouts import Layout, Layouts

BASE_UID = "1.2.826.0.1.3680043.8.498.1234567"


def series(folder, count=8, changes=None, source="CT_small.dcm"):
    """``count`` instances of ``source`` (one of pydicom's files), as a scanner writes a series: per
    instance its own SOP Instance UID, number, position and time. ``changes``: {index: {keyword:
    value}} for some."""
    folder.mkdir(exist_ok=True)
    source = pydicom.dcmread(bundled(source))
    paths = []
    for index in range(count):
        ds = copy.deepcopy(source)
        uid = f"{BASE_UID}.{100 + index}"  # one length: every file after the first can be replayed
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = index + 1
        # values of one length: a series whose values' lengths vary has a layout per combination
        ds.ImagePositionPatient = ["0", "0", f"{100 + index * 1.25:.2f}"]
        ds.ManufacturerModelName = "SCANNER MODEL"
        ds.AcquisitionTime = f"1200{index:02d}"
        ds.ReferringPhysicianName = f"WHO^REFERRED{index}"
        for keyword, value in (changes or {}).get(index, {}).items():
            setattr(ds, keyword, value)
        path = folder / f"{index:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def run(paths, options=None, replay=True):
    """De-identify ``paths`` as the page's task does (first pass, then each file)."""
    job = Deidentifier({"secret": "layouts", **(options or {})})
    if not replay:
        job.layouts = NoLayouts()
    learned = {path for path in paths if job.learn_file(str(path), path.name)}
    outputs = []
    for index, path in enumerate(paths, start=1):
        pieces, report, _ = jobs.deidentify_item(job, {"path": str(path), "name": path.name}, index,
                                                 path in learned)
        outputs.append((b"".join(pieces), json.dumps(report, sort_keys=True)))
    return outputs, job


class NoLayouts(Layouts):
    """Every file walked, planned and learned in full."""

    def replay(self, *args):
        return None

    def learn(self, *args):
        return False


def assert_same_as_in_full(paths, options=None):
    replayed, job = run(paths, options)
    full, full_job = run(paths, options, replay=False)
    for (data, report), (full_data, full_report), path in zip(replayed, full, paths):
        assert data == full_data, path.name
        assert report == full_report, path.name
    assert json.dumps(job.mapping(), sort_keys=True, default=str) == \
        json.dumps(full_job.mapping(), sort_keys=True, default=str)
    assert job.summary() == full_job.summary()
    # the first pass learned the same values, by layout or in full
    for learned in (job.identifiers, full_job.identifiers):
        learned._patterns = None
    assert vars(job.identifiers) == vars(full_job.identifiers)
    assert list(job.patients) == list(full_job.patients)
    return job, replayed


def test_one_series_every_file_after_the_first_is_replayed_as_a_full_run_would_write_it(tmp_path):
    paths = series(tmp_path / "in")
    job, outputs = assert_same_as_in_full(paths)
    assert job.layouts.replayed == job.layouts.learned == len(paths) - 1
    for (data, _), path in zip(outputs, paths):
        out, source = pydicom.dcmread(io.BytesIO(data)), pydicom.dcmread(path)
        assert out.SOPInstanceUID == out.file_meta.MediaStorageSOPInstanceUID == job.new_uid(source.SOPInstanceUID)
        assert out.InstanceNumber == source.InstanceNumber  # kept, from the file's own bytes
        assert out.ImagePositionPatient == source.ImagePositionPatient
        assert out.PixelData == source.PixelData
        assert "REFERRED" not in str(out.get("ReferringPhysicianName", ""))
        assert bytes(data[:128]) == bytes(128)


@pytest.mark.parametrize("options", [{"retain_long_modified_dates": True, "clean_descriptors": True},
                                     {"retain_uids": True, "retain_device_identity": True}])
def test_one_series_with_options(tmp_path, options):
    paths = series(tmp_path / "in")
    job, _ = assert_same_as_in_full(paths, options)
    assert job.layouts.replayed >= len(paths) - 2


def test_a_file_of_another_patient_or_with_the_dummy_already_there_is_de_identified_in_full(tmp_path):
    """What the plan read (the patient's ID) must be the same; a value the plan replaces by a
    fixed one must not already be that value (a full run would then change nothing there).
    The first pass reads any value from the places its layout says: a name of the same length
    is learned as well as walking the file would learn it."""
    name = str(pydicom.dcmread(bundled("CT_small.dcm")).PatientName)
    other = ("Other^Person" + "X" * len(name))[:len(name)]
    paths = series(tmp_path / "in", count=7, changes={2: {"PatientID": "OTHER-7"},
                                                      4: {"AcquisitionTime": "000000",
                                                          "ReferringPhysicianName": ""},
                                                      5: {"PatientName": other}})
    job, outputs = assert_same_as_in_full(paths)
    assert job.layouts.replayed <= len(paths) - 4
    # in full: file 0, and 2 and 4 (values of other lengths); by layout: 1, 3, 6 and 5, whose
    # name is learned where file 0's was
    assert job.layouts.learned == 4
    assert other.lower() in job.identifiers.texts
    reports = [json.loads(report) for _, report in outputs]
    assert reports[2]["patient"] != reports[1]["patient"] == reports[3]["patient"] == reports[5]["patient"]  # by ID


def test_values_and_new_uids_of_other_lengths_are_replayed_as_a_full_run_writes_them(tmp_path):
    """A series' kept values take more or fewer characters from one instance to the next
    (Instance Number, Image Position, Slice Location), and keyed UIDs are now and then shorter:
    the output moves by the difference (the file meta's group length follows its new UID), as a
    full run writes it. A value of another length in a group with a group length is not replayed."""
    changes = {i: {"InstanceNumber": 95 + i, "SliceLocation": str(-1.5 * i * 10 ** (i % 4)),
                   "ImagePositionPatient": ["0", str(-i * 10 ** (i % 3)), f"{i * 1.25:.2f}"]} for i in range(16)}
    paths = series(tmp_path / "in", count=16, changes=changes)
    job, outputs = assert_same_as_in_full(paths)
    sizes = {len(data) for data, _ in outputs}
    new_lengths = {len(job.new_uid(str(pydicom.dcmread(path).SOPInstanceUID))) for path in paths}
    assert len(sizes) > 4 and len(new_lengths) > 1  # the lengths did vary
    assert job.layouts.replayed == len(paths) - 1
    for (data, _), path in zip(outputs, paths):
        out = pydicom.dcmread(io.BytesIO(data))
        assert out.SliceLocation == pydicom.dcmread(path).SliceLocation
        assert out.file_meta.FileMetaInformationGroupLength == _meta_length(data)
    # a group length over the values that vary: each length a layout of its own
    for path in paths[:4]:  # pydicom writes no group length: put one in front of group 0020's first element
        data = path.read_bytes()
        at = data.index(b"\x20\x00\x0d\x00UI")  # (0020,000D), the group's first
        path.write_bytes(data[:at] + b"\x20\x00\x00\x00UL\x04\x00" + (1000).to_bytes(4, "little") + data[at:])
    job, _ = assert_same_as_in_full(paths[:4])
    assert job.layouts.replayed == 0


def test_a_combination_of_lengths_met_again_is_matched_at_once(tmp_path, monkeypatch):
    """Lengths come in a few combinations in a series: each is walked value by value once, then
    matched by its own mask."""
    walks = []
    real = Layout._shifts
    monkeypatch.setattr(Layout, "_shifts", lambda self, view: walks.append(1) or real(self, view))
    paths = series(tmp_path / "in", count=10, changes={i: {"SliceLocation": "-1.5" if i % 2 else "-10.25"}
                                                       for i in range(10)})
    job, _ = assert_same_as_in_full(paths)
    assert job.layouts.replayed == 9
    assert len(walks) == 1  # file 1's combination; files 3, 5, 7 and 9 matched as a variant


def _meta_length(data):
    """The bytes of a Part 10 file's meta group after its group length element, by walking it."""
    position, end = 132 + 12, None
    while data[position:position + 2] == b"\x02\x00":
        vr = data[position + 4:position + 6]
        if vr in (b"OB", b"UN", b"SQ", b"UT", b"OW"):
            length = int.from_bytes(data[position + 8:position + 12], "little")
            position += 12 + length
        else:
            length = int.from_bytes(data[position + 6:position + 8], "little")
            position += 8 + length
        end = position
    return end - (132 + 12)


def test_a_uid_of_another_length_or_a_private_element_more_is_not_replayed(tmp_path):
    paths = series(tmp_path / "in", count=5, changes={1: {"SOPInstanceUID": BASE_UID + ".1"}})
    ds = pydicom.dcmread(paths[3])
    ds.private_block(0x0009, "LAYOUT TEST", create=True).add_new(0x01, "LO", "NAME OF SOMEONE")
    ds.save_as(paths[3], enforce_file_format=True)
    job, outputs = assert_same_as_in_full(paths)
    assert b"NAME OF SOMEONE" not in outputs[3][0]
    assert job.layouts.replayed <= len(paths) - 3


def test_a_file_that_is_only_planted_values_away_gets_them_scanned(tmp_path):
    """A kept element the plan never reads (not in the table) is copied from each file's own
    bytes, and the residual scan judges each output: a name planted there is reported."""
    paths = series(tmp_path / "in", count=4, changes={3: {"ManufacturerModelName": "WHO^REFERRED1"}})
    assert len("WHO^REFERRED1") == len("SCANNER MODEL")
    job, outputs = assert_same_as_in_full(paths)
    assert job.layouts.replayed == 3
    hits = json.loads(outputs[3][1])["residual"]
    assert [hit["found"] for hit in hits] == ["WHO^REFERRED1"]


def test_what_the_first_pass_learned_travels_as_plain_data_to_another_worker(tmp_path):
    """A pool: workers learn shares of the files, their values are merged in input order and
    handed (as JSON) to every worker, which then de-identifies its share as one process would."""
    from dcmstudio.deid.identifiers import Identifiers
    # file 1 names, where nothing is read, the patient of file 3: only the merged values find it
    paths = series(tmp_path / "in", count=6, changes={1: {"ManufacturerModelName": "Other^Patient"},
                                                      3: {"PatientName": "Other^Patient"}})
    whole, _ = run(paths)
    assert [hit["found"] for hit in json.loads(whole[1][1])["residual"]] == ["Other^Patient"]
    shares = [paths[:3], paths[3:]]
    learned = []
    for share in shares:
        worker = Deidentifier({"secret": "layouts"})
        for path in share:
            worker.learn_file(str(path), path.name)
        learned.append(json.loads(json.dumps(worker.identifiers.to_plain())))
    merged = Identifiers()
    for plain in learned:
        merged.update(Identifiers.from_plain(plain))
    shared = json.loads(json.dumps(merged.to_plain()))
    outputs = []
    for share, first in zip(shares, (1, 4)):
        worker = Deidentifier({"secret": "layouts"})
        worker.identifiers = Identifiers.from_plain(shared)
        for index, path in enumerate(share, start=first):
            pieces, report, _ = jobs.deidentify_item(worker, {"path": str(path), "name": path.name}, index, True)
            outputs.append((b"".join(pieces), json.dumps(report, sort_keys=True)))
    assert outputs == whole


def test_a_compressed_series_is_replayed_once_its_fragments_end_where_the_layouts_did(tmp_path):
    """Encapsulated pixel data is copied as it is once its items are seen to end where the
    layout's did: a file whose fragments end earlier, with another element in the bytes left (the
    same size), is de-identified in full; replayed, that element would be copied unread."""
    source = pydicom.dcmread(bundled("JPEG2000.dcm"))
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for index in range(4):
        ds = copy.deepcopy(source)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{BASE_UID}.{100 + index}"
        path = folder / f"{index:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    data = bytearray(paths[3].read_bytes())
    assert data[-8:] == b"\xfe\xff\xdd\xe0" + bytes(4)  # the pixel data ends the file
    position = data.index(b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff") + 12
    while data[position:position + 4] == b"\xfe\xff\x00\xe0":
        last = position
        position += 8 + int.from_bytes(data[position + 4:position + 8], "little")
    length = int.from_bytes(data[last + 4:last + 8], "little")
    data[last + 4:last + 8] = (length - 16).to_bytes(4, "little")
    cut = last + 8 + length - 16
    # the delimiter earlier, then a private creator naming someone, in the 16 bytes left
    data[cut:] = b"\xfe\xff\xdd\xe0" + bytes(4) + b"\x09\x00\x10\x00LO\x08\x00" + b"WHO^ELSE"
    assert len(data) == paths[3].stat().st_size
    paths[3].write_bytes(bytes(data))
    job, outputs = assert_same_as_in_full(paths)
    assert job.layouts.replayed == 2  # files 1 and 2; file 3 in full
    assert b"WHO^ELSE" not in outputs[3][0] and b"WHO^ELSE" in data


def learned_by(paths, layouts):
    """What one job's first pass over ``paths`` learns, with ``layouts`` (shared or not)."""
    job = Deidentifier({"secret": "layouts"})
    job.layouts = layouts
    for path in paths:
        assert job.learn_file(str(path), path.name)
    return job.identifiers.to_plain(), sorted((p.key, p.pseudonym) for p in job.patients.values())


def test_a_series_first_pass_learns_by_its_layout_what_learning_each_file_in_full_does(tmp_path):
    """The first pass learns the files of a layout from the places the first one's values were
    read (remembering values a series repeats): the same names, IDs, dates, UIDs and patients as
    walking and planning every file."""
    paths = series(tmp_path / "in", count=6, changes={2: {"PatientName": "Okonkwo^Ada", "PatientID": "P-2"},
                                                      4: {"StudyID": "S-4"}})
    layouts = Layouts()
    by_layout = learned_by(paths, layouts)
    assert layouts.learned >= 4
    assert by_layout == learned_by(paths, NoLayouts())
    assert "okonkwo" in dict(by_layout[0]["texts"]) and len(by_layout[1]) == 2


def test_layouts_shared_by_jobs_teach_each_job_every_value(tmp_path):
    """A worker of the command hands one Layouts to a new job per file: values a layout met for
    one job are learned again by the next, which knows nothing yet."""
    paths = series(tmp_path / "in", count=4)
    shared = Layouts()
    alone = [learned_by([path], NoLayouts()) for path in paths]
    assert [learned_by([path], shared) for path in paths] == alone
    assert shared.learned == len(paths) - 1


@pytest.mark.parametrize("raw", [b"1.2.3\0", b"1.2.3 ", b"1.2.3\\4.5\0", b"", b"\0", b"1.2\\\\3", b" 1.2 \\ 3.4",
                                 b"1.2\xe9", b"1.2.3\0\0", b"a\\", b"\\", b"1.2\xa0", b"1" * 80])
def test_uids_are_read_as_pydicom_reads_them(raw):
    from dcmstudio import values
    from dcmstudio.deid.plan import decoded_texts
    decoded = values.decode_value(raw, "UI", tag=0x00080018)
    as_pydicom = [str(v) for v in (decoded if isinstance(decoded, list) else [decoded])]
    assert decoded_texts(raw, (0, len(raw), "UI", 0x00080018, ("iso8859",), True, False)) == as_pydicom
