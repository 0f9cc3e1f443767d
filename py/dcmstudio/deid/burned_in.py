"""Whether a file may carry text in its pixels (PS3.15 E.3.1): the flag each report shows."""

from dcmstudio.deid.tags import BURNED_IN_ANNOTATION, MODALITY, PIXEL_DATA, SOP_CLASS_UID

# Modalities whose images often carry burned-in text (PS3.15 E.3.1), and the SOP classes of
# Secondary Capture, whose pixels are screenshots more often than not.
BURNED_IN_MODALITIES = {"US": "ultrasound", "XA": "X-ray angiography", "ES": "endoscopy",
                        "SC": "secondary capture", "OT": "other (often screenshots)"}
SECONDARY_CAPTURE_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.7"


def assess(text_of, top):
    """``{"flag", "burned_in_annotation", "reasons"}`` for one file, from its top-level elements
    ``top`` (``{tag: node}``) read with ``text_of(node)``."""
    reasons = []
    burned_in = text_of(top.get(BURNED_IN_ANNOTATION)).upper()
    if burned_in == "YES":
        reasons.append("(0028,0301) Burned In Annotation is YES")
    modality = text_of(top.get(MODALITY)).upper()
    if modality in BURNED_IN_MODALITIES and burned_in != "NO":
        reasons.append(f"modality {modality} ({BURNED_IN_MODALITIES[modality]}) often has "
                       f"text in its pixels")
    sop_class = text_of(top.get(SOP_CLASS_UID))
    if sop_class.startswith(SECONDARY_CAPTURE_CLASS_PREFIX) and burned_in != "NO":
        reasons.append("a Secondary Capture image: often a screenshot with text")
    if PIXEL_DATA not in top:
        reasons = []
    return {"flag": bool(reasons), "burned_in_annotation": burned_in or None,
            "reasons": reasons}

