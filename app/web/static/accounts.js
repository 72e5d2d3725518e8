// The blotter's Accounts page (docs/frontend.md, "Accounts"): add an account with the fields its broker needs
// (GET /api/brokers), log in (redirect brokers) or paste the day's token, switch its feed and reconciliation,
// get a postback URL of its own, remove it. Secrets go in and never come back: no answer holds one.
// Loaded before blotter.js, whose helpers (el, api, toast, when, blank, visible) it uses once the page runs;
// blotter.js calls setupAccounts() and, on #accounts, showAccounts().
// Test hooks (fixed, docs/interface.md "Accounts"): each account's card carries data-account and data-session.
"use strict";

let brokers = []; // GET /api/brokers
let accountTimer = null;
const SESSION_LABEL = { active: "logged in", expired: "expired", refused: "refused", missing: "no session" };
const FEED_GOOD = new Set(["running"]);

function accountName(a) {
  return `${a.broker} ${a.account_id || a.label || a.id}`;
}

function brokerOf(name) {
  return brokers.find((b) => b.name === name) || null;
}

// One load of GET /api/brokers however often the page is shown (two loads racing would reset the broker being
// chosen); a failed load is tried again the next time.
let brokersLoading = null;

function loadBrokers() {
  brokersLoading ||= (async () => {
    const { data } = await api("/api/brokers");
    brokers = data.brokers;
    const select = document.getElementById("acc-broker");
    select.replaceChildren(...brokers.map((b) => el("option", { value: b.name, text: b.name })));
    renderCredentialFields();
  })().catch((failure) => { brokersLoading = null; throw failure; });
  return brokersLoading;
}

function renderCredentialFields() {
  // The add form asks for what the chosen broker needs: its credentials, and whether it names account_id.
  const broker = brokerOf(document.getElementById("acc-broker").value);
  const box = document.getElementById("acc-credentials");
  const accountId = document.getElementById("acc-id");
  const hint = document.getElementById("acc-id-hint");
  if (!broker) { box.replaceChildren(); return; }
  accountId.required = broker.account_id_required;
  hint.textContent = broker.account_id_required ? "the broker's client id" : "optional: the login names it";
  box.replaceChildren(...broker.credentials.map((c) => {
    const input = el("input", {
      type: c.secret ? "password" : "text", name: c.name, "data-credential": c.name, required: c.required,
      autocomplete: "off", spellcheck: "false",
    });
    const label = c.name === "access_token" ? "Access token (optional)" : `${c.name}${c.required ? "" : " (optional)"}`;
    input.id = `acc-cred-${c.name}`;
    const doc = c.doc ? el("span", { class: "muted small", id: `acc-cred-${c.name}-doc`, text: c.doc }) : null;
    if (doc) input.setAttribute("aria-describedby", doc.id);
    return el("div", { class: "field" }, el("label", { for: input.id, text: label }), input, doc);
  }));
}

// A broker's login ends on /?login=ok|error&message=…#accounts (app/web/logins.py): say it once, then
// drop it from the address so a reload does not say it again.
function announceLogin() {
  const params = new URLSearchParams(location.search);
  const outcome = params.get("login");
  if (!outcome) return;
  toast(visible(params.get("message") || (outcome === "ok" ? "Logged in." : "The login failed.")), outcome !== "ok");
  history.replaceState(null, "", location.pathname + "#accounts");
}

