// DOM helpers every part of the page shares, so each workbench states what it shows, not how
// elements are made: an element from its tag, properties and children; buttons, check boxes,
// the status and error lines; and a selection's files and name.

// An element: `props` are set as properties (className, textContent, onclick …), except ARIA,
// `role` and `data-` attributes, which are attributes. null, undefined and false children are left out.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "role" || key.startsWith("aria-") || key.startsWith("data-")) node.setAttribute(key, String(value));
    else node[key] = value;
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export const plural = (n, word, many = `${word}s`) => `${n} ${n === 1 ? word : many}`;

// A button that does `action` when pressed; `props` as for el.
export function button(text, action, props = {}) {
  return el("button", { type: "button", textContent: text, onclick: action, ...props });
}

// A check box with its label after it: returns [input, label].
export function checkbox(id, text, { checked = false, onchange } = {}) {
  const input = el("input", { type: "checkbox", id, checked, onchange });
  return [input, el("label", { className: "check", htmlFor: id }, input, ` ${text}`)];
}

// A description list from [term, text, props of the description] rows; rows that are null are left out.
export const terms = (rows) => el("dl", {}, rows.filter(Boolean)
  .flatMap(([term, text, props = {}]) => [el("dt", { textContent: term }), el("dd", { textContent: text, ...props })]));

// A line that says what the workbench will act on, read out when it changes.
export const statusLine = (id, className = "") => el("p", { id, className, "aria-live": "polite" });

// A line for what went wrong, announced at once.
export const errorLine = (id) => el("p", { className: "error", role: "alert", id });

// A file name stem for a selection's outputs: "dcmstudio" for everything loaded, else its name.
export function selectionStem(selection) {
  const name = selection.level === "all" ? "dcmstudio" : selection.label || "";
  return name.replace(/[^\p{L}\p{N}]+/gu, "_").replace(/^_+|_+$/g, "") || "dcmstudio";
}

// Runs `load` the first time `panel` is shown: Python work for a tab nobody opens is not done.
export function onFirstShow(panel, load) {
  const observer = new MutationObserver(() => {
    if (panel.hidden) return;
    observer.disconnect();
    load();
  });
  observer.observe(panel, { attributes: true, attributeFilter: ["hidden"] });
  // The shell shows the first tab right after mounting them all: a shown panel never mutates.
  queueMicrotask(() => {
    if (panel.hidden) return;
    observer.disconnect();
    load();
  });
}
