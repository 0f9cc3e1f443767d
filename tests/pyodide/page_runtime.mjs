// The page's Python in Node, loaded from dist/ as the worker loads it (static/stages.js): the
// start-up stage, dcmstudio.api imported, then the later stage (numpy and Pillow arrive after
// pydicom's import, and dcmstudio imports itself again). Shared by the Pyodide test run and the
// benchmarks that run in the page's runtime.
import fs from "node:fs";
import path from "node:path";
import { loadStage, loadLaterStage, pyodideOptions } from "../../static/stages.js";

export async function loadPageRuntime(dist) {
  const runtime = JSON.parse(fs.readFileSync(path.join(dist, "runtime.json"), "utf8"));
  const { loadPyodide } = await import(path.join(dist, runtime.pyodide.index, "pyodide.mjs"));
  // runtime.json's paths are relative to dist/; Pyodide wants its index folder with a final "/".
  const pyodide = await loadPyodide(pyodideOptions(runtime, (p) => path.join(dist, p) + (p.endsWith("/") ? "/" : "")));
  const archives = (stage) => stage.archives.map((a) => new Uint8Array(fs.readFileSync(path.join(dist, a))));
  await loadStage(pyodide, runtime.startup, archives(runtime.startup));
  pyodide.FS.mkdirTree("/in");
  pyodide.FS.mkdirTree("/out");
  const apiCall = await loadLaterStage(pyodide, runtime.later, archives(runtime.later),
    pyodide.pyimport("dcmstudio.api").call);
  return { pyodide, apiCall, runtime };
}
