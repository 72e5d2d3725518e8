// The blotter: a snapshot of /api/orders, then live changes from /api/stream (Server-Sent Events),
// one stream per browser shared by all its tabs (live-source.js). No framework, no build step.
// Test hooks (fixed, docs/frontend.md): tr[data-order][data-status], tr[data-event-id] in an opened
// order, [data-delivery] holding a "Retry" button.
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const STATUS_LABEL = {
  PENDING: "pending", OPEN: "open", TRIGGER_PENDING: "trigger pending", PARTIALLY_FILLED: "partly filled",
  FILLED: "filled", CANCELLED: "cancelled", REJECTED: "rejected", EXPIRED: "expired",
};
const CHIPS = [
  ["open", "Open", ["PENDING", "OPEN", "TRIGGER_PENDING"]],
  ["partly", "Partly filled", ["PARTIALLY_FILLED"]],
  ["filled", "Filled", ["FILLED"]],
  ["rejected", "Rejected", ["REJECTED"]],
  ["cancelled", "Cancelled", ["CANCELLED", "EXPIRED"]],
];
const COLUMNS = [
  ["Status", (o) => STATUS_LABEL[o.status] || o.status],
  ["Broker", (o) => o.broker],
  ["Account", (o) => o.account_id],
  ["Order id", (o) => o.order_id],
  ["Exchange order id", (o) => o.exchange_order_id],
  ["Symbol", (o) => o.symbol],
  ["Exchange", (o) => o.exchange],
  ["Side", (o) => o.side],
  ["Type", (o) => o.order_type],
  ["Product", (o) => o.product],
  ["Quantity", (o) => o.quantity],
  ["Filled", (o) => o.filled_quantity],
  ["Pending", (o) => o.pending_quantity],
  ["Price", (o) => o.price],
  ["Trigger", (o) => o.trigger_price],
  ["Average price", (o) => o.average_price],
  ["Reason", (o) => o.reason],
  ["Exchange time", (o) => o.exchange_time],
  ["Last update", (o) => o.updated_at],
  ["Source", (o) => o.source],
];

const orders = new Map(); // "broker/order_id" -> order state (+ source)
const rows = new Map(); // same key -> <tr>
let sorted = []; // keys, newest update first
let chip = "";
let opened = null; // key of the order shown in the order view
let snapshotting = false;
let buffered = [];
let olderCursor = null; // the list's next_cursor after the oldest loaded page; null when every order is loaded
let liveEpoch = null; // the opening of the shared stream this tab's snapshot belongs to
let liveChannel = null;
const PAGE = 1000; // orders per page, the API's largest (docs/api.md)
const CATCH_UP_MARGIN_MS = 60_000; // an order's updated_at is its receipt; it is stored a little later

// ---- helpers -------------------------------------------------------------------------------

// Broker text (symbols, reasons, ids, errors) is shown on one line and cannot reorder the text around
// it (docs/frontend.md, "Broker text"): C0 and C1 controls, DEL, U+2028/U+2029 and the bidi controls
// are shown as a marked "U+XXXX" box in the page and as "<U+XXXX>" in titles and options.
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

function codePoint(char) {
  return `U+${char.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
}

function visible(value) {
  return String(value).replace(CONTROLS, (char) => `<${codePoint(char)}>`);
}

function appendText(node, value) {
  const text = String(value);
  let at = 0;
  for (const found of text.matchAll(CONTROLS)) {
    if (found.index > at) node.append(text.slice(at, found.index));
    node.append(Object.assign(document.createElement("span"), {
      className: "ctl", textContent: codePoint(found[0]), title: "a control character the broker sent, shown as its code",
    }));
    at = found.index + found[0].length;
  }
  if (at < text.length) node.append(text.slice(at));
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") appendText(node, value);
    else if (name === "lines") String(value).split("\n").forEach((line, i) => { if (i) node.append("\n"); appendText(node, line); });
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "title") node.title = visible(value); // shown to people; other attributes keep the data
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    if (typeof child === "string") appendText(node, child);
    else node.append(child);
  }
  return node;
}

function blank(value) {
  return value === null || value === undefined || value === "" ? "—" : String(value);
}

function cut(value, tag = "span", className = "") {
  // One line, cut with an ellipsis; the whole text on hover and in the order's card (docs/frontend.md).
  const text = blank(value);
  return el(tag, { class: className ? `cut ${className}` : "cut", title: text === "—" ? null : text }, text);
}

function pad(n) {
  return String(n).padStart(2, "0");
}

function moment(iso) {
  // [date or null when today, time] in local time, 24-hour; null for no time or an unreadable one.
  if (!iso) return null;
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return null;
  const time = `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
  if (new Date().toDateString() === at.toDateString()) return [null, time];
  return [`${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())}`, time];
}

