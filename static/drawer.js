// The file tree as a drawer on narrow screens (style.css): a toggle in the header opens it;
// Escape, a click beside it or picking a row closes it, and focus goes back to the toggle.
const body = document.body;
const toggle = document.querySelector("#drawer-toggle");
const sidebar = document.querySelector("#sidebar");
const narrow = matchMedia("(max-width: 720px)");

function setOpen(open) {
  body.classList.toggle("drawer-open", open);
  toggle.setAttribute("aria-expanded", String(open));
  if (open) sidebar.querySelector(".row.selected, button, label")?.focus();
  else if (sidebar.contains(document.activeElement)) toggle.focus();
}

toggle.addEventListener("click", () => setOpen(!body.classList.contains("drawer-open")));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && body.classList.contains("drawer-open")) setOpen(false);
});
// The backdrop is the layout's own ::before, so a click on it targets the layout itself.
document.querySelector(".layout").addEventListener("click", (event) => {
  if (event.target === event.currentTarget && body.classList.contains("drawer-open")) setOpen(false);
});
sidebar.addEventListener("click", (event) => {
  if (narrow.matches && event.target.closest(".row")) setOpen(false);
});
narrow.addEventListener("change", () => setOpen(false));
