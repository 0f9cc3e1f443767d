"""De-identification to DICOM PS3.15 Annex E, file by file, consistent across everything loaded.

A :class:`Deidentifier` holds one job: the chosen options, a key derived from the user's secret,
and what the job has met so far (patients, UIDs, identifying values). For each file it walks the
bytes (:mod:`dcmstudio.elements`), decides every element's action from Table E.1-1 of the pinned
edition (:mod:`dcmstudio.deid.profile`), turns those decisions into byte-level edits and lets
:func:`dcmstudio.edit.edit_bytes` make them: the output differs from the input only where the
profile asked, and the editor proves it. Pixels change only where the user masked them (Clean
Pixel Data Option).

Consistency: a new UID is ``2.25.`` + HMAC(key, old UID), a patient's pseudonym and date offset
are HMACs of the patient's original ID, so the same inputs and the same secret give the same bytes
in every session. Without a secret the key is random: consistent within the job only.

Identifying values (names down to single ideographs, IDs, dates, UIDs, addresses) are learned
from every file of a job before the first output when the caller allows a first pass
(:meth:`Deidentifier.learn_file`; the page's task always does), else from every file seen so far.
They are scrubbed from free text that is cleaned, and after each file a residual scan looks for
them in the preamble, the file meta group, every remaining value (private, nested, UN, decoded in
the file's character set) and the output's file name.

PS3.15 E.1.1 item 7 beyond the table: the preamble is zeroed (a TIFF dual-personality file is
refused), the File Meta Information loses its AE titles and private information. A tag repeated
in one dataset keeps only its last copy, de-identified. X/Z-type actions resolve by the
attribute's Type in the object's IOD (:mod:`dcmstudio.iod`).

Beyond the table (each is said in the report): instance UIDs the table does not list are
replaced too, so references keep pointing at the right instance; standard-group elements that
pydicom's dictionary does not know are removed; free text inside a sequence whose action is D
becomes a dummy, inside one whose action is C it is cleaned of the identifying values learned.

The package, one concept per module: :mod:`~dcmstudio.deid.profile` (the table),
:mod:`~dcmstudio.deid.options`, :mod:`~dcmstudio.deid.keys`, :mod:`~dcmstudio.deid.job` (the
:class:`Deidentifier`), :mod:`~dcmstudio.deid.plan` (one file's actions),
:mod:`~dcmstudio.deid.identifiers`, :mod:`~dcmstudio.deid.residual` (the scan),
:mod:`~dcmstudio.deid.preamble`, :mod:`~dcmstudio.deid.private`,
:mod:`~dcmstudio.deid.dates`, :mod:`~dcmstudio.deid.pixels`, :mod:`~dcmstudio.deid.burned_in`,
:mod:`~dcmstudio.deid.mapping`, :mod:`~dcmstudio.deid.dummies`, :mod:`~dcmstudio.deid.tags`.
"""

from dcmstudio.deid.job import Deidentifier, Patient, preview, profile_info
from dcmstudio.deid.keys import derive_key
from dcmstudio.deid.options import OPTION_DEFAULTS, DeidOptions

__all__ = ["Deidentifier", "DeidOptions", "OPTION_DEFAULTS", "Patient", "derive_key", "preview",
           "profile_info"]
