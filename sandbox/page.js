// The sandbox page: plain JS, no build step. It only draws what /sandbox/api returns and posts
// what the person does; Telegram-shaped updates are built and checked on the server.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const API = "/sandbox/api";
let config = { admin_id: null };
let lastChat = "";
let lastNetwork = "";
let seenToast = {};  // chat id -> newest toast id already shown

// ---- identity ---------------------------------------------------------------------------------

function loadIdentity() {
  const saved = JSON.parse(localStorage.getItem("tgcast-sandbox") || "{}");
  const id = saved.id || String(700000000 + Math.floor(Math.random() * 99999));
  $("#user-id").value = id;
  $("#user-name").value = saved.name || "Sandbox user";
  $("#user-lang").value = saved.lang || config.default_language || "uz";
  $("#user-phone").value = saved.phone || "+99890" + String(1000000 + Math.floor(Math.random() * 8999999));
  $("#as-admin").checked = !!saved.admin && !!config.admin_id;
}

function saveIdentity() {
  localStorage.setItem("tgcast-sandbox", JSON.stringify({
    id: $("#user-id").value, name: $("#user-name").value, lang: $("#user-lang").value,
    phone: $("#user-phone").value, admin: $("#as-admin").checked,
  }));
  lastChat = "";
  refreshChat();
}

function currentUser() {
  const lang = $("#user-lang").value;
  if ($("#as-admin").checked && config.admin_id) {
    return { id: config.admin_id, first_name: "Sandbox admin", username: "sandbox_admin", language_code: lang };
  }
  return { id: Number($("#user-id").value), first_name: $("#user-name").value, language_code: lang };
}

// ---- talking to the server ----------------------------------------------------------------------

function showError(text) {
  const box = $("#error");
  box.textContent = text || "";
  box.hidden = !text;
}

async function post(path, body) {
  try {
    const response = await fetch(API + path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok || answer.ok === false) {
      showError(answer.error || `the webhook answered ${answer.webhook_status || response.status}`);
    } else {
      showError(answer.reply_error ? "the bot's inline reply failed: " + answer.reply_error : "");
    }
    refreshChat();
    return answer;
  } catch (e) {
    showError("request failed: " + e);
    return {};
  }
}

function escapeHtml(text) {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

async function sendText(markup) {
  if (!markup.trim()) return {};
  return await post("/send", { user: currentUser(), text: markup });
}

// Under the composer: why what was typed was not sent. The text stays in the box to be fixed.
function composeError(text) {
  const box = $("#compose-error");
  box.textContent = text || "";
  box.hidden = !text;
}

function notSent(answer) {
  if (answer.update_id !== undefined) return false;  // it reached the bot (even if the bot then failed)
  const why = answer.error || "the server did not answer";
  composeError(`Not sent: ${why}. Your text is kept: fix it and send again.`);
  showError("");
  return true;
}

// ---- the chat -----------------------------------------------------------------------------------

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k === "html") node.innerHTML = v;  // server-rendered: every character of the text escaped
    else node.setAttribute(k, v);
  }
  for (const child of children) node.appendChild(child);
  return node;
}

function timeOf(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "";
}

function renderMessage(m) {
  const side = m.from_bot ? "bot" : "me";
  if (m.deleted) {
    return el("div", { class: `msg ${side} deleted`, "data-id": m.id }, [
      el("div", { class: "bubble", text: "🗑 message deleted" }),
    ]);
  }
  const bubble = el("div", { class: "bubble" });
  if (m.media) {
    const media = m.media.kind === "photo" ? el("img", { src: m.media.url, alt: "photo" })
      : el("video", { src: m.media.url, controls: "" });
    bubble.appendChild(media);
  }
  if (m.contact) bubble.appendChild(el("div", { class: "contact", text: "📞 " + m.contact }));
  if (m.invoice) bubble.appendChild(renderInvoice(m));
  if (m.payment) bubble.appendChild(renderPayment(m.payment));
  bubble.appendChild(el("div", { class: "text", html: m.html || "" }));
  for (const row of m.inline || []) {
    const line = el("div", { class: "inline-row" });
    for (const b of row) {
      if (b.url && b.url.startsWith(INVOICE_LINK)) {
        // An invoice link (a subscription): Telegram opens the payment form instead of a browser.
        const button = el("button", { type: "button", class: "inline-btn pay", text: b.text });
        button.addEventListener("click", () => post("/pay", { user: currentUser(), link: b.url }));
        line.appendChild(button);
      } else if (b.url) {
        line.appendChild(el("a", { href: b.url, target: "_blank", rel: "noopener", text: b.text }));
      } else {
        const button = el("button", { type: "button", class: "inline-btn", "data-callback": b.callback_data || "",
                                      text: b.text });
        button.addEventListener("click", () =>
          post("/press", { user: currentUser(), message_id: m.id, data: b.callback_data }));
        line.appendChild(button);
      }
    }
    bubble.appendChild(line);
  }
  const meta = el("div", { class: "meta", text: (m.edited ? "edited " : "") + timeOf(m.date) });
  return el("div", { class: `msg ${side}`, "data-id": m.id }, [bubble, meta]);
}

