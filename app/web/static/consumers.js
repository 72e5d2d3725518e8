// The blotter's Consumers page (docs/frontend.md, "Consumers"): every destination of forwarded events with its
// filters, counts, last error and latency; add one (its whsec_ secret shown this once, with a copy button),
// switch it on and off, rotate its secret, send it a test event, replay a window to it, remove it.
// Loaded after accounts.js (its fact()) and before blotter.js, whose helpers (el, api, toast, when, visible,
// STATUS_LABEL) it uses once the page runs; blotter.js calls setupConsumers(), showConsumers() on #consumers and
// fillDeliveryConsumers() on #deliveries.
// Test hooks (fixed, docs/interface.md "Consumers"): each consumer's card carries data-consumer="<id>".
"use strict";

let consumerList = []; // the last GET /api/consumers
let consumerTimer = null;
const outcomes = new Map(); // consumer id -> [text, bad]: what its last action answered, kept across refreshes
const CONSUMER_TYPES = { http: "HTTP", rq: "RQ queue", redis_stream: "Redis stream" };
const EVENT_SOURCES = ["postback", "websocket", "reconcile"]; // docs/interface.md, the normalized event's source
const FILTER_NAMES = ["brokers", "accounts", "statuses", "sources"];

function destination(c) {
  if (c.type === "http") return c.url || "";
  if (c.type === "rq") return `queue ${c.queue} → ${c.function}`;
  if (c.type === "redis_stream") return `stream ${c.stream}`;
  return c.type;
}

function consumerName(c) {
  return c.description || destination(c) || c.id;
}

function jsonRequest(method, body) {
  return { method, body: JSON.stringify(body), headers: { "Content-Type": "application/json" } };
}

// ---- the add form ------------------------------------------------------------------------------

let brokerNames = []; // GET /api/brokers, for the filters' checkboxes

function checkbox(name, value, label, checked = false) {
  return el("label", { class: "check" }, el("input", { type: "checkbox", name, value, checked }), el("span", { text: label }));
}

function checkboxes(boxId, name, values, label = (v) => v) {
  const box = document.getElementById(boxId);
  const legend = box.querySelector("legend");
  box.replaceChildren(legend, ...values.map((value) => checkbox(name, value, label(value))));
}

async function loadFilterChoices() {
  // Brokers from GET /api/brokers, the known account ids as a hint; statuses and sources are fixed words.
  if (!brokerNames.length) {
    const { data } = await api("/api/brokers");
    brokerNames = data.brokers.map((b) => b.name);
    checkboxes("con-brokers", "brokers", brokerNames);
  }
  const { data } = await api("/api/accounts");
  const ids = [...new Set(data.accounts.map((a) => a.account_id).filter(Boolean))].sort();
  document.getElementById("con-accounts-hint").textContent = visible(ids.length
    ? `comma-separated; known: ${ids.join(", ")}` : "comma-separated account ids (none known yet)");
}

function showTypeFields() {
  // The destination fields of the chosen type only: http → url; rq → queue + function; redis_stream → stream.
  const type = document.getElementById("con-type").value;
  for (const box of document.querySelectorAll("#consumer-form [data-for]")) {
    const mine = box.dataset.for === type;
    box.hidden = !mine;
    for (const input of box.querySelectorAll("input")) input.required = mine;
  }
}

function chosenFilters(form, accounts = document.getElementById("con-accounts")) {
  const filters = {};
  for (const name of ["brokers", "statuses", "sources"]) {
    filters[name] = [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((input) => input.value);
  }
  filters.accounts = accounts.value.split(",").map((v) => v.trim()).filter(Boolean);
  return filters;
}

function newConsumerBody(form) {
  const type = document.getElementById("con-type").value;
  const body = {
    type,
    description: document.getElementById("con-description").value.trim(),
    filters: chosenFilters(form),
    enabled: document.getElementById("con-enabled").checked,
  };
  if (type === "http") body.url = document.getElementById("con-url").value.trim();
  if (type === "rq") {
    body.queue = document.getElementById("con-queue").value.trim();
    body.function = document.getElementById("con-function").value.trim();
  }
  if (type === "redis_stream") body.stream = document.getElementById("con-stream").value.trim();
  return body;
}

function setupConsumers() {
  const form = document.getElementById("consumer-form");
  checkboxes("con-statuses", "statuses", Object.keys(STATUS_LABEL), (s) => STATUS_LABEL[s]);
  checkboxes("con-sources", "sources", EVENT_SOURCES);
  document.getElementById("con-type").addEventListener("change", showTypeFields);
  showTypeFields();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const result = document.getElementById("con-result");
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const { data } = await api("/api/consumers", jsonRequest("POST", newConsumerBody(form)));
      result.textContent = visible(`Added ${consumerName(data)}.`);
      result.className = "";
      form.reset();
      showTypeFields();
      const box = document.getElementById("con-secret");
      if (data.secret) {
        box.replaceChildren(secretPanel(data.secret, `The signing secret of ${consumerName(data)}`,
          "Copy it into your consumer now: you will not see it again.", () => {
            box.hidden = true;
            box.replaceChildren();
            document.getElementById("con-type").focus();
          }));
        box.hidden = false;
        box.querySelector("button").focus();
      }
    } catch (failure) {
      result.textContent = visible(failure.message);
      result.className = "error";
    }
    button.disabled = false;
    loadConsumers(true);
  });
}

