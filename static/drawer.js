// The file tree as a drawer on narrow screens (style.css): a toggle in the header opens it. While
// open it holds the keyboard's focus (Tab and Shift+Tab go round inside it);
// Escape, a click beside it or picking a row closes it, and focus goes back to the toggle.
const body = document.body;
const toggle = document.querySelector("#drawer-toggle");
const sidebar = document.querySelector("#sidebar");
const narrow = matchMedia("(max-width: 720px)");
const FOCUSABLE = "button, summary, label[for], input, [tabindex='0']";

const isOpen = () => body.classList.contains("drawer-open");

// What Tab can reach inside the drawer, in order (the tree is one stop: its roving item).
const stops = () => [...sidebar.querySelectorAll(FOCUSABLE)]
  .filter((node) => !node.disabled && node.getClientRects().length);

function setOpen(open) {
  body.classList.toggle("drawer-open", open);
  toggle.setAttribute("aria-expanded", String(open));
  if (open) (sidebar.querySelector("[role=treeitem][tabindex='0']") || stops()[0])?.focus();
  else if (sidebar.contains(document.activeElement) || document.activeElement === body) toggle.focus();
}

toggle.addEventListener("click", () => setOpen(!isOpen()));
document.addEventListener("keydown", (event) => {
  if (!isOpen()) return;
  if (event.key === "Escape") {
    event.preventDefault();
    setOpen(false);
  } else if (event.key === "Tab") {
    const all = stops();
    if (!all.length) return;
    const at = all.indexOf(document.activeElement.closest?.("[role=treeitem]") || document.activeElement);
    const next = event.shiftKey ? (at <= 0 ? all.length - 1 : at - 1) : (at < 0 || at === all.length - 1 ? 0 : at + 1);
    event.preventDefault();
    all[next].focus();
  }
});
// The backdrop is the layout's own ::before, so a click on it targets the layout itself.
document.querySelector(".layout").addEventListener("click", (event) => {
  if (event.target === event.currentTarget && isOpen()) setOpen(false);
});
sidebar.addEventListener("files-picked", () => {
  if (narrow.matches) setOpen(false);
});
narrow.addEventListener("change", () => setOpen(false));
