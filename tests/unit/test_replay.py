"""Replaying one file's edit on the next file of a series (dcmstudio.replay): it must give exactly
what walking and editing that file gives, whatever values differ between the two files."""

import json
import zipfile

import pytest
import pydicom
from conftest import bundled
from test_edit import CHARSET_FILES_DIR, JOB_A

from dcmstudio import jobs, replay
from dcmstudio.archive import read_parts
from dcmstudio.edit import edit_bytes
from dcmstudio.elements import walk
from dcmstudio.errors import DicomStudioError

# Files of every encoding the walker reads: explicit/implicit VR, big endian, no meta group,
# sequences, private sequences, encapsulated pixel data, several character sets.
FILES = ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
         "ExplVR_LitEndNoMeta.dcm", "rtplan.dcm", "nested_priv_SQ.dcm", "JPEG2000.dcm",
         "UN_sequence.dcm", "test-SR.dcm", "no_meta_group_length.dcm"]
CHARSET_FILES = ["chrH31.dcm", "chrSQEncoding.dcm", "chrX1.dcm"]
EDIT_LISTS = {
    "job A": JOB_A,
    "uids and charset": [
        {"op": "set", "path": "SOPInstanceUID", "value": "1.2.826.0.1.3680043.8.498.42"},
        {"op": "set", "path": "PatientName", "value": "Ünïcödé^Nâmé"},
        {"op": "set", "path": "(0008,1140)[*].(0008,1155)", "value": "1.2.3.4.5"}],
    "add and delete": [
        {"op": "add", "path": '(0009,"DCMSTUDIO TEST",01)', "value": "private", "vr": "LO"},
        {"op": "add", "path": "StudyID", "value": "S42"},
        {"op": "delete", "path": "ReferencedImageSequence[0]"},
        {"op": "delete", "path": "(0008,1032)"},
        {"op": "set", "path": "ImplementationVersionName", "value": "DCMSTUDIO_REPLAY"}],
    "charset change": [
        {"op": "set", "path": "SpecificCharacterSet", "value": "ISO_IR 192"},
        {"op": "set", "path": "PatientName", "value": "Yamada^Tarou=山田^太郎"},
        {"op": "set", "path": "(0008,0008)", "value": ["DERIVED", "SECONDARY"]}],
}
# Same-length swaps that change what a value means, beside the byte flips every value gets.
SWAPS = {b"1.2.840.10008.1.2.1": b"1.2.840.10008.1.2.2", b"1.2.840.10008.1.2.2": b"1.2.840.10008.1.2.1",
         b"ISO_IR 100": b"ISO_IR 101", b"ISO_IR 192": b"ISO_IR 100", b"\\ISO 2022 IR 87": b"\\ISO 2022 IR 13"}


def outcome(data, edits, replayer=None):
    """What editing ``data`` gives: the output bytes and the JSON report, or the error."""
    context = {"name": "f.dcm"}
    if replayer is not None:
        context["replay"] = replayer
    try:
        output, report = edit_bytes(data, edits, context=context)
    except DicomStudioError as exc:
        return ("error", type(exc).__name__, exc.message)
    return b"".join(output), json.dumps(report, sort_keys=True, default=str)


def value_ranges(data):
    """The value range of every element and item a full walk lists (sequences excluded)."""
    emap = walk(data, "f.dcm")
    return [(e.value_offset, e.value_offset + e.length) for e in emap.elements
            if e.children is None and e.length]


def variants(data):
    """``data`` with one value changed at a time, its length kept."""
    for start, end in value_ranges(data):
        value = data[start:end]
        changed = bytes(b ^ 0x01 for b in value)
        yield data[:start] + changed + data[end:]
        stripped = value.rstrip(b"\x00 ")
        if stripped in SWAPS:
            yield data[:start] + SWAPS[stripped] + value[len(stripped):] + data[end:]


def file_bytes(name):
    path = CHARSET_FILES_DIR / name if name.startswith("chr") else bundled(name)
    return path.read_bytes()


def has_character_set(name):
    return any(e.tag == 0x00080005 for e in walk(file_bytes(name), name).root.children)


# Non-ASCII values need a character set: those lists go to the files that have one (Latin
# letters are in none of chrH31's sets, \ISO 2022 IR 87: test_edit shows they are refused).
CASES = [(name, edits_name) for name in FILES + CHARSET_FILES for edits_name in sorted(EDIT_LISTS)
         if edits_name in ("job A", "add and delete")
         or has_character_set(name) and (name, edits_name) != ("chrH31.dcm", "uids and charset")]


@pytest.mark.parametrize("name, edits_name", CASES)
def test_a_replayed_edit_equals_a_walked_one_whatever_value_differs(name, edits_name):
    edits = EDIT_LISTS[edits_name]
    original = file_bytes(name)
    replayed = tried = 0
    for variant in variants(original):
        replayer = replay.SeriesReplay()
        assert outcome(original, edits, replayer)[0] != "error"
        assert outcome(variant, edits, replayer) == outcome(variant, edits), \
            f"{name}: replaying differs from walking for a variant"
        replayed += replayer.replayed
        tried += 1
    assert tried
    # the values the edits do not read differ freely: most variants are replayed
    assert replayed, f"{name}: no variant was replayed"