function when(iso) {
  // One line: the time for today, the date too for older moments.
  const parts = moment(iso);
  if (!parts) return iso ? String(iso) : "—";
  return parts[0] ? `${parts[0]} ${parts[1]}` : parts[1];
}

function stamp(iso) {
  // A table's <time>: the date (when not today) above the time.
  const parts = moment(iso);
  if (!parts) return el("time", { datetime: iso || "", text: iso ? String(iso) : "—" });
  return el("time", { datetime: iso }, parts[0] ? el("span", { class: "day", text: parts[0] }) : null, parts[1]);
}

function toast(message, bad = false) {
  const box = document.getElementById("toast");
  box.textContent = visible(message);
  box.className = bad ? "toast bad" : "toast";
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 5000);
}

async function api(path, options = {}) {
  const method = options.method || "GET";
  const headers = Object.assign({}, options.headers || {});
  if (method !== "GET") headers["X-CSRF-Token"] = CSRF;
  const answer = await fetch(path, { method, headers, body: options.body, credentials: "same-origin" });
  if (answer.status === 401) {
    location.reload(); // the session ended: back to the sign-in form
    throw new Error("signed out");
  }
  const data = await answer.json().catch(() => ({}));
  if (!answer.ok && !(options.allow || []).includes(answer.status)) {
    throw new Error(data.error || `${method} ${path} answered ${answer.status}`);
  }
  return { status: answer.status, data };
}

// ---- orders --------------------------------------------------------------------------------

function keyOf(order) {
  return `${order.broker}/${order.order_id}`;
}

function orderHash(broker, orderId) {
  return `#order/${encodeURIComponent(broker)}/${encodeURIComponent(orderId)}`;
}

function orderUrl(broker, orderId) {
  // Every id fits one path segment once encoded, but a lone "." or ".." is resolved away by the URL
  // parser even as %2E, and a leading "/" makes an empty segment: those go percent-encoded twice with
  // `double_encoded=1` (docs/api.md, "One order").
  const path = `/api/orders/${encodeURIComponent(broker)}/`;
  if (orderId === "." || orderId === ".." || orderId.startsWith("/")) {
    return `${path}${encodeURIComponent(encodeURIComponent(orderId).replace(/\./g, "%2E"))}?double_encoded=1`;
  }
  return path + encodeURIComponent(orderId);
}

function openOrder(order) {
  location.hash = orderHash(order.broker, order.order_id);
}

function newer(a, b) {
  // true when order a sorts before order b (newest update first, then key for a stable order)
  if ((a.updated_at || "") !== (b.updated_at || "")) return (a.updated_at || "") > (b.updated_at || "");
  return keyOf(a) < keyOf(b);
}

function put(order, eventSource) {
  const key = keyOf(order);
  const known = orders.get(key);
  if (known && (known.event_count || 0) > (order.event_count || 0)) return; // an older picture: keep ours
  order.source = eventSource || (known && known.source) || order.source || null;
  orders.set(key, order);
  sorted = sorted.filter((k) => k !== key);
  let at = sorted.findIndex((k) => newer(order, orders.get(k)));
  if (at < 0) at = sorted.length;
  sorted.splice(at, 0, key);
  const row = renderRow(order);
  const old = rows.get(key);
  rows.set(key, row);
  if (old) old.remove();
  const body = document.querySelector("#orders tbody");
  const next = sorted[at + 1] && rows.get(sorted[at + 1]);
  body.insertBefore(row, next && next.parentNode === body ? next : null);
}

function forgetOrders() {
  orders.clear();
  rows.clear();
  sorted = [];
  document.querySelector("#orders tbody").replaceChildren();
}

function cell(label, ...content) {
  return el("td", { "data-label": label }, ...content);
}

