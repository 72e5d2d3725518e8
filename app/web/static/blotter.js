// The blotter: a snapshot of /api/orders, then live changes from /api/stream (Server-Sent Events).
// No framework, no build step. Test hooks (fixed, docs/frontend.md): tr[data-order][data-status],
// tr[data-event-id] in an opened order, [data-delivery] holding a "Retry" button.
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
let source = null;

// ---- helpers -------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function blank(value) {
  return value === null || value === undefined || value === "" ? "—" : String(value);
}

function when(iso) {
  // Local time, 24-hour: just the time for today, the date too for older moments.
  if (!iso) return "—";
  const moment = new Date(iso);
  if (Number.isNaN(moment.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, "0");
  const time = `${pad(moment.getHours())}:${pad(moment.getMinutes())}:${pad(moment.getSeconds())}`;
  if (new Date().toDateString() === moment.toDateString()) return time;
  return `${moment.getFullYear()}-${pad(moment.getMonth() + 1)}-${pad(moment.getDate())}\n${time}`;
}

function toast(message, bad = false) {
  const box = document.getElementById("toast");
  box.textContent = message;
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

function keyOf(order) {
  return `${order.broker}/${order.order_id}`;
}

// ---- orders --------------------------------------------------------------------------------

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
  });
  const badge = el("span", { class: `badge s-${order.status.toLowerCase()}`, text: STATUS_LABEL[order.status] || order.status });
  const open = el("button", { type: "button", class: "link", text: order.order_id, title: "Open this order",
    onclick: () => { location.hash = `#order/${encodeURIComponent(order.broker)}/${encodeURIComponent(order.order_id)}`; } });
  row.append(
    cell("Status", badge),
    cell("Broker", blank(order.broker)),
    cell("Account", blank(order.account_id)),
    cell("Order id", open, el("div", { class: "muted small", text: blank(order.exchange_order_id) })),
    cell("Symbol", el("strong", { text: blank(order.symbol) }), order.exchange ? el("span", { class: "muted small", text: ` ${order.exchange}` }) : null),
    cell("Side", el("span", { class: `side ${String(order.side || "").toLowerCase()}`, text: blank(order.side) })),
    cell("Type", blank(order.order_type)),
    cell("Product", blank(order.product)),
    cell("Qty / filled / pending", `${blank(order.quantity)} / ${blank(order.filled_quantity)} / ${blank(order.pending_quantity)}`),
    cell("Price / trigger", `${blank(order.price)} / ${blank(order.trigger_price)}`),
    cell("Avg price", blank(order.average_price)),
    cell("Reason", order.reason ? el("span", { class: "reason", text: `⚠ ${order.reason}` }) : "—"),
    cell("Exchange time", el("time", { datetime: order.exchange_time || "", text: when(order.exchange_time) })),
    cell("Last update", el("time", { datetime: order.updated_at || "", text: when(order.updated_at) })),
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
  document.getElementById("shown").textContent = `${shown} of ${orders.size} orders`;
  document.getElementById("no-orders").hidden = shown > 0;
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
    if (!have.has(value)) select.append(el("option", { value, text: value }));
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
}

