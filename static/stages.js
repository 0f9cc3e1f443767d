// Loading the page's Python in the two stages runtime.json names (see build.py): `startup`, what
// opening and inspecting a file needs, and `later`, loaded once Python is ready. Shared by the
// worker and by the Node runners in tests/ and bench/, so they load exactly what the page loads.

export const SITE_PACKAGES = "/lib/python3.12/site-packages";

// loadPyodide's options for this build. `resolve` turns a path relative to dist/ into a URL (or a
// file path in Node). Pyodide ships its standard library as sources, which it would compile at
// every start: build.py compiles it once, and the page loads that copy.
export function pyodideOptions(runtime, resolve) {
  const options = { indexURL: resolve(runtime.pyodide.index) };
  if (runtime.pyodide.stdlib) options.stdLibURL = resolve(runtime.pyodide.stdlib);
  return options;
}

// Loads one stage: its Pyodide packages, and its archives (zips of Python files) unpacked into
// site-packages. `archives` holds the archives' bytes or promises of them, so that the caller can
// start fetching before Pyodide is up.
export async function loadStage(pyodide, stage, archives) {
  // loadPackage does not reject when a package fails: it reports through errorCallback.
  const errors = [];
  const packages = pyodide.loadPackage(stage.packages,
    { messageCallback: () => {}, errorCallback: (e) => errors.push(e) });
  for (const bytes of await Promise.all(archives)) {
    pyodide.unpackArchive(bytes, "zip", { extractDir: SITE_PACKAGES });
  }
  await packages;
  // loadedPackages is keyed by the lock file's spelling ("Pillow"), runtime.json by the file's.
  const loaded = new Set(Object.keys(pyodide.loadedPackages).map((name) => name.toLowerCase()));
  const missing = stage.packages.filter((name) => !loaded.has(name.toLowerCase()));
  if (missing.length) throw new Error(`${missing.join(", ")} did not load: ${errors.join(" ") || "no reason given"}`);
}

// Loads the `later` stage and tells dcmstudio it has arrived. Python keeps serving requests while
// it loads, so until then dcmstudio refuses to import numpy and Pillow (their files are written
// before their wasm libraries are loaded). pydicom decided at import, before numpy and Pillow were
// there, what it can do; with numpy, dcmstudio imports itself and pydicom again
// (dcmstudio/startup.py), and `apiCall`, a function of the old module, must be taken again.
// Returns the `apiCall` to use from now on; throws if the stage or the announcement failed.
export async function loadLaterStage(pyodide, stage, archives, apiCall) {
  answerOf(apiCall("later_stage_loading", "{}"));
  await loadStage(pyodide, stage, archives);
  const answer = answerOf(apiCall("later_stage_loaded", "{}"));
  if (!answer.imported_again) return apiCall;
  apiCall.destroy();
  return pyodide.pyimport("dcmstudio.api").call;
}

function answerOf(json) {
  const answer = JSON.parse(json);
  if (!answer.ok) throw new Error(answer.error.message);
  return answer;
}
