// The wallet's service worker: keeps each person's page, its manifest and the icons, so that the wallet
// opens with no network and goes on making device-bound codes from the credentials it holds.
//
// Pages go to the network first and fall back to what is kept: online, every open shows the deployment
// of the day (no phone stuck on an old page); offline, the last page seen. The calls the page makes
// (codes, credentials, status) are never answered from here: offline they fail, and the page says so.
"use strict";
const CACHE = "suishenma-wallet-{{BUILD}}";
const KEPT = /^\/demo\/wallet\/([0-9a-f]{16}(\/manifest\.webmanifest)?|icon-\d+\.png)$/;
const WAIT_MS = 4000;  // a network that answers slower than this is treated as none (an underground platform)

self.addEventListener("install", () => self.skipWaiting());

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name !== CACHE) await caches.delete(name);  // an older deployment's pages
    }
    await self.clients.claim();
  })());
});

// The page asks, once it has loaded, that it be kept: its first load came before this worker controlled it.
self.addEventListener("message", (event) => {
  const paths = (event.data && event.data.keep) || [];
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    for (const path of paths) {
      const url = new URL(path, self.location.origin);
      if (url.origin !== self.location.origin || !KEPT.test(url.pathname)) continue;
      try {
        const answer = await fetch(url, { cache: "no-store" });
        if (answer.ok) await cache.put(url.origin + url.pathname, answer);
      } catch (err) {
        // offline already: what is kept stays
      }
    }
    if (event.source) event.source.postMessage({ kept: paths.length });
  })());
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin || !KEPT.test(url.pathname)) return;
  event.respondWith(networkFirst(event.request, url));
});

async function networkFirst(request, url) {
  const cache = await caches.open(CACHE);
  const key = url.origin + url.pathname;  // ?refresh=… and the like share one kept page
  try {
    const answer = await withTimeout(fetch(request, { cache: "no-store" }), WAIT_MS);
    if (answer.ok) {
      await cache.put(key, answer.clone());
      return answer;
    }
    return (answer.status >= 500 && (await cache.match(key))) || answer;  // a server in trouble: the kept page
  } catch (err) {
    const kept = await cache.match(key);
    if (kept) return kept;
    throw err;
  }
}

function withTimeout(promise, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("network too slow")), ms);
    promise.then((v) => { clearTimeout(timer); resolve(v); }, (e) => { clearTimeout(timer); reject(e); });
  });
}