function csvField(value) {
  let text = value === null || value === undefined ? "" : String(value);
  if (typeof value === "string" && /^[=+\-@\t\r]/.test(text)) text = `'${text}`; // no formulas in a spreadsheet
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function exportCsv() {
  const f = filters();
  const lines = [COLUMNS.map(([name]) => csvField(name)).join(",")];
  for (const key of sorted) {
    const order = orders.get(key);
    if (matches(order, f)) lines.push(COLUMNS.map(([, get]) => csvField(get(order))).join(","));
  }
  const blob = new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" });
  const link = el("a", { href: URL.createObjectURL(blob), download: `orders-${new Date().toISOString().slice(0, 19).replace(/:/g, "")}.csv` });
  document.body.append(link);
  link.click();
  setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
}

// ---- live channel --------------------------------------------------------------------------

async function snapshot() {
  snapshotting = true;
  buffered = [];
  try {
    const { data } = await api("/api/orders?limit=1000");
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

function connect() {
  const live = document.getElementById("live");
  source = new EventSource("/api/stream");
  source.onopen = () => {
    live.textContent = "live";
    live.className = "live on";
    snapshot(); // catch up on everything stored while we were away
  };
  source.onmessage = (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    if (snapshotting) buffered.push(message);
    else { apply(message); refreshView(); }
  };
  source.addEventListener("signed-out", () => location.reload());
  source.onerror = () => {
    live.textContent = "reconnecting…";
    live.className = "live off";
    if (source.readyState === EventSource.CLOSED) {
      setTimeout(async () => {
        // A closed stream may mean a refused session: a 401 on a plain request sends us to sign-in.
        try { await api("/api/orders?limit=1"); } catch { return; }
        connect();
      }, 2000);
    }
  };
}

// ---- one order -----------------------------------------------------------------------------

async function showOrder(broker, orderId) {
  const key = `${broker}/${orderId}`;
  opened = key;
  let order;
  try {
    ({ data: order } = await api(`/api/orders/${encodeURIComponent(broker)}/${encodeURIComponent(orderId)}`));
  } catch (failure) {
    toast(failure.message, true);
    return;
  }
  if (opened !== key) return;
  document.getElementById("order-title").textContent = `${broker} order ${orderId}`;
  const summary = document.getElementById("order-summary");
  summary.replaceChildren();
  for (const [label, value] of [
    ["Status", STATUS_LABEL[order.status] || order.status], ["Symbol", order.symbol], ["Side", order.side],
    ["Quantity / filled / pending", `${blank(order.quantity)} / ${blank(order.filled_quantity)} / ${blank(order.pending_quantity)}`],
    ["Price / trigger", `${blank(order.price)} / ${blank(order.trigger_price)}`], ["Average price", order.average_price],
    ["Account", order.account_id], ["Exchange order id", order.exchange_order_id], ["Reason", order.reason],
  ]) summary.append(el("dt", { text: label }), el("dd", { text: blank(value) }));
  const body = document.querySelector("#order-events tbody");
  const openRaw = new Set([...body.querySelectorAll("details[open]")].map((d) => d.closest("tr").dataset.eventId));
  body.replaceChildren();
  for (const event of order.events) {
    const raw = el("details", { open: openRaw.has(event.id) }, el("summary", { text: "Raw" }),
      el("pre", { text: JSON.stringify(event.raw, null, 2) }));
    body.append(el("tr", { "data-event-id": event.id },
      cell("#", String(event.sequence)),
      cell("Status", el("span", { class: `badge s-${String(event.status).toLowerCase()}`, text: STATUS_LABEL[event.status] || event.status })),
      cell("Broker status", blank(event.broker_status)),
      cell("Source", blank(event.source)),
      cell("Received", when(event.received_at)),
      cell("Exchange time", when(event.exchange_time)),
      cell("Filled", blank(event.filled_quantity)),
      cell("Reason", blank(event.reason)),
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
    box.textContent = failure.message;
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
        el("span", { class: "consumer", text: d.consumer }),
        el("span", { class: "muted small", text: `delivery ${d.id} · event ${d.event_id} · ${d.attempts} attempt(s)` })),
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

async function loadFailed() {
  const box = document.getElementById("failed-deliveries");
  try {
    const { data } = await api("/api/deliveries?status=failed&limit=200");
    box.replaceChildren(deliveryList(data.deliveries, "No failed deliveries.", loadFailed));
    const select = document.getElementById("redrive-consumer");
    const chosen = select.value;
    select.replaceChildren(...[...new Set(data.deliveries.map((d) => d.consumer))].sort().map((url) => el("option", { value: url, text: url })));
    if (chosen) select.value = chosen;
  } catch (failure) {
    box.textContent = failure.message;
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
      count.textContent = failure.message;
    }
  });
  go.addEventListener("click", async () => {
    go.hidden = true;
    try {
      const { data } = await api("/api/deliveries/redrive", { method: "POST", body: redriveBody(false), headers: { "Content-Type": "application/json" } });
      count.textContent = `${data.count} deliveries queued again.`;
    } catch (failure) {
      count.textContent = failure.message;
    }
    loadFailed();
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
      cell("Last message", when(f.last_message_at)),
      cell("Reconnects", String(f.reconnects ?? 0)),
      cell("Last error", blank(f.last_error)))));
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
    if (status === 200) info.textContent = `A ${data.size}-byte frame is stored (since ${when(data.stored_at).replace("\n", " ")}).`;
    else if (status === 404) info.textContent = "No login frame is stored yet: paste one below (the capture extension does it for you).";
    else info.textContent = data.error;
  } catch (failure) {
    info.textContent = failure.message;
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
      result.textContent = failure.message;
    }
    loadFrame();
  });
}

// ---- navigation ----------------------------------------------------------------------------

let feedTimer = null;

function route() {
  const hash = location.hash.replace(/^#/, "") || "orders";
  const [view, ...rest] = hash.split("/");
  const name = ["orders", "order", "deliveries", "feeds", "dhan-web"].includes(view) ? view : "orders";
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.dataset.view !== name;
  for (const tab of document.querySelectorAll(".tabs a")) {
    if (tab.dataset.tab === (name === "order" ? "orders" : name)) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  opened = null;
  clearInterval(feedTimer);
  if (name === "order" && rest.length >= 2) showOrder(decodeURIComponent(rest[0]), decodeURIComponent(rest.slice(1).join("/")));
  if (name === "deliveries") loadFailed();
  if (name === "feeds") { loadFeeds(); feedTimer = setInterval(loadFeeds, 5000); }
  if (name === "dhan-web") loadFrame();
}

document.getElementById("signout").addEventListener("click", async () => {
  if (source) source.close();
  await fetch("/signout", { method: "POST", headers: { "X-CSRF-Token": CSRF }, credentials: "same-origin" }).catch(() => null);
  location.replace("/");
});

setupOrders();
setupDeliveries();
setupFrame();
window.addEventListener("hashchange", route);
route();
refreshView();
connect();
