"""A DICOMDIR for outputs saved into a folder: the folder becomes a File-set (PS3.10 §8, PS3.3 Annex F).

The outputs of a job are written one by one as they are made (by the page, from header bytes and
unchanged stretches of the opened files), so the directory cannot be made from whole datasets.
Instead it is made in three steps:

1. before the job, every output gets its File ID (:func:`file_ids`), in the order of the files
   and grouped by their patient, study and series: ``DICOM/PT000001/ST000001/SE000001/IM000001``;
2. each job step reads back its OUTPUT's header and makes its directory records there, with
   pydicom's own record creators (:data:`pydicom.fileset.DIRECTORY_RECORDERS`, the record types
   pydicom's :class:`~pydicom.fileset.FileSet` would choose): :func:`record_source`, plain JSON;
3. once every file is written, :func:`write_dicomdir` puts the records in a tree (a patient,
   study or series once) and writes the DICOMDIR, each record encoded by pydicom, each leaf
   naming the File ID its file was written under.

A file whose records cannot be made fails in its step, with the reason, and is not written;
files that failed are not handed to :func:`write_dicomdir`: the DICOMDIR lists exactly the files
written. (pydicom's ``FileSet.add`` and ``write`` would also copy every file to File IDs of their
own choosing, and took minutes for a few thousand files.)
"""

import re
import warnings

from .errors import DicomStudioError

# The folder every File ID starts with, as DICOM media and DicomCleaner's exports have it.
FILE_ID_ROOT = "DICOM"
# PS3.10 §8.5 / PS3.12 (ISO 9660 level 1): a component is 1–8 of A–Z 0–9 _, at most 8 of them.
MAX_COMPONENT_LENGTH = 8
MAX_FILE_ID_LEVELS = 8
_COMPONENT = re.compile(r"[A-Z0-9_]{1,8}")
# The numbers after the two-letter prefixes (PT, ST, SE, IM) of a component.
_NUMBER_DIGITS = MAX_COMPONENT_LENGTH - 2
_LARGEST_NUMBER = 10 ** _NUMBER_DIGITS - 1

# The attributes pydicom 3.0.2's record creators read (pydicom.fileset: _define_patient,
# _define_study, _define_series and one per leaf record type), plus those that decide the record
# type. (0040,A730) Content Sequence is left out on purpose: pydicom copies a whole SR content
# tree into its record when present, and the directory does not need it (PS3.3 F.5.24: 1C).
RECORD_KEYWORDS = (
    "SpecificCharacterSet", "SOPClassUID", "SOPInstanceUID",
    # PATIENT, STUDY, SERIES
    "PatientID", "PatientName",
    "StudyDate", "StudyTime", "StudyDescription", "StudyInstanceUID", "StudyID", "AccessionNumber",
    "Modality", "SeriesInstanceUID", "SeriesNumber",
    # the leaf records (IMAGE, PRESENTATION, SR DOCUMENT, KEY OBJECT DOC, RT …, ENCAP DOC …)
    "InstanceNumber", "ImageType", "Rows", "Columns", "NumberOfFrames", "DataPointRows", "DataPointColumns",
    "ContentDate", "ContentTime", "ContentLabel", "ContentDescription", "ContentCreatorName",
    "CompletionFlag", "VerificationFlag", "VerificationDateTime", "VerifyingObserverSequence",
    "ConceptNameCodeSequence",
    "PresentationCreationDate", "PresentationCreationTime", "ReferencedSeriesSequence", "BlendingSequence",
    "DoseSummationType", "StructureSetLabel", "StructureSetDate", "StructureSetTime",
    "RTPlanLabel", "RTPlanDate", "RTPlanTime", "TreatmentDate", "TreatmentTime",
    "DocumentTitle", "MIMETypeOfEncapsulatedDocument", "EncapsulatedDocument",
    "InstanceCreationDate", "InstanceCreationTime", "ReferencedImageEvidenceSequence",
    "UserContentLabel", "UserContentLongLabel", "Manufacturer",
    "ProcedureTypeCodeSequence", "HangingProtocolCreator", "HangingProtocolCreationDateTime",
    "HangingProtocolDefinitionSequence", "NumberOfPriorsReferenced", "HangingProtocolUserIdentificationCodeSequence",
    "ImplantName", "ImplantSize", "ImplantPartNumber", "ImplantAssemblyTemplateName",
    "ImplantTemplateGroupName", "ImplantTemplateGroupIssuer",
)
# Values a record must have (Type 1 in PS3.3 F.5) that a file may lack or leave empty (Study ID,
# for one, is only Type 2 in an image). They are made up for the record alone, as DCMTK's
# dcmmkdir --invent does, and the result says which; an Instance Number is the file's place in
# the job.
_INVENTED = {
    "PatientID": lambda position: "UNKNOWN",
    "StudyID": lambda position: "1",
    "StudyDate": lambda position: "19000101",
    "StudyTime": lambda position: "000000",
    "SeriesNumber": lambda position: "1",
    "Modality": lambda position: "OT",
    "InstanceNumber": lambda position: str(position),
}


