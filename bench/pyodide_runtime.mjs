// The page's Python runtime in Node: dist/'s Pyodide, its bundle and dcmstudio.api, nothing else.
// Shared by the benchmarks that run "in the page's runtime once started".
import path from "node:path";
import { fileURLToPath } from "node:url";
import { takeFile } from "../static/memfs.js";
import { loadPageRuntime } from "../tests/pyodide/page_runtime.mjs";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

// Job A's five edits (../shared/peers/edits.py; bench/e2e.py has the same list).
export const JOB_A_EDITS = [
  { op: "set", path: "PatientName", value: "Anonymous^Edited" },
  { op: "set", path: "PatientID", value: "ANON-000123-EDITED" },
  { op: "set", path: "StudyDescription", value: "CT CHEST WITH CONTRAST - RESEARCH EDIT (BENCH)" },
  { op: "delete", path: "(0009,1002)" },
  { op: "set", path: "(0040,0275)[0].(0040,1001)", value: "RP-EDITED-42" },
];

export async function startRuntime() {
  const { pyodide, apiCall } = await loadPageRuntime(path.join(root, "dist"));
  const call = (fn, args) => {
    const result = JSON.parse(apiCall(fn, JSON.stringify(args)));
    if (!result.ok) throw new Error(`${fn}: ${result.error.message}`);
    return result;
  };
  // As worker.js does: move a result's streamed chunks (one download) and its whole-file outputs
  // out of MEMFS. Returns the chunks' bytes in order; `outputs` collects the other files by name.
  // A part that refers to a stretch of an opened file is, as the page's File.slice, a view of
  // that file's bytes (here: its MEMFS copy), not a copy.
  const outputs = {};
  const take = (result) => {
    for (const output of result.outputs || []) outputs[output.name] = takeFile(pyodide.FS, output.path);
    return (result.chunks || []).map((chunk) => (chunk.source !== undefined
      ? pyodide.FS.lookupPath(chunk.source).node.contents.subarray(chunk.offset, chunk.offset + chunk.length)
      : takeFile(pyodide.FS, chunk.path)));
  };
  const heapBytes = () => pyodide._module.HEAP8.length;
  return { pyodide, call, take, outputs, heapBytes };
}
