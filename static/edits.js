// Pending edits: made in the Tags tree or the Edit workbench, reviewed and undone before they run.
// An edit is the plain dict dcmstudio.edit understands: { op, path, value?, vr? }.

export class PendingEdits {
  constructor() {
    this.list = [];
    this.listeners = [];
  }

  onChange(listener) {
    this.listeners.push(listener);
  }

  changed() {
    for (const listener of this.listeners) listener(this.list);
  }

  // A new edit of the same path and op replaces the older one, so editing twice is one change.
  add(edit) {
    const i = this.list.findIndex((e) => e.path === edit.path && e.op === edit.op && edit.op !== "remap_uids");
    if (i >= 0) this.list.splice(i, 1);
    if (edit.op === "remap_uids" && this.list.some((e) => e.op === "remap_uids")) return;
    this.list.push(edit);
    this.changed();
  }

  remove(index) {
    this.list.splice(index, 1);
    this.changed();
  }

  undo() {
    this.list.pop();
    this.changed();
  }

  replace(edits) {
    this.list = [...edits];
    this.changed();
  }

  // The pending edit of one element, if any (shown in the tree as the new value).
  forPath(path) {
    return this.list.find((e) => e.path === path && e.op !== "remap_uids");
  }
}

// One line that says what an edit does, for lists and screen readers.
export function describeEdit(edit) {
  switch (edit.op) {
    case "set": return `Set ${edit.path} to “${Array.isArray(edit.value) ? edit.value.join("\\") : edit.value}”`;
    case "add": return `Add ${edit.path}${edit.vr ? ` (${edit.vr})` : ""} = “${edit.value ?? ""}”`;
    case "delete": return `Delete ${edit.path}`;
    case "remap_uids": return "Replace every instance UID by a new one, consistently across the files";
    default: return JSON.stringify(edit);
  }
}
