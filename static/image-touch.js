// Touch on the Image workbench, through pointer events: two fingers pinch to zoom and move to pan;
// one finger drags through the slices when no measuring tool is active (with a tool, it draws).

// Finger travel (CSS px) per slice.
const TOUCH_SLICE_STEP = 24;

export function bindTouch(viewer, measuring) {
  const stage = viewer.stage;
  const touches = new Map();
  let gesture = null;
  const spread = () => {
    const [a, b] = [...touches.values()];
    return { distance: Math.hypot(a.x - b.x, a.y - b.y) || 1, x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
  };
  stage.addEventListener("pointerdown", (event) => {
    if (event.pointerType !== "touch" || !viewer.rendered) return;
    touches.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (touches.size === 2) {
      measuring.drag = null;
      const s = spread();
      gesture = { kind: "pinch", ...s, zoom: viewer.zoom ?? viewer.fitScale(), pan: { ...viewer.pan } };
    } else if (touches.size === 1 && !measuring.tool && !event.target.dataset?.item) {
      gesture = { kind: "scroll", y: event.clientY, index: viewer.index };
    } else {
      return;
    }
    stage.setPointerCapture(event.pointerId);
    event.preventDefault();
    event.stopImmediatePropagation();
  });
  stage.addEventListener("pointermove", (event) => {
    if (event.pointerType !== "touch" || !touches.has(event.pointerId)) return;
    touches.set(event.pointerId, { x: event.clientX, y: event.clientY });
    if (!gesture) return;
    event.stopImmediatePropagation();
    if (gesture.kind === "scroll") {
      viewer.goTo(gesture.index + Math.trunc((event.clientY - gesture.y) / TOUCH_SLICE_STEP));
    } else if (touches.size === 2) {
      const s = spread();
      viewer.zoom = gesture.zoom;
      viewer.pan = { ...gesture.pan };
      viewer.setZoom(gesture.zoom * s.distance / gesture.distance, gesture.x, gesture.y);
      viewer.pan = { x: viewer.pan.x + s.x - gesture.x, y: viewer.pan.y + s.y - gesture.y };
      viewer.layout();
    }
  });
  const end = (event) => {
    if (event.pointerType !== "touch") return;
    touches.delete(event.pointerId);
    if (gesture) event.stopImmediatePropagation();
    if (!touches.size || gesture?.kind === "pinch") gesture = null;
  };
  stage.addEventListener("pointerup", end);
  stage.addEventListener("pointercancel", end);
}
