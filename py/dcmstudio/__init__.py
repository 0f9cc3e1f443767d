"""dcmstudio: a DICOM workbench whose logic runs both in Pyodide (the page) and in CPython.

Each module holds one DICOM concept; ``dcmstudio.api`` is the only boundary the web worker calls.
Nothing in this package imports ``js`` or ``pyodide``.
"""

__version__ = "0.1.0"
