// The sandbox page: a small Slack client over the sandbox JSON API (ui/...).
// All URLs are relative so the page works both standalone and mounted under /sandbox/.
"use strict";

(function () {
  const POLL_MS = 1000;
  const state = {
    ws: null,
    users: {},
    user: null,
    // view: {kind: "channel", id: "C..."} | {kind: "dm", id: "U..."} | {kind: "home"}
    view: null,
    thread: null,
    messages: [],
    lastKey: "",
    lastHomeKey: "",
    busy: false,
    again: false,
  };

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- HTTP

  async function call(path, options) {
    const resp = await fetch(path, options);
    let body = {};
    try {
      body = await resp.json();
    } catch (e) {
      body = {};
    }
    if (!resp.ok) {
      throw new Error(body.detail || body.error || resp.status + " " + resp.statusText);
    }
    return body;
  }
  const get = (path) => call(path, { cache: "no-store" });
  const post = (path, data) =>
    call(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(data),
    });

  function status(text, isError) {
    const el = $("status");
    el.textContent = text || "";
    el.classList.toggle("error", !!isError);
  }

  // ---------------------------------------------------------------- emoji

  // Slack's names for common emoji; unknown :codes: stay as they are.
  const EMOJI = {
    "+1": "👍", "-1": "👎", "100": "💯", alarm_clock: "⏰", arrow_down: "⬇️", arrow_left: "⬅️",
    arrow_right: "➡️", arrow_up: "⬆️", arrows_counterclockwise: "🔄", ballot_box_with_check: "☑️",
    bar_chart: "📊", bell: "🔔", blush: "😊", book: "📖", bookmark: "🔖", books: "📚", boom: "💥",
    bulb: "💡", bust_in_silhouette: "👤", busts_in_silhouette: "👥", calendar: "📆",
    chart_with_downwards_trend: "📉", chart_with_upwards_trend: "📈", checkered_flag: "🏁",
    clap: "👏", clipboard: "📋", clock1: "🕐", closed_lock_with_key: "🔐", coffee: "☕",
    confused: "😕", construction: "🚧", cry: "😢", dart: "🎯", date: "📅", email: "📧",
    envelope: "✉️", exclamation: "❗", eyes: "👀", file_folder: "📁", fire: "🔥", gear: "⚙️",
    grey_exclamation: "❕", grey_question: "❔", grin: "😁", grinning: "😀", hammer: "🔨",
    hammer_and_wrench: "🛠️", heart: "❤️", heavy_check_mark: "✔️", heavy_exclamation_mark: "❗",
    heavy_minus_sign: "➖", heavy_multiplication_x: "✖️", heavy_plus_sign: "➕", hourglass: "⌛",
    hourglass_flowing_sand: "⏳", hand: "✋", inbox_tray: "📥", iphone: "📱", information_source: "ℹ️", joy: "😂", key: "🔑",
    large_blue_circle: "🔵", large_green_circle: "🟢", large_orange_circle: "🟠",
    large_yellow_circle: "🟡", laughing: "😆", link: "🔗", lock: "🔒", lock_with_ink_pen: "🔏",
    mag: "🔍", mag_right: "🔎", mailbox: "📫", memo: "📝", muscle: "💪",
    negative_squared_cross_mark: "❎", new: "🆕", no_bell: "🔕", no_entry: "⛔",
    no_entry_sign: "🚫", ok: "🆗", ok_hand: "👌", open_file_folder: "📂", outbox_tray: "📤",
    package: "📦", page_facing_up: "📄", paperclip: "📎", partying_face: "🥳", pencil: "📝",
    pencil2: "✏️", point_down: "👇", point_left: "👈", point_right: "👉", point_up: "☝️",
    pray: "🙏", pushpin: "📌", question: "❓", raised_hand: "✋", raised_hands: "🙌", red_circle: "🔴", repeat: "🔁",
    robot_face: "🤖", rocket: "🚀", rotating_light: "🚨", round_pushpin: "📍", see_no_evil: "🙈",
    shield: "🛡️", simple_smile: "🙂", slightly_smiling_face: "🙂", smile: "😄", smiley: "😃",
    sos: "🆘", sparkles: "✨", speech_balloon: "💬", spiral_calendar_pad: "🗓️", star: "⭐",
    stop_sign: "🛑", stopwatch: "⏱️", sunglasses: "😎", sweat_smile: "😅", tada: "🎉",
    thinking_face: "🤔", thumbsdown: "👎", thumbsup: "👍", trophy: "🏆", unlock: "🔓",
    warning: "⚠️", wave: "👋", white_check_mark: "✅", wink: "😉", wrench: "🔧", x: "❌", zap: "⚡",
  };
  const EMOJI_CODE = /:([a-z0-9_+-]+):/g;
  const hasOwn = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);

  // Plain text with :codes: as Unicode emoji (for textContent).
  function emojiText(text) {
    return String(text).replace(EMOJI_CODE, (code, name) => (hasOwn(EMOJI, name) ? EMOJI[name] : code));
  }
  // The HTML for one :code: (null if unknown); the code stays available as a tooltip.
  function emojiHtml(code, name) {
    return hasOwn(EMOJI, name) ? '<span class="emoji" title="' + code + '">' + EMOJI[name] + "</span>" : null;
  }

  // ---------------------------------------------------------------- mrkdwn

  function esc(s) {
    return String(s)
      .replace(/&/g, "&amp;")
      .replace(/</g, "&lt;")
      .replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;")
      .replace(/'/g, "&#39;");
  }
  // Slack escapes &, < and > in message text; undo that before escaping for HTML.
  function unslack(s) {
    return String(s).replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  }
  function safeUrl(url) {
    return /^(https?:|mailto:)/i.test(url) ? url : null;
  }
  function userName(id) {
    if (id === "USLACKBOT") return "Slackbot";
    const u = state.users[id];
    return u ? u.name : id;
  }
  function channelName(id) {
    const c = state.ws && state.ws.channels.find((ch) => ch.id === id);
    return c ? c.name : id;
  }

  // <...> control sequences: mentions, channels, links, special mentions.
  function controlToHtml(inner) {
    const bar = inner.indexOf("|");
    const target = bar >= 0 ? inner.slice(0, bar) : inner;
    const label = bar >= 0 ? inner.slice(bar + 1) : null;
    if (target.startsWith("@")) {
      return '<span class="mention">@' + esc(label || userName(target.slice(1))) + "</span>";
    }
    if (target.startsWith("#")) {
      return '<span class="mention">#' + esc(label || channelName(target.slice(1))) + "</span>";
    }
    if (target.startsWith("!date^")) {
      const html = dateHtml(target.slice(1).split("^"), label);
      if (html !== null) return html;
    }
    if (target.startsWith("!")) {
      const special = target.slice(1).split("^")[0];
      if (["here", "channel", "everyone"].includes(special)) {
        return '<span class="mention">@' + esc(special) + "</span>";
      }
      return esc(unslack(label || special));
    }
    const url = safeUrl(unslack(target));
    const text = esc(unslack(label || target));
    if (!url) return text;
    return '<a href="' + esc(url) + '" target="_blank" rel="noopener noreferrer">' + text + "</a>";
  }

  // <!date^EPOCH^FORMAT[^LINK]|fallback>: as Slack, the moment in the reader's own time
  // zone; the fallback stays as a tooltip. null when the token is malformed.
  const DAY_MS = 86400000;
  function dateHtml(parts, fallback) {
    if (parts.length < 3 || !/^\d{1,12}$/.test(parts[1])) return null;
    const when = new Date(Number(parts[1]) * 1000);
    const opts = (o) => when.toLocaleString([], o);
    const time = opts({ hour: "2-digit", minute: "2-digit" });
    const dayOffset = () => {
      const start = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
      return Math.round((start(when) - start(new Date())) / DAY_MS);
    };
    const pretty = (plain) => {
      const names = { "-1": "yesterday", "0": "today", "1": "tomorrow" };
      const n = String(dayOffset());
      return hasOwn(names, n) ? names[n] : plain;
    };
    const date = opts({ year: "numeric", month: "long", day: "numeric" });
    const short = opts({ year: "numeric", month: "short", day: "numeric" });
    const long = opts({ weekday: "long", year: "numeric", month: "long", day: "numeric" });
    const tokens = {
      date_num: when.getFullYear() + "-" + String(when.getMonth() + 1).padStart(2, "0") + "-" +
        String(when.getDate()).padStart(2, "0"),
      date, date_short: short, date_long: long,
      date_pretty: pretty(date), date_short_pretty: pretty(short), date_long_pretty: pretty(long),
      time, time_secs: opts({ hour: "2-digit", minute: "2-digit", second: "2-digit" }),
    };
    const text = parts[2].replace(/\{([a-z_]+)\}/g, (all, name) => (hasOwn(tokens, name) ? tokens[name] : all));
    const title = fallback ? ' title="' + esc(unslack(fallback)) + '"' : "";
    const shown = '<time data-testid="date" datetime="' + esc(when.toISOString()) + '"' + title + ">" + esc(text) + "</time>";
    const url = parts.length > 3 ? safeUrl(unslack(parts[3])) : null;
    return url ? '<a href="' + esc(url) + '" target="_blank" rel="noopener noreferrer">' + shown + "</a>" : shown;
  }

  function mrkdwn(text) {
    // Pull out code and control sequences first so formatting cannot reach into them,
    // then escape, format, and put them back.
    const saved = [];
    const keep = (html) => "\u0000" + (saved.push(html) - 1) + "\u0000";
    let s = String(text || "")
      .replace(/```([\s\S]*?)```/g, (_, code) => keep("<pre>" + esc(unslack(code)) + "</pre>"))
      .replace(/`([^`\n]+)`/g, (_, code) => keep("<code>" + esc(unslack(code)) + "</code>"))
      .replace(/<([^<>\s][^<>]*)>/g, (_, inner) => keep(controlToHtml(inner)))
      .replace(EMOJI_CODE, (code, name) => {
        const html = emojiHtml(code, name);
        return html === null ? code : keep(html);
      });
    s = esc(unslack(s));
    const edge = "(^|[\\s(\\u0000>])";
    const end = "(?=$|[\\s.,!?;:)\\u0000<])";
    s = s
      .replace(new RegExp(edge + "\\*([^*\\n]+)\\*" + end, "g"), "$1<b>$2</b>")
      .replace(new RegExp(edge + "_([^_\\n]+)_" + end, "g"), "$1<i>$2</i>")
      .replace(new RegExp(edge + "~([^~\\n]+)~" + end, "g"), "$1<s>$2</s>");
    s = s
      .split("\n")
      .map((line) =>
        line.startsWith("&gt; ") ? "<blockquote>" + line.slice(5) + "</blockquote>" : line
      )
      .join("<br>")
      .replace(/<\/blockquote><br>/g, "</blockquote>");
    return s.replace(/\u0000(\d+)\u0000/g, (_, i) => saved[Number(i)]);
  }

  function textObject(obj) {
    const span = document.createElement("span");
    if (!obj) return span;
    if (obj.type === "mrkdwn") {
      span.innerHTML = mrkdwn(obj.text);
    } else if (obj.emoji === false) {
      span.textContent = obj.text || "";
    } else {
      span.textContent = emojiText(obj.text || "");
    }
    return span;
  }

  // ---------------------------------------------------------------- Block Kit

  function el(tag, className, children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const child of children || []) node.append(child);
    return node;
  }

  function unsupported(what) {
    return el("span", "unsupported", ["[" + what + " not shown in the sandbox]"]);
  }

  function button(element, block, ctx) {
    const b = el("button", "btn" + (element.style ? " btn-" + element.style : ""));
    b.type = "button";
    b.textContent = buttonLabel(element);
    b.dataset.actionId = element.action_id || "";
    b.dataset.blockId = block.block_id || "";
    if (element.value !== undefined) b.dataset.value = element.value;
    b.addEventListener("click", () => clickButton(b, element, block, ctx));
    return b;
  }

  function buttonLabel(element) {
    const text = element.text || {};
    const label = text.text || "Button";
    return text.emoji === false ? label : emojiText(label);
  }

  function interactive(element, block, ctx) {
    if (element.type === "button") return button(element, block, ctx);
    if (element.type === "image") return el("span", "unsupported", ["[image: " + (element.alt_text || "") + "]"]);
    return unsupported(element.type);
  }

  function renderBlock(block, ctx) {
    switch (block.type) {
      case "header":
        return el("div", "b-header", [textObject(block.text)]);
      case "section": {
        const main = el("div", "b-section-main");
        if (block.text) main.append(el("div", "b-text", [textObject(block.text)]));
        if (Array.isArray(block.fields)) {
          main.append(el("div", "b-fields", block.fields.map((f) => el("div", "b-field", [textObject(f)]))));
        }
        const section = el("div", "b-section", [main]);
        if (block.accessory) {
          section.append(el("div", "b-accessory", [interactive(block.accessory, block, ctx)]));
        }
        return section;
      }
      case "context":
        return el(
          "div",
          "b-context",
          (block.elements || []).map((e) =>
            e.type === "image" ? el("span", "unsupported", ["[" + (e.alt_text || "image") + "]"]) : textObject(e)
          )
        );
      case "divider":
        return el("hr", "b-divider");
      case "actions":
        return el("div", "b-actions", (block.elements || []).map((e) => interactive(e, block, ctx)));
      case "image":
        return el("div", "unsupported", ["[image: " + (block.alt_text || "") + "]"]);
      case "rich_text":
        return el("div", "b-text", [richText(block)]);
      case "markdown": {
        // Standard Markdown (what a stream writes): shown with the mrkdwn renderer.
        const span = document.createElement("span");
        span.innerHTML = mrkdwn(String(block.text || "").replace(/\*\*(\S(?:[^*\n]*\S)?)\*\*/g, "*$1*"));
        return el("div", "b-text b-markdown", [span]);
      }
      default:
        return unsupported(block.type + " block");
    }
  }

  function richText(block) {
    // Flatten rich_text into mrkdwn-ish text; enough to read messages typed in Slack.
    const parts = [];
    const walk = (node) => {
      if (!node) return;
      if (node.type === "text") parts.push(node.text);
      else if (node.type === "user") parts.push("<@" + node.user_id + ">");
      else if (node.type === "link") parts.push("<" + node.url + (node.text ? "|" + node.text : "") + ">");
      (node.elements || []).forEach(walk);
    };
    walk(block);
    const span = document.createElement("span");
    span.innerHTML = mrkdwn(parts.join(""));
    return span;
  }

  function renderBlocks(blocks, ctx) {
    return el("div", "blocks", blocks.map((b) => renderBlock(b, ctx)));
  }

  // ---------------------------------------------------------------- messages

  function formatTime(ts) {
    const d = new Date(parseFloat(ts) * 1000);
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function renderMessage(m, inThread) {
    const uid = m.user || "";
    const isBot = !!m.bot_id || (state.users[uid] && state.users[uid].is_bot);
    const node = el("div", "msg");
    node.dataset.testid = "message";
    node.dataset.ts = m.ts;
    node.dataset.user = uid;
    node.dataset.channel = m.channel || "";
    if (m.is_ephemeral) node.dataset.ephemeral = "true";

    const avatar = el("div", "avatar" + (isBot ? " bot" : "") + (uid === "USLACKBOT" ? " slackbot" : ""));
    avatar.textContent = userName(uid).slice(0, 1).toUpperCase();
    const body = el("div", "msg-body");
    const meta = el("div", "meta");
    const author = el("span", "author");
    author.textContent = userName(uid);
    meta.append(author);
    if (isBot) meta.append(el("span", "app-tag", ["APP"]));
    const time = el("time");
    time.textContent = formatTime(m.ts);
    time.title = m.ts;
    meta.append(time);
    if (m.edited) meta.append(" ", el("span", "edited", ["(edited)"]));
    body.append(meta);

    const ctx = { kind: "message", channel: m.channel, ts: m.ts };
    let content;
    if (m.subtype === "assistant_app_thread") {
      content = el("div", "text assistant-root", [assistantTitle(m)]);
    } else if (Array.isArray(m.blocks) && m.blocks.length) {
      content = renderBlocks(m.blocks, ctx);
    } else {
      content = el("div", "text");
      content.innerHTML = mrkdwn(m.text);
    }
    if (Array.isArray(m.attachments)) {
      for (const a of m.attachments) {
        const att = el("div", "text");
        att.innerHTML = mrkdwn(a.text || a.fallback || "");
        content.append(att);
      }
    }
    if (m.is_streaming) {
      const writing = el("span", "streaming", ["writing…"]);
      writing.dataset.testid = "streaming";
      content.append(writing);
    }
    if (m.is_ephemeral) {
      const wrap = el("div", "ephemeral");
      wrap.dataset.testid = "ephemeral";
      wrap.append(el("div", "eph-label", ["Only visible to you"]), content);
      body.append(wrap);
    } else {
      body.append(content);
    }

    if (!inThread && !m.is_ephemeral && m.subtype !== "tombstone") {
      const links = el("div", "thread-links");
      if (m.reply_count) {
        const r = el("a");
        r.dataset.testid = "replies";
        r.textContent = m.reply_count + (m.reply_count === 1 ? " reply" : " replies");
        r.addEventListener("click", () => openThread(m.ts));
        links.append(r);
      }
      if (canPost()) {
        const reply = el("a");
        reply.dataset.testid = "reply-in-thread";
        reply.textContent = "Reply in thread";
        reply.addEventListener("click", () => openThread(m.ts));
        links.append(reply);
      }
      body.append(links);
    }
    node.append(avatar, body);
    return node;
  }

  function isTopLevel(m) {
    return !m.thread_ts || m.thread_ts === m.ts;
  }

  function renderMessages() {
    const box = $("messages");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    box.replaceChildren();
    const top = state.messages.filter(isTopLevel);
    if (!top.length) {
      box.append(el("div", "empty", ["No messages yet."]));
    }
    for (const m of top) box.append(renderMessage(m, false));
    if (atBottom) box.scrollTop = box.scrollHeight;
    renderThread();
  }

  function renderThread() {
    const pane = $("thread");
    if (!state.thread) {
      pane.hidden = true;
      // Hidden stale messages would still match [data-testid=message].
      $("thread-messages").replaceChildren();
      return;
    }
    pane.hidden = false;
    const box = $("thread-messages");
    box.replaceChildren();
    const items = state.messages.filter((m) => m.ts === state.thread || m.thread_ts === state.thread);
    const root = items.find((m) => m.ts === state.thread);
    renderAssistantHead(root && root.subtype === "assistant_app_thread" ? root : null);
    for (const m of items) box.append(renderMessage(m, true));
    box.scrollTop = box.scrollHeight;
  }

  // ---------------------------------------------------------------- assistant pane

  function assistantTitle(root) {
    const info = root.assistant_app_thread || {};
    return info.title || "New assistant chat";
  }

  // The head of an assistant thread: its title, the app's suggested prompts (a click
  // sends one) and its status while it thinks.
  function renderAssistantHead(root) {
    const head = $("assistant-head");
    $("thread-kind").textContent = root ? "Assistant" : "Thread";
    head.hidden = !root;
    if (!root) return;
    $("assistant-title").textContent = assistantTitle(root);
    const suggested = (root.assistant_app_thread || {}).suggested_prompts || {};
    const prompts = $("assistant-prompts");
    prompts.replaceChildren();
    if (suggested.title) prompts.append(el("div", "prompts-title", [suggested.title]));
    for (const p of suggested.prompts || []) {
      const b = el("button", "btn");
      b.type = "button";
      b.dataset.testid = "suggested-prompt";
      b.textContent = p.title;
      b.title = p.message;
      b.addEventListener("click", () => send(p.message, state.thread).catch((e) => status(e.message, true)));
      prompts.append(b);
    }
    $("assistant-status").textContent = root.assistant_status
      ? state.ws.bot.name + " " + root.assistant_status
      : "";
  }

  async function openAssistant() {
    const context = state.view && state.view.kind === "channel" ? state.view.id : undefined;
    status("Opening the assistant…");
    const result = await post("ui/assistant", { user: state.user, context_channel: context });
    select({ kind: "dm", id: state.ws.bot.user_id });
    state.thread = result.thread_ts;
    status("");
    await refresh();
  }

  function openThread(ts) {
    state.thread = ts;
    renderThread();
    $("thread-composer").focus();
  }

  // ---------------------------------------------------------------- navigation

  function channelRef() {
    if (!state.view || state.view.kind === "home") return null;
    return state.view.id;
  }

  function isMember() {
    if (!state.view) return false;
    if (state.view.kind === "dm") return true;
    if (state.view.kind === "home") return false;
    const c = state.ws.channels.find((ch) => ch.id === state.view.id);
    return !!c && c.members.includes(state.user);
  }

  function canPost() {
    return isMember();
  }

  function navItem(label, view, extraClass, testid) {
    const li = document.createElement("li");
    const a = el("a", "nav-item" + (extraClass ? " " + extraClass : ""));
    a.href = "#" + (view.kind === "home" ? "home" : view.id);
    a.dataset.testid = testid;
    a.dataset.id = view.id || "home";
    a.append(label);
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      select(view);
    });
    li.append(a);
    return li;
  }

  function renderSidebar() {
    const channels = $("channel-list");
    channels.replaceChildren();
    for (const c of state.ws.channels) {
      const member = c.members.includes(state.user);
      channels.append(navItem("# " + c.name, { kind: "channel", id: c.id }, member ? "" : "not-member", "nav-channel"));
    }
    const dms = $("dm-list");
    dms.replaceChildren();
    const bot = state.ws.bot;
    const botLabel = el("span", "", [bot.name]);
    botLabel.append(el("span", "app-tag", ["APP"]));
    dms.append(navItem(botLabel, { kind: "dm", id: bot.user_id }, "", "nav-dm"));
    for (const u of state.ws.users) {
      if (u.is_bot || u.id === bot.user_id) continue;
      const label = u.id === state.user ? u.name + " (you)" : u.name;
      dms.append(navItem(label, { kind: "dm", id: u.id }, "", "nav-dm"));
    }
    highlight();
  }

  function highlight() {
    document.querySelectorAll(".nav-item").forEach((a) => {
      const id = a.dataset.id;
      const active =
        state.view &&
        ((state.view.kind === "home" && id === "home") || (state.view.kind !== "home" && state.view.id === id));
      a.classList.toggle("active", !!active);
    });
  }

  // On narrow screens the conversation lists open from a bar above the conversation.
  function showNav(open) {
    $("sidebar").classList.toggle("open", open);
    $("nav-toggle").setAttribute("aria-expanded", String(open));
  }

  function select(view) {
    showNav(false);
    state.view = view;
    state.thread = null;
    state.messages = [];
    state.lastKey = "";
    state.lastHomeKey = "";
    history.replaceState(null, "", "#" + (view.kind === "home" ? "home" : view.id));
    highlight();
    const home = view.kind === "home";
    $("messages").hidden = home;
    $("home").hidden = !home;
    $("composer-form").hidden = home;
    $("thread").hidden = true;
    $("messages").replaceChildren();
    $("thread-messages").replaceChildren();
    let title = "";
    let meta = "";
    if (view.kind === "channel") {
      const c = state.ws.channels.find((ch) => ch.id === view.id);
      title = "# " + (c ? c.name : view.id);
      meta = c ? c.members.length + " members" + (isMember() ? "" : " · you are not a member") : "";
    } else if (view.kind === "dm") {
      title = userName(view.id);
      meta = view.id === state.ws.bot.user_id ? "App · Messages" : "Direct message";
    } else {
      title = state.ws.bot.name;
      meta = "App Home";
    }
    $("conv-title").textContent = title;
    $("conv-meta").textContent = meta;
    $("composer").disabled = !canPost();
    $("send").disabled = !canPost();
    $("composer").placeholder = canPost()
      ? "Message " + title + " — start with / for a slash command (e.g. /pm help)"
      : "You are not a member of this channel";
    status("");
    if (home) {
      $("home").replaceChildren(el("div", "empty", ["Opening App Home…"]));
      post("ui/home", { user: state.user }).catch((e) => status(e.message, true));
    }
    refresh();
  }

  // ---------------------------------------------------------------- actions

  async function send(text, threadTs) {
    const channel = channelRef();
    if (!channel || !text.trim()) return;
    // As in Slack, "/..." runs a command; a leading space sends it as a message.
    if (text.startsWith("/") && !threadTs) {
      const trimmed = text.trim();
      const space = trimmed.search(/\s/);
      const command = space < 0 ? trimmed : trimmed.slice(0, space);
      const rest = space < 0 ? "" : trimmed.slice(space + 1).trim();
      status("Running " + command + "…");
      const result = await post("ui/commands", { user: state.user, channel, command, text: rest });
      // Whatever Slack or the app answered is in the conversation; only a failure is news.
      const d = result.delivery;
      const failed = !!d && !d.ok;
      status(failed ? command + " failed: " + (d.error || d.status) : "", failed);
    } else {
      const body = { user: state.user, channel, text };
      if (threadTs) body.thread_ts = threadTs;
      await post("ui/messages", body);
      status("");
    }
    await refresh();
  }

  // What went wrong with a delivery, in words (the app's reply itself shows up later).
  function deliveryProblem(d) {
    if (d.error === "http_timeout") return "the app did not answer in time";
    if (d.error === "connection_failed") return "the app could not be reached";
    return "the app answered with an error" + (d.status ? " (HTTP " + d.status + ")" : "");
  }

  async function clickButton(node, element, block, ctx) {
    if (element.confirm && element.confirm.text) {
      const question = element.confirm.text.text || "Are you sure?";
      if (!window.confirm(question)) return;
    }
    if (element.url) {
      const url = safeUrl(element.url);
      if (url) window.open(url, "_blank", "noopener");
    }
    node.disabled = true;
    try {
      const body = { user: state.user, action_id: element.action_id, block_id: block.block_id };
      if (ctx.kind === "home") {
        body.view = "home";
      } else {
        body.channel = channelRef();
        body.message_ts = ctx.ts;
      }
      const result = await post("ui/actions", body);
      const d = result.delivery || {};
      const name = 'Button "' + buttonLabel(element) + '"';
      status(d.ok ? name + " clicked" : name + ": " + deliveryProblem(d), !d.ok);
    } catch (e) {
      status(e.message, true);
    } finally {
      node.disabled = false;
    }
    await refresh();
  }

  // ---------------------------------------------------------------- polling

  async function refresh() {
    if (!state.view) return;
    if (state.busy) {
      // A poll is in flight; run once more when it ends so fresh changes show at once.
      state.again = true;
      return;
    }
    state.busy = true;
    state.again = false;
    const view = state.view;
    try {
      if (view.kind === "home") {
        const data = await get("ui/home?user=" + encodeURIComponent(state.user));
        if (view !== state.view) return;
        const key = JSON.stringify(data.view);
        if (key !== state.lastHomeKey) {
          state.lastHomeKey = key;
          const box = $("home");
          box.replaceChildren();
          if (data.view && data.view.blocks && data.view.blocks.length) {
            box.append(renderBlocks(data.view.blocks, { kind: "home" }));
          } else {
            box.append(el("div", "empty", ["The app has not published a Home view yet."]));
          }
        }
      } else {
        const url =
          "ui/messages?channel=" + encodeURIComponent(view.id) + "&user=" + encodeURIComponent(state.user);
        const data = await get(url);
        if (view !== state.view) return;
        const key = JSON.stringify(data.messages);
        if (key !== state.lastKey) {
          state.lastKey = key;
          state.messages = data.messages;
          renderMessages();
        }
      }
    } catch (e) {
      status(e.message, true);
    } finally {
      state.busy = false;
    }
    if (state.again) refresh();
  }

  // ---------------------------------------------------------------- start

  function viewFromHash() {
    const h = decodeURIComponent(location.hash.slice(1));
    if (h === "home") return { kind: "home" };
    if (state.ws.channels.some((c) => c.id === h)) return { kind: "channel", id: h };
    if (state.users[h]) return { kind: "dm", id: h };
    const mine = state.ws.channels.find((c) => c.members.includes(state.user)) || state.ws.channels[0];
    return mine ? { kind: "channel", id: mine.id } : { kind: "dm", id: state.ws.bot.user_id };
  }

  function wireForms() {
    const submitOnEnter = (textarea, form) =>
      textarea.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
          ev.preventDefault();
          form.requestSubmit();
        }
      });
    submitOnEnter($("composer"), $("composer-form"));
    submitOnEnter($("thread-composer"), $("thread-form"));
    $("composer-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const text = $("composer").value;
      if (!text.trim()) return;
      $("composer").value = "";
      try {
        await send(text, null);
      } catch (e) {
        $("composer").value = text;
        status(e.message, true);
      }
    });
    $("thread-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const text = $("thread-composer").value;
      if (!text.trim() || !state.thread) return;
      $("thread-composer").value = "";
      try {
        await send(text, state.thread);
      } catch (e) {
        $("thread-composer").value = text;
        status(e.message, true);
      }
    });
    $("nav-toggle").addEventListener("click", () => showNav(!$("sidebar").classList.contains("open")));
    $("nav-home").addEventListener("click", (ev) => {
      ev.preventDefault();
      select({ kind: "home" });
    });
    $("nav-assistant").addEventListener("click", (ev) => {
      ev.preventDefault();
      showNav(false);
      openAssistant().catch((e) => status(e.message, true));
    });
    window.addEventListener("hashchange", () => select(viewFromHash()));
    $("thread-close").addEventListener("click", () => {
      state.thread = null;
      renderThread();
    });
    $("user-select").addEventListener("change", () => {
      state.user = $("user-select").value;
      try {
        localStorage.setItem("slack-sandbox-user", state.user);
      } catch (e) {
        /* storage may be disabled */
      }
      renderSidebar();
      select(state.view && state.view.id === state.user ? viewFromHash() : state.view);
    });
  }

  async function start() {
    try {
      state.ws = await get("ui/workspace");
    } catch (e) {
      status("Cannot load the workspace: " + e.message, true);
      return;
    }
    $("team-name").textContent = state.ws.team.name;
    for (const u of state.ws.users) state.users[u.id] = u;
    const humans = state.ws.users.filter((u) => !u.is_bot);
    const select_ = $("user-select");
    for (const u of humans) {
      const opt = document.createElement("option");
      opt.value = u.id;
      opt.textContent = u.name + " (" + u.real_name + ")";
      select_.append(opt);
    }
    let wanted = new URLSearchParams(location.search).get("user");
    try {
      wanted = wanted || localStorage.getItem("slack-sandbox-user");
    } catch (e) {
      /* storage may be disabled */
    }
    state.user = humans.some((u) => u.id === wanted) ? wanted : humans[0] && humans[0].id;
    select_.value = state.user;
    wireForms();
    renderSidebar();
    select(viewFromHash());
    setInterval(refresh, POLL_MS);
  }

  document.addEventListener("DOMContentLoaded", start);
})();
