// The page's Python runtime in Node: dist/'s Pyodide, its bundle and dcmstudio.api, nothing else.
// Shared by the benchmarks that run "in the page's runtime once started".
import path from "node:path";
import { fileURLToPath } from "node:url";
import { takeFile } from "../static/memfs.js";
import { loadPageRuntime } from "../tests/pyodide/page_runtime.mjs";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export async function startRuntime() {
  const { pyodide, apiCall } = await loadPageRuntime(path.join(root, "dist"));
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
