// Job A (shared/peers) in the page's runtime once started: the series is already in MEMFS and
// described (the page did both when the files were opened) and the edits checked (as the page
// checks each one added); timed: the edit job over every file and its streamed ZIP, moved out
// of MEMFS as the worker does.   node bench/job_a_pyodide.mjs IN_DIR OUT_ZIP
import fs from "node:fs";
import path from "node:path";
import { JOB_A_EDITS as EDITS, startRuntime } from "./pyodide_runtime.mjs";

const [inDir, outZip] = process.argv.slice(2);

const { pyodide, call, take, heapBytes } = await startRuntime();
const names = fs.readdirSync(inDir).sort();
let largest = 0;
// Untimed, as the page does before an edit can run: opening a file puts it in MEMFS and
// describes it for the file list (worker.js ADD_FILES); adding an edit checks it (wb-edit.js).
for (const name of names) {
  const data = fs.readFileSync(path.join(inDir, name));
  largest = Math.max(largest, data.length);
  pyodide.FS.writeFile(`/in/${name}`, new Uint8Array(data.buffer, data.byteOffset, data.length));
  call("describe", { path: `/in/${name}`, name });
}
for (const edit of EDITS) call("check_edits", { edits: [edit] });
const heapBefore = heapBytes();
const t0 = performance.now();
const { job } = call("job_start", { kind: "edit", options: { edits: EDITS, zip_name: "a.zip" }, count: names.length });
const parts = [];
for (const name of names) parts.push(...take(call("job_step", { job, item: { path: `/in/${name}`, name } })));
parts.push(...take(call("job_finish", { job })));
const seconds = (performance.now() - t0) / 1000;
fs.writeFileSync(outZip, Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.length))));
console.log(JSON.stringify({ seconds, files: names.length, heap_before: heapBefore, heap_after: heapBytes(), largest_file: largest }));
