// Runs in the page's own JavaScript world on https://web.dhan.co/* at document_start (manifest.json).
// It wraps window.WebSocket so that, for sockets to order-feed.dhan.co only, the FIRST binary message
// the page sends is looked at: when it is exactly 703 bytes (the Dhan web login frame, see
// docs/extension.md) its base64 text is posted to this window for relay.js. Nothing else is read,
// the socket itself is never changed, and every other socket is left exactly as the page made it.
(() => {
  "use strict";

  const FEED_HOST = "order-feed.dhan.co";
  const FRAME_SIZE = 703;
  const CHANNEL = "orderhook-capture";
  const NativeWebSocket = window.WebSocket;
  if (typeof NativeWebSocket !== "function") return;
  const nativeSend = NativeWebSocket.prototype.send;
  const postMessage = window.postMessage.bind(window);
  const targetOrigin = window.location.origin;

  /** True only for wss://order-feed.dhan.co (any port, any path). */
  function isOrderFeed(url) {
    try {
      const parsed = new URL(url, window.location.href);
      return parsed.protocol === "wss:" && parsed.hostname === FEED_HOST;
    } catch (_error) {
      return false;
    }
  }

  /** Base64 of bytes, in chunks so a large argument list never overflows. */
  function toBase64(bytes) {
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x2000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x2000));
    }
    return btoa(binary);
  }

  /** Hand the frame to relay.js (same window, same origin only). */
  function handOver(bytes) {
    postMessage({ source: CHANNEL, type: "dhan-login-frame", frame: toBase64(bytes) }, targetOrigin);
  }

  /** The size of a binary message (ArrayBuffer, typed array, DataView, Blob), or -1 for text. */
  function binarySize(data) {
    if (data instanceof ArrayBuffer) return data.byteLength;
    if (ArrayBuffer.isView(data)) return data.byteLength;
    if (typeof Blob !== "undefined" && data instanceof Blob) return data.size;
    return -1;
  }

  /** Copy the message (the page may reuse its buffer) when it has the login frame's size; never delays the send. */
  function inspect(data) {
    if (binarySize(data) !== FRAME_SIZE) return;
    if (data instanceof ArrayBuffer) {
      handOver(new Uint8Array(data.slice(0)));
    } else if (ArrayBuffer.isView(data)) {
      handOver(new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)));
    } else {
      data.arrayBuffer().then((buffer) => handOver(new Uint8Array(buffer)), () => {});
    }
  }

  /** Watch one order-feed socket's sends until its first binary message, then step aside. */
  function watch(socket) {
    const send = function send(data) {
      // The native send first: it throws (e.g. before "open") or sends exactly as without the extension.
      const result = nativeSend.call(this, data);
      if (binarySize(data) >= 0) {
        delete socket.send; // later sends go straight to the native method again
        try {
          inspect(data);
        } catch (_error) {
          // Capturing must never break the page's socket.
        }
      }
      return result;
    };
    // Not enumerable, so the socket's own keys look as the page left them.
    Object.defineProperty(socket, "send", { value: send, configurable: true, writable: true, enumerable: false });
  }

  const WrappedWebSocket = new Proxy(NativeWebSocket, {
    construct(target, args, newTarget) {
      const socket = Reflect.construct(target, args, newTarget === WrappedWebSocket ? target : newTarget);
      try {
        if (isOrderFeed(socket.url)) watch(socket);
      } catch (_error) {
        // Never let the capture stop a socket from opening.
      }
      return socket;
    },
  });
  window.WebSocket = WrappedWebSocket;
})();
