// bench/describe_head.py in the page's runtime once started (dist/ from build.py): the folder's
// files in MEMFS, each described from its 64 KiB head by pydicom's path and by the fast path.
//   node bench/describe_head_pyodide.mjs FOLDER
import fs from "node:fs";
import path from "node:path";
import { root, startRuntime } from "./pyodide_runtime.mjs";

const [folder] = process.argv.slice(2);
const { pyodide } = await startRuntime();
pyodide.FS.mkdirTree("/in");
for (const name of fs.readdirSync(folder).sort()) {
  const data = fs.readFileSync(path.join(folder, name));
  pyodide.FS.writeFile(`/in/${name}`, new Uint8Array(data.buffer, data.byteOffset, data.length));
}
pyodide.FS.writeFile("/tmp/describe_head.py", fs.readFileSync(path.join(root, "bench", "describe_head.py")));
console.log(pyodide.runPython("import sys; sys.path.insert(0, '/tmp'); import describe_head; describe_head.main('/in')"));
