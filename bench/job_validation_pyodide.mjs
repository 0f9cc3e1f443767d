// bench/job_validation.py in the page's runtime: the files are put in MEMFS first (as the page
// does when they are opened), then each job runs with and without the check.
//   node bench/job_validation_pyodide.mjs IN_DIR [FILES]
import fs from "node:fs";
import path from "node:path";
import { root, startRuntime } from "./pyodide_runtime.mjs";

const [inDir, count] = process.argv.slice(2);
const { pyodide } = await startRuntime();
for (const name of fs.readdirSync(inDir).sort().slice(0, count ? Number(count) : undefined)) {
  const data = fs.readFileSync(path.join(inDir, name));
  pyodide.FS.writeFile(`/in/${name}`, new Uint8Array(data.buffer, data.byteOffset, data.length));
}
const source = fs.readFileSync(path.join(root, "bench", "job_validation.py"), "utf8");
pyodide.runPython(source.slice(0, source.lastIndexOf("\nif __name__")));  // all but the command line
console.log(pyodide.runPython("import json; json.dumps(measure('/in'), indent=1)"));
