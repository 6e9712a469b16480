{% raw %}
"use strict";
// The simulator page: lists, one chat, actions. Every message text goes in with textContent.
(function () {
  const W = JSON.parse(document.getElementById("words").textContent);
  const $ = (id) => document.getElementById(id);
  const lang = document.documentElement.lang;
  const zone = document.documentElement.dataset.zone || undefined;  // the service's time zone, not the browser's
  let current = null;          // {kind: "user"|"member"|"phone", id: "…"} (member: a WeCom member)
  let lastList = "", lastChat = "";
  const seenAnswers = {};      // user id -> callback answers already shown
  const pollDrafts = {};       // message id -> Set of option ids being chosen (multiple answers)

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function fill(word, n) { return word.replace("{n}", String(n)); }

  function when(seconds) {
    if (!seconds) return "";
    return new Date(seconds * 1000).toLocaleString(lang, {month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", timeZone: zone});
  }

  function notice(error) {
    const box = $("notice");
    const word = (W.errors && W.errors[error.error]) || W.errors.refused;
    box.textContent = error.detail ? word + " (" + error.detail + ")" : word;
    box.hidden = false;
    clearTimeout(notice.timer);
    notice.timer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  function toast(text, alert) {
    const box = $("toast");
    box.textContent = text;
    box.className = alert ? "alert" : "";
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, alert ? 6000 : 3000);
  }

  async function api(path, options) {
    let response;
    try {
      response = await fetch(path, Object.assign({cache: "no-store"}, options || {}));
    } catch (e) {
      throw {error: "network", detail: ""};
    }
    let body = {};
    try { body = await response.json(); } catch (e) { body = {}; }
    if (!response.ok) throw {error: body.error || "refused", detail: body.detail || String(response.status)};
    return body;
  }

  function post(path, body) {
    return api(path, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body || {})});
  }

  // -- the lists -------------------------------------------------------------------------

  function pickButton(label, sub, selected, onPick) {
    const li = el("li");
    const button = el("button", selected ? "current" : "");
    button.type = "button";
    button.appendChild(el("span", "name", label));
    button.appendChild(el("span", "sub", sub));
    button.addEventListener("click", onPick);
    li.appendChild(button);
    return li;
  }

  function renderLists(state) {
    const users = $("users");
    users.replaceChildren();
    for (const u of state.users) {
      const marks = [];
      if (u.username) marks.push("@" + u.username);
      if (!u.started) marks.push(W.not_started);
      if (u.blocked) marks.push(W.blocked);
      if (u.messages) marks.push(fill(W.count, u.messages));
      const selected = current && current.kind === "user" && current.id === String(u.id);
      users.appendChild(pickButton(u.name, marks.join(" · "), selected, () => select("user", String(u.id))));
    }
    $("users-empty").hidden = state.users.length > 0;
    $("tg-users").hidden = !state.telegram;
    $("wecom-members").hidden = !state.members;
    const members = $("members");
    members.replaceChildren();
    for (const m of state.members || []) {
      const marks = [m.id];
      if (m.blocked) marks.push(W.blocked);
      if (m.messages) marks.push(fill(W.count, m.messages));
      const selected = current && current.kind === "member" && current.id === m.id;
      members.appendChild(pickButton(m.name, marks.join(" · "), selected, () => select("member", m.id)));
    }
    $("members-empty").hidden = !state.members || state.members.length > 0;
    const phones = $("phones");
    phones.replaceChildren();
    for (const p of state.phones) {
      const label = p.name ? p.name + " " + p.number : p.number;
      const selected = current && current.kind === "phone" && current.id === p.number;
      phones.appendChild(pickButton(label, fill(W.count, p.received + p.sent), selected, () => select("phone", p.number)));
    }
    $("phones-empty").hidden = state.phones.length > 0;
  }

  async function refreshLists() {
    const state = await api("api/state");
    const text = JSON.stringify([state, current]);
    if (text !== lastList) { lastList = text; renderLists(state); }
  }

  // -- one chat --------------------------------------------------------------------------

  function select(kind, id) {
    current = {kind: kind, id: id};
    lastChat = "";
    lastList = "";
    history.replaceState(null, "", "#" + ({user: "u/", member: "m/"}[kind] || "p/") + encodeURIComponent(id));
    updateLangLink();
    $("placeholder").hidden = true;
    $("tg").hidden = kind === "phone";  // a WeCom member's conversation is drawn as a Telegram chat
    $("sms").hidden = kind !== "phone";
    $("tg-place-label").hidden = true;
    delete $("tg-place-label").dataset.empty;
    refresh();
  }

  function nearBottom(box) { return box.scrollHeight - box.scrollTop - box.clientHeight < 60; }

  function richText(text, entities) {
    // Text with commands tappable and links clickable; overlapping entities are shown plainly.
    const box = el("div", "text");
    let at = 0;
    const sorted = (entities || []).slice().sort((a, b) => a.offset - b.offset);
    for (const e of sorted) {
      if (e.offset < at) continue;
      box.appendChild(document.createTextNode(text.slice(at, e.offset)));
      const part = text.slice(e.offset, e.offset + e.length);
      let node;
      if (e.type === "bot_command") {
        node = el("span", "cmd", part);
        node.addEventListener("click", () => sendText(part));
      } else if ((e.type === "url" || e.type === "text_link") && /^https?:\/\//i.test(e.url || part)) {
        node = el("a", "", part);
        node.href = e.url || part;
        node.target = "_blank";
        node.rel = "noopener noreferrer";
      } else if (e.type === "bold") { node = el("strong", "", part); }
      else if (e.type === "italic") { node = el("em", "", part); }
      else if (e.type === "code" || e.type === "pre") { node = el("code", "", part); }
      else { node = document.createTextNode(part); }
      box.appendChild(node);
      at = e.offset + e.length;
    }
    box.appendChild(document.createTextNode(text.slice(at)));
    return box;
  }

  function pollBox(m) {
    const poll = m.poll;
    const box = el("div", "poll");
    box.appendChild(el("div", "question", poll.question));
    const voted = poll.chosen.length > 0;
    const open = !poll.is_closed && (!voted || poll.allows_revoting);
    const draft = pollDrafts[m.id] || (pollDrafts[m.id] = new Set());
    poll.options.forEach((option, i) => {
      const b = el("button", "option");
      b.type = "button";
      b.dataset.option = String(i);
      b.appendChild(el("span", "", option.text));
      b.appendChild(el("span", "", voted || poll.is_closed ? fill(W.votes, option.voter_count) : ""));
      if (poll.chosen.includes(i)) b.classList.add("chosen");
      if (draft.has(i)) b.classList.add("draft");
      b.disabled = !open;
      b.addEventListener("click", () => {
        if (!poll.allows_multiple_answers) { vote(m.id, [i]); return; }
        if (draft.has(i)) draft.delete(i); else draft.add(i);
        b.classList.toggle("draft");
      });
      box.appendChild(b);
    });
    const notes = [];
    if (poll.is_closed) notes.push(W.poll_closed);
    if (poll.allows_multiple_answers) notes.push(W.multiple);
    if (notes.length) box.appendChild(el("div", "note", notes.join(" · ")));
    const actions = el("div", "actions");
    if (open && poll.allows_multiple_answers) {
      const go = el("button", "", W.vote);
      go.type = "button";
      go.addEventListener("click", () => vote(m.id, Array.from(draft).sort()));
      actions.appendChild(go);
    }
    if (voted && !poll.is_closed && poll.allows_revoting) {
      const back = el("button", "", W.retract);
      back.type = "button";
      back.addEventListener("click", () => vote(m.id, []));
      actions.appendChild(back);
    }
    if (actions.childElementCount) box.appendChild(actions);
    return box;
  }

  function buttonsBox(m) {
    const box = el("div", "buttons");
    for (const row of m.buttons) {
      const line = el("div", "row");
      for (const b of row) {
        let node;
        if (b.callback_data !== undefined) {
          node = el("button", "", b.text);
          node.type = "button";
          node.dataset.callback = b.callback_data;
          node.addEventListener("click", () => press(m.id, b.callback_data));
        } else if (b.url && /^https?:\/\//i.test(b.url)) {
          node = el("a", "", b.text + " ↗");
          node.href = b.url;
          node.target = "_blank";
          node.rel = "noopener noreferrer";
        } else {
          node = el("button", "", b.text);
          node.disabled = true;
        }
        line.appendChild(node);
      }
      box.appendChild(line);
    }
    return box;
  }

  function messageBox(m) {
    const box = el("div", (m.from_bot ? "msg bot" : "msg mine") + (m.card ? " card" : ""));
    box.dataset.id = String(m.id);
    if (m.photo) {
      const img = el("img");
      img.src = m.photo.url;
      img.alt = "";
      img.width = m.photo.width;
      img.height = m.photo.height;
      box.appendChild(img);
    }
    if (m.document) {
      const a = el("a", "", "📄 " + (m.document.name || W.document));
      a.href = m.document.url;
      a.download = m.document.name || "";
      box.appendChild(a);
    }
    if (m.location) {
      box.appendChild(el("div", "text", "📍 " + W.location + " " + m.location.latitude.toFixed(5) + ", " + m.location.longitude.toFixed(5)));
    }
    if (m.card && m.text) {  // a WeCom template card: its title, then its sub-title
      const cut = m.text.indexOf("\n");
      box.appendChild(el("div", "title", cut < 0 ? m.text : m.text.slice(0, cut)));
      if (cut >= 0) box.appendChild(el("div", "text", m.text.slice(cut + 1)));
    } else if (m.text) box.appendChild(richText(m.text, m.entities));
    if (m.poll) box.appendChild(pollBox(m));
    if (m.buttons) box.appendChild(buttonsBox(m));
    box.appendChild(el("div", "when", (m.edited ? W.edited + " " : "") + when(m.date)));
    return box;
  }

  function renderUser(chat) {
    const u = chat.user;
    $("tg-name").textContent = u.name;
    const wecom = chat.channel === "wecom";
    $("tg-meta").textContent = [u.username ? "@" + u.username : "", wecom ? fill(W.wecom_account, u.id) : "id " + u.id, u.blocked ? W.blocked : ""].filter(Boolean).join(" · ");
    $("tg-enter").hidden = !wecom;
    $("tg-photo-caption").hidden = wecom;  // a WeCom image has no caption
    const box = $("tg-messages");
    const stick = nearBottom(box);
    box.replaceChildren();
    if (!chat.messages.length) box.appendChild(el("p", "empty", W.no_messages));
    for (const m of chat.messages) box.appendChild(messageBox(m));
    if (stick) box.scrollTop = box.scrollHeight;
    $("tg-start").hidden = u.started;
    renderKeyboard(chat.keyboard);
    renderCommands(chat.commands);
    $("tg-place-label").hidden = !chat.has_places || $("tg-place-label").dataset.empty === "1";
    const seen = seenAnswers[u.id];
    seenAnswers[u.id] = chat.callback_answers.length;
    if (seen !== undefined) {
      for (const a of chat.callback_answers.slice(seen)) if (a.text) toast(a.text, a.show_alert);
    }
  }

  function renderKeyboard(rows) {
    const box = $("tg-keyboard");
    box.replaceChildren();
    for (const row of rows) {
      const line = el("div", "row");
      for (const b of row) {
        const button = el("button", "", b.text);
        button.type = "button";
        button.addEventListener("click", () => {
          if (b.request_location) { $("tg-location").open = true; loadPlaces(); }
          else sendText(b.text);
        });
        line.appendChild(button);
      }
      box.appendChild(line);
    }
    box.hidden = rows.length === 0;
  }

  function renderCommands(commands) {
    const box = $("tg-commands");
    const open = !box.hidden;
    box.replaceChildren();
    for (const c of commands) {
      const button = el("button", "", "/" + c.command + " — " + c.description);
      button.type = "button";
      button.addEventListener("click", () => { box.hidden = true; sendText("/" + c.command); });
      box.appendChild(button);
    }
    $("tg-menu").hidden = commands.length === 0;
    box.hidden = !open || commands.length === 0;
  }

  function renderPhone(phone) {
    $("sms-name").textContent = phone.name ? phone.name + " " + phone.number : phone.number;
    $("sms-state").value = phone.state;
    const box = $("sms-messages");
    const stick = nearBottom(box);
    box.replaceChildren();
    if (!phone.thread.length) box.appendChild(el("p", "empty", W.no_messages));
    for (const m of phone.thread) {
      const item = el("div", m.dir === "in" ? "msg bot" : "msg mine");
      item.appendChild(el("div", "text", m.body));
      let status;
      if (m.dir === "in") status = W.status[m.status] || m.status;
      else if (m.webhook_status === null || m.webhook_status === undefined) status = W.sending;
      else if (m.webhook_status === 0) status = W.to_bot_unreachable;
      else if (m.webhook_status < 300) status = W.to_bot_ok;
      else status = fill(W.to_bot_status, m.webhook_status);
      item.appendChild(el("div", "when", status + " · " + when(m.at)));
      box.appendChild(item);
    }
    if (stick) box.scrollTop = box.scrollHeight;
    $("sms-text").disabled = !phone.can_reply;
  }

  async function refreshChat() {
    if (!current) return;
    const path = current.kind === "phone" ? "api/phones/" + encodeURIComponent(current.id) : chatPath();
    const chosen = current;
    const data = await api(path);
    if (chosen !== current) return;
    const text = JSON.stringify(data);
    if (text === lastChat) return;
    lastChat = text;
    if (current.kind === "phone") renderPhone(data); else renderUser(data);
  }

  async function refresh() {
    try {
      await Promise.all([refreshLists(), refreshChat()]);
    } catch (e) {
      if (e && e.error && e.error !== "network") notice(e);
    }
  }

  // -- actions ---------------------------------------------------------------------------

  function chatPath() {  // a Telegram user's chat, or a WeCom member's conversation
    return current.kind === "member" ? "api/wecom/" + encodeURIComponent(current.id) : "api/users/" + current.id;
  }

  async function act(action, body) {
    if (!current || current.kind === "phone") return;
    try {
      const answer = await post(chatPath() + "/" + action, body);
      if (answer.status !== undefined && !(answer.status >= 200 && answer.status < 300)) {
        notice({error: "refused", detail: fill(W.to_bot_status, answer.status)});  // the service refused the callback
      }
      await refresh();
      return true;
    } catch (e) {
      notice(e);
      return false;
    }
  }

  function sendText(text) { return act("text", {text: text}); }
  function press(messageId, data) { return act("press", {message_id: messageId, callback_data: data}); }
  function vote(messageId, options) { delete pollDrafts[messageId]; return act("poll", {option_ids: options, message_id: messageId}); }

  async function loadPlaces() {
    if (!current || current.kind !== "user") return;
    try {
      const data = await api("api/users/" + current.id + "/places");
      const select = $("tg-place");
      while (select.options.length > 1) select.remove(1);
      for (const p of data.places) {
        const option = el("option", "", p.label);
        option.value = p.latitude + "," + p.longitude;
        select.appendChild(option);
      }
      $("tg-place-label").dataset.empty = data.places.length ? "0" : "1";
      $("tg-place-label").hidden = data.places.length === 0;
    } catch (e) { notice(e); }
  }

  $("tg-compose").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("tg-text");
    if (!input.value.trim()) return;
    if (await sendText(input.value)) input.value = "";
  });
  $("tg-start-button").addEventListener("click", () => act("start", {}));
  $("tg-enter").addEventListener("click", () => act("start", {}));  // WeCom: open the application
  $("tg-menu").addEventListener("click", () => { $("tg-commands").hidden = !$("tg-commands").hidden; });
  $("tg-location").addEventListener("toggle", () => { if ($("tg-location").open) loadPlaces(); });
  $("tg-place").addEventListener("change", () => {
    const value = $("tg-place").value;
    if (!value) return;
    const [lat, lon] = value.split(",");
    const form = $("tg-location-form");
    form.latitude.value = lat;
    form.longitude.value = lon;
  });
  $("tg-location-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    act("location", {latitude: form.latitude.value.trim(), longitude: form.longitude.value.trim()});
  });
  $("tg-photo-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    if (!form.photo.files.length) { notice({error: "no_photo"}); return; }
    const data = new FormData();
    data.append("photo", form.photo.files[0]);
    data.append("caption", form.caption.value);
    try {
      await api(chatPath() + "/photo", {method: "POST", body: data});
      form.reset();
      await refresh();
    } catch (e) { notice(e); }
  });
  $("tg-photo-generated").addEventListener("click", async () => {
    const form = $("tg-photo-form");
    if (await act("photo", {caption: form.caption.value})) form.reset();
  });
  $("new-user-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      const user = await post("api/users", {first_name: form.first_name.value, username: form.username.value,
                                            language_code: form.language_code.value});
      form.reset();
      select("user", String(user.id));
    } catch (e) { notice(e); }
  });
  $("sms-compose").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("sms-text");
    if (!current || current.kind !== "phone" || !input.value.trim()) return;
    const body = input.value;
    input.value = "";
    try {
      await post("api/phones/" + encodeURIComponent(current.id) + "/reply", {body: body});
    } catch (e) { input.value = body; notice(e); }
    await refresh();
  });
  $("sms-state").addEventListener("change", async () => {
    try {
      await post("api/phones/" + encodeURIComponent(current.id) + "/state", {state: $("sms-state").value});
    } catch (e) { notice(e); }
    await refresh();
  });

  function updateLangLink() {
    const link = document.querySelector("header.top a.lang");
    link.href = link.href.split("#")[0] + location.hash;
  }

  // -- start -----------------------------------------------------------------------------

  const hash = decodeURIComponent(location.hash.slice(1));
  if (hash.startsWith("u/")) select("user", hash.slice(2));
  else if (hash.startsWith("m/")) select("member", hash.slice(2));
  else if (hash.startsWith("p/")) select("phone", hash.slice(2));
  else refresh();
  setInterval(refresh, 1000);
})();
{% endraw %}