// ---- the secret, shown once --------------------------------------------------------------------

function secretPanel(secret, title, note, done) {
  // A readonly field (so the fallback can select it), Copy, and Done, which drops the secret from the page.
  const field = el("input", { type: "text", readonly: true, class: "mono", value: secret, spellcheck: "false", autocomplete: "off", "aria-label": visible(title) });
  const said = el("span", { class: "small", role: "status" });
  const panel = el("div", { class: "secret-once" },
    el("strong", { text: title }),
    el("p", { class: "small", text: note }),
    el("div", { class: "secret-row" }, field,
      el("button", { type: "button", onclick: () => copySecret(field, said) }, "Copy"),
      el("button", { type: "button", class: "secondary", onclick: () => { field.value = ""; panel.remove(); done(); } }, "Done")),
    said);
  return panel;
}

async function copySecret(field, said) {
  // The Clipboard API where the page may use it (https or loopback), else the selection and execCommand.
  try {
    if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard API");
    await navigator.clipboard.writeText(field.value);
    said.textContent = "Copied to the clipboard.";
    return;
  } catch {
    // fall through to the selection
  }
  field.focus();
  field.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch {
    copied = false;
  }
  said.textContent = copied ? "Copied to the clipboard." : "Selected: press Ctrl+C (⌘C) to copy it.";
}

// ---- the list ----------------------------------------------------------------------------------

function showConsumers() {
  // The brokers first: each card's change form offers them.
  loadFilterChoices().catch((failure) => toast(failure.message, true)).finally(() => loadConsumers(true));
  clearInterval(consumerTimer);
  consumerTimer = setInterval(() => {
    if (location.hash !== "#consumers") { clearInterval(consumerTimer); return; }
    loadConsumers(false);
  }, 5000);
}

async function loadConsumers(force) {
  const list = document.getElementById("consumers");
  // A refresh never throws away a secret being read or a field being typed in.
  if (!force && list.querySelector(".secret-once, input:focus, details.change[open]")) return;
  try {
    const { data } = await api("/api/consumers");
    consumerList = data.consumers;
    const typed = replayValues(list);
    const focused = focusedControl(list);
    list.replaceChildren(...consumerList.map(consumerCard));
    restoreReplayValues(list, typed);
    if (focused) refocus(list, ...focused);
    document.getElementById("no-consumers").hidden = consumerList.length > 0;
  } catch (failure) {
    toast(failure.message, true);
  }
}

function focusedControl(list) {
  // [consumer id, aria-label] of the control that has the focus, so a keyboard user keeps their place.
  const active = document.activeElement;
  if (!active || !list.contains(active) || !active.getAttribute("aria-label")) return null;
  return [active.closest("[data-consumer]").dataset.consumer, active.getAttribute("aria-label")];
}

function refocus(list, id, label) {
  const card = [...list.querySelectorAll("[data-consumer]")].find((c) => c.dataset.consumer === id);
  const control = card && [...card.querySelectorAll("[aria-label]")].find((c) => c.getAttribute("aria-label") === label);
  if (control) control.focus();
}

function replayValues(list) {
  const typed = new Map();
  for (const form of list.querySelectorAll(".replay-form")) {
    typed.set(form.closest("[data-consumer]").dataset.consumer, [...form.querySelectorAll("input")].map((i) => i.value));
  }
  return typed;
}

function restoreReplayValues(list, typed) {
  for (const card of list.querySelectorAll("[data-consumer]")) {
    const values = typed.get(card.dataset.consumer);
    if (values) card.querySelectorAll(".replay-form input").forEach((input, i) => { input.value = values[i] || ""; });
  }
}

