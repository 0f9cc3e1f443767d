#!/usr/bin/env bash
# Runs every test: tests/unit (CPython), the same unit tests inside Pyodide (Node), tests/e2e
# (Chromium). Sets up what it needs on a fresh machine: a venv with the pinned test packages under
# the cache folder, the Pyodide test wheels, and dist/ (build.py). Needs python3, node and npm;
# .ci/run installs Chromium and the DICOM judges (dcmtk, dicom3tools, dcm2niix).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${DCMSTUDIO_CACHE:-$HOME/.cache/dcmstudio}
venv=$cache/test-venv
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
wheels=$cache/pyodide-test-wheels
mkdir -p "$wheels"
"$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  -d "$wheels" -r tests/pyodide/requirements.txt
"$venv/bin/python" build.py
exec "$venv/bin/python" -m pytest tests "$@"
