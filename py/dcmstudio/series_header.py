"""The DICOM header of a written series: one dataset per IOD, and its fast per-file encoding.

IODs written (Type 1 and 2 attributes present; dciodvfy reports 0 errors, see the tests):

- CT Image, MR Image, Secondary Capture Image, one file per slice, with the Image Plane
  attributes (SC's IOD does not list them; dciodvfy warns, readers use them);
- Multi-frame Grayscale Byte / Grayscale Word / True Color Secondary Capture, one file, with
  shared Pixel Measures and Plane Orientation and per-frame Plane Position functional groups.

What a converted volume does not know (kVp, echo time, body part, ...) is present and empty,
as Type 2 allows, rather than invented. A DICOM source's own acquisition is carried over
(:data:`CARRIED_FOR_ANY`, :data:`CARRIED_FOR_FAMILY`, and the pixel padding value in the
stored values of the output).
"""

import datetime
import struct
import uuid

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import (CTImageStorage, ExplicitVRLittleEndian, MRImageStorage,
                         MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
                         MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
                         MultiFrameTrueColorSecondaryCaptureImageStorage,
                         SecondaryCaptureImageStorage)

from . import __version__
from .series_pixels import format_ds

# Our implementation's UID, under 2.25 like every UID we make: derived from a fixed UUID so it
# stays the same across versions and machines.
IMPLEMENTATION_CLASS_UID = "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "dcmstudio").int)
IMPLEMENTATION_VERSION_NAME = f"DCMSTUDIO_{__version__}"[:16]
SOFTWARE = f"dcmstudio {__version__}"

SOP_CLASS_NAMES = {
    CTImageStorage: "CT Image Storage",
    MRImageStorage: "MR Image Storage",
    SecondaryCaptureImageStorage: "Secondary Capture Image Storage",
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage:
        "Multi-frame Grayscale Byte Secondary Capture Image Storage",
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage:
        "Multi-frame Grayscale Word Secondary Capture Image Storage",
    MultiFrameTrueColorSecondaryCaptureImageStorage:
        "Multi-frame True Color Secondary Capture Image Storage",
}

# What a DICOM source's re-export carries, when every source file holds the same value:
# equipment, series and display attributes into any output (display ones into grey outputs);
# the acquisition's technique only into an output of the source's own kind (CT into CT Image,
# MR into MR Image), whose IOD has a place for it. (CTDIvol is left out: without its phantom
# type, a sequence, it cannot be interpreted.)
CARRIED_FOR_ANY = (
    "Manufacturer", "ManufacturerModelName", "DeviceSerialNumber", "InstitutionName",
    "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "BodyPartExamined",
    "ProtocolName", "PatientPosition", "Laterality", "SliceThickness", "AcquisitionNumber",
    "AcquisitionDate", "AcquisitionTime", "PatientAge", "PatientSize", "PatientWeight",
)
CARRIED_FOR_GREY = ("WindowCenter", "WindowWidth", "WindowCenterWidthExplanation",
                    "VOILUTFunction")
CARRIED_FOR_FAMILY = {
    "CT": ("KVP", "DataCollectionDiameter", "ReconstructionDiameter", "DistanceSourceToDetector",
           "DistanceSourceToPatient", "GantryDetectorTilt", "TableHeight", "RotationDirection",
           "ExposureTime", "XRayTubeCurrent", "Exposure", "FilterType", "GeneratorPower",
           "FocalSpots", "ConvolutionKernel", "RevolutionTime", "SingleCollimationWidth",
           "TotalCollimationWidth", "SpiralPitchFactor", "ScanOptions", "ContrastBolusAgent"),
    "MR": ("ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType",
           "SequenceName", "RepetitionTime", "EchoTime", "EchoTrainLength", "InversionTime",
           "NumberOfAverages", "ImagingFrequency", "ImagedNucleus", "MagneticFieldStrength",
           "NumberOfPhaseEncodingSteps", "PercentSampling", "PercentPhaseFieldOfView",
           "PixelBandwidth", "ReceiveCoilName", "TransmitCoilName", "AcquisitionMatrix",
           "InPlanePhaseEncodingDirection", "FlipAngle", "SAR", "ContrastBolusAgent"),
}
CARRIED_ATTRIBUTES = tuple(dict.fromkeys(
    CARRIED_FOR_ANY + CARRIED_FOR_GREY + CARRIED_FOR_FAMILY["CT"] + CARRIED_FOR_FAMILY["MR"]))