function renderRow(order) {
  const key = keyOf(order);
  const rejected = order.status === "REJECTED" || (order.reason && order.status !== "FILLED");
  const row = el("tr", {
    "data-order": key,
    "data-status": order.status,
    class: rejected ? "marked" : null,
    tabindex: "0",
    onclick: (event) => {
      // The whole row opens the order, unless the click was a text selection or on a control of its own.
      if (event.target.closest("button, a, summary") || String(getSelection())) return;
      openOrder(order);
    },
    onkeydown: (event) => {
      if (event.target !== row || (event.key !== "Enter" && event.key !== " ")) return;
      event.preventDefault();
      openOrder(order);
    },
  });
  const badge = el("span", { class: `badge s-${order.status.toLowerCase()}`, text: STATUS_LABEL[order.status] || order.status });
  const open = el("button", { type: "button", class: "link cut", text: order.order_id, title: order.order_id, onclick: () => openOrder(order) });
  row.append(
    cell("Status", badge),
    cell("Broker", cut(order.broker)),
    cell("Account", cut(order.account_id)),
    cell("Order id", open, cut(order.exchange_order_id, "div", "muted small")),
    cell("Symbol", cut(order.symbol, "strong"), order.exchange ? " " : null, order.exchange ? cut(order.exchange, "span", "muted small") : null),
    cell("Side", cut(order.side, "span", `side ${String(order.side || "").toLowerCase()}`)),
    cell("Type", cut(order.order_type)),
    cell("Product", cut(order.product)),
    cell("Qty / filled / pending", `${blank(order.quantity)} / ${blank(order.filled_quantity)} / ${blank(order.pending_quantity)}`),
    cell("Price / trigger", `${blank(order.price)} / ${blank(order.trigger_price)}`),
    cell("Avg price", blank(order.average_price)),
    cell("Reason", order.reason ? el("span", { class: "reason", title: order.reason }, "⚠ ", cut(order.reason)) : "—"),
    cell("Exchange time", stamp(order.exchange_time)),
    cell("Last update", stamp(order.updated_at)),
    cell("Source", blank(order.source)),
  );
  if (order.reason) row.querySelector('td[data-label="Reason"]').classList.add("wide");
  row.querySelector('td[data-label="Order id"]').classList.add("wide");
  row.hidden = !matches(order);
  return row;
}

function filters() {
  return {
    broker: document.getElementById("f-broker").value,
    account: document.getElementById("f-account").value,
    status: document.getElementById("f-status").value,
    search: document.getElementById("f-search").value.trim().toLowerCase(),
  };
}

function matches(order, f = filters(), ignoreChip = false) {
  if (f.broker && order.broker !== f.broker) return false;
  if (f.account && order.account_id !== f.account) return false;
  if (f.status && order.status !== f.status) return false;
  if (f.search) {
    const hay = [order.order_id, order.exchange_order_id, order.symbol].map((v) => String(v || "").toLowerCase());
    if (!hay.some((v) => v.includes(f.search))) return false;
  }
  if (chip && !ignoreChip) {
    const statuses = CHIPS.find(([name]) => name === chip)[2];
    if (!statuses.includes(order.status)) return false;
  }
  return true;
}

function refreshView() {
  const f = filters();
  let shown = 0;
  for (const [key, row] of rows) {
    row.hidden = !matches(orders.get(key), f);
    if (!row.hidden) shown += 1;
  }
  const loaded = orders.size.toLocaleString("en");
  document.getElementById("shown").textContent = olderCursor
    ? `${shown.toLocaleString("en")} of the newest ${loaded} orders` : `${shown.toLocaleString("en")} of ${loaded} orders`;
  document.getElementById("no-orders").hidden = shown > 0;
  const more = document.getElementById("more");
  more.hidden = !olderCursor;
  document.getElementById("more-text").textContent = `Showing the newest ${loaded} orders: older orders are not loaded, `
    + "so counts, filters and search cover these only (Export CSV still gets every matching order).";
  const counts = Object.fromEntries(CHIPS.map(([name]) => [name, 0]));
  for (const order of orders.values()) {
    if (!matches(order, f, true)) continue;
    for (const [name, , statuses] of CHIPS) if (statuses.includes(order.status)) counts[name] += 1;
  }
  for (const button of document.querySelectorAll("#chips button")) {
    const name = button.dataset.chip;
    button.querySelector(".count").textContent = name ? counts[name] : "";
    button.setAttribute("aria-pressed", String(name === chip));
  }
  fillOptions("f-broker", [...orders.values()].map((o) => o.broker));
  fillOptions("f-account", [...orders.values()].map((o) => o.account_id));
}