def file_ids(keys):
    """The File ID of each output, from its patient, study and series, in the order of the files.

    Patients are numbered in the order they first appear, studies within their patient, series
    within their study, files within their series, from 1: the names depend on the order of the
    files only, not on which worker made which file.

    Parameters
    ----------
    keys : list of (str, str, str)
        Per file, in the job's order: what tells its patient, study and series apart (e.g.
        patient name and ID, Study and Series Instance UIDs).

    Returns
    -------
    list of str
        ``DICOM/PT000001/ST000001/SE000001/IM000001`` and so on, ``/`` between components.

    Raises
    ------
    DicomStudioError
        More than 999,999 patients, studies in a patient, series in a study or files in a series.
    """
    root = _Numbered()
    result = []
    for patient, study, series in (tuple(str(part) for part in key) for key in keys):
        path = [root.child(patient)]
        path.append(path[-1].child(study))
        path.append(path[-1].child(series))
        path.append(path[-1].child(None))  # every file is new in its series
        numbers = [node.number for node in path]
        if max(numbers) > _LARGEST_NUMBER:
            raise DicomStudioError(f"a DICOMDIR numbers at most {_LARGEST_NUMBER:,} patients, studies of a "
                                   "patient, series of a study or files of a series; save these files without one.")
        result.append("/".join([FILE_ID_ROOT] + [f"{prefix}{number:0{_NUMBER_DIGITS}d}"
                                                for prefix, number in zip(("PT", "ST", "SE", "IM"), numbers)]))
    return result


class _Numbered:
    """A level of the patient → study → series → file tree, whose children are numbered from 1 in
    the order they first appear."""

    def __init__(self, number=0):
        self.number = number
        self.children = {}
        self.count = 0

    def child(self, key):
        """The child ``key`` (made and numbered when new; ``None``: always a new one)."""
        node = self.children.get(key) if key is not None else None
        if node is None:
            self.count += 1
            node = _Numbered(self.count)
            if key is not None:
                self.children[key] = node
        return node


def grouping_key(path):
    """What tells a file's patient, study and series apart, as the page groups the files it lists
    (patient name and ID, Study and Series Instance UIDs), for :func:`file_ids`.

    Parameters
    ----------
    path : str

    Returns
    -------
    tuple of str
        Empty strings for a file whose header cannot be read: its own step says why.
    """
    import pydicom
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=[
                "PatientName", "PatientID", "StudyInstanceUID", "SeriesInstanceUID"])
        return (f"{ds.get('PatientName', '')}\0{ds.get('PatientID', '')}", str(ds.get("StudyInstanceUID", "")),
                str(ds.get("SeriesInstanceUID", "")))
    except Exception:  # noqa: BLE001 -- any file pydicom cannot read is grouped apart, and fails later
        return ("", "", "")


def check_file_id(file_id):
    """Refuse a File ID that PS3.10 does not allow.

    Parameters
    ----------
    file_id : str
        Components separated by ``/``.

    Raises
    ------
    DicomStudioError
        More than 8 components, or a component that is empty, longer than 8 characters, or holds
        anything but upper-case letters, digits and ``_``.
    """
    components = str(file_id).split("/")
    if len(components) > MAX_FILE_ID_LEVELS:
        raise DicomStudioError(f"the File ID {file_id} has {len(components)} components; PS3.10 allows at most "
                               f"{MAX_FILE_ID_LEVELS}.")
    for component in components:
        if not _COMPONENT.fullmatch(component):
            raise DicomStudioError(f"the File ID {file_id} has the component '{component}'; PS3.10 allows 1 to "
                                   f"{MAX_COMPONENT_LENGTH} of A-Z, 0-9 and _ only.")


