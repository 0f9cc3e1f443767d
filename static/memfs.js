// Moving a finished output out of Pyodide's in-memory file system (MEMFS) without an extra copy.

// Returns the bytes of the file at `path` and deletes it. A file MEMFS wrote in one piece owns an
// exact-size buffer (an Int8Array sliced from the wasm heap), which is handed over as it is, ready
// to transfer; any other file is copied once.
export function takeFile(FS, path) {
  const node = FS.lookupPath(path).node;
  const { contents, usedBytes: size } = node;
  FS.unlink(path);
  if (!ArrayBuffer.isView(contents)) return Uint8Array.from(contents || []).slice(0, size);
  const bytes = new Uint8Array(contents.buffer, contents.byteOffset, size);
  return contents.byteOffset === 0 && contents.buffer.byteLength === size ? bytes : bytes.slice();
}
