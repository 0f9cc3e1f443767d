"""Encapsulated PDF: a PDF file carried whole in (0042,0011) *Encapsulated Document*."""

import os

from pydicom.uid import EncapsulatedPDFStorage

from dcmstudio.create import base
from dcmstudio.errors import DicomStudioError

_PDF_MAGIC = b"%PDF-"
# Readers accept the header anywhere in the first kilobyte (PDF 1.7, annex H) and look for the
# end-of-file marker in the last one.
_PDF_HEADER_WINDOW = 1024
_PDF_TRAILER_WINDOW = 1024
_PDF_EOF = b"%%EOF"
DOCUMENT_OPTIONS = ("DocumentTitle", "BurnedInAnnotation")


class EncapsulatedPDF:
    """An Encapsulated PDF object (1.2.840.10008.5.1.4.1.1.104.1), checked at construction.

    Parameters
    ----------
    pdf_path : str
        The PDF file.
    patient_study : base.PatientStudy
    options : base.SeriesOptions
        With ``DocumentTitle`` (default: the PDF's name without ".pdf") and
        ``BurnedInAnnotation`` (default "YES": a document usually names its patient).
    pdf_name : str
        The user's name for the PDF, for messages.
    file : str
        The name of the object, for messages.

    Raises
    ------
    DicomStudioError
        When the file does not start like a PDF.
    EditError
        On an invalid option.
    """

    def __init__(self, pdf_path, patient_study, options, *, pdf_name, file):
        self.pdf_path = pdf_path
        self.notes = []
        size = os.path.getsize(pdf_path)
        with open(pdf_path, "rb") as f:
            head = f.read(_PDF_HEADER_WINDOW)
            f.seek(max(0, size - _PDF_TRAILER_WINDOW))
            tail = f.read()
        if _PDF_MAGIC not in head:
            raise DicomStudioError(f"{pdf_name} is not a PDF: no '%PDF-' header in its first "
                                   f"{_PDF_HEADER_WINDOW} bytes.", file=pdf_name)
        if _PDF_EOF not in tail:
            self.notes.append(f"{pdf_name} has no '%%EOF' marker at its end: it may be truncated; "
                              "it was encapsulated as it is.")
        ds = base.new_dataset(EncapsulatedPDFStorage, "DOC", patient_study, options)
        base.add_secondary_capture_equipment(ds, "WSD")
        default_title = os.path.splitext(pdf_name)[0]
        ds.DocumentTitle = base.checked_text("DocumentTitle",
                                             options.get("DocumentTitle", default_title), file)
        ds.BurnedInAnnotation = base.checked_choice(options, "BurnedInAnnotation", "YES",
                                                    base.YES_NO, file)
        ds.AcquisitionDateTime = ""
        ds.ConceptNameCodeSequence = []
        ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
        ds.EncapsulatedDocumentLength = size
        self.dataset = ds

    def save(self, out_path):
        """Write the object; return the report of :func:`base.report` plus ``document_bytes``."""
        ds = self.dataset
        with open(self.pdf_path, "rb") as f:
            # One copy of the PDF in memory while pydicom writes it; it is freed right after.
            ds.EncapsulatedDocument = f.read()
        try:
            base.save(ds, out_path)
        finally:
            del ds.EncapsulatedDocument
        written = base.check_written(out_path, os.path.basename(out_path))
        return base.report(written, out_path, self.notes,
                           document_bytes=int(ds.EncapsulatedDocumentLength),
                           document_title=str(ds.DocumentTitle))


def create_encapsulated_pdf(pdf_path, out_path, patient=None, study=None, options=None, *,
                            pdf_name=None):
    """Make an Encapsulated PDF object from a PDF file.

    Parameters
    ----------
    pdf_path : str
        The PDF.
    out_path : str
        Where to write the DICOM file.
    patient, study : dict, optional
        See :class:`base.PatientStudy`.
    options : dict, optional
        ``SeriesDescription``, ``SeriesNumber``, ``InstanceNumber``, ``SeriesInstanceUID``,
        ``DocumentTitle``, ``BurnedInAnnotation``.
    pdf_name : str, optional
        The user's name for the PDF (messages, default title).

    Returns
    -------
    dict
        ``{"path", "size", "sop_class_uid", "sop_class_name", "sop_instance_uid",
        "series_instance_uid", "study_instance_uid", "notes", "document_bytes",
        "document_title"}``.
    """
    file = os.path.basename(out_path)
    pdf_name = pdf_name or os.path.basename(pdf_path)
    patient_study = base.PatientStudy(patient, study, file=file)
    series = base.SeriesOptions(options, DOCUMENT_OPTIONS, file=file)
    return EncapsulatedPDF(pdf_path, patient_study, series, pdf_name=pdf_name, file=file).save(out_path)
