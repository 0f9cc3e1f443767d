// Runs tests/unit inside Pyodide (Node), on the dist/ that build.py made: the page's own runtime,
// wheels and dcmstudio archive, plus pytest and pydicom's bundled test files for the tests.
//   node tests/pyodide/run.mjs [pytest args...]
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { SITE_PACKAGES as SITE } from "../../static/stages.js";
import { loadPageRuntime } from "./page_runtime.mjs";
import { installCodecs } from "../../static/codecs.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const dist = path.join(root, "dist");
const cache = process.env.DCMSTUDIO_CACHE || path.join(process.env.HOME, ".cache", "dcmstudio");
const testWheels = path.join(cache, "pyodide-test-wheels");

// Exactly what the page loads, in its order.
const { pyodide, runtime } = await loadPageRuntime(dist);
const unpack = (file) => pyodide.unpackArchive(new Uint8Array(fs.readFileSync(file)), "zip", { extractDir: SITE });
// The page's wasm codecs, kept aside as Python module `page_wasm_codecs` for the tests that
// register them (test_codecs.py's `wasm_codecs`); registered for all, they would change what the
// other tests expect. Their emscripten loaders take the Node branch here, which wants CommonJS's
// require and __dirname, and Node's fetch reads no files.
globalThis.require = createRequire(import.meta.url);
globalThis.__dirname = path.join(dist, "codecs");
const webFetch = globalThis.fetch;
globalThis.fetch = async (url, ...rest) => {
  if (new URL(url).protocol !== "file:") return webFetch(url, ...rest);
  return new Response(fs.readFileSync(new URL(url)), { headers: { "content-type": "application/wasm" } });
};
const wasm = { decoders: new Map(), encoders: new Map(), unavailable: new Map() };
await installCodecs(pyodide, pathToFileURL(dist + "/"), runtime.codecs, {
  register_decoder: (ts, fn) => wasm.decoders.set(ts, fn),
  register_encoder: (ts, fn) => wasm.encoders.set(ts, fn),
  register_unavailable: (ts, reason) => wasm.unavailable.set(ts, reason),
});
pyodide.registerJsModule("page_wasm_codecs", wasm);
// pytest for the run, and pydicom's test files and SR dictionaries, which the page's pydicom leaves out.
for (const wheel of fs.readdirSync(testWheels)) {
  if (wheel.startsWith("pydicom-")) {
    pyodide.FS.writeFile("/tmp/pydicom.whl", new Uint8Array(fs.readFileSync(path.join(testWheels, wheel))));
    pyodide.runPython(`
import zipfile
with zipfile.ZipFile("/tmp/pydicom.whl") as z:
    z.extractall("${SITE}", [n for n in z.namelist() if n.startswith(("pydicom/data/test_files/", "pydicom/sr/"))])
`);
  } else {
    unpack(path.join(testWheels, wheel));
  }
}

pyodide.FS.mkdirTree("/repo/tests");
pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: path.join(root, "tests") }, "/repo/tests");
const args = process.argv.slice(2);
pyodide.globals.set("pytest_args", pyodide.toPy(args.length ? args : ["/repo/tests/unit"]));
// The tests' own settings (DCMSTUDIO_HOSTILE_FUZZ_N ...) reach them here too.
pyodide.globals.set("host_settings", pyodide.toPy(Object.fromEntries(
  Object.entries(process.env).filter(([name]) => name.startsWith("DCMSTUDIO_")))));
const code = await pyodide.runPythonAsync(`
import os, sys, pytest
os.environ.update(host_settings)
os.environ["DCMSTUDIO_IN_PYODIDE"] = "1"
sys.exit_code = pytest.main(["-q", "-p", "no:cacheprovider", "-o", "addopts=", *pytest_args])
int(sys.exit_code)
`);
process.exit(code);