function filtersText(filters) {
  const given = FILTER_NAMES.filter((name) => filters && filters[name] && filters[name].length);
  if (!given.length) return [el("span", { class: "muted", text: "every event" })];
  return given.map((name) => el("div", {}, el("span", { class: "muted", text: `${name}: ` }),
    el("span", { text: filters[name].map((v) => (name === "statuses" ? STATUS_LABEL[v] || v : v)).join(", ") })));
}

function countsText(counts) {
  const c = counts || {};
  return [
    el("span", { class: "n-delivered", text: `${c.delivered ?? 0} delivered` }), " · ",
    el("span", { class: c.pending ? "n-pending" : "", text: `${c.pending ?? 0} pending` }), " · ",
    el("span", { class: c.failed ? "n-failed" : "", text: `${c.failed ?? 0} failed` }),
  ];
}

function latencyText(latency) {
  const l = latency || {};
  if (l.p50 === null || l.p50 === undefined) return el("span", { class: "muted", text: "no deliveries in the last hour" });
  const ms = (v) => (v === null || v === undefined ? "—" : `${Math.round(v)} ms`);
  return el("span", { text: `p50 ${ms(l.p50)} · p99 ${ms(l.p99)}` });
}

function secretFacts(c) {
  if (c.type !== "http") return [];
  if (c.source === "environment") return fact("Secret", el("span", { class: "muted", text: "FORWARD_SECRET" }));
  if (!c.secret_rotated_at) return fact("Secret", el("span", { class: "muted", text: "its own, set when it was added" }));
  const overlap = c.previous_secret_until && new Date(c.previous_secret_until) > new Date();
  return fact("Secret", `rotated ${when(c.secret_rotated_at)}`,
    overlap ? el("span", { class: "muted", text: ` · the old one signs too until ${when(c.previous_secret_until)}` }) : null);
}

function consumerCard(c) {
  const name = consumerName(c);
  const readOnly = c.source === "environment";
  const card = el("article", {
    class: `consumer-card${readOnly ? " read-only" : ""}${c.enabled ? "" : " off"}`,
    "data-consumer": c.id, "data-enabled": String(Boolean(c.enabled)), "aria-label": `Consumer ${visible(name)}`,
  },
  el("header", {},
    el("h3", { text: name }),
    el("span", { class: "badge", text: CONSUMER_TYPES[c.type] || c.type }),
    el("span", { class: `badge ${c.enabled ? "f-up" : "f-off"}`, text: c.enabled ? "enabled" : "disabled" }),
    readOnly ? el("span", { class: "badge env", text: "environment · read-only" }) : null),
  el("dl", { class: "facts" },
    ...fact("Destination", el("span", { class: "mono", text: destination(c) })),
    ...fact("Filters", ...filtersText(c.filters)),
    ...fact("Deliveries", ...countsText(c.counts), " · ",
      el("a", { href: `#deliveries/${encodeURIComponent(c.id)}`, "aria-label": `Deliveries of ${visible(name)}` }, "see them")),
    ...fact("Latency, last hour", latencyText(c.latency_ms), el("span", { class: "muted small", text: " (received → delivered)" })),
    ...(c.last_error ? fact("Last error", el("span", { class: "reason", text: c.last_error }),
      c.last_error_at ? el("span", { class: "muted", text: ` (${when(c.last_error_at)})` }) : null) : []),
    ...(c.disabled_reason ? fact("Disabled because", el("span", { class: "reason", text: c.disabled_reason })) : []),
    ...secretFacts(c),
    ...(c.created_at ? fact("Added", when(c.created_at)) : [])));
  if (readOnly) card.append(el("p", { class: "muted small", text: "Set by FORWARD_URLS and FORWARD_SECRET: change them to change it." }));
  if (readOnly && c.disabled_reason) {
    // A 410 Gone disabled it: the environment's consumers are enabled again from the command line (docs/consumers.md).
    card.append(el("p", { class: "small" }, "Enable it again with ", el("code", { class: "mono", text: `flask --app wsgi forward-enable ${c.url}` }), "."));
  }
  card.append(consumerControls(c, name, readOnly));
  if (!readOnly) card.append(changeForm(c, name));
  card.append(replayForm(c, name));
  const outcome = outcomes.get(c.id);
  card.append(el("p", { class: `outcome${outcome && outcome[1] ? " error" : ""}`, role: "status", text: outcome ? outcome[0] : "" }));
  return card;
}

