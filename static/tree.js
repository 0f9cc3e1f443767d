// A multi-select ARIA tree (WAI-ARIA APG tree view pattern) over items another module draws
// (files.js): one Tab stop (roving tabindex); Up/Down, Home/End, Right opens or goes to the first
// child, Left closes or goes to the parent; Enter or Space selects, Ctrl+Space or Ctrl/Cmd+click
// toggles, Shift with arrows, Home/End, Space or a click selects a range; `*` opens the siblings;
// typing a name's first letters goes to it; Delete asks to remove the selection.
// Items are identified by `data-id`, so the selection and the focus outlive a redraw.
import { el } from "./dom.js";

const ITEM = "[role=treeitem]";
const TYPE_AHEAD_MS = 700;

export class TreeView {
  // `actions`: select(ids) when the selection changes, open(id, open), openAll(ids) for `*`,
  // remove() for Delete, picked() after a plain click or Enter (the drawer closes then).
  constructor(container, label, actions) {
    this.container = container;
    this.label = label;
    this.actions = actions;
    this.selected = new Set();
    this.anchor = null;
    this.focusId = null;
    this.typed = "";
    this.typedAt = 0;
    container.addEventListener("keydown", (event) => this.onKey(event));
    container.addEventListener("click", (event) => this.onClick(event));
    container.addEventListener("focusin", (event) => {
      const item = event.target.closest?.(ITEM);
      if (item) this.rove(item);
    });
  }

  // The tree's root list, of its first-level `items`.
  root(items) {
    return el("ul", { role: "tree", className: "groups", "aria-label": this.label, "aria-multiselectable": "true" },
      this.place(items, 1));
  }

  // An item: its row (or the line holding it), and its group of children if it has one. Its name is its row's text (a
  // browser leaves the group out of it; aria-labelledby would make axe see a name that differs).
  item(id, name, row, group = null, open = false) {
    const item = el("li", { role: "treeitem", tabIndex: -1, "data-id": id, "data-name": name.toLowerCase(),
      "aria-selected": String(this.selected.has(id)) }, row);
    if (group) {
      item.setAttribute("aria-expanded", String(open));
      group.setAttribute("role", "group");
      group.hidden = !open;
      item.append(group);
    }
    return item;
  }

  // Sibling items: their level and position among them.
  place(items, level) {
    items.forEach((item, i) => {
      item.setAttribute("aria-level", String(level));
      item.setAttribute("aria-setsize", String(items.length));
      item.setAttribute("aria-posinset", String(i + 1));
    });
    return items;
  }

  // After a redraw: the one Tab stop, and the focus back where it was.
  drawn(hadFocus) {
    const target = this.find(this.focusId) || this.visible().find((i) => this.selected.has(i.dataset.id))
      || this.visible()[0];
    if (!target) return;
    this.rove(target);
    if (hadFocus) target.focus({ preventScroll: false });
  }

  find(id) {
    return id == null ? null : [...this.container.querySelectorAll(ITEM)].find((i) => i.dataset.id === id) || null;
  }

  // The items a person sees, top to bottom (none inside a closed group).
  visible() {
    return [...this.container.querySelectorAll(ITEM)].filter((i) => !i.parentElement.closest("[role=group][hidden]"));
  }

  rove(item) {
    for (const other of this.container.querySelectorAll(`${ITEM}[tabindex="0"]`)) other.tabIndex = -1;
    item.tabIndex = 0;
    this.focusId = item.dataset.id;
  }

  focus(item) {
    if (!item) return;
    this.rove(item);
    item.focus();
  }

  // Selects `ids` (in display order) and tells the owner.
  setSelection(ids, anchor = this.anchor) {
    this.selected = new Set(ids);
    this.anchor = anchor;
    for (const item of this.container.querySelectorAll(ITEM)) {
      item.setAttribute("aria-selected", String(this.selected.has(item.dataset.id)));
    }
    const shown = this.visible().map((i) => i.dataset.id);
    const inView = new Set(shown);
    const hidden = [...this.selected].filter((id) => !inView.has(id));
    this.actions.select(shown.filter((id) => this.selected.has(id)).concat(hidden));
  }

  selectOnly(item) {
    this.setSelection([item.dataset.id], item.dataset.id);
  }

  toggle(item) {
    const ids = new Set(this.selected);
    if (ids.has(item.dataset.id)) ids.delete(item.dataset.id); else ids.add(item.dataset.id);
    this.setSelection([...ids], item.dataset.id);
  }

  selectRange(item) {
    const items = this.visible();
    const from = items.findIndex((i) => i.dataset.id === this.anchor);
    const to = items.indexOf(item);
    if (from < 0) return this.selectOnly(item);
    const [a, b] = from < to ? [from, to] : [to, from];
    this.setSelection(items.slice(a, b + 1).map((i) => i.dataset.id));
  }

  isOpen(item) {
    return item.getAttribute("aria-expanded") === "true";
  }

  onClick(event) {
    const item = event.target.closest(ITEM);
    if (!item || !this.container.contains(item)) return;
    this.focus(item);
    if (event.target.closest(".toggle")) this.actions.open(item.dataset.id, !this.isOpen(item));
    else if (event.shiftKey) this.selectRange(item);
    else if (event.ctrlKey || event.metaKey) this.toggle(item);
    else {
      this.selectOnly(item);
      this.actions.picked();
    }
  }

  onKey(event) {
    const item = event.target.closest(ITEM);
    if (!item || event.altKey) return;
    const items = this.visible();
    const here = items.indexOf(item);
    const command = event.ctrlKey || event.metaKey;
    const go = (target) => {
      if (!target) return;
      this.focus(target);
      if (event.shiftKey) this.selectRange(target);
    };
    const key = event.key;
    if (key === "ArrowDown") go(items[here + 1]);
    else if (key === "ArrowUp") go(items[here - 1]);
    else if (key === "Home") go(items[0]);
    else if (key === "End") go(items.at(-1));
    else if (key === "ArrowRight" && item.hasAttribute("aria-expanded")) {
      if (this.isOpen(item)) this.focus(items[here + 1]); else this.actions.open(item.dataset.id, true);
    } else if (key === "ArrowLeft") {
      if (this.isOpen(item)) this.actions.open(item.dataset.id, false);
      else this.focus(item.parentElement.closest(ITEM));
    } else if (key === "Enter" && !command) {
      this.selectOnly(item);
      this.actions.picked();
    } else if (key === " ") {
      if (command) this.toggle(item); else if (event.shiftKey) this.selectRange(item); else this.selectOnly(item);
    } else if (key === "*") {
      const siblings = [...item.parentElement.children].filter((i) => i.matches(ITEM) && !this.isOpen(i)
        && i.hasAttribute("aria-expanded"));
      this.actions.openAll(siblings.map((i) => i.dataset.id));
    } else if (key === "Delete" && this.selected.size) this.actions.remove();
    else if (key.length === 1 && !command && key.trim()) return this.typeAhead(event, items, here);
    else return;
    this.typed = "";
    event.preventDefault();
  }

  // Goes to the next item whose name starts with what was typed in the last moment.
  typeAhead(event, items, here) {
    event.preventDefault();
    const key = event.key;
    const now = performance.now();
    this.typed = now - this.typedAt < TYPE_AHEAD_MS ? this.typed + key.toLowerCase() : key.toLowerCase();
    this.typedAt = now;
    const start = this.typed.length === 1 ? here + 1 : here;
    const order = [...items.slice(start), ...items.slice(0, start)];
    this.focus(order.find((i) => i.dataset.name.startsWith(this.typed)));
  }
}