PIXEL_PADDING_VALUE = 0x00280120

# The elements that differ from one slice file to the next; all others are encoded once.
PER_SLICE = ("SOPInstanceUID", "InstanceNumber", "ImagePositionPatient", "SliceLocation")
PIXEL_DATA_TAG = struct.pack("<HH", 0x7FE0, 0x0010)
PREAMBLE = b"\0" * 128 + b"DICM"


def sop_class_for(modality, samples, bits, multiframe):
    """The SOP class: CT or MR Image for grey CT/MR slices, else the matching SC class."""
    if multiframe:
        if samples == 3:
            return MultiFrameTrueColorSecondaryCaptureImageStorage
        return (MultiFrameGrayscaleByteSecondaryCaptureImageStorage if bits == 8
                else MultiFrameGrayscaleWordSecondaryCaptureImageStorage)
    if samples == 1 and modality == "CT":
        return CTImageStorage
    if samples == 1 and modality == "MR":
        return MRImageStorage
    return SecondaryCaptureImageStorage


def family_of(sop_class):
    """"CT", "MR" or "SC"."""
    return {CTImageStorage: "CT", MRImageStorage: "MR"}.get(sop_class, "SC")


def carried_attributes(volume, sop_class, encoding):
    """What of a DICOM source's acquisition the output carries: ``(values, notes)``.

    ``values`` maps keywords to the source's values (as kept by
    :mod:`dcmstudio.readers.dicom_series`), (0028,0120) *Pixel Padding Value* already turned
    into the output's stored value; ``notes`` says what could not be carried and why.
    """
    source = volume.dicom
    family = family_of(sop_class)
    keywords = CARRIED_FOR_ANY + (CARRIED_FOR_GREY if encoding.samples == 1 else ())
    if source.get("Modality") == family:
        keywords += CARRIED_FOR_FAMILY.get(family, ())
    values = {k: source[k] for k in keywords if k in source}
    notes = []
    padding = source.get("PixelPaddingValue")
    if padding is not None and encoding.samples == 1:
        stored = padding - encoding.offset
        info = np.iinfo(encoding.stored_dtype)
        if encoding.quantise or not info.min <= stored <= info.max:
            notes.append(f"{volume.source_name}: (0028,0120) Pixel Padding Value {padding} is"
                         " not carried: the values are rescaled into new stored values.")
        else:
            values["PixelPaddingValue"] = int(stored)
    return values, notes


def _now():
    now = datetime.datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def orientation_letters(vector):
    """(0020,0020) *Patient Orientation* letters of an LPS vector, most significant first."""
    letters = ""
    for axis in np.argsort(-np.abs(vector)):
        if abs(vector[axis]) > 1e-3:
            letters += ("RL", "AP", "FH")[axis][int(vector[axis] > 0)]
    return letters


def slice_normal(volume):
    """Row direction × column direction: the axis (0020,1041) *Slice Location* is measured on."""
    return np.cross(volume.direction[:, 0], volume.direction[:, 1])


def image_orientation(volume):
    """(0020,0037) *Image Orientation (Patient)*: row then column direction, as DS strings."""
    return [format_ds(v) for v in np.concatenate([volume.direction[:, 0], volume.direction[:, 1]])]


