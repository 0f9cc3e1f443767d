"""Private elements under the Retain Safe Private Option (PS3.15 E.3.10): which are safe to keep."""

from pydicom.datadict import private_dictionary_VR

from dcmstudio.deid.tags import BINARY_NUMBER_VRS, NUMERIC_TEXT


def is_safe(node, creator, data, declared_safe):
    """Whether a private element may stay: declared safe by the user, or holding numbers only
    (PS3.15 E.3.10, note 2).

    Parameters
    ----------
    node : dcmstudio.elements.Element
        The private element (not its creator).
    creator : str
        Its block's Private Creator.
    data : bytes-like
        The walked file.
    declared_safe : set of (int, str, int)
        ``(group, creator, element byte)`` the user declared safe.
    """
    group, element = node.tag >> 16, node.tag & 0xFF
    if (group, creator, element) in declared_safe:
        return True
    if node.children is not None:
        return False
    vr = node.vr if not node.encoding.implicit_vr else None
    if vr in (None, "UN"):
        try:
            vr = private_dictionary_VR(node.tag, creator)
        except KeyError:
            return False
    if vr in BINARY_NUMBER_VRS:
        return True
    if vr in ("IS", "DS"):
        raw = bytes(data[node.value_offset:node.value_offset + node.length])
        try:
            parts = raw.decode("ascii").split("\\")
        except UnicodeDecodeError:
            return False
        return all(NUMERIC_TEXT.fullmatch(p) for p in parts)
    return False