// ---- Telegram Stars: invoices and payments (sandbox/payments.py plays Telegram's side) -------------

const INVOICE_LINK = "https://t.me/$";

function renderInvoice(m) {
  const box = el("div", { class: "invoice" }, [
    el("div", { class: "invoice-title", text: m.invoice.title || "" }),
    el("div", { class: "muted", text: m.invoice.description || "" }),
  ]);
  if (m.invoice.paid) {
    box.appendChild(el("div", { class: "invoice-paid", text: `✅ Paid ⭐ ${m.invoice.stars}` }));
  } else {
    const pay = el("button", { type: "button", class: "inline-btn pay", text: `Pay ⭐ ${m.invoice.stars}` });
    pay.addEventListener("click", () => post("/pay", { user: currentUser(), message_id: m.id }));
    box.appendChild(pay);
  }
  return box;
}

function renderPayment(p) {
  let state = p.refunded ? " · ↩️ refunded" : "";
  if (p.recurring) state += p.canceled ? " · renewal cancelled" : "";
  const box = el("div", { class: "payment", text: `⭐ You paid ${p.stars} Stars${state}` });
  if (p.recurring && p.renewable) {
    const renew = el("button", { type: "button", class: "inline-btn", text: "⟳ Renew now (next 30 days)" });
    renew.title = "Telegram renews a subscription every 30 days; this charges the next period now";
    renew.addEventListener("click", () => post("/renew", { user: currentUser(), charge_id: p.charge_id }));
    box.appendChild(renew);
  }
  return box;
}

function renderReplyKeyboard(kb) {
  const box = $("#reply-keyboard");
  box.innerHTML = "";
  box.hidden = !kb;
  if (!kb) return;
  for (const row of kb.rows) {
    const line = el("div", { class: "reply-row" });
    for (const b of row) {
      const button = el("button", { type: "button", class: "reply-btn", text: b.text });
      if (b.request_contact) button.setAttribute("data-request-contact", "1");
      button.addEventListener("click", async () => {
        if (b.request_contact) {
          await post("/contact", { user: currentUser(), phone: $("#user-phone").value });
        } else {
          await sendText(escapeHtml(b.text));
        }
        if (kb.one_time) box.hidden = true;
      });
      line.appendChild(button);
    }
    box.appendChild(line);
  }
}

function showToasts(chatId, toasts) {
  const newest = toasts.length ? toasts[toasts.length - 1].id : 0;
  if (!(chatId in seenToast)) {
    seenToast[chatId] = newest;  // the ones from before this page was opened are old news
    return;
  }
  for (const t of toasts) {
    if (t.id <= seenToast[chatId]) continue;
    const node = el("div", { class: "toast" + (t.alert ? " alert" : ""), text: t.text });
    $("#toasts").appendChild(node);
    setTimeout(() => node.remove(), t.alert ? 6000 : 3000);
  }
  seenToast[chatId] = Math.max(seenToast[chatId], newest);
}