def build_header(plan, uids):
    """The dataset shared by every file; the per-slice elements hold the first slice's values.

    Parameters
    ----------
    plan : dcmstudio.series.SeriesPlan
    uids : dict
        ``study``, ``series``, ``frame_of_reference`` and ``sop`` (a list, one per file).
    """
    volume, options, encoding = plan.volume, plan.options, plan.encoding
    kept = volume.dicom if options["study_uid_source"] == "kept" else {}
    family = family_of(plan.sop_class)
    today, now = _now()
    ds = Dataset()
    if plan.character_set:
        ds.SpecificCharacterSet = plan.character_set
    # Value 3 is required for CT and MR; AXIAL is CT's term for any cross-section.
    ds.ImageType = ["DERIVED", "SECONDARY"] + {"CT": ["AXIAL"], "MR": ["OTHER"]}.get(family, [])
    ds.InstanceCreationDate, ds.InstanceCreationTime = today, now
    ds.SOPClassUID = plan.sop_class
    ds.SOPInstanceUID = uids["sop"][0]
    ds.StudyDate = kept.get("StudyDate", today)
    ds.StudyTime = kept.get("StudyTime", now)
    ds.SeriesDate, ds.SeriesTime = today, now
    ds.ContentDate, ds.ContentTime = today, now
    ds.AccessionNumber = kept.get("AccessionNumber", "")
    ds.Modality = options["modality"]
    if family == "SC":
        ds.ConversionType = "WSD"
    ds.Manufacturer = ""
    ds.ReferringPhysicianName = kept.get("ReferringPhysicianName", "")
    if options["study_description"]:
        ds.StudyDescription = options["study_description"]
    if options["series_description"]:
        ds.SeriesDescription = options["series_description"]
    ds.PatientName = options["patient_name"]
    ds.PatientID = options["patient_id"]
    ds.PatientBirthDate = volume.dicom.get("PatientBirthDate", "")
    ds.PatientSex = volume.dicom.get("PatientSex", "")
    ds.SliceThickness = format_ds(volume.spacing[2])
    ds.SpacingBetweenSlices = format_ds(volume.spacing[2])
    ds.SoftwareVersions = SOFTWARE
    if family == "SC":
        ds.SecondaryCaptureDeviceManufacturer = "dcmstudio"
        ds.SecondaryCaptureDeviceSoftwareVersions = SOFTWARE
    if family == "CT":
        ds.KVP = None
    if family == "MR":
        _mr_image_attributes(ds)
    if family in ("CT", "MR"):
        ds.PatientPosition = None
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.StudyID = kept.get("StudyID", "")
    ds.SeriesNumber = options["series_number"]
    if family in ("CT", "MR"):
        ds.AcquisitionNumber = None
    ds.InstanceNumber = plan.numbers[0]
    if family == "SC":
        ds.PatientOrientation = [orientation_letters(volume.direction[:, 0]),
                                 orientation_letters(volume.direction[:, 1])]
    ds.ImagePositionPatient = [format_ds(v) for v in volume.slice_position(0)]
    ds.ImageOrientationPatient = image_orientation(volume)
    ds.FrameOfReferenceUID = uids["frame_of_reference"]
    # Unknown here: dciodvfy wants it present (Type 2C) and warns that empty means unknown.
    ds.Laterality = None
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = format_ds(volume.slice_position(0) @ slice_normal(volume))
    ds.SamplesPerPixel = encoding.samples
    ds.PhotometricInterpretation = "RGB" if encoding.samples == 3 else "MONOCHROME2"
    if encoding.samples == 3:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
    ds.PixelSpacing = [format_ds(volume.spacing[1]), format_ds(volume.spacing[0])]
    ds.BitsAllocated = ds.BitsStored = encoding.bits
    ds.HighBit = encoding.bits - 1
    ds.PixelRepresentation = int(encoding.signed)
    # CT and multi-frame grey SC require the rescale; MR's IOD does not list it (dciodvfy warns
    # when present), so it is written there only when the values need it.
    if encoding.samples == 1 and (family == "CT" or plan.multiframe or not encoding.identity):
        ds.RescaleIntercept = encoding.intercept
        ds.RescaleSlope = encoding.slope
        if family != "MR":
            ds.RescaleType = "HU" if family == "CT" else "US"
    if family == "SC":
        ds.BurnedInAnnotation = "NO"
    for keyword, value in plan.carried.items():
        if keyword == "PixelPaddingValue":
            # US or SS by the pixel representation: given explicitly, since the Template
            # encodes runs of elements apart from (0028,0103).
            ds.add_new(PIXEL_PADDING_VALUE, "SS" if encoding.signed else "US", value)
        else:
            setattr(ds, keyword, value)
    if "BodyPartExamined" in plan.carried and "Laterality" not in plan.carried:
        # Type 2C: with a known body part, a source without laterality had an unpaired one.
        del ds.Laterality
    return ds


def _mr_image_attributes(ds):
    """Type 1 and 2 attributes of the MR Image module; we know nothing of the acquisition."""
    ds.ScanningSequence = "RM"        # research mode: the honest value for a converted volume
    ds.SequenceVariant = "NONE"
    ds.ScanOptions = None
    ds.MRAcquisitionType = None
    ds.RepetitionTime = None
    ds.EchoTime = None
    ds.EchoTrainLength = None


