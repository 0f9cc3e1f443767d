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

After each file, a residual scan looks for the original identifying values (names, IDs, dates,
UIDs, addresses) of every file seen so far in every remaining value, private and nested ones
included, and in the output's file name.

Beyond the table (each is said in the report): instance UIDs the table does not list are
replaced too, so references keep pointing at the right instance; standard-group elements that
pydicom's dictionary does not know are removed; text inside sequences whose action is D or C is
cleaned of the identifying values seen.

The package, one concept per module: :mod:`~dcmstudio.deid.profile` (the table),
:mod:`~dcmstudio.deid.options`, :mod:`~dcmstudio.deid.keys`, :mod:`~dcmstudio.deid.job` (the
:class:`Deidentifier`), :mod:`~dcmstudio.deid.plan` (one file's actions),
:mod:`~dcmstudio.deid.identifiers`, :mod:`~dcmstudio.deid.residual` (the scan),
:mod:`~dcmstudio.deid.dates`, :mod:`~dcmstudio.deid.pixels`, :mod:`~dcmstudio.deid.burned_in`,
:mod:`~dcmstudio.deid.mapping`, :mod:`~dcmstudio.deid.dummies`, :mod:`~dcmstudio.deid.tags`.
"""

from dcmstudio.deid.job import Deidentifier, Patient, preview, profile_info
from dcmstudio.deid.keys import derive_key
from dcmstudio.deid.options import OPTION_DEFAULTS, DeidOptions

__all__ = ["Deidentifier", "DeidOptions", "OPTION_DEFAULTS", "Patient", "derive_key", "preview",
           "profile_info"]