async function refreshChat() {
  const user = currentUser();
  $("#chat-title").textContent = `Chat with the bot — as ${user.first_name} (${user.id})`;
  let view;
  try {
    view = await (await fetch(`${API}/chat/${user.id}`)).json();
  } catch (e) {
    $("#status").textContent = "server unreachable";
    return;
  }
  $("#status").textContent = "";
  if (view.chat_id !== currentUser().id) return;  // the identity changed while this was in flight
  showToasts(view.chat_id, view.toasts);
  const snapshot = JSON.stringify([view.messages, view.reply_keyboard]);
  if (snapshot === lastChat) return;
  lastChat = snapshot;
  const list = $("#messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.innerHTML = "";
  for (const m of view.messages) list.appendChild(renderMessage(m));
  if (!view.messages.length) list.appendChild(emptyHint());
  renderReplyKeyboard(view.reply_keyboard);
  if (atBottom || list.dataset.scrolled !== "1") {
    list.scrollTop = list.scrollHeight;
    list.dataset.scrolled = "1";
  }
}

function emptyHint() {
  const start = el("button", { type: "button", text: "Send /start" });
  start.addEventListener("click", () => sendText("/start"));
  return el("div", { class: "empty-hint" }, [
    el("div", { text: "No messages yet. Type /start below and press Enter to begin, as in Telegram." }),
    start,
  ]);
}

// ---- the network: codes, accounts, groups, faults -------------------------------------------------

async function fault(body) {
  await post("/fault", body);
  lastNetwork = "";
  refreshNetwork();
}

function controls(children) {
  return el("div", { class: "controls" }, children);
}

// The panels are redrawn whenever the network changes (every post): what the person typed into a
// control survives the redraw, keyed by the control and the object it acts on.
const typed = {};

function numberInput(cls, value, key) {
  const input = el("input", { type: "number", min: "0", class: cls, value: String(typed[key] ?? value) });
  input.addEventListener("input", () => { typed[key] = input.value; });
  return input;
}

function renderAccount(a) {
  const box = el("div", { class: "account", "data-tg-user-id": a.tg_user_id });
  const badges = [el("span", { class: "badge" + (a.status === "active" ? "" : " bad"), text: a.status })];
  if (a.flood_left_s > 0) badges.push(el("span", { class: "badge warn flood-left", text: `flood ${Math.ceil(a.flood_left_s)} s` }));
  if (a.flood_until && new Date(a.flood_until) > Date.now()) badges.push(el("span", { class: "badge warn", text: "paused until " + new Date(a.flood_until).toLocaleTimeString() }));
  box.appendChild(el("div", {}, [el("strong", { text: a.phone }),
    el("span", { class: "muted", text: ` user ${a.owner_id} · account ${a.tg_user_id}` }), ...badges]));
  const seconds = numberInput("flood-seconds", 30, `flood:${a.tg_user_id}`);
  const flood = el("button", { type: "button", class: "flood", text: "Flood wait" });
  flood.addEventListener("click", () => fault({ action: "flood", tg_user_id: a.tg_user_id, seconds: Number(seconds.value) }));
  const revoke = el("button", { type: "button", class: "revoke", text: "Revoke session" });
  revoke.addEventListener("click", () => fault({ action: "revoke", tg_user_id: a.tg_user_id }));
  const kill = el("button", { type: "button", class: "kill", text: "Kill connection" });
  kill.addEventListener("click", () => fault({ action: "kill", tg_user_id: a.tg_user_id }));
  box.appendChild(controls([seconds, el("span", { text: "s" }), flood, revoke, kill]));
  return box;
}

function renderGroup(g, accounts) {
  const box = el("div", { class: "group", id: `group-${g.chat_id}`, "data-chat-id": g.chat_id });
  const badges = [el("span", { class: "badge", text: g.kind })];
  if (g.slowmode_s) badges.push(el("span", { class: "badge warn", text: `slow mode ${g.slowmode_s} s` }));
  if (g.read_only) badges.push(el("span", { class: "badge bad", text: "read-only" }));
  if (g.banned.length) badges.push(el("span", { class: "badge bad", text: `banned: ${g.banned.join(", ")}` }));
  box.appendChild(el("div", {}, [el("strong", { text: g.title }), ...badges]));
  const slow = numberInput("slowmode-seconds", g.slowmode_s || 60, `slow:${g.chat_id}`);
  const setSlow = el("button", { type: "button", class: "slowmode", text: "Set slow mode" });
  setSlow.addEventListener("click", () => fault({ action: "slowmode", chat_id: g.chat_id, seconds: Number(slow.value) }));
  const row = [slow, el("span", { text: "s" }), setSlow];
  if (accounts.length) {
    const who = el("select", { class: "ban-account" });
    for (const a of accounts) who.appendChild(el("option", { value: a.tg_user_id, text: a.phone }));
    if (typed[`ban:${g.chat_id}`]) who.value = typed[`ban:${g.chat_id}`];
    who.addEventListener("change", () => { typed[`ban:${g.chat_id}`] = who.value; });
    const ban = el("button", { type: "button", class: "ban", text: "Ban account here" });
    ban.addEventListener("click", () => fault({ action: "forbid", chat_id: g.chat_id, tg_user_id: Number(who.value) }));
    row.push(who, ban);
  }
  box.appendChild(controls(row));
  if (!g.posts.length) box.appendChild(el("div", { class: "muted", text: "nothing posted yet" }));
  for (const p of [...g.posts].reverse()) {
    const cycle = p.cycle ? `cycle #${p.cycle.seq} (id ${p.cycle.cycle_id}, user ${p.cycle.owner_id})` : "cycle: unknown";
    const head = `${new Date(p.at * 1000).toLocaleTimeString()} · ${p.kind} · ${cycle} · msg ${p.message_id}` +
      ` · random_id ${p.random_id}` + (p.deleted ? " · deleted (no pile-up: replaced)" : "");
    const parts = [el("div", { class: "post-head", text: head })];
    if (p.media) {
      const media = p.media.kind === "photo" ? el("img", { src: p.media.url, alt: "photo", loading: "lazy" })
        : el("video", { src: p.media.url, controls: "", preload: "metadata" });
      parts.push(el("div", { class: "post-media" }, [media]));
    }
    parts.push(el("div", { class: "post-body", html: p.html }));
    box.appendChild(el("div", { class: p.deleted ? "post deleted" : "post", "data-random-id": p.random_id }, parts));
  }
  return box;
}

function renderCodes(codes) {
  const box = $("#codes");
  box.innerHTML = "";
  if (!codes.length) {
    box.appendChild(el("p", { class: "muted", text: "Login codes appear here when the bot asks Telegram for one." }));
  }
  for (const c of codes) {
    box.appendChild(el("div", { class: "code", "data-phone": c.phone }, [
      el("div", { class: "muted", text: `Telegram → ${c.phone}` }),
      el("div", { text: "Login code: " }),
      el("div", { class: "value", text: c.code }),
      el("div", { class: "muted", text: "Do not give this code to anyone. (Type it to the bot with spaces: " +
        c.code.split("").join(" ") + ")" }),
    ]));
  }
}

async function refreshNetwork() {
  let view;
  try {
    // Login codes reach only their phone's owner: the page asks for the current user's alone.
    view = await (await fetch(`${API}/network?user=${currentUser().id}`)).json();
  } catch (e) {
    return;
  }
  const snapshot = JSON.stringify(view);
  if (snapshot === lastNetwork) return;
  lastNetwork = snapshot;
  renderCodes(view.codes);
  const accounts = $("#accounts");
  accounts.innerHTML = "";
  if (!view.accounts.length) accounts.appendChild(el("p", { class: "muted", text: "No account connected yet." }));
  for (const a of view.accounts) accounts.appendChild(renderAccount(a));
  const groups = $("#groups");
  groups.innerHTML = "";
  for (const g of view.groups) groups.appendChild(renderGroup(g, view.accounts));
}

// ---- composing ----------------------------------------------------------------------------------

function wrapSelection(tag) {
  const area = $("#composer");
  const start = area.selectionStart, end = area.selectionEnd;
  const selected = area.value.slice(start, end);
  let open = `<${tag}>`;
  if (tag === "a") {
    const url = prompt("Link address", "https://");
    if (!url) return;
    open = `<a href="${url.replace(/"/g, "&quot;")}">`;
  }
  const close = `</${tag}>`;
  area.setRangeText(open + selected + close, start, end, "end");
  if (!selected) area.setSelectionRange(start + open.length, start + open.length);
  area.focus();
}

async function sendComposer() {
  const area = $("#composer");
  const text = area.value;
  if (!text.trim()) return;
  const answer = await sendText(text);
  if (notSent(answer)) return;
  composeError("");
  if (area.value === text) area.value = "";  // unless the person typed on meanwhile
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function sendFile(file) {
  const kind = file.type.startsWith("video/") ? "video" : file.type.startsWith("image/") ? "photo" : "";
  if (!kind) {
    showError("only a photo or a video can be uploaded here");
    return;
  }
  const caption = $("#composer").value;
  const answer = await post("/media", { user: currentUser(), kind, file_name: file.name, data: await readBase64(file),
                                        caption });
  if (notSent(answer)) return;
  composeError("");
  if ($("#composer").value === caption) $("#composer").value = "";
}

async function saveAccount() {
  const answer = await post("/account", { phone: $("#tfa-phone").value, password: $("#tfa-password").value });
  if (answer.ok) {
    $("#tfa-result").textContent = `${answer.phone}: account ${answer.tg_user_id}` +
      (answer.two_step ? ", two-step verification on" : ", no two-step verification");
  }
}

// ---- start --------------------------------------------------------------------------------------

async function main() {
  try {
    config = await (await fetch(`${API}/config`)).json();
  } catch (e) {
    showError("cannot reach the sandbox API");
  }
  if (config.admin_id) {
    $("#admin-id").textContent = `(id ${config.admin_id})`;
  } else {
    $("#as-admin").disabled = true;
    $("#admin-id").textContent = "(set ADMIN_IDS to enable)";
  }
  if (config.webhook_ready === false) showError("WEBHOOK_SECRET is not set: updates cannot be delivered");
  loadIdentity();
  for (const id of ["#user-id", "#user-name", "#user-lang", "#user-phone", "#as-admin"]) {
    $(id).addEventListener("change", saveIdentity);
  }
  for (const button of document.querySelectorAll("#toolbar [data-wrap]")) {
    button.addEventListener("click", () => wrapSelection(button.dataset.wrap));
  }
  $("#send").addEventListener("click", sendComposer);
  $("#composer").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      sendComposer();
    }
  });
  $("#attach").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    if (file) await sendFile(file);
  });
  $("#tfa-set").addEventListener("click", saveAccount);
  $("#messages").addEventListener("click", (e) => {
    if (e.target.classList && e.target.classList.contains("tg-spoiler")) e.target.classList.add("shown");
  });
  saveIdentity();
  refreshNetwork();
  setInterval(refreshChat, 800);
  setInterval(refreshNetwork, 1500);
}

main();
