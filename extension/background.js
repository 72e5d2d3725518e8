// The service worker: receives the login frame from relay.js, uploads it once per distinct frame to the
// user's own Orderhook, and keeps the status the popup and the badge show (docs/extension.md).
// It never logs the frame or the token.

import { FRAME_SIZE, loadSettings, parseOrderhookUrl, uploadFrame } from "./lib.js";

const DHAN_HOST = "web.dhan.co";

// The token is for trusted extension pages only; content scripts on web.dhan.co need no storage.
chrome.storage.local.setAccessLevel?.({ accessLevel: "TRUSTED_CONTEXTS" }).catch(() => {});

let queue = Promise.resolve();

/** Run tasks one after the other, so two tabs capturing at once upload one frame once. */
function serially(task) {
  const run = queue.then(task, task);
  queue = run.catch(() => {});
  return run;
}

/** The frame's bytes from base64, or null when it is not valid base64. */
function decodeBase64(text) {
  try {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return bytes;
  } catch (_error) {
    return null;
  }
}

/** Hex SHA-256: what is remembered of an uploaded frame (never the frame itself). */
async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Merge into the stored status and refresh the badge. */
async function updateStatus(change) {
  const { status = {} } = await chrome.storage.local.get("status");
  const next = { ...status, ...change };
  await chrome.storage.local.set({ status: next });
  await showBadge(next);
  return next;
}

/** Badge: OK (green) after a successful upload, ! (red) when the user must fix something. */
async function showBadge(status) {
  const upload = status.upload;
  let text = "";
  let color = "#5f6368";
  let title = "Orderhook capture: no frame captured yet";
  if (upload && upload.ok) {
    text = "OK";
    color = "#1a7f37";
    title = "Orderhook capture: login frame uploaded";
  } else if (upload) {
    text = "!";
    color = "#c62828";
    title = `Orderhook capture: ${upload.message}`;
  }
  await chrome.action.setBadgeText({ text });
  await chrome.action.setBadgeBackgroundColor({ color });
  await chrome.action.setTitle({ title });
}

/** A frame from web.dhan.co: note the capture; upload unless it is the frame uploaded last. */
async function onFrame(frameBase64) {
  const bytes = decodeBase64(frameBase64);
  if (!bytes || bytes.length !== FRAME_SIZE) return;
  const sha256 = await sha256Hex(bytes);
  const { lastUploadedSha256 } = await chrome.storage.local.get("lastUploadedSha256");
  const already = lastUploadedSha256 === sha256;
  await updateStatus({ capture: { at: new Date().toISOString(), size: bytes.length, alreadyUploaded: already } });
  if (already) return;
  // Kept in memory only (storage.session is never written to disk) until an upload succeeds, so that
  // saving the settings after the capture still sends it.
  await chrome.storage.session.set({ pending: { frame: frameBase64, sha256 } });
  await uploadPending();
}

/** Upload the pending frame, if any, with the saved settings; record the outcome. */
async function uploadPending() {
  const { pending } = await chrome.storage.session.get("pending");
  if (!pending) return;
  const settings = await loadSettings();
  const at = new Date().toISOString();
  if (!settings.url || !settings.token) {
    await updateStatus({
      upload: {
        at,
        ok: false,
        kind: "not_configured",
        message: "Not set up: open the options, enter the Orderhook URL and Admin token, and press Save.",
      },
    });
    return;
  }
  let target;
  try {
    target = parseOrderhookUrl(settings.url);
  } catch (error) {
    await updateStatus({ upload: { at, ok: false, kind: "bad_url", message: error.message } });
    return;
  }
  if (!(await chrome.permissions.contains({ origins: [target.pattern] }))) {
    await updateStatus({
      upload: {
        at,
        ok: false,
        kind: "no_permission",
        message: `No access to ${target.origin}: open the options and press Save, then allow access.`,
      },
    });
    return;
  }
  const result = await uploadFrame(target.base, settings.token, pending.frame);
  if (result.ok) {
    await chrome.storage.local.set({ lastUploadedSha256: pending.sha256 });
    await chrome.storage.session.remove("pending");
    await updateStatus({
      upload: {
        at: new Date().toISOString(),
        ok: true,
        kind: "ok",
        status: result.status,
        message: `Stored in Orderhook (${result.size ?? FRAME_SIZE} bytes).`,
        storedAt: result.storedAt,
      },
    });
    return;
  }
  await updateStatus({
    upload: { at: new Date().toISOString(), ok: false, kind: result.kind, status: result.status, message: result.message },
  });
}

/** True for a message from a web.dhan.co page (any port, like the content scripts' match pattern). */
function fromDhan(sender) {
  try {
    const origin = new URL(sender.origin);
    return origin.protocol === "https:" && origin.hostname === DHAN_HOST && Boolean(sender.tab);
  } catch (_error) {
    return false;
  }
}

/** True for a message from this extension's own pages (options, popup). */
function fromOwnPage(sender) {
  return sender.id === chrome.runtime.id && sender.url && sender.url.startsWith(chrome.runtime.getURL(""));
}

chrome.runtime.onMessage.addListener((message, sender, sendResponse) => {
  if (!message || sender.id !== chrome.runtime.id) return false;
  if (message.type === "dhan-login-frame" && fromDhan(sender)) {
    if (typeof message.frame !== "string") return false;
    serially(() => onFrame(message.frame)).then(() => sendResponse({ done: true }), () => sendResponse({ done: false }));
    return true;
  }
  if (message.type === "settings-saved" && fromOwnPage(sender)) {
    serially(uploadPending).then(() => sendResponse({ done: true }), () => sendResponse({ done: false }));
    return true;
  }
  return false;
});

chrome.runtime.onStartup.addListener(() => {
  chrome.storage.local.get("status").then(({ status }) => showBadge(status || {}));
});
chrome.runtime.onInstalled.addListener((details) => {
  chrome.storage.local.get("status").then(({ status }) => showBadge(status || {}));
  // First install: show the options page, where the user sets the Orderhook URL and token.
  if (details.reason === "install") chrome.tabs.create({ url: chrome.runtime.getURL("options.html") });
});
