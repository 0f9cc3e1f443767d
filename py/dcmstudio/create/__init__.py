"""Create DICOM objects: Secondary Capture, multi-frame SC, Encapsulated PDF, TID 1500 SR, GSPS.

One module per IOD family, in highdicom's manner: a builder class checks its inputs when it is
constructed (raising ``EditError``/``DicomStudioError`` sentences that name the field or element)
and ``save(out_path)`` writes a Part 10 file, re-reads its header and returns a plain report.
highdicom itself is not used: in Pyodide it imports only with a stand-in for ``_multiprocessing``
(which Pyodide removes) and the extra sqlite3 package, costs ~1.8 s to import there, and covers
neither multi-frame SC nor Encapsulated PDF.

Every object is UTF-8 (ISO_IR 192), Explicit VR Little Endian, with UIDs ``2.25.<uuid>``.
"""

from dcmstudio.create.base import PATIENT_KEYWORDS, STUDY_KEYWORDS, PatientStudy, patient_study_from
from dcmstudio.create.document import create_encapsulated_pdf
from dcmstudio.create.pr import create_gsps
from dcmstudio.create.sc import (
    create_multiframe,
    create_multiframe_from_volume,
    create_secondary_capture,
)
from dcmstudio.create.sr import create_measurement_report, measurement_report_choices

__all__ = [
    "PATIENT_KEYWORDS", "STUDY_KEYWORDS", "PatientStudy", "patient_study_from",
    "create_secondary_capture", "create_multiframe", "create_multiframe_from_volume",
    "create_encapsulated_pdf", "create_measurement_report", "measurement_report_choices",
    "create_gsps",
]
