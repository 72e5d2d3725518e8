// Options page: save the Orderhook URL and admin token (asking for access to that one origin), and
// test the connection. Host access is requested here, at Save, because Orderhook answers 401 to the
// unauthenticated CORS preflight: the extension needs host permission, not CORS (docs/extension.md).

import { checkConnection, loadSettings, parseOrderhookUrl } from "./lib.js";

const form = document.getElementById("settings");
const urlInput = document.getElementById("url");
const tokenInput = document.getElementById("token");
const testButton = document.getElementById("test");
const messageBox = document.getElementById("message");

/** Show one message; tone is ok, bad or info. */
function say(text, tone) {
  messageBox.textContent = text;
  messageBox.className = `message ${tone}`;
}

/** The entered values checked, or null after saying what to fix. */
function entered() {
  let target;
  try {
    target = parseOrderhookUrl(urlInput.value);
  } catch (error) {
    say(error.message, "bad");
    urlInput.focus();
    return null;
  }
  const token = tokenInput.value.trim();
  if (!token) {
    say("Enter the Admin token (the service's ADMIN_TOKEN).", "bad");
    tokenInput.focus();
    return null;
  }
  return { target, token };
}

/** Ask for access to the Orderhook origin; must run first in a click (it needs the user's gesture). */
function requestAccess(target) {
  return chrome.permissions.request({ origins: [target.pattern] }).catch(() => false);
}

/** Drop access granted earlier to another Orderhook origin (least privilege); required ones stay. */
async function forgetOtherOrigins(keep) {
  const manifest = chrome.runtime.getManifest();
  const required = new Set([
    ...(manifest.host_permissions || []),
    ...(manifest.content_scripts || []).flatMap((script) => script.matches || []),
  ]);
  const { origins = [] } = await chrome.permissions.getAll();
  const others = origins.filter((origin) => origin !== keep && !required.has(origin));
  if (others.length) await chrome.permissions.remove({ origins: others }).catch(() => false);
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const values = entered();
  if (!values) return;
  const granted = await requestAccess(values.target);
  const before = await loadSettings();
  const changed = before.url !== values.target.base || before.token !== values.token;
  await chrome.storage.local.set({ orderhookUrl: values.target.base, adminToken: values.token });
  if (changed) await chrome.storage.local.remove("lastUploadedSha256"); // the next frame goes to the new place
  urlInput.value = values.target.base;
  if (!granted) {
    say(`Saved, but access to ${values.target.origin} was not allowed: press Save again and allow it, or nothing can be uploaded.`, "bad");
    return;
  }
  await forgetOtherOrigins(values.target.pattern);
  say(`Saved. The extension may now send the Dhan web login frame to ${values.target.origin}.`, "ok");
  chrome.runtime.sendMessage({ type: "settings-saved" }).catch(() => {});
});

testButton.addEventListener("click", async () => {
  const values = entered();
  if (!values) return;
  const granted = await requestAccess(values.target);
  if (!granted) {
    say(`Access to ${values.target.origin} was not allowed, so it cannot be tested.`, "bad");
    return;
  }
  say(`Testing ${values.target.base} …`, "info");
  const result = await checkConnection(values.target.base, values.token);
  say(result.message, result.ok ? "ok" : "bad");
});

loadSettings().then((settings) => {
  urlInput.value = settings.url;
  tokenInput.value = settings.token;
});