function fillOptions(id, values) {
  const select = document.getElementById(id);
  const have = new Set([...select.options].map((o) => o.value));
  for (const value of [...new Set(values)].filter(Boolean).sort()) {
    if (!have.has(value)) select.append(el("option", { value, text: visible(value) }));
  }
}

function setupOrders() {
  const chips = document.getElementById("chips");
  chips.append(el("button", { type: "button", "data-chip": "", onclick: () => { chip = ""; refreshView(); } }, "All", el("span", { class: "count" })));
  for (const [name, label] of CHIPS) {
    chips.append(el("button", { type: "button", "data-chip": name, class: `chip c-${name}`,
      onclick: () => { chip = chip === name ? "" : name; refreshView(); } }, label, " ", el("span", { class: "count", text: "0" })));
  }
  const status = document.getElementById("f-status");
  for (const [value, label] of Object.entries(STATUS_LABEL)) status.append(el("option", { value, text: label }));
  for (const id of ["f-broker", "f-account", "f-status"]) document.getElementById(id).addEventListener("change", refreshView);
  document.getElementById("f-search").addEventListener("input", refreshView);
  document.getElementById("export").addEventListener("click", exportCsv);
  document.getElementById("load-more").addEventListener("click", loadOlder);
}

async function loadOlder() {
  // The next page of older orders, by the list's cursor (docs/api.md, "Lists").
  const button = document.getElementById("load-more");
  button.disabled = true;
  try {
    const { data } = await api(`/api/orders?limit=${PAGE}&cursor=${encodeURIComponent(olderCursor)}`);
    for (const order of data.orders) put(order, order.source);
    olderCursor = data.next_cursor;
  } catch (failure) {
    toast(`Older orders could not be loaded: ${failure.message}`, true);
  }
  button.disabled = false;
  refreshView();
}