def test_headers_that_differ_are_walked_again():
    original = bundled("CT_small.dcm").read_bytes()
    replayer = replay.SeriesReplay()
    outcome(original, JOB_A, replayer)
    emap = walk(original, "f.dcm")
    # PatientName one byte longer: every header after it moves
    name = next(e for e in emap.elements if e.tag == 0x00100010)
    longer = (original[:name.offset + 6] + (name.length + 2).to_bytes(2, "little")
              + original[name.value_offset:name.value_offset + name.length] + b"X "
              + original[name.value_offset + name.length:])
    assert outcome(longer, JOB_A, replayer) == outcome(longer, JOB_A)
    assert replayer.replayed == 0
    assert outcome(original, JOB_A, replayer) == outcome(original, JOB_A)
    assert replayer.replayed == 0  # the recipe is now the longer file's
    assert outcome(original, JOB_A, replayer) == outcome(original, JOB_A)
    assert replayer.replayed == 1


def test_templates_and_uid_remapping_are_never_replayed():
    original = bundled("CT_small.dcm").read_bytes()
    for edits in ([{"op": "set", "path": "InstanceNumber", "value": "{index}"}],
                  [{"op": "remap_uids"}]):
        replayer = replay.SeriesReplay()
        outcome(original, edits, replayer)
        outcome(original, edits, replayer)
        assert replayer.replayed == 0


def test_a_recipe_holds_none_of_the_file():
    original = bytearray(bundled("CT_small.dcm").read_bytes())
    replayer = replay.SeriesReplay()
    outcome(original, JOB_A, replayer)
    recipe = replayer._recipe
    assert all(isinstance(piece, (bytes, tuple)) for piece in recipe.pieces)
    assert isinstance(recipe.key, int) and recipe.check_end < len(original) // 10


def test_an_edit_job_over_a_series_replays_and_gives_what_each_file_alone_gives(tmp_path):
    """A series whose InstanceNumber and ImagePositionPatient change length now and then."""
    source = pydicom.dcmread(bundled("CT_small.dcm"))
    source.Rows = source.Columns = 256  # pixel data past REFERENCED_PIECE
    source.PixelData = bytes(range(256)) * 512
    paths = []
    for index in range(1, 41):
        source.SOPInstanceUID = source.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.{index}"
        source.InstanceNumber = index
        source.ImagePositionPatient = [0, 0, index * 2.5]
        path = tmp_path / f"{index:03d}.dcm"
        source.save_as(path, enforce_file_format=True)
        paths.append(path)
    scratch = tmp_path / "scratch"
    job = jobs.start("edit", {"edits": JOB_A, "zip_name": "a.zip"}, len(paths),
                     lambda name: str(scratch / name))
    running = jobs._running[job]
    parts = []
    for path in paths:
        result = jobs.step(job, {"path": str(path), "name": path.name})
        assert "error" not in result
        parts += result["chunks"]
    replayed = running.replay.replayed
    parts += jobs.finish(job)["chunks"]
    assert replayed >= 30, replayed
    # every file's pixel data reaches the page as a reference to the file it opened
    assert sum(1 for part in parts if "source" in part) == len(paths)
    joined = tmp_path / "joined.zip"
    joined.write_bytes(read_parts(parts))
    with zipfile.ZipFile(joined) as z:
        assert z.testzip() is None
        for path in paths:
            expected, _ = edit_bytes(path.read_bytes(), JOB_A, context={"name": path.name})
            assert z.read(path.name) == b"".join(expected)


def test_a_worker_warms_up_edits_once_on_a_made_up_series_and_a_later_job_is_unchanged(tmp_path, monkeypatch):
    def edited(folder):
        job = jobs.start("edit", {"edits": JOB_A, "container": "members", "key": bytes(32).hex()}, 3,
                         lambda name: str(tmp_path / folder / name))
        outputs = []
        for i, name in enumerate(["CT_small.dcm", "MR_small.dcm", "rtplan.dcm"], start=1):
            step = jobs.step(job, {"path": bundled(name), "name": name, "index": i, "member": name})
            outputs.append((read_parts(step.pop("chunks")), json.dumps(step, sort_keys=True)))
        jobs.finish(job)
        return outputs

    monkeypatch.setattr(jobs, "_warmed_up", set())
    cold = edited("cold")
    finished = []
    with monkeypatch.context() as patched:
        patched.setattr(jobs.EditJob, "finish", lambda self: finished.append(
            (self.container, self.replay.replayed, self.edited)) or {})
        job = jobs.start("edit_prepare", {}, 0, lambda name: str(tmp_path / "prepare" / name))
        assert jobs.finish(job) == {"prepared": True}
    # the made-up series went through both containers, every file edited, the later ones replayed
    assert finished == [("members", jobs._WARM_UP_FILES - 1, jobs._WARM_UP_FILES),
                        ("files", jobs._WARM_UP_FILES - 1, jobs._WARM_UP_FILES)]
    assert not (tmp_path / "prepare").exists() or not any((tmp_path / "prepare").iterdir())
    job = jobs.start("edit_prepare", {}, 0, lambda name: str(tmp_path / "again" / name))
    assert jobs.finish(job) == {"prepared": False}  # once per process
    assert edited("warm") == cold
