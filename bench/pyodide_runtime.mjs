// The page's Python runtime in Node: dist/'s Pyodide, its bundle and dcmstudio.api, nothing else.
// Shared by the benchmarks that run "in the page's runtime once started".
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { takeFile } from "../static/memfs.js";
import { loadStage, announceLaterStage, pyodideOptions } from "../static/stages.js";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export async function startRuntime() {
  const dist = path.join(root, "dist");
  const runtime = JSON.parse(fs.readFileSync(path.join(dist, "runtime.json"), "utf8"));
  const { loadPyodide } = await import(path.join(dist, runtime.pyodide.index, "pyodide.mjs"));
  const pyodide = await loadPyodide(pyodideOptions(runtime, (p) => path.join(dist, p) + (p.endsWith("/") ? "/" : "")));
  // Both stages, in the page's order (see static/stages.js).
  const archives = (stage) => stage.archives.map((a) => new Uint8Array(fs.readFileSync(path.join(dist, a))));
  await loadStage(pyodide, runtime.startup, archives(runtime.startup));
  pyodide.FS.mkdirTree("/in");
  pyodide.FS.mkdirTree("/out");
  const apiCall = pyodide.pyimport("dcmstudio.api").call;
  await loadStage(pyodide, runtime.later, archives(runtime.later));
  announceLaterStage(apiCall);
  const call = (fn, args) => {
    const result = JSON.parse(apiCall(fn, JSON.stringify(args)));
    if (!result.ok) throw new Error(`${fn}: ${result.error.message}`);
    return result;
  };
  // As worker.js does: move a result's streamed chunks (one download) and its whole-file outputs
  // out of MEMFS. Returns the chunks' bytes in order; `outputs` collects the other files by name.
  const outputs = {};
  const take = (result) => {
    for (const output of result.outputs || []) outputs[output.name] = takeFile(pyodide.FS, output.path);
    return (result.chunks || []).map((chunk) => takeFile(pyodide.FS, chunk.path));
  };
  const heapBytes = () => pyodide._module.HEAP8.length;
  return { pyodide, call, take, outputs, heapBytes };
}