function csvField(value) {
  let text = value === null || value === undefined ? "" : String(value);
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`; // no formulas in a spreadsheet
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

async function olderMatching(f, progress) {
  // Every stored order older than the loaded ones that the filters keep, page by page from the API.
  const found = [];
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (f.broker) query.set("broker", f.broker);
  if (/^[ -~]{1,512}$/.test(f.account)) query.set("account_id", f.account); // what the API takes; else filtered here
  if (f.status) query.set("status", f.status);
  for (let cursor = olderCursor; cursor;) {
    query.set("cursor", cursor);
    const { data } = await api(`/api/orders?${query}`);
    for (const order of data.orders) if (!orders.has(keyOf(order)) && matches(order, f)) found.push(order);
    progress(found.length);
    cursor = data.next_cursor;
  }
  return found;
}

async function exportCsv() {
  // Every order the filters keep, loaded or not, newest first (docs/frontend.md, "Orders").
  const button = document.getElementById("export");
  const shown = document.getElementById("shown");
  const f = filters();
  const picked = sorted.map((key) => orders.get(key)).filter((order) => matches(order, f));
  button.disabled = true;
  let older = [];
  try {
    older = await olderMatching(f, (n) => { shown.textContent = `Exporting: ${picked.length + n} orders so far…`; });
  } catch (failure) {
    toast(`The export stopped: ${failure.message}`, true);
    button.disabled = false;
    refreshView();
    return;
  }
  button.disabled = false;
  refreshView();
  const lines = [COLUMNS.map(([name]) => csvField(name)).join(",")];
  for (const order of picked.concat(older)) lines.push(COLUMNS.map(([, get]) => csvField(get(order))).join(","));
  const blob = new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" });
  const link = el("a", { href: URL.createObjectURL(blob), download: `orders-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}.csv` });
  document.body.append(link);
  link.click();
  setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
}

// ---- live channel --------------------------------------------------------------------------

function newestKnown() {
  let newest = 0;
  for (const order of orders.values()) newest = Math.max(newest, Date.parse(order.updated_at) || 0);
  return newest;
}

async function snapshot() {
  // The newest page, taken each time the shared stream (re)opens, so nothing stored while it was
  // away is missed. When everything on that page is newer than what we knew (more changed meanwhile
  // than a page holds), older rows may be stale: start again from this page.
  snapshotting = true;
  buffered = [];
  try {
    const { data } = await api(`/api/orders?limit=${PAGE}`);
    const oldest = data.orders.length ? Date.parse(data.orders[data.orders.length - 1].updated_at) || 0 : 0;
    const gap = orders.size === 0 || (data.next_cursor && oldest > newestKnown() - CATCH_UP_MARGIN_MS);
    if (gap) {
      forgetOrders();
      olderCursor = data.next_cursor;
    }
    for (const order of data.orders.reverse()) put(order, order.source);
  } catch (failure) {
    toast(`Orders could not be loaded: ${failure.message}`, true);
  }
  snapshotting = false;
  for (const message of buffered) apply(message);
  buffered = [];
  refreshView();
}

function apply(message) {
  if (message.type !== "order") return;
  put(message.order, message.event && message.event.source);
  const key = keyOf(message.order);
  if (opened === key) showOrder(message.order.broker, message.order.order_id);
}

function receive(data) {
  let message;
  try { message = JSON.parse(data); } catch { return; }
  if (snapshotting) buffered.push(message);
  else { apply(message); refreshView(); }
}

function showLive(report) {
  // The header says "live" only while the shared stream is open; a new opening means a new snapshot.
  const live = document.getElementById("live");
  live.dataset.state = report.state;
  if (report.state === "live") {
    live.textContent = "live";
    live.className = "live on";
    if (report.epoch !== liveEpoch) {
      liveEpoch = report.epoch;
      snapshot();
    }
  } else {
    live.textContent = report.state === "connecting" ? "not live — connecting…" : "not live — reconnecting…";
    live.className = "live off";
  }
}

function hear(report) {
  if (report.kind === "state") showLive(report);
  else if (report.kind === "message") receive(report.data);
  else if (report.kind === "signed-out") location.reload();
}

function connect() {
  // ONE stream per browser, shared by every tab (docs/frontend.md, "How it stays live"): a SharedWorker
  // holds it; without SharedWorker the tab holding the Web Lock does and relays on a BroadcastChannel.
  const live = document.getElementById("live");
  if (typeof SharedWorker === "function") {
    try {
      const worker = new SharedWorker(document.querySelector('meta[name="live-worker"]').content, { name: "orderhook-live" });
      worker.port.onmessage = ({ data }) => hear(data);
      worker.port.start();
      worker.onerror = () => {
        // The worker's script did not load: share through a leader tab instead.
        liveChannel = leaderChannel();
        live.dataset.mode = liveChannel.mode;
      };
      window.addEventListener("pagehide", () => worker.port.postMessage({ kind: "bye" }));
      liveChannel = { mode: "shared-worker", signOut: () => worker.port.postMessage({ kind: "signed-out" }) };
      live.dataset.mode = liveChannel.mode;
      return;
    } catch {
      // refused (a browser setting or policy): elect a leader tab instead
    }
  }
  liveChannel = navigator.locks && typeof BroadcastChannel === "function" ? leaderChannel() : ownChannel();
  live.dataset.mode = liveChannel.mode;
}

function leaderChannel() {
  // The tab holding the lock holds the stream until it goes away; the next waiting tab then takes over.
  const channel = new BroadcastChannel("orderhook-live");
  let holder = null;
  channel.onmessage = ({ data }) => {
    if (holder && data.kind === "hello") channel.postMessage(holder.state);
    else if (holder && data.kind === "signed-out") holder.signedOut();
    else if (!holder) hear(data);
  };
  navigator.locks.request("orderhook-live", () => new Promise(() => {
    holder = new LiveSource((report) => { hear(report); channel.postMessage(report); });
    document.getElementById("live").dataset.leader = "yes";
    // Leaving: the others are not live until the next leader's stream opens.
    window.addEventListener("pagehide", () => channel.postMessage({ kind: "state", state: "reconnecting" }));
    holder.start();
  }));
  channel.postMessage({ kind: "hello" });
  return {
    mode: "leader-tab",
    signOut: () => { if (holder) holder.signedOut(); else channel.postMessage({ kind: "signed-out" }); },
  };
}

function ownChannel() {
  // No way to share: this tab keeps its own stream.
  const holder = new LiveSource(hear);
  holder.start();
  return { mode: "own", signOut: () => holder.stop() };
}

// ---- one order -----------------------------------------------------------------------------

async function showOrder(broker, orderId) {
  const key = `${broker}/${orderId}`;
  const title = document.getElementById("order-title");
  const summary = document.getElementById("order-summary");
  if (opened !== key) {
    // Another order: never leave the previous one's card (or a blank one) on screen while this loads.
    title.replaceChildren(el("span", { text: `${broker} order ${orderId}` }));
    summary.replaceChildren(el("dt", { text: "Loading" }), el("dd", { text: "…" }));
    document.querySelector("#order-events tbody").replaceChildren();
    document.getElementById("order-deliveries").replaceChildren();
  }
  opened = key;
  let order;
  try {
    ({ data: order } = await api(orderUrl(broker, orderId)));
  } catch (failure) {
    if (opened !== key) return;
    summary.replaceChildren(el("dt", { text: "Not loaded" }), el("dd", { class: "error", text: failure.message }));
    toast(failure.message, true);
    return;
  }
  if (opened !== key) return;
  summary.replaceChildren();
  for (const [label, value] of [
    ["Status", STATUS_LABEL[order.status] || order.status], ["Symbol", order.symbol], ["Exchange", order.exchange], ["Side", order.side],
    ["Quantity / filled / pending", `${blank(order.quantity)} / ${blank(order.filled_quantity)} / ${blank(order.pending_quantity)}`],
    ["Price / trigger", `${blank(order.price)} / ${blank(order.trigger_price)}`], ["Average price", order.average_price],
    ["Account", order.account_id], ["Order id", order.order_id], ["Exchange order id", order.exchange_order_id], ["Reason", order.reason],
  ]) summary.append(el("dt", { text: label }), el("dd", { text: blank(value) }));
  const body = document.querySelector("#order-events tbody");
  const openRaw = new Set([...body.querySelectorAll("details[open]")].map((d) => d.closest("tr").dataset.eventId));
  body.replaceChildren();
  for (const event of order.events) {
    const raw = el("details", { open: openRaw.has(event.id) }, el("summary", { text: "Raw" }),
      el("pre", { lines: JSON.stringify(event.raw, null, 2) }));
    body.append(el("tr", { "data-event-id": event.id },
      cell("#", String(event.sequence)),
      cell("Status", el("span", { class: `badge s-${String(event.status).toLowerCase()}`, text: STATUS_LABEL[event.status] || event.status })),
      cell("Broker status", cut(event.broker_status)),
      cell("Source", blank(event.source)),
      cell("Received", stamp(event.received_at)),
      cell("Exchange time", stamp(event.exchange_time)),
      cell("Filled", blank(event.filled_quantity)),
      cell("Reason", event.reason ? el("span", { class: "reason" }, cut(event.reason)) : "—"),
      cell("Payload", raw)));
  }
  loadOrderDeliveries(key);
}

async function loadOrderDeliveries(key) {
  const box = document.getElementById("order-deliveries");
  try {
    const { data } = await api(`/api/deliveries?order=${encodeURIComponent(key)}&limit=1000`);
    if (opened !== key) return;
    box.replaceChildren(deliveryList(data.deliveries, "No deliveries: FORWARD_URLS is empty, or none were made yet.", () => loadOrderDeliveries(key)));
  } catch (failure) {
    box.textContent = visible(failure.message);
  }
}

// ---- deliveries ----------------------------------------------------------------------------

function deliveryList(deliveries, emptyText, reload) {
  if (!deliveries.length) return el("p", { class: "muted", text: emptyText });
  const list = el("div", { class: "deliveries" });
  for (const d of deliveries) {
    const attempts = el("ol", { class: "attempts" });
    for (const a of d.attempt_log) {
      attempts.append(el("li", { text: `#${a.attempt} ${when(a.attempted_at)} → ${a.status_code || "no answer"}${a.latency_ms !== null ? ` in ${Math.round(a.latency_ms)} ms` : ""}${a.error ? ` · ${a.error}` : ""}` }));
    }
    const card = el("article", { class: `delivery state-${d.status}`, "data-delivery": d.status === "failed" ? String(d.id) : null },
      el("header", {},
        el("span", { class: `badge d-${d.status}`, text: d.status }),
        el("span", { class: "consumer", text: deliveryConsumer(d) }), // consumers.js
        el("span", { class: "muted small", text: `delivery ${d.id} · event ${d.event_id} · ${d.attempts} attempt(s)` }),
        nextTry(d)),
      d.last_error ? el("p", { class: "reason", text: d.last_error }) : null,
      d.attempt_log.length ? attempts : null);
    if (d.status === "failed") {
      card.querySelector("header").append(el("button", { type: "button", text: "Retry", onclick: async (event) => {
        event.currentTarget.disabled = true;
        try {
          await api(`/api/deliveries/${d.id}/retry`, { method: "POST" });
          toast(`Delivery ${d.id} is queued again`);
        } catch (failure) {
          toast(failure.message, true);
        }
        reload();
      } }));
    }
    list.append(card);
  }
  return list;
}