function consumerControls(c, name, readOnly) {
  const controls = el("div", { class: "controls" });
  if (!readOnly) controls.append(enabledSwitch(c, name));
  controls.append(el("button", { type: "button", class: "secondary", "aria-label": `Send test to ${visible(name)}`, onclick: (e) => sendTest(c, name, e.currentTarget) }, "Send test"));
  if (!readOnly && c.type === "http") {
    controls.append(el("button", { type: "button", class: "secondary", "aria-label": `Rotate secret of ${visible(name)}`, onclick: (e) => rotateSecret(c, name, e.currentTarget) }, "Rotate secret"));
  }
  if (!readOnly) {
    controls.append(el("button", { type: "button", class: "danger", "aria-label": `Remove ${visible(name)}`, onclick: () => removeConsumer(c, name) }, "Remove"));
  }
  return controls;
}

function say(c, text, bad = false) {
  // The answer to a consumer's action, next to it (kept across refreshes until its next action).
  outcomes.set(c.id, [text, bad]);
  const line = document.querySelector(`[data-consumer="${CSS.escape(c.id)}"] .outcome`);
  if (line) {
    line.textContent = visible(text);
    line.className = bad ? "outcome error" : "outcome";
  }
}

function enabledSwitch(c, name) {
  const input = el("input", { type: "checkbox", role: "switch", checked: Boolean(c.enabled), "aria-label": `Enabled: ${visible(name)}` });
  input.addEventListener("change", async () => {
    input.disabled = true;
    try {
      await api(`/api/consumers/${encodeURIComponent(c.id)}`, jsonRequest("PATCH", { enabled: input.checked }));
      say(c, input.checked ? "Enabled: events stored from now on go to it." : "Disabled: events stored from now on skip it.");
    } catch (failure) {
      input.checked = !input.checked;
      say(c, failure.message, true);
    }
    input.disabled = false;
    loadConsumers(true);
  });
  return el("label", { class: "switch" }, input, el("span", { text: "Enabled" }));
}

const TEST_WAIT_MS = 60_000; // how long the card waits for a test delivery's outcome before it stops asking

async function sendTest(c, name, button) {
  button.disabled = true;
  let sent;
  try {
    ({ data: sent } = await api(`/api/consumers/${encodeURIComponent(c.id)}/test`, { method: "POST" }));
    say(c, `A test event (marked "test": true, never stored) was sent to ${name}; waiting for its answer…`);
  } catch (failure) {
    say(c, failure.message, true);
  }
  button.disabled = false;
  if (sent && sent.event_id) awaitTest(c, name, sent.event_id);
}

async function awaitTest(c, name, eventId) {
  // The worker keeps the test delivery's outcome (GET /api/consumers/<id>/test): say it once it is there.
  const deadline = Date.now() + TEST_WAIT_MS;
  while (Date.now() < deadline) {
    await new Promise((done) => setTimeout(done, 1000));
    if ((outcomes.get(c.id) || [""])[0].indexOf("waiting for its answer") < 0) return; // another action since
    let result;
    try {
      ({ data: result } = await api(`/api/consumers/${encodeURIComponent(c.id)}/test`, { allow: [404] }));
    } catch {
      continue;
    }
    if (result.event_id !== eventId) continue;
    const answer = result.status_code ? `HTTP ${result.status_code}` : "";
    const took = typeof result.latency_ms === "number" ? ` in ${Math.round(result.latency_ms)} ms` : "";
    if (result.ok) say(c, `The test event reached ${name}${answer ? `: ${answer}` : ""}${took}.`);
    else say(c, `The test event did not reach ${name}: ${[answer, result.error].filter(Boolean).join(" · ") || "no answer"}${took}.`, true);
    return;
  }
  say(c, `The test event was sent to ${name}; no outcome within ${TEST_WAIT_MS / 1000} s (a worker sends it).`);
}

async function rotateSecret(c, name, button) {
  if (!confirm(`A new secret for ${name}? The old one keeps signing too for 24 hours.`)) return;
  button.disabled = true;
  try {
    const { data } = await api(`/api/consumers/${encodeURIComponent(c.id)}/secret`, { method: "POST" });
    outcomes.delete(c.id);
    const card = button.closest("[data-consumer]");
    card.querySelector(".outcome").replaceChildren();
    card.append(secretPanel(data.secret, `The new signing secret of ${name}`,
      "Copy it now: you will not see it again. For 24 hours every delivery is signed with the old secret too, so switch your consumer to this one before then.",
      () => loadConsumers(true).then(() => refocus(document.getElementById("consumers"), c.id, button.getAttribute("aria-label")))));
    card.querySelector(".secret-once button").focus();
  } catch (failure) {
    say(c, failure.message, true);
  }
  button.disabled = false;
}

