// Shared by the service worker, the options page and the popup: settings, the Orderhook URL's rules,
// and how an answer from Orderhook is put into words a user can act on (docs/extension.md).

export const FRAME_PATH = "/api/feeds/dhan-web/login-frame";
export const FEEDS_PATH = "/api/feeds";
export const FRAME_SIZE = 703;
const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);
const TIMEOUT_MS = 15000;

/** The base URL, its origin and the host-permission pattern, or an Error saying what to fix. */
export function parseOrderhookUrl(text) {
  let url;
  try {
    url = new URL(String(text || "").trim());
  } catch (_error) {
    throw new Error("Enter the Orderhook URL, e.g. https://orderhook.example.com");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new Error("The Orderhook URL must start with https://");
  }
  if (url.protocol === "http:" && !LOOPBACK.has(url.hostname)) {
    throw new Error("Use https:// (plain http:// is allowed only for localhost): the token must not travel in clear");
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new Error("The Orderhook URL must not contain a user name, a query or a #fragment");
  }
  const base = url.origin + url.pathname.replace(/\/+$/, "");
  return { base, origin: url.origin, pattern: `${url.origin}/*` };
}

/** The saved settings ({url, token}; empty strings when unset). */
export async function loadSettings() {
  const stored = await chrome.storage.local.get(["orderhookUrl", "adminToken"]);
  return { url: stored.orderhookUrl || "", token: stored.adminToken || "" };
}

/** The server's {"error": "..."} text, kept short; never echoes anything but the server's words. */
async function serverError(response) {
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") return body.error.slice(0, 300);
  } catch (_error) {
    // Not JSON: the status says enough.
  }
  return "";
}

/** fetch with the bearer token, no cookies, no redirects and a deadline. */
export function callOrderhook(base, token, path, init = {}) {
  return fetch(base + path, {
    ...init,
    headers: { ...(init.headers || {}), Authorization: `Bearer ${token}` },
    credentials: "omit",
    cache: "no-store",
    redirect: "error",
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
}

/** A failed answer or a network error as {kind, message}: what the user must fix. */
export async function describeFailure(base, response, error) {
  const origin = new URL(base).origin;
  if (!response) {
    const why = error && error.name === "TimeoutError" ? "no answer within 15 s" : "network error";
    return {
      kind: "unreachable",
      message: `Orderhook is unreachable at ${origin} (${why}): check the Orderhook URL and that the service is running.`,
    };
  }
  const detail = await serverError(response);
  if (response.status === 401) {
    return {
      kind: "wrong_token",
      message: "Orderhook refused the admin token (401): copy the service's ADMIN_TOKEN into the options again.",
    };
  }
  if (response.status === 403) {
    return { kind: "forbidden", message: `Orderhook refused the request (403): ${detail || "forbidden"}` };
  }
  if (response.status === 400) {
    return { kind: "refused_frame", message: `Orderhook refused the frame (400): ${detail || "bad request"}` };
  }
  if (response.status === 404) {
    return {
      kind: "not_found",
      message: `No Orderhook API at ${base} (404): the Orderhook URL must be the service's base URL.`,
    };
  }
  return {
    kind: "server_error",
    message: `Orderhook answered ${response.status}${detail ? `: ${detail}` : ""}`,
  };
}

/** PUT the frame's base64 text; {ok, size, storedAt} or {ok: false, kind, message, status}. */
export async function uploadFrame(base, token, frameBase64) {
  let response;
  try {
    response = await callOrderhook(base, token, FRAME_PATH, {
      method: "PUT",
      headers: { "Content-Type": "text/plain" },
      body: frameBase64,
    });
  } catch (error) {
    return { ok: false, status: 0, ...(await describeFailure(base, null, error)) };
  }
  if (response.status === 200 || response.status === 201) {
    let info = {};
    try {
      info = await response.json();
    } catch (_error) {
      // The upload worked even if the answer is not the expected JSON.
    }
    return { ok: true, status: response.status, size: info.size ?? null, storedAt: info.stored_at ?? null };
  }
  return { ok: false, status: response.status, ...(await describeFailure(base, response)) };
}

/** Test connection: does the URL answer, does the token work, is a frame stored, is dhan_web running. */
export async function checkConnection(base, token) {
  let feeds;
  try {
    feeds = await callOrderhook(base, token, FEEDS_PATH);
  } catch (error) {
    return { ok: false, ...(await describeFailure(base, null, error)) };
  }
  if (feeds.status !== 200) return { ok: false, ...(await describeFailure(base, feeds)) };
  let names = [];
  try {
    names = ((await feeds.json()).feeds || []).map((feed) => feed.name);
  } catch (_error) {
    return { ok: false, kind: "not_orderhook", message: `${base} answered, but not like Orderhook: check the URL.` };
  }
  const parts = ["Connected: the URL answers and the admin token works."];
  try {
    const frame = await callOrderhook(base, token, FRAME_PATH);
    if (frame.status === 200) {
      const info = await frame.json();
      parts.push(`A login frame is stored (${info.size} bytes, ${formatTime(info.stored_at)}).`);
    } else if (frame.status === 404) {
      parts.push("No login frame is stored yet: open web.dhan.co and sign in.");
    } else {
      parts.push((await describeFailure(base, frame)).message);
    }
  } catch (_error) {
    // The token check above is the answer the user asked for.
  }
  if (!names.includes("dhan_web")) {
    parts.push("Note: the dhan_web feed is not in the service's FEEDS, so a stored frame is not used yet.");
  }
  return { ok: true, kind: "ok", message: parts.join(" ") };
}

/** A time for people: local date and time, or "never". */
export function formatTime(iso) {
  if (!iso) return "never";
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? String(iso) : moment.toLocaleString();
}
