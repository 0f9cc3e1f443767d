// Registers the service worker (sw.js at the site's root, see static/sw.js) once Python is ready,
// so that caching the build for offline use never competes with the page's own start-up.
import { python } from "./boot.js";

if ("serviceWorker" in navigator) {
  python.ready.then(() => navigator.serviceWorker.register("sw.js"), () => null).then((registration) => {
    window.dcmstudioOffline = registration ? "registered" : "not registered";
  }, (error) => {
    window.dcmstudioOffline = `not available: ${error.message}`;
  });
}
