"""A DICOMDIR for outputs saved into a folder: the folder becomes a File-set (PS3.10 §8, PS3.3 Annex F).

The outputs of a job are written one by one as they are made (by the page, from header bytes and
unchanged stretches of the opened files), so the directory cannot be made from whole datasets.
Instead it is made in three steps:

1. before the job, every output gets its File ID (:func:`file_ids`), in the order of the files
   and grouped by their patient, study and series: ``DICOM/PT000001/ST000001/SE000001/IM000001``;
2. each job step reads back its OUTPUT's header and keeps the few attributes the directory
   records need (:func:`record_source`, a DICOM JSON object);
3. once every file is written, :func:`write_dicomdir` builds the records with pydicom's own
   record creators (:data:`pydicom.fileset.DIRECTORY_RECORDERS`, through
   :class:`pydicom.fileset.FileSet`) and writes the DICOMDIR with pydicom's encoder, each leaf
   record naming the File ID the file was written under.

Files that failed are simply not handed to :func:`write_dicomdir`: the DICOMDIR lists exactly
the files written.
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
    "CompletionFlag", "VerificationFlag", "VerificationDateTime", "ConceptNameCodeSequence",
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
# The tag of the transfer syntax in a record source (from the file meta group).
_TRANSFER_SYNTAX_TAG = "00020010"

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


def record_source(source, name):
    """The attributes of one output's header that its directory records need.

    Parameters
    ----------
    source : str or file-like
        The output (a path, or a readable, seekable file); only its header is read.
    name : str
        The user's name for the file, for messages.

    Returns
    -------
    dict
        A DICOM JSON object (PS3.18 F) of :data:`RECORD_KEYWORDS` the file has, and its transfer
        syntax as ``"00020010"``; an Encapsulated Document's value is left empty (only its
        presence decides the record type).

    Raises
    ------
    DicomStudioError
        The output has no File Meta Information (a DICOMDIR lists Part 10 files only) or no SOP
        Class or Instance UID.
    """
    import pydicom
    from pydicom.dataset import Dataset
    with warnings.catch_warnings():
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
        if "EncapsulatedDocument" in kept:
            kept.EncapsulatedDocument = b""
        record = kept.to_json_dict()
    record[_TRANSFER_SYNTAX_TAG] = {"vr": "UI", "Value": [str(syntax)]}
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
        that lacked them (``{"file", "keyword", "value"}``); ``left_out`` the files not listed
        and why (``{"file", "message"}``: a second file with the same SOP Instance UID).

    Raises
    ------
    DicomStudioError
        No entries (a job where every file failed writes no DICOMDIR), or a File ID PS3.10 does
        not allow.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.filebase import DicomFileLike
    from pydicom.fileset import FileSet
    from pydicom.uid import generate_uid

    if not entries:
        raise DicomStudioError("no file was written, so there is nothing for a DICOMDIR to list.")
    invented, left_out = [], []
    file_set = FileSet()
    if file_set_id:
        file_set.ID = file_set_id
    # The same files give the same DICOMDIR, byte for byte (pydicom would draw its UID at random).
    file_set.UID = generate_uid(entropy_srcs=[f"{e['file_id']}={e['record'].get('00080018')}" for e in entries])
    seen = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for position, entry in enumerate(entries, 1):
            check_file_id(entry["file_id"])
            ds = Dataset.from_json(entry["record"])
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ds[_TRANSFER_SYNTAX_TAG].value
            del ds[_TRANSFER_SYNTAX_TAG]
            if ds.SOPInstanceUID in seen:
                message = (f"{entry['file_id']} has the SOP Instance UID of {seen[ds.SOPInstanceUID]}; a DICOMDIR "
                           "lists an instance once, so it was written but left out of the DICOMDIR.")
                left_out.append({"file": entry.get("name", entry["file_id"]), "message": message})
                continue
            seen[ds.SOPInstanceUID] = entry["file_id"]
            for keyword, invent in _INVENTED.items():
                if ds.get(keyword) in (None, ""):
                    value = invent(position)
                    setattr(ds, keyword, value)
                    invented.append({"file": entry.get("name", entry["file_id"]), "keyword": keyword, "value": value})
            try:
                instance = file_set.add(ds)
            except ValueError as exc:
                raise DicomStudioError(f"{entry.get('name', entry['file_id'])} cannot be listed in a DICOMDIR: "
                                       f"{exc}", file=entry.get("name")) from exc
            instance.node._record.ReferencedFileID = entry["file_id"].split("/")
        # pydicom's FileSet.write() would copy every file to File IDs of its own choosing; the
        # files are in place already, under ours, so only the DICOMDIR is encoded, by the same
        # code write() uses.
        with open(out_path, "wb") as f:
            file_set._write_dicomdir(DicomFileLike(f))
    records = [node.record_type for node in file_set._tree]
    return {"instances": len(file_set), "patients": records.count("PATIENT"), "studies": records.count("STUDY"),
            "series": records.count("SERIES"), "invented": invented, "left_out": left_out}