function nextTry(d) {
  // When the worker tries a delivery again, in local time like every time on the page (docs/frontend.md).
  if (d.status === "delivered") return null;
  if (d.status === "failed") return el("span", { class: "next-try none", text: "no more tries" });
  if (!d.next_attempt_at) return el("span", { class: "next-try", text: "next try: when a worker takes it" });
  const due = new Date(d.next_attempt_at) <= new Date();
  return el("span", { class: due ? "next-try due" : "next-try" },
    due ? "next try now, due since " : "next try ", el("time", { datetime: d.next_attempt_at, title: visible(d.next_attempt_at), text: when(d.next_attempt_at) }));
}

let deliveriesOf = ""; // the consumer id the Deliveries view is filtered by ("" = every consumer)

function deliveriesQuery(status) {
  // GET /api/deliveries of one status, of the chosen consumer only when one is chosen (docs/frontend.md).
  const query = new URLSearchParams({ status, limit: "200" });
  if (deliveriesOf) query.set("consumer", deliveriesOf);
  return `/api/deliveries?${query}`;
}

function loadDeliveries() {
  loadFailed();
  loadPending();
}

function showDeliveries(consumer) {
  deliveriesOf = consumer;
  fillDeliveryConsumers(consumer).finally(loadDeliveries); // consumers.js: the consumers' names first
}

