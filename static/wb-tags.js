// The Tags workbench: every element of the selected file as a foldable tree, search, copy, export.
// The tree is one Tab stop: arrows move between rows and fold, Enter edits a value, Delete deletes
// the element, Ctrl+C copies its value (the row's buttons do the same for a pointer).
import { button, el, plural } from "./dom.js";
import { Workbench } from "./workbench.js";

// Values shown as a byte preview: not edited by typing.
const BULK_VRS = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "UN"]);

export class TagsWorkbench extends Workbench {
  id = "tags";
  title = "Tags";

  constructor(app) {
    super(app);
    this.file = null;
    this.tree = null;
    this.collapsed = new Set();
    this.matches = [];
    this.current = -1;
  }

  mount(panel) {
    this.app.edits.onChange(() => this.render());
    this.fileSelect = el("select", { id: "tags-file" });
    this.fileSelect.addEventListener("change", () => this.show(this.app.files.get(this.fileSelect.value)));
    this.search = el("input", { type: "search", id: "tags-search", autocomplete: "off",
      placeholder: "Search keyword, tag (0010,0010) or value" });
    this.searchInfo = el("span", { className: "search-info", id: "tags-search-info" });
    this.search.addEventListener("input", () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => this.runSearch(), 150);
    });
    this.search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); this.step(event.shiftKey ? -1 : 1); }
      if (event.key === "Escape") { this.search.value = ""; this.runSearch(); }
    });
    const exportText = button("Download text dump", () => this.export("export_text"), { id: "tags-export-text" });
    const exportJson = button("Download DICOM JSON", () => this.export("export_json"), { id: "tags-export-json" });
    const expand = button("Expand all", () => { this.collapsed.clear(); this.render(); }, { className: "small" });
    const collapse = button("Collapse all", () => { this.collapseAll(); this.render(); }, { className: "small" });
    const fileLabel = el("label", { htmlFor: "tags-file", textContent: "File" });
    const searchLabel = el("label", { htmlFor: "tags-search", textContent: "Search", className: "visually-hidden" });
    this.header = el("div", { className: "file-header" });
    this.body = el("div", { className: "tag-tree", role: "tree" });
    // Column heads for sighted readers; each tree item reads out its own cells.
    this.columnHeads = el("div", { className: "el column-heads" }, el("span"),
      ...[["tag", "Tag"], ["name", "Name"], ["vr", "VR"], ["vm", "VM"], ["len", "Length"], ["value", "Value"]]
        .map(([className, textContent]) => el("span", { className, textContent })));
    this.columnHeads.setAttribute("aria-hidden", "true");
    this.columnHeads.style.setProperty("--depth", 0);
    this.body.setAttribute("aria-label", "Elements of the selected file");
    this.body.addEventListener("keydown", (event) => this.onKey(event));
    this.body.addEventListener("focusin", (event) => {
      const row = event.target.closest?.("[role=treeitem]");
      if (row) this.rove(row);
    });
    this.empty = el("p", { className: "empty",
      textContent: "Open DICOM files, then pick one at left to see every element." });
    panel.append(
      el("div", { className: "toolbar" }, fileLabel, this.fileSelect, searchLabel, this.search, this.searchInfo,
        el("span", { className: "spacer" }), expand, collapse, exportText, exportJson),
      this.header, this.empty, this.body);
    this.controls = [exportText, exportJson, this.search, this.fileSelect, expand, collapse];
    this.enable(false);
  }

  enable(on) {
    for (const c of this.controls) c.disabled = !on;
  }

  selectionChanged() {
    const files = this.selection.files;
    this.fileSelect.replaceChildren(...files.slice(0, 2000)
      .map((f) => el("option", { value: f.key, textContent: f.name })));
    this.enable(files.length > 0);
    if (files.length) this.show(files[0]);
  }

  async show(file) {
    if (!file) return;
    this.file = file;
    this.fileSelect.value = file.key;
    this.header.textContent = `Loading ${file.name}…`;
    const result = await this.app.python.call("tree", { path: file.path, name: file.name });
    if (this.file !== file) return; // another file was picked meanwhile
    if (!result.ok) {
      this.tree = null;
      this.header.replaceChildren(el("p", { className: "error", role: "alert", textContent: result.error.message }));
      this.body.replaceChildren();
      return;
    }
    this.tree = result.tree;
    this.empty.hidden = true;
    this.collapseAll();
    const ts = this.tree.transfer_syntax || {};
    this.header.replaceChildren(el("strong", { textContent: file.name }),
      el("span", { className: "detail", textContent:
        ` · ${ts.name || ts.uid || "unknown transfer syntax"} · ${this.countNodes(this.tree.nodes)} elements` }));
    this.render();
    if (this.search.value) this.runSearch();
  }

  countNodes(nodes) {
    let n = 0;
    for (const node of nodes) {
      n++;
      for (const item of node.items || []) n += this.countNodes(item.nodes);
    }
    return n;
  }

  // Sequences start folded when they have many items, so a large file opens readable.
  collapseAll() {
    this.collapsed.clear();
    const walk = (nodes) => {
      for (const node of nodes) {
        if (node.items) {
          this.collapsed.add(node.id);
          for (const item of node.items) walk(item.nodes);
        }
      }
    };
    if (this.tree) walk(this.tree.nodes);
  }

  render() {
    if (!this.tree) return;
    const rows = [];
    const matchSet = new Set(this.matches);
    const addNodes = (nodes, depth) => {
      for (const node of nodes) {
        rows.push(this.nodeRow(node, depth, matchSet.has(node.id)));
        if (node.items && !this.collapsed.has(node.id)) {
          for (const item of node.items) {
            rows.push(this.itemRow(node, item, depth + 1));
            if (!this.collapsed.has(item.id)) addNodes(item.nodes, depth + 2);
          }
        }
      }
    };
    addNodes(this.tree.nodes, 0);
    const hadFocus = this.body.contains(document.activeElement);
    this.body.replaceChildren(this.columnHeads, ...rows);
    // One Tab stop: the row last focused (else the first); the buttons in rows are for pointers.
    for (const control of this.body.querySelectorAll("button")) control.tabIndex = -1;
    const focused = rows.find((row) => row.dataset.id === this.focusId) || rows[0];
    if (focused) this.rove(focused);
    if (focused && hadFocus) focused.focus();
  }

  rove(row) {
    for (const other of this.body.querySelectorAll("[role=treeitem][tabindex='0']")) other.tabIndex = -1;
    row.tabIndex = 0;
    this.focusId = row.dataset.id;
  }

  onKey(event) {
    const row = event.target.closest("[role=treeitem]");
    if (!row || event.target !== row || event.altKey) return;
    const rows = [...this.body.querySelectorAll("[role=treeitem]")];
    const here = rows.indexOf(row);
    const open = row.getAttribute("aria-expanded");
    const go = (target) => target?.focus();
    const press = (selector) => row.querySelector(selector)?.click();
    const command = event.ctrlKey || event.metaKey;
    const key = event.key;
    if (key === "ArrowDown") go(rows[here + 1]);
    else if (key === "ArrowUp") go(rows[here - 1]);
    else if (key === "PageDown") go(rows[Math.min(rows.length - 1, here + 10)]);
    else if (key === "PageUp") go(rows[Math.max(0, here - 10)]);
    else if (key === "Home") go(rows[0]);
    else if (key === "End") go(rows.at(-1));
    else if (key === "ArrowRight" && open) {
      if (open === "true") go(rows[here + 1]); else press(".toggle");
    } else if (key === "ArrowLeft") {
      const level = Number(row.getAttribute("aria-level"));
      if (open === "true") press(".toggle");
      else go(rows.slice(0, here).reverse().find((r) => Number(r.getAttribute("aria-level")) < level));
    } else if ((key === "Enter" || key === "F2") && !command) press("button.value");
    else if (key === "Delete") press(".delete");
    else if (command && key === "c" && !String(getSelection())) press(".copy");
    else return;
    event.preventDefault();
  }

  toggleButton(id, label) {
    const open = !this.collapsed.has(id);
    return button(open ? "▾" : "▸", () => {
      if (this.collapsed.has(id)) this.collapsed.delete(id); else this.collapsed.add(id);
      this.focusId = id;
      this.render();
      this.body.querySelector(`[data-id="${id}"]`)?.focus();
    }, { className: "toggle", "aria-expanded": open, "aria-label": `${open ? "Collapse" : "Expand"} ${label}` });
  }

  // The value cell: click (or Enter) to edit in place; the change waits in the pending list.
  valueCell(node) {
    if (node.items) {
      return el("span", { className: "value", textContent: plural(node.items.length, "item") });
    }
    const pending = this.app.edits.forPath(node.path);
    const editable = !BULK_VRS.has(node.vr) && node.path;
    const shown = pending?.op === "set" ? String(pending.value) : node.value ?? "";
    const cell = el(editable ? "button" : "span",
      { className: `value${pending ? ` pending-${pending.op}` : ""}`, textContent: shown },
      node.truncated && !pending ? el("span", { className: "detail", textContent: " (cut)" }) : null);
    if (!editable) return cell;
    cell.type = "button";
    cell.title = "Click to edit this value";
    cell.setAttribute("aria-label", `${node.keyword || node.tag}: ${shown}. Edit`);
    cell.onclick = () => {
      const input = el("input", { className: "value-input", value: shown });
      input.setAttribute("aria-label", `New value of ${node.keyword || node.tag}`);
      const done = (keep) => {
        if (keep && input.value !== (node.value ?? "")) {
          this.app.edits.add({ op: "set", path: node.path, value: input.value });
        }
        else this.render();
      };
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter") { e.preventDefault(); done(true); }
        if (e.key === "Escape") { e.preventDefault(); done(false); }
      });
      input.addEventListener("blur", () => done(false));
      cell.replaceWith(input);
      input.focus();
      input.select();
    };
    return cell;
  }

  deleteButton(path, label) {
    return button("Delete", () => this.app.edits.add({ op: "delete", path }),
      { className: "delete small", "aria-label": `Delete ${label}` });
  }

  nodeRow(node, depth, isMatch) {
    const name = node.private_creator && !node.keyword
      ? `${node.name || "Private"} [${node.private_creator}]` : (node.name || node.keyword || "Unknown");
    const copy = button("Copy", null,
      { className: "copy small", "aria-label": `Copy the value of ${node.keyword || node.tag}` });
    copy.onclick = () => navigator.clipboard?.writeText(node.value ?? "").then(
      () => { copy.textContent = "Copied"; setTimeout(() => { copy.textContent = "Copy"; }, 1200); },
      () => { copy.textContent = "Copy failed"; });
    const pendingDelete = this.app.edits.forPath(node.path)?.op === "delete";
    const kinds = { meta: node.meta, private: node.private_creator, match: isMatch, deleted: pendingDelete };
    const row = el("div", { className: ["el", ...Object.keys(kinds).filter((kind) => kinds[kind])].join(" ") },
      el("span", { className: "indent" }, node.items ? this.toggleButton(node.id, node.keyword || node.tag) : null),
      el("code", { className: "tag", textContent: node.tag }),
      el("span", { className: "name", textContent: name, title: node.path || "" }),
      el("span", { className: "vr", textContent: node.vr || "" }),
      el("span", { className: "vm", textContent: node.vm ?? "" }),
      el("span", { className: "len", textContent: node.length ?? "" }),
      this.valueCell(node),
      el("span", { className: "row-actions" }, node.items ? null : copy,
        node.path ? this.deleteButton(node.path, node.keyword || node.tag) : null));
    return this.treeItem(row, node.id, depth, node.items ? !this.collapsed.has(node.id) : null);
  }

  itemRow(sequence, item, depth) {
    const name = `${sequence.keyword || sequence.tag} ${item.label}`;
    const row = el("div", { className: "el item" },
      el("span", { className: "indent" }, this.toggleButton(item.id, name)),
      el("span", { className: "name", textContent: `${item.label}` }),
      el("span", { className: "value detail", textContent: plural(item.nodes.length, "element") }),
      sequence.path ? this.deleteButton(`${sequence.path}[${item.index}]`, name) : null);
    if (this.app.edits.forPath(`${sequence.path}[${item.index}]`)?.op === "delete") row.classList.add("deleted");
    return this.treeItem(row, item.id, depth, !this.collapsed.has(item.id));
  }

  // A row as an item of the tree: focusable (not a Tab stop), its depth, open or not if it folds.
  treeItem(row, id, depth, open) {
    row.style.setProperty("--depth", depth);
    row.dataset.id = id;
    row.tabIndex = -1;
    row.setAttribute("role", "treeitem");
    row.setAttribute("aria-level", String(depth + 1));
    if (open !== null) row.setAttribute("aria-expanded", String(open));
    return row;
  }

  async runSearch() {
    const query = this.search.value.trim();
    if (!this.file || !this.tree) return;
    if (!query) {
      this.matches = [];
      this.searchInfo.textContent = "";
      this.render();
      return;
    }
    const result = await this.app.python.call("search", { path: this.file.path, name: this.file.name, query });
    if (!result.ok) {
      this.searchInfo.textContent = result.error.message;
      return;
    }
    this.matches = result.matches;
    for (const id of result.reveal) this.collapsed.delete(id);
    this.current = -1;
    const n = this.matches.length;
    this.searchInfo.textContent = n ? `${plural(n, "match", "matches")} · Enter for next` : "no match";
    this.render();
    this.step(1);
  }

  step(direction) {
    if (!this.matches.length) return;
    this.current = (this.current + direction + this.matches.length) % this.matches.length;
    for (const r of this.body.querySelectorAll(".current")) r.classList.remove("current");
    const row = this.body.querySelector(`[data-id="${this.matches[this.current]}"]`);
    row?.classList.add("current");
    row?.scrollIntoView({ block: "center" });
    this.searchInfo.textContent = `${this.current + 1} of ${this.matches.length} · Enter for next, Shift+Enter back`;
  }

  async export(fn) {
    if (!this.file) return;
    const task = this.app.tasks.start(`Exporting ${this.file.name}`);
    const collected = this.app.tasks.collector();
    const { path, name } = this.file;
    const result = await this.app.python.call(fn, { path, name }, { onPart: collected.onPart });
    if (!result.ok) return task.fail(result.error.message);
    this.app.tasks.offer(collected, { click: true });
    task.finish(`Exported ${collected.finished.map((f) => f.name).join(", ")}`);
  }
}
