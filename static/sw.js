// The service worker: keeps the whole build so that the page reloads and works without a server.
// build.py serves it from the site's root (its scope is the whole page) and puts the line
// `const BUILD = "<first 16 hex digits of sha256(build-manifest.json)>";` above this text: each
// build is a new script, which caches every file the manifest names and, once active, deletes the
// caches of older builds. It answers this origin's GET and HEAD requests only, from the cache
// first; anything it does not hold goes to the network unchanged. It never contacts another origin.
/* global BUILD */
const CACHE = `dcmstudio-${BUILD}`;
const INDEX = new URL("./", self.registration.scope).href;

async function sha256Hex(text) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function precache() {
  const response = await fetch("build-manifest.json", { cache: "no-cache" });
  const text = await response.text();
  // A server that already holds a newer build: let that build's own service worker cache it.
  if (!response.ok || !(await sha256Hex(text)).startsWith(BUILD)) {
    throw new Error(`build-manifest.json is not the one of build ${BUILD}`);
  }
  const files = Object.keys(JSON.parse(text).sha256).filter((name) => name !== "index.html");
  const cache = await caches.open(CACHE);
  await cache.addAll([INDEX, "build-manifest.json", ...files].map((url) => new Request(url, { cache: "no-cache" })));
}

self.addEventListener("install", (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    const older = names.filter((name) => name.startsWith("dcmstudio-") && name !== CACHE);
    await Promise.all(older.map((name) => caches.delete(name)));
    await self.clients.claim();
  })());
});

async function answer(request) {
  const cache = await caches.open(CACHE);
  const key = request.mode === "navigate" || request.url === `${INDEX}index.html` ? INDEX : request.url;
  const cached = await cache.match(key, { ignoreSearch: true, ignoreVary: true });
  if (!cached) return fetch(request);
  // HEAD (the page asks worker.js's headers): the cached headers, without the body.
  if (request.method === "HEAD") {
    return new Response(null, { status: cached.status, statusText: cached.statusText, headers: cached.headers });
  }
  return cached;
}

self.addEventListener("fetch", (event) => {
  const { request } = event;
  if (new URL(request.url).origin !== self.location.origin || !["GET", "HEAD"].includes(request.method)) return;
  if (request.headers.has("range")) return; // partial reads go to the server as they are
  event.respondWith(answer(request));
});
