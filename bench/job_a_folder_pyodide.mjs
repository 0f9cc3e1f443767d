// Job A as a folder save in the page's runtime: each step gets only the file's head (as the
// worker fetches it for a job that reads heads) and answers with the edited head and a
// reference to the opened file's pixel data.   node bench/job_a_folder_pyodide.mjs IN_DIR
import fs from "node:fs";
import path from "node:path";
import { JOB_A_EDITS as EDITS, startRuntime } from "./pyodide_runtime.mjs";

const [inDir] = process.argv.slice(2);
const HEAD_BYTES = 64 * 1024;

const { pyodide, call } = await startRuntime();
const names = fs.readdirSync(inDir).sort();
pyodide.FS.mkdirTree("/heads");
for (const name of names) {
  const data = fs.readFileSync(path.join(inDir, name));
  pyodide.FS.writeFile(`/in/${name}`, new Uint8Array(data.buffer, data.byteOffset, data.length));
}
for (const edit of EDITS) call("check_edits", { edits: [edit] });
const t0 = performance.now();
const { job, reads } = call("job_start", { kind: "edit", options: { edits: EDITS, container: "files", key: "00" }, count: names.length });
let python = 0;
for (const [i, name] of names.entries()) {
  const head = `/heads/${i}`;
  pyodide.FS.writeFile(head, pyodide.FS.readFile(`/in/${name}`).subarray(0, HEAD_BYTES));
  const s = performance.now();
  const step = call("job_step", { job, item: { path: `/in/${name}`, name, index: i + 1, member: name, head } });
  python += performance.now() - s;
  for (const chunk of step.chunks || []) if (chunk.path) pyodide.FS.unlink(chunk.path);
}
call("job_finish", { job });
console.log(JSON.stringify({ reads, seconds: (performance.now() - t0) / 1000, python_s: python / 1000, files: names.length }));