function setupAccounts() {
  announceLogin();
  document.getElementById("acc-broker").addEventListener("change", renderCredentialFields);
  document.getElementById("account-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const result = document.getElementById("acc-result");
    const credentials = {};
    for (const input of form.querySelectorAll("[data-credential]")) {
      if (input.value.trim()) credentials[input.dataset.credential] = input.value;
    }
    const body = {
      broker: document.getElementById("acc-broker").value,
      account_id: document.getElementById("acc-id").value.trim(),
      label: document.getElementById("acc-label").value.trim(),
      credentials,
      feed: document.getElementById("acc-feed").checked,
      reconcile: document.getElementById("acc-reconcile").checked,
    };
    try {
      const { data } = await api("/api/accounts", { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
      result.textContent = visible(`Added ${accountName(data)}.`);
      result.className = "";
      for (const input of form.querySelectorAll("input[type=text], input[type=password]")) input.value = "";
      toast(`Account ${accountName(data)} added`);
    } catch (failure) {
      result.textContent = visible(failure.message);
      result.className = "error";
    }
    loadAccounts(true);
  });
}

function showAccounts() {
  loadBrokers().then(() => loadAccounts(true)).catch((failure) => toast(failure.message, true));
  clearInterval(accountTimer);
  accountTimer = setInterval(() => {
    if (location.hash !== "#accounts") { clearInterval(accountTimer); return; }
    loadAccounts(false);
  }, 5000);
}

async function loadAccounts(force) {
  const list = document.getElementById("accounts");
  // A refresh never throws away a token being typed or a postback URL being read.
  if (!force && list.querySelector(".token-form input:not(:placeholder-shown), .postback-url:not([hidden]), input:focus")) return;
  try {
    const { data } = await api("/api/accounts");
    list.replaceChildren(...data.accounts.map(accountCard));
    document.getElementById("no-accounts").hidden = data.accounts.length > 0;
  } catch (failure) {
    toast(failure.message, true);
  }
}

function fact(label, ...value) {
  return [el("dt", { text: label }), el("dd", {}, ...value)];
}

function sessionFacts(a) {
  const s = a.session;
  const badge = el("span", { class: `badge ss-${s.state}`, text: SESSION_LABEL[s.state] || s.state });
  let until = null;
  if (s.expires_at) until = el("span", { class: "muted", text: s.state === "active" ? ` until ${when(s.expires_at)}` : ` (ended ${when(s.expires_at)})` });
  else if (s.state === "active") until = el("span", { class: "muted", text: " (no known expiry)" });
  return fact("Session", badge, until);
}

function feedFacts(a) {
  // A polled broker has no push (docs/reconcile.md "Polled order books"): its order book is read every N s instead.
  const polled = (brokerOf(a.broker) || {}).polled_seconds;
  if (polled) {
    return fact("Feed", el("span", { class: `badge f-${a.reconcile ? "up" : "off"}`, "data-polled": String(polled), text: a.reconcile ? `polled every ${polled} s` : "polling off" }),
      el("span", { class: "muted", text: " · order book read by reconciliation (no push)" }));
  }
  const state = a.feed ? (a.feed_state || "not started") : "off";
  const good = a.feed && FEED_GOOD.has(a.feed_state) && a.feed_connected;
  const word = a.feed && a.feed_state === "running" && !a.feed_connected ? "retrying" : state.replace(/_/g, " ");
  return fact("Feed", el("span", { class: `badge f-${good ? "up" : a.feed ? "down" : "off"}`, text: word }),
    el("span", { class: "muted", text: ` · last message ${a.last_message_at ? when(a.last_message_at) : "none yet"}` }));
}

function reconcileFacts(a) {
  const r = a.last_reconcile;
  if (!a.reconcile) return fact("Reconciliation", el("span", { class: "muted", text: "off" }));
  if (!r || !r.finished_at) return fact("Reconciliation", el("span", { class: "muted", text: r && r.started_at ? "running…" : "not run yet" }));
  return fact("Reconciliation", `${when(r.finished_at)} · ${blank(r.orders_seen)} orders seen, ${blank(r.updates_found)} updates`,
    r.last_error ? el("div", { class: "reason", text: r.last_error }) : null);
}

function accountCard(a) {
  const broker = brokerOf(a.broker);
  const name = accountName(a);
  const card = el("article", { class: `account${a.read_only ? " read-only" : ""}`, "data-account": a.id, "data-session": a.session.state, "aria-label": `Account ${visible(name)}` },
    el("header", {},
      el("h3", { text: a.label || name }),
      el("span", { class: "badge", text: a.broker }),
      a.read_only ? el("span", { class: "badge env", text: "environment · read-only" }) : null),
    el("dl", { class: "facts" },
      ...fact("Broker / account", `${a.broker} · `, el("span", { class: "mono", text: a.account_id || "named at first login" })),
      ...sessionFacts(a), ...feedFacts(a), ...reconcileFacts(a),
      ...(a.last_error ? fact("Last error", el("span", { class: "reason", text: `${a.last_error}${a.last_error_at ? ` (${when(a.last_error_at)})` : ""}` })) : [])));
  const controls = el("div", { class: "controls" });
  if (a.read_only) {
    card.append(el("p", { class: "muted small", text: "Set by this broker's environment variables: change them to change it." }));
  } else {
    // A polled broker has no feed to switch: its reconciliation is what follows it.
    if (!(broker && broker.polled_seconds)) controls.append(toggle(a, "feed", "Feed"));
    controls.append(toggle(a, "reconcile", "Reconciliation"));
    if (a.session.login === "redirect") {
      // The broker's own login page, then back here (GET /accounts/<id>/login, docs/interface.md "Accounts").
      controls.append(el("a", { class: "button", href: `/accounts/${encodeURIComponent(a.id)}/login`, "aria-label": `Log in ${visible(name)}` }, "Log in"));
    }
    card.append(controls, tokenForm(a, name));
  }
  const actions = el("div", { class: "controls" });
  if (a.reconcile && a.session.state === "active") {
    actions.append(el("button", { type: "button", class: "secondary", "aria-label": `Reconcile ${visible(name)} now`, onclick: () => reconcileNow(a) }, "Reconcile now"));
  }
  if (!a.read_only && broker && broker.postback === "path_token") {
    const shown = el("p", { class: "postback-url", hidden: true, role: "status" });
    actions.append(el("button", { type: "button", class: "secondary", "aria-label": `Postback URL for ${visible(name)}`, onclick: (event) => postbackUrl(a, shown, event.currentTarget) },
      a.postback_token ? "New postback URL" : "Postback URL"));
    card.append(actions, shown);
  } else {
    card.append(actions);
  }
  if (!a.read_only) {
    actions.append(el("button", { type: "button", class: "danger", "aria-label": `Remove ${visible(name)}`, onclick: () => removeAccount(a, name) }, "Remove"));
  }
  return card;
}

function toggle(a, field, label) {
  const input = el("input", { type: "checkbox", role: "switch", checked: a[field], "aria-label": `${label} of ${visible(accountName(a))}` });
  input.addEventListener("change", async () => {
    input.disabled = true;
    try {
      await api(`/api/accounts/${encodeURIComponent(a.id)}`, { method: "PATCH", body: JSON.stringify({ [field]: input.checked }), headers: { "Content-Type": "application/json" } });
      toast(`${label} of ${accountName(a)} ${input.checked ? "on" : "off"}`);
    } catch (failure) {
      input.checked = !input.checked;
      toast(failure.message, true);
    }
    input.disabled = false;
    loadAccounts(true);
  });
  return el("label", { class: "switch" }, input, el("span", { text: label }));
}

function tokenForm(a, name) {
  const input = el("input", { type: "password", autocomplete: "off", spellcheck: "false", placeholder: "paste the day's token", required: true, "aria-label": `Access token for ${visible(name)}` });
  const form = el("form", { class: "token-form" }, input, el("button", { type: "submit", "aria-label": `Save token for ${visible(name)}` }, "Save token"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api(`/api/accounts/${encodeURIComponent(a.id)}/session`, { method: "PUT", body: JSON.stringify({ access_token: input.value }), headers: { "Content-Type": "application/json" } });
      input.value = "";
      toast(`New session for ${name}: its feed reconnects and it is reconciled`);
    } catch (failure) {
      toast(failure.message, true);
    }
    loadAccounts(true);
  });
  return form;
}