def build_multiframe_header(plan, uids):
    """The multi-frame SC header: shared pixel measures and orientation, per-frame positions."""
    volume = plan.volume
    ds = build_header(plan, uids)
    frames = volume.shape[2]
    del ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.SliceLocation
    del ds.PixelSpacing, ds.SliceThickness, ds.SpacingBetweenSlices
    ds.NumberOfFrames = frames
    # Slice Location Vector is the frame increment this IOD lists for a stack of slices.
    ds.FrameIncrementPointer = pydicom.tag.Tag("SliceLocationVector")
    normal = slice_normal(volume)
    positions = [volume.slice_position(k) for k in range(frames)]
    ds.SliceLocationVector = [format_ds(p @ normal) for p in positions]
    if plan.encoding.samples == 1:
        ds.PresentationLUTShape = "IDENTITY"
    measures = Dataset()
    measures.PixelSpacing = [format_ds(volume.spacing[1]), format_ds(volume.spacing[0])]
    measures.SliceThickness = plan.carried.get("SliceThickness", format_ds(volume.spacing[2]))
    orientation = Dataset()
    orientation.ImageOrientationPatient = image_orientation(volume)
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orientation])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for position in positions:
        plane = Dataset()
        plane.ImagePositionPatient = [format_ds(v) for v in position]
        item = Dataset()
        item.PlanePositionSequence = Sequence([plane])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    return ds


def encode_dataset(ds, charset):
    """``ds`` as explicit VR little endian bytes, text in ``charset`` ("" = the default)."""
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds, parent_encoding=[charset or "ISO_IR 6"])
    return fp.getvalue()


def pixel_data_header(bits, length):
    """(7FE0,0010) *Pixel Data* element header, explicit VR little endian, defined length."""
    return PIXEL_DATA_TAG + (b"OW" if bits == 16 else b"OB") + b"\0\0" + struct.pack("<I", length)


def _short_text_element(tag, vr, text):
    """One explicit-VR little-endian element of a short text VR (UI, IS, DS), padded to even."""
    value = text.encode("ascii")
    if len(value) % 2:
        value += b"\0" if vr == "UI" else b" "
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value


class Template:
    """A dataset encoded once by pydicom, but for a few short text elements encoded per file.

    300 slice headers differ only in a UID, a number and a position: pydicom encodes the shared
    runs once, and :meth:`encode` splices in the per-file elements. The unit tests compare the
    result byte for byte with pydicom encoding the whole dataset.

    Parameters
    ----------
    dataset : pydicom.dataset.Dataset
    per_file : sequence of str
        Keywords of the per-file elements; each must be UI, IS or DS.
    charset : str
        The dataset's (0008,0005) *Specific Character Set* ("" = the default repertoire).
    """

    def __init__(self, dataset, per_file, charset):
        self.parts = []
        run = Dataset()
        for element in dataset:
            if element.keyword in per_file:
                if element.VR not in ("UI", "IS", "DS"):
                    raise ValueError(f"{element.keyword} is not a short text element")
                if len(run):
                    self.parts.append(encode_dataset(run, charset))
                    run = Dataset()
                self.parts.append((element.keyword, int(element.tag), element.VR))
            else:
                run.add(element)
        if len(run):
            self.parts.append(encode_dataset(run, charset))

    def encode(self, values):
        """The encoded dataset with ``values[keyword]`` (str, or a list of str) per file."""
        pieces = []
        for part in self.parts:
            if isinstance(part, bytes):
                pieces.append(part)
            else:
                keyword, tag, vr = part
                value = values[keyword]
                text = value if isinstance(value, str) else "\\".join(value)
                pieces.append(_short_text_element(tag, vr, text))
        return b"".join(pieces)


class FileStart:
    """Preamble, 'DICM' and the File Meta Information group, per file for its SOP Instance UID."""

    def __init__(self, sop_class):
        meta = FileMetaDataset()
        meta.FileMetaInformationVersion = b"\x00\x01"
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = "0"
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
        self.template = Template(meta, ("MediaStorageSOPInstanceUID",), "")

    def encode(self, sop_instance):
        group = self.template.encode({"MediaStorageSOPInstanceUID": sop_instance})
        # (0002,0000) File Meta Information Group Length, UL
        length = struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(group))
        return PREAMBLE + length + group