async function loadPending() {
  const box = document.getElementById("pending-deliveries");
  try {
    const { data } = await api(deliveriesQuery("pending"));
    box.replaceChildren(deliveryList(data.deliveries, "No deliveries waiting for a try.", loadDeliveries));
  } catch (failure) {
    box.textContent = visible(failure.message);
  }
}

async function loadFailed() {
  const box = document.getElementById("failed-deliveries");
  try {
    const { data } = await api(deliveriesQuery("failed"));
    box.replaceChildren(deliveryList(data.deliveries, "No failed deliveries.", loadDeliveries));
    // Retry all: one of the consumers with failed deliveries, by id (or by URL for a delivery without one).
    const select = document.getElementById("redrive-consumer");
    const chosen = select.value || deliveriesOf;
    const named = new Map(data.deliveries.map((d) => [d.consumer_id || d.consumer, deliveryConsumer(d)]));
    select.replaceChildren(...[...named].sort((a, b) => a[1].localeCompare(b[1])).map(([value, name]) => el("option", { value, text: visible(name) })));
    if (chosen && named.has(chosen)) select.value = chosen;
  } catch (failure) {
    box.textContent = visible(failure.message);
  }
}

function redriveBody(dryRun) {
  const since = document.getElementById("redrive-since").value;
  return JSON.stringify({
    consumer: document.getElementById("redrive-consumer").value,
    since: since ? new Date(since).toISOString() : null,
    dry_run: dryRun,
  });
}

function setupDeliveries() {
  document.getElementById("d-consumer").addEventListener("change", (event) => {
    // The filter is in the address (#deliveries/<consumer id>), so a consumer's card can link to it.
    const id = event.currentTarget.value;
    location.hash = id ? `#deliveries/${encodeURIComponent(id)}` : "#deliveries";
  });
  const form = document.getElementById("redrive-form");
  const go = document.getElementById("redrive-go");
  const count = document.getElementById("redrive-count");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    go.hidden = true;
    try {
      const { data } = await api("/api/deliveries/redrive", { method: "POST", body: redriveBody(true), headers: { "Content-Type": "application/json" } });
      count.textContent = `${data.count} failed deliveries will be redriven.`;
      go.textContent = `Retry all ${data.count}`;
      go.hidden = data.count === 0;
    } catch (failure) {
      count.textContent = visible(failure.message);
    }
  });
  go.addEventListener("click", async () => {
    go.hidden = true;
    try {
      const { data } = await api("/api/deliveries/redrive", { method: "POST", body: redriveBody(false), headers: { "Content-Type": "application/json" } });
      count.textContent = `${data.count} deliveries queued again.`;
    } catch (failure) {
      count.textContent = visible(failure.message);
    }
    loadDeliveries();
  });
}