def record_source(source, name, position):
    """The directory records of one output, made from its header where the output is made.

    Parameters
    ----------
    source : str or file-like
        The output (a path, or a readable, seekable file); only its header is read.
    name : str
        The user's name for the file, for messages.
    position : int
        The file's place in the job, from 1: the Instance Number of a record whose file has none.

    Returns
    -------
    dict
        ``{"syntax", "sop_class", "levels", "invented"}``: its transfer syntax and SOP Class
        UID; ``[record type, key, record as DICOM JSON]`` from the top (PATIENT, STUDY, SERIES,
        then its own record, or its own alone for a top-level SOP Class), the key telling
        records of one level apart (Patient ID, Study, Series or SOP Instance UID);
        ``[keyword, value]`` of the Type 1 record values it lacked, made up (see ``_INVENTED``).

    Raises
    ------
    DicomStudioError
        The output has no File Meta Information (a DICOMDIR lists Part 10 files only), no SOP
        Class or Instance UID, or lacks what its record must hold (e.g. a presentation state
        without (0070,0080) *Content Label*).
    """
    import pydicom
    from pydicom.config import disable_value_validation
    from pydicom.dataset import Dataset
    with warnings.catch_warnings(), disable_value_validation():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(source, stop_before_pixels=True, force=True, specific_tags=list(RECORD_KEYWORDS))
        except Exception as exc:  # noqa: BLE001 -- whatever pydicom raises, the file cannot be listed
            raise DicomStudioError(f"the output of {name} could not be read back for its DICOMDIR record "
                                   f"({type(exc).__name__}: {exc}).", file=name) from exc
        syntax = ds.file_meta.get("TransferSyntaxUID") if ds.file_meta is not None else None
        if not syntax:
            raise DicomStudioError(f"the output of {name} has no transfer syntax in a File Meta Information "
                                   "group, so a DICOMDIR cannot list it.", file=name)
        if not ds.get("SOPClassUID") or not ds.get("SOPInstanceUID"):
            raise DicomStudioError(f"the output of {name} has no SOP Class or SOP Instance UID, so a DICOMDIR "
                                   "cannot list it.", file=name)
        kept = Dataset()
        for element in ds:
            if element.keyword in RECORD_KEYWORDS:
                kept.add(element)
        invented = []
        for keyword, invent in _INVENTED.items():
            if kept.get(keyword) in (None, ""):
                setattr(kept, keyword, invent(position))
                invented.append([keyword, str(kept[keyword].value)])
        # A verified SR's record needs (0040,A030), which the file holds per verifier, in (0040,A073):
        # the latest is taken, as DCMTK's dcmmkdir does (pydicom's creator looks at the top level only).
        if kept.get("VerificationFlag") == "VERIFIED" and not kept.get("VerificationDateTime"):
            times = [str(v.VerificationDateTime) for v in kept.get("VerifyingObserverSequence") or []
                     if v.get("VerificationDateTime")]
            if times:
                kept.VerificationDateTime = max(times)
        try:
            keys = _levels(kept)
            levels = [[kind, str(key), _record(kept, kind, len(keys) > 1).to_json_dict()] for kind, key in keys]
        except ValueError as exc:
            raise DicomStudioError(f"{name} cannot be listed in a DICOMDIR: {exc}.", file=name) from exc
    return {"syntax": str(syntax), "sop_class": str(kept.SOPClassUID), "levels": levels, "invented": invented}


def _levels(ds):
    """``(record type, key)`` of the records of ``ds``, from the top: the types pydicom's
    FileSet gives it (FileSet._recordify's choice), the keys it tells records apart by."""
    from pydicom import fileset
    single = fileset._single_level_record_type(ds)
    if single != "PATIENT":
        return [(single, ds.SOPInstanceUID)]
    return [("PATIENT", ds.PatientID), ("STUDY", ds.get("StudyInstanceUID") or ds.SOPInstanceUID),
            ("SERIES", ds.SeriesInstanceUID), (fileset._four_level_record_type(ds), ds.SOPInstanceUID)]


