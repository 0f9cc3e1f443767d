// Validating a series in the page's runtime once started: the files are already in MEMFS (the
// page put them there when they were opened); timed: the "validate" job over every file, as the
// worker runs it (one step per file, JSON in and out), and its two reports moved out of MEMFS.
//   node bench/validate_pyodide.mjs IN_DIR   (Job A's 300 CT files: ~/.cache/dcmstudio/bench-data/D1)
import fs from "node:fs";
import path from "node:path";
import { startRuntime } from "./pyodide_runtime.mjs";

const [inDir] = process.argv.slice(2);
const { pyodide, call, take } = await startRuntime();
const names = fs.readdirSync(inDir).sort();
for (const name of names) {
  const data = fs.readFileSync(path.join(inDir, name));
  pyodide.FS.writeFile(`/in/${name}`, new Uint8Array(data.buffer, data.byteOffset, data.length));
}
pyodide.runPython("import dcmstudio.validate"); // the page imports it on first use: a one-off cost
// Wall time, and the CPU time this process used (the machine may be shared: CPU time is what the
// work costs when it has a core to itself).
const runs = [];
const cpu = [];
let summary = null;
for (let run = 0; run < 3; run++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const { job } = call("job_start", { kind: "validate", options: { report_stem: "bench" }, count: names.length });
  for (const name of names) call("job_step", { job, item: { path: `/in/${name}`, name } });
  const finished = call("job_finish", { job });
  take(finished);
  runs.push((performance.now() - t0) / 1000);
  const used = process.cpuUsage(c0);
  cpu.push((used.user + used.system) / 1e6);
  summary = finished.summary;
}
console.log(JSON.stringify({ files: names.length, seconds: runs, cpu_seconds: cpu, summary }));
