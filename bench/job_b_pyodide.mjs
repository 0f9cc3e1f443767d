// Job B (shared/peers) in the page's runtime once started, the page's way: the volume is opened
// (volume_open, previews included) then written by the write_series job, its ZIP streamed out of
// MEMFS as the worker does.   node bench/job_b_pyodide.mjs D2.nii OUT_ZIP
import fs from "node:fs";
import { startRuntime } from "./pyodide_runtime.mjs";

const [source, outZip] = process.argv.slice(2);
const { pyodide, call, take, heapBytes } = await startRuntime();
const data = fs.readFileSync(source);
pyodide.FS.mkdirTree("/volume");
pyodide.FS.writeFile("/volume/D2.nii", new Uint8Array(data.buffer, data.byteOffset, data.length));
pyodide.runPython("import nibabel"); // the page imports it on first use; a one-off cost, not the job's
const heapBefore = heapBytes();
const t0 = performance.now();
const opened = call("volume_open", { paths: ["/volume/D2.nii"] });
take(opened);
const t1 = performance.now();
const options = { options: { modality: "CT" }, zip_name: "D2.zip" };
const { plan } = call("volume_plan", { options: options.options });
const { job } = call("job_start", { kind: "write_series", options, count: plan.file_count });
const parts = [];
for (let i = 0; i < plan.file_count; i++) parts.push(...take(call("job_step", { job, item: { name: String(i) } })));
parts.push(...take(call("job_finish", { job })));
const t2 = performance.now();
fs.writeFileSync(outZip, Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.length))));
console.log(JSON.stringify({ seconds: (t2 - t0) / 1000, open_seconds: (t1 - t0) / 1000, write_seconds: (t2 - t1) / 1000,
  heap_before: heapBefore, heap_after: heapBytes(), volume_bytes: opened.volume.bytes }));