def _record(ds, kind, four_levels):
    """The content of ``ds``'s directory record of ``kind``, by pydicom's record creator (with
    the character set, as FileSet._recordify gives the records of the four-level hierarchy)."""
    from pydicom.fileset import DIRECTORY_RECORDERS
    try:
        record = DIRECTORY_RECORDERS[kind](ds)
    except ValueError as exc:
        raise ValueError(f"its {kind} record cannot be made ({exc})") from exc
    if four_levels and "SpecificCharacterSet" in ds:
        record.SpecificCharacterSet = ds.SpecificCharacterSet
    return record


def write_dicomdir(entries, out_path, file_set_id=""):
    """Write the DICOMDIR of the files ``entries`` lists, which are in the folder already.

    Parameters
    ----------
    entries : list of dict
        Per file written, in the job's order: ``{"file_id", "record", "name"}``; ``record`` is
        its :func:`record_source`, ``name`` the user's name for the input (for messages).
    out_path : str
        Where the DICOMDIR goes (it names its files relative to the folder it is put in).
    file_set_id : str, optional
        (0004,1130) *File-set ID*, at most 16 characters (empty by default).

    Returns
    -------
    dict
        ``{"instances", "patients", "studies", "series", "invented", "left_out"}``: how many
        files and records it lists; ``invented`` the Type 1 record values made up for files
        that lacked them (``{"file", "file_id", "keyword", "value"}``); ``left_out`` the files
        not listed and why (``{"file", "message"}``: a second file with the same SOP Instance
        UID).

    Raises
    ------
    DicomStudioError
        No entries (a job where every file failed writes no DICOMDIR), or a File ID PS3.10 does
        not allow.
    """
    from pydicom.config import disable_value_validation
    from pydicom.uid import generate_uid

    if not entries:
        raise DicomStudioError("no file was written, so there is nothing for a DICOMDIR to list.")
    invented, left_out = [], []
    root = _Node(None)
    seen = {}
    # The records hold the written files' own values, as pydicom read them back: checking each
    # again as it is copied took a third of the time.
    with warnings.catch_warnings(), disable_value_validation():
        warnings.simplefilter("ignore")
        for entry in entries:
            name, file_id, source = entry.get("name", entry["file_id"]), entry["file_id"], entry["record"]
            check_file_id(file_id)
            instance = source["levels"][-1][1]
            if instance in seen:
                message = (f"{file_id} has the SOP Instance UID of {seen[instance]}; a DICOMDIR lists an instance "
                           "once, so it was written but left out of the DICOMDIR.")
                left_out.append({"file": name, "message": message})
                continue
            seen[instance] = file_id
            invented += [{"file": name, "file_id": file_id, "keyword": keyword, "value": value}
                         for keyword, value in source["invented"]]
            node = root
            for depth, (kind, key, record) in enumerate(source["levels"]):
                leaf = depth == len(source["levels"]) - 1
                node = node.child((kind, key), kind, lambda kind=kind, record=record, leaf=leaf: _complete(
                    record, kind, leaf and (source["sop_class"], instance, source["syntax"], file_id)))
        # The same files give the same DICOMDIR, byte for byte (pydicom draws a File-set UID at random).
        uid = generate_uid(entropy_srcs=[f"{e['file_id']}={e['record']['levels'][-1][1]}" for e in entries])
        with open(out_path, "wb") as f:
            f.write(_encode(root, uid, file_set_id))
    counts = {"PATIENT": 0, "STUDY": 0, "SERIES": 0}
    for node in root.walk():
        counts[node.kind] = counts.get(node.kind, 0) + 1
    return {"instances": len(seen), "patients": counts["PATIENT"], "studies": counts["STUDY"],
            "series": counts["SERIES"], "invented": invented, "left_out": left_out}


