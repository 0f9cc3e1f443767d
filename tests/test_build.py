"""build.py: a wrong or missing third-party file stops the build with a sentence that names it.

The happy path (a real build, its manifest and its runtime stages) is what every other test runs
on; here the failure paths, with the network kept out (the official source counts as unreachable).
"""

import hashlib
import json
import os
import pathlib
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture
def build(build_script, tmp_path, monkeypatch):
    module = build_script  # tests/conftest.py
    monkeypatch.setattr(module, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(module, "_official_unreachable", True)
    return module


def fake_carrier(build, files):
    folder = build.CACHE / "carrier"
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / "carrier-1.0-py3-none-any.whl", "w") as z:
        for name, data in files.items():
            z.writestr(build.CARRIER_PREFIX + name, data)


def test_a_wheel_whose_hash_differs_from_the_lock_file_stops_the_build(build):
    fake_carrier(build, {"numpy-2.0.2-x.whl": b"not numpy"})
    expected = hashlib.sha256(b"numpy").hexdigest()
    with pytest.raises(build.BuildError) as error:
        build.fetch_pyodide_packages({"numpy": {"file_name": "numpy-2.0.2-x.whl", "sha256": expected}})
    message = str(error.value)
    assert "numpy-2.0.2-x.whl" in message and expected in message and "pyodide-lock.json expects" in message
    assert not list((build.CACHE / f"pyodide-packages-{build.PYODIDE_VERSION}").glob("*.whl"))


def test_a_missing_wheel_stops_the_build_and_says_where_to_put_it(build):
    fake_carrier(build, {})
    with pytest.raises(build.BuildError, match="neither reachable .* put a copy whose sha256 is"):
        build.fetch_pyodide_packages({"pillow": {"file_name": "pillow-10.2.0-x.whl", "sha256": "0" * 64}})


def test_a_cached_wheel_with_the_right_hash_is_used_without_fetching(build):
    folder = build.CACHE / f"pyodide-packages-{build.PYODIDE_VERSION}"
    folder.mkdir(parents=True)
    (folder / "numpy-2.0.2-x.whl").write_bytes(b"numpy")
    entry = {"file_name": "numpy-2.0.2-x.whl", "sha256": hashlib.sha256(b"numpy").hexdigest()}
    assert build.fetch_pyodide_packages({"numpy": entry}) == {"numpy-2.0.2-x.whl": folder / "numpy-2.0.2-x.whl"}


def test_an_unpinned_requirement_stops_the_build(build, tmp_path, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pydicom==3.0.2\nnibabel>=5\n")
    monkeypatch.setattr(build, "REQUIREMENTS", requirements)
    monkeypatch.setattr(build, "ROOT", tmp_path)
    with pytest.raises(build.BuildError, match="'nibabel>=5' is not pinned"):
        build.pinned_requirements()


def test_the_built_runtime_loads_pydicom_at_start_up_and_numpy_and_the_volume_readers_later():
    # tests/run.sh builds dist/ before the tests run.
    runtime = json.loads((ROOT / "dist" / "runtime.json").read_text())
    assert runtime["startup"]["packages"] == []
    assert set(runtime["later"]["packages"]) == {"numpy", "pillow", "packaging"}
    manifest = json.loads((ROOT / "dist" / "build-manifest.json").read_text())["sha256"]
    for stage in ("startup", "later"):
        for archive in runtime[stage]["archives"]:
            path = ROOT / "dist" / archive
            assert manifest[archive] == hashlib.sha256(path.read_bytes()).hexdigest()
    with zipfile.ZipFile(ROOT / "dist" / runtime["startup"]["archives"][0]) as z:
        names = z.namelist()
    assert any(n.startswith("pydicom/") for n in names)
    assert not any(n.startswith(("nibabel/", "numpy/")) for n in names)


def test_python_is_shipped_compiled_so_start_up_compiles_nothing():
    # Pyodide ships its standard library and numpy as sources: compiled at every start, they
    # cost seconds. build.py compiles them (and our code) once; tests/run.sh builds with Node.
    runtime = json.loads((ROOT / "dist" / "runtime.json").read_text())
    with zipfile.ZipFile(ROOT / "dist" / runtime["pyodide"]["stdlib"]) as z:
        stdlib = z.namelist()
    assert "json/__init__.pyc" in stdlib and "zipfile/__init__.pyc" in stdlib
    assert not [n for n in stdlib if n.endswith(".py")]
    with zipfile.ZipFile(ROOT / "dist" / runtime["startup"]["archives"][0]) as z:
        core = z.namelist()
    assert "pydicom/dataset.pyc" in core and "dcmstudio/api.pyc" in core
    assert not [n for n in core if n.endswith(".py")]
    with zipfile.ZipFile(ROOT / "dist" / runtime["later"]["archives"][0]) as z:
        later = z.namelist()
    # beside the sources Pyodide installs
    assert "numpy/__pycache__/__init__.cpython-312.pyc" in later and "PIL/__pycache__/Image.cpython-312.pyc" in later


def test_the_service_worker_is_at_the_root_and_named_after_this_build():
    # A new build is a new sw.js (its first line names the manifest's hash), so browsers replace
    # the old build's cache; the files it precaches are the manifest's, and the manifest is complete.
    dist = ROOT / "dist"
    manifest_bytes = (dist / "build-manifest.json").read_bytes()
    first_line = (dist / "sw.js").read_text().splitlines()[0]
    assert first_line == f'const BUILD = "{hashlib.sha256(manifest_bytes).hexdigest()[:16]}";'
    assert not (dist / "static" / "sw.js").exists()
    listed = set(json.loads(manifest_bytes)["sha256"])
    on_disk = {str(p.relative_to(dist)) for p in dist.rglob("*") if p.is_file()} - {"sw.js", "build-manifest.json"}
    assert listed == on_disk
    web_manifest = json.loads((dist / "static" / "manifest.webmanifest").read_text())
    for icon in web_manifest["icons"]:
        assert f"static/{icon['src']}" in listed


def test_bytecode_written_beside_the_sources_does_not_make_dist_stale(build, tmp_path, monkeypatch):
    """The unit tests import py/dcmstudio and leave __pycache__ there; the e2e server (build.py
    serve) must not rebuild dist/ for it, nor miss a changed source."""
    root = tmp_path / "repo"
    package = root / "py" / "dcmstudio"
    (package / "__pycache__").mkdir(parents=True)
    (root / "static").mkdir()
    (root / "dist").mkdir()
    (package / "edit.py").write_text("")
    manifest = root / "dist" / "build-manifest.json"
    manifest.write_text("{}")
    monkeypatch.setattr(build, "ROOT", root)
    monkeypatch.setattr(build, "DIST", root / "dist")
    monkeypatch.setattr(build, "APP_PACKAGE", package)
    monkeypatch.setattr(build, "REQUIREMENTS", root / "py" / "requirements.txt")
    built = manifest.stat().st_mtime
    later = (built + 10, built + 10)
    bytecode = package / "__pycache__" / "edit.cpython-311.pyc"
    bytecode.write_bytes(b"")
    os.utime(bytecode, later)
    assert not build.needs_build()
    os.utime(package / "edit.py", later)
    assert build.needs_build()
