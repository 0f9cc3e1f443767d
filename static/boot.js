// Starts the Python worker as soon as the page is parsed, before the workbenches' modules (most of
// the page's scripts) have loaded, and shows its start-up phases. app.js takes `python` from here.
import { WorkerPool } from "./client.js";
import { PHASES } from "./protocol.js";

const $ = (selector) => document.querySelector(selector);

document.body.dataset.python = "loading"; // hides the pure-CSS "scripts never ran" notice
const status = $("#python-status");
const statusBar = $("#python-progress");

function showPhase({ phase, label, fraction, timings }) {
  let done = 0;
  for (const p of PHASES) {
    if (p.name === phase) break;
    done += p.weight;
  }
  const weight = PHASES.find((p) => p.name === phase)?.weight || 0;
  statusBar.value = Math.min(1, done + weight * (fraction || 0));
  status.textContent = phase === "ready" ? "Python ready" : `${label}…`;
  document.body.dataset.python = phase;
  if (phase === "ready") {
    window.dcmstudioReadyAt = performance.now(); // read by bench/startup.py
    window.dcmstudioPhaseTimings = timings;
    statusBar.hidden = true;
    $("#drop-hint .waiting").hidden = true;
  }
}

function showFatal(message) {
  document.body.dataset.python = "failed";
  $("#drop-hint .waiting").hidden = true;
  status.textContent = "Python failed";
  statusBar.hidden = true;
  const box = $("#fatal");
  box.hidden = false;
  box.querySelector("p").textContent = message;
}

// A failure that leaves the worker working (e.g. the packages loaded after start-up).
function showNotice(message) {
  const box = $("#notice");
  box.hidden = false;
  box.querySelector("p").textContent = message;
}

// Python in a pool of workers: the first starts now; the others once it is ready (client.js).
export const python = new WorkerPool({ onPhase: showPhase, onFatal: showFatal, onNotice: showNotice });