def _complete(record_json, kind, leaf):
    """A directory record from its content (:func:`record_source`'s) with the elements every
    record has, as FileSet._recordify adds them; ``leaf``: (SOP Class UID, SOP Instance UID,
    transfer syntax, File ID) of the file a leaf record references, or False."""
    from pydicom.dataset import Dataset
    record = Dataset.from_json(record_json)
    record.OffsetOfTheNextDirectoryRecord = 0
    record.RecordInUseFlag = 0xFFFF
    record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    record.DirectoryRecordType = kind
    if leaf:
        sop_class, instance, syntax, file_id = leaf
        record.ReferencedFileID = file_id.split("/")
        record.ReferencedSOPClassUIDInFile = sop_class
        record.ReferencedSOPInstanceUIDInFile = instance
        record.ReferencedTransferSyntaxUIDInFile = syntax
    return record


class _Node:
    """A directory record and the records below it, in the order they were first met."""

    def __init__(self, kind, record=None):
        self.kind = kind
        self.record = record
        self.children = {}  # key (PS3.3 F.5: Patient ID, Study / Series / SOP Instance UID) → _Node

    def child(self, key, kind, make_record):
        """The child ``key``, its record made by ``make_record()`` when it is new."""
        node = self.children.get(key)
        if node is None:
            node = self.children[key] = _Node(kind, make_record())
        return node

    def walk(self):
        """This node's records and all below, depth first (the order of the Directory Record
        Sequence); the root has none."""
        if self.record is not None:
            yield self
        for child in self.children.values():
            yield from child.walk()


# Where the offsets sit in an encoded record (Explicit VR Little Endian, elements in tag order: the
# record starts with (0004,1400) UL, (0004,1410) US, (0004,1420) UL).
_NEXT_AT, _LOWER_AT = 8, 30
_NEXT_TAG, _LOWER_TAG = b"\x04\x00\x00\x14UL\x04\x00", b"\x04\x00\x20\x14UL\x04\x00"
_ITEM = b"\xfe\xff\x00\xe0"


def _encode(root, uid, file_set_id):
    """The DICOMDIR's bytes: its records under ``root`` each encoded once by pydicom, as items of
    explicit length, their offsets (from the file's first byte, PS3.10 §8.3 / PS3.3 F.3.2.1)
    filled in afterwards. pydicom's FileSet would encode every record twice and look up every
    sibling to place it: minutes for thousands of files."""
    import struct

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import dcmwrite, write_dataset
    from pydicom.uid import ExplicitVRLittleEndian, MediaStorageDirectoryStorage

    nodes = list(root.walk())
    encoded = []
    for node in nodes:
        out = DicomBytesIO()
        out.is_little_endian, out.is_implicit_VR = True, False
        write_dataset(out, node.record)
        data = bytearray(out.getvalue())
        if data[_NEXT_AT - 8:_NEXT_AT] != _NEXT_TAG or data[_LOWER_AT - 8:_LOWER_AT] != _LOWER_TAG:
            raise DicomStudioError(f"a {node.kind} record was not encoded as a directory record starts.")
        encoded.append(data)

    def head(first, last):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.FileSetID = file_set_id or None
        ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = first
        ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = last
        ds.FileSetConsistencyFlag = 0
        out = DicomBytesIO()
        dcmwrite(out, ds, enforce_file_format=True)
        return out.getvalue()

    # The sequence starts after the head and its own 12-byte header; each item after the last.
    start = len(head(0, 0)) + 12
    offsets, at = {}, start
    for node, data in zip(nodes, encoded):
        offsets[id(node)] = at
        at += 8 + len(data)

    def link(parent):
        children = list(parent.children.values())
        for node, after in zip(children, children[1:] + [None]):
            data = encoded[index[id(node)]]
            data[_NEXT_AT:_NEXT_AT + 4] = struct.pack("<I", offsets[id(after)] if after else 0)
            below = next(iter(node.children.values()), None)
            data[_LOWER_AT:_LOWER_AT + 4] = struct.pack("<I", offsets[id(below)] if below else 0)
            link(node)

    index = {id(node): i for i, node in enumerate(nodes)}
    link(root)
    tops = list(root.children.values())
    items = b"".join(_ITEM + struct.pack("<I", len(data)) + bytes(data) for data in encoded)
    sequence = b"\x04\x00\x20\x12SQ\x00\x00" + struct.pack("<I", len(items))
    return head(offsets[id(tops[0])], offsets[id(tops[-1])]) + sequence + items