function changeForm(c, name) {
  // Its description, URL (http) and filters, changed in place (PATCH /api/consumers/<id>): events stored from
  // then on are routed by the new ones, without a restart.
  const f = c.filters || {};
  const group = (key, values, label = (v) => v) => el("fieldset", { class: "checks" }, el("legend", { text: key[0].toUpperCase() + key.slice(1) }),
    ...values.map((value) => checkbox(key, value, label(value), (f[key] || []).includes(value))));
  const description = el("input", { type: "text", value: c.description || "", maxlength: "500", autocomplete: "off" });
  const url = c.type === "http" ? el("input", { type: "url", value: c.url || "", required: true, autocomplete: "off", spellcheck: "false" }) : null;
  const accounts = el("input", { type: "text", value: (f.accounts || []).join(", "), autocomplete: "off", spellcheck: "false", placeholder: "comma-separated account ids" });
  const known = new Set([...brokerNames, ...(f.brokers || [])]);
  const form = el("form", { class: "change-form", "aria-label": `Change ${visible(name)}` },
    el("div", { class: "row" },
      el("label", { class: "field wide" }, "Description", description),
      url ? el("label", { class: "field wide" }, "URL", url) : null),
    el("div", { class: "filter-set" },
      group("brokers", [...known]),
      group("statuses", Object.keys(STATUS_LABEL), (v) => STATUS_LABEL[v]),
      group("sources", EVENT_SOURCES),
      el("label", { class: "field wide" }, "Accounts", accounts)),
    el("div", { class: "row" }, el("button", { type: "submit" }, "Save changes")));
  const what = url ? "Change description, URL or filters" : "Change description or filters";
  const details = el("details", { class: "change" }, el("summary", { "aria-label": `${what} of ${visible(name)}` }, what), form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { description: description.value.trim(), filters: chosenFilters(form, accounts) };
    if (url) body.url = url.value.trim();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await api(`/api/consumers/${encodeURIComponent(c.id)}`, jsonRequest("PATCH", body));
      say(c, "Changed: events stored from now on are routed by the new filters.");
      details.open = false;
    } catch (failure) {
      say(c, failure.message, true);
    }
    button.disabled = false;
    loadConsumers(true);
  });
  return details;
}

function replayForm(c, name) {
  // A window in local time, sent as UTC instants (POST /api/consumers/<id>/replay).
  const since = el("input", { type: "datetime-local", required: true, "aria-label": `Replay ${visible(name)} from` });
  const until = el("input", { type: "datetime-local", "aria-label": `Replay ${visible(name)} until (optional)` });
  const form = el("form", { class: "replay-form" },
    el("label", {}, "Replay from", since), el("label", {}, "until", until),
    el("button", { type: "submit", class: "secondary", "aria-label": `Replay to ${visible(name)}` }, "Replay"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { since: new Date(since.value).toISOString() };
    if (until.value) body.until = new Date(until.value).toISOString();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const { data } = await api(`/api/consumers/${encodeURIComponent(c.id)}/replay`, jsonRequest("POST", body));
      say(c, `${data.events} event${data.events === 1 ? "" : "s"} queued for ${name}, with their original webhook-id.`);
    } catch (failure) {
      say(c, failure.message, true);
    }
    button.disabled = false;
  });
  return form;
}

async function removeConsumer(c, name) {
  if (!confirm(`Remove ${name}? Its pending deliveries end as failed; the events stay.`)) return;
  try {
    await api(`/api/consumers/${encodeURIComponent(c.id)}`, { method: "DELETE" });
    outcomes.delete(c.id);
    toast(`${name} removed`);
  } catch (failure) {
    say(c, failure.message, true);
  }
  loadConsumers(true);
}

// ---- the Deliveries view's consumer filter ----------------------------------------------------

async function fillDeliveryConsumers(chosen) {
  // The select of consumers above the Deliveries view (blotter.js asks ?consumer=<id>).
  const select = document.getElementById("d-consumer");
  try {
    const { data } = await api("/api/consumers");
    consumerList = data.consumers;
  } catch (failure) {
    toast(failure.message, true);
  }
  const options = consumerList.map((c) => el("option", { value: c.id, text: visible(`${consumerName(c)}${c.enabled ? "" : " (disabled)"}`) }));
  select.replaceChildren(el("option", { value: "", text: "All consumers" }), ...options);
  if (chosen && !consumerList.some((c) => c.id === chosen)) select.append(el("option", { value: chosen, text: visible(`${chosen} (removed)`) }));
  select.value = chosen || "";
}

function deliveryConsumer(d) {
  // A delivery's consumer by its name when the page knows it (its description and destination), else its URL.
  const c = consumerList.find((known) => known.id === d.consumer_id);
  if (!c) return d.consumer;
  return c.description ? `${c.description} · ${destination(c)}` : destination(c);
}
