"""The page's start-up in two stages, and what the second stage changes in Python.

The page starts Python with what opening and inspecting files needs (pydicom and dcmstudio), says
it is ready, and only then loads numpy, Pillow and the volume readers (``build.py``: the *later*
stage). numpy is half of the start-up on its own: its wasm libraries are compiled and some 170 of
its modules imported.

pydicom decides when it is imported whether numpy exists, in some twenty modules
(``pydicom.config.have_numpy``, each handler's and decoder's ``HAVE_NP``, the decoding plugins it
registers). Setting those flags afterwards would have to follow pydicom's every release. So once
numpy is installed, pydicom and dcmstudio are imported again from scratch, which gives exactly the
modules a start with numpy gives. Nothing of the first import is kept: it held only caches of
inspected files, since every request that keeps state (jobs, views, volumes) waits for the later
stage (``static/worker.js``).
"""

import importlib
import sys

# The packages imported before numpy arrived, and imported again after.
IMPORTED_AGAIN = ("pydicom", "dcmstudio")

# What the later stage brings. While it loads, a file is written before its wasm library is loaded:
# an import then would fail half-way and leave broken modules behind.
LATER_STAGE = ("numpy", "PIL")


class _HoldBack:
    """A finder that refuses to import the later stage's packages until they are all there."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in LATER_STAGE:
            raise ImportError(f"{name} is still loading", name=name)
        return None


_holding_back = _HoldBack()


def hold_back_later_stage():
    """Make ``import numpy`` (and Pillow) fail cleanly until :func:`import_again_with_numpy`.

    The page calls this before it loads the later stage, so that a file inspected meanwhile sees
    no numpy, as at start-up, rather than a half-installed one.
    """
    if _holding_back not in sys.meta_path:
        sys.meta_path.insert(0, _holding_back)


def import_again_with_numpy():
    """Import pydicom and dcmstudio again if numpy has been installed since they were imported.

    Whoever holds a function of the old modules (the worker's ``dcmstudio.api.call``) must take it
    again from ``sys.modules``.

    Returns
    -------
    bool
        True if they were imported again; False if pydicom already uses numpy, or numpy is still
        not installed.
    """
    import pydicom.config

    while _holding_back in sys.meta_path:
        sys.meta_path.remove(_holding_back)
    if pydicom.config.have_numpy:
        return False
    importlib.invalidate_caches()  # numpy's files were written after the import system looked
    try:
        import numpy  # noqa: F401  (as pydicom looks for it)
    except ImportError:
        return False
    for name in [name for name in sys.modules if name.split(".")[0] in IMPORTED_AGAIN]:
        del sys.modules[name]
    importlib.import_module("dcmstudio.api")
    return True