// ---- feeds and the Dhan web frame ----------------------------------------------------------

async function loadFeeds() {
  try {
    const { data } = await api("/api/feeds");
    const body = document.querySelector("#feeds tbody");
    body.replaceChildren(...data.feeds.map((f) => el("tr", { "data-feed": f.name },
      cell("Feed", f.name),
      cell("State", el("span", { class: `badge f-${f.connected ? "up" : "down"}`, text: `${f.state}${f.stale ? " (stale)" : ""}` })),
      cell("Last message", stamp(f.last_message_at)),
      cell("Reconnects", String(f.reconnects ?? 0)),
      cell("Last error", cut(f.last_error)))));
    document.getElementById("no-feeds").hidden = data.feeds.length > 0;
    document.querySelector("#view-feeds .table-wrap").hidden = data.feeds.length === 0;
  } catch (failure) {
    toast(failure.message, true);
  }
}

async function loadFrame() {
  const info = document.getElementById("frame-info");
  try {
    const { status, data } = await api("/api/feeds/dhan-web/login-frame", { allow: [404, 409, 503] });
    if (status === 200) info.textContent = `A ${data.size}-byte frame is stored (since ${when(data.stored_at)}).`;
    else if (status === 404) info.textContent = "No login frame is stored yet: paste one below (the capture extension does it for you).";
    else info.textContent = visible(data.error);
  } catch (failure) {
    info.textContent = visible(failure.message);
  }
}

function setupFrame() {
  document.getElementById("frame-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = document.getElementById("frame-text");
    const result = document.getElementById("frame-result");
    try {
      await api("/api/feeds/dhan-web/login-frame", { method: "PUT", body: text.value.trim(), headers: { "Content-Type": "text/plain" } });
      result.textContent = "Stored: the dhan_web feed logs in with it.";
      text.value = "";
    } catch (failure) {
      result.textContent = visible(failure.message);
    }
    loadFrame();
  });
}

// ---- navigation ----------------------------------------------------------------------------

let feedTimer = null;

function route() {
  const hash = location.hash.replace(/^#/, "") || "orders";
  const [view, ...rest] = hash.split("/");
  const name = ["orders", "order", "deliveries", "consumers", "accounts", "feeds", "dhan-web"].includes(view) ? view : "orders";
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.dataset.view !== name;
  for (const tab of document.querySelectorAll(".tabs a")) {
    if (tab.dataset.tab === (name === "order" ? "orders" : name)) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  opened = null;
  clearInterval(feedTimer);
  if (name === "order" && rest.length >= 2) {
    try {
      showOrder(decodeURIComponent(rest[0]), decodeURIComponent(rest.slice(1).join("/")));
    } catch {
      toast("This order link is not valid: open the order from the list", true);
    }
  }
  if (name === "deliveries") {
    let consumer = "";
    try { consumer = decodeURIComponent(rest.join("/")); } catch { toast("This consumer link is not valid: choose the consumer from the list", true); }
    showDeliveries(consumer);
  }
  if (name === "feeds") { loadFeeds(); feedTimer = setInterval(loadFeeds, 5000); }
  if (name === "dhan-web") loadFrame();
  if (name === "accounts") showAccounts(); // accounts.js
  if (name === "consumers") showConsumers(); // consumers.js
}

document.getElementById("signout").addEventListener("click", async () => {
  await fetch("/signout", { method: "POST", headers: { "X-CSRF-Token": CSRF }, credentials: "same-origin" }).catch(() => null);
  liveChannel.signOut(); // every other tab of the session goes back to the sign-in form too
  location.replace("/");
});

setupOrders();
setupDeliveries();
setupFrame();
setupAccounts(); // accounts.js
setupConsumers(); // consumers.js
window.addEventListener("hashchange", route);
route();
refreshView();
connect();