async function reconcileNow(a) {
  try {
    await api(`/api/accounts/${encodeURIComponent(a.id)}/reconcile`, { method: "POST" });
    toast(`Reconciliation of ${accountName(a)} requested`);
  } catch (failure) {
    toast(failure.message, true);
  }
}

async function postbackUrl(a, shown, button) {
  if (a.postback_token && !confirm(`A new postback URL for ${accountName(a)}? The old one stops working.`)) return;
  button.disabled = true;
  try {
    const { data } = await api(`/api/accounts/${encodeURIComponent(a.id)}/postback-token`, { method: "POST" });
    shown.replaceChildren(el("span", { class: "muted small", text: "Register this URL with the broker; it is shown this once:" }),
      el("code", { text: data.postback_url }),
      el("button", { type: "button", class: "link", text: "Done", onclick: () => { shown.hidden = true; shown.replaceChildren(); loadAccounts(true); } }));
    shown.hidden = false;
  } catch (failure) {
    toast(failure.message, true);
  }
  button.disabled = false;
}

async function removeAccount(a, name) {
  if (!confirm(`Remove ${name}? Its feed closes; its orders and events stay.`)) return;
  try {
    await api(`/api/accounts/${encodeURIComponent(a.id)}`, { method: "DELETE" });
    toast(`${name} removed`);
  } catch (failure) {
    toast(failure.message, true);
  }
  loadAccounts(true);
}
