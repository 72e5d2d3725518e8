// Isolated-world content script on https://web.dhan.co/* : the only bridge from hook.js (page world,
// no extension APIs) to the service worker. It passes on one kind of message, the login frame's
// base64 text, posted by this same window; everything else on the page is ignored.
(() => {
  "use strict";

  const CHANNEL = "orderhook-capture";
  const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

  window.addEventListener("message", (event) => {
    if (event.source !== window || event.origin !== window.location.origin) return;
    const data = event.data;
    if (!data || data.source !== CHANNEL || data.type !== "dhan-login-frame") return;
    if (typeof data.frame !== "string" || data.frame.length > 2048 || !BASE64.test(data.frame)) return;
    try {
      chrome.runtime.sendMessage({ type: "dhan-login-frame", frame: data.frame }).catch(() => {});
    } catch (_error) {
      // The extension was reloaded or removed while the page stayed open: nothing to relay to.
    }
  });
})();
