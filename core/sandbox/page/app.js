// The sandbox chat page: a small Stream chat client for the local stand-in.
// It loads state from /sandbox/api/, follows Stream's events over Server-Sent Events,
// and renders every piece of user or bot text with textContent, never as HTML.
"use strict";

// Distinct enough side by side, and all readable under white initials.
const AVATAR_COLOURS = [
  "#e5484d", "#12a594", "#f76b15", "#30a46c", "#0091ff", "#d6409f",
  "#3e63dd", "#ab4aba", "#978365", "#6e56cf", "#0d74ce", "#c2298a",
];

const AI_STATE_LABELS = {
  AI_STATE_THINKING: "is thinking",
  AI_STATE_EXTERNAL_SOURCES: "is using tools",
  AI_STATE_GENERATING: "is writing",
};

const state = {
  me: "alice",
  people: new Map(), // id -> {id, name}
  bots: new Map(), // id -> {id, name, image, command}
  channels: [], // [{cid, name, commands, members}]
  cid: "messaging:general",
  messages: new Map(), // id -> message, for the open channel
  threadId: null, // the parent of the open thread, if one is open
  threadMessages: new Map(), // id -> message, for the open thread (its parent included)
  indicators: new Map(), // cid -> ai_indicator.update event
  unread: new Map(), // cid -> count
  source: null, // the EventSource
  loading: 0, // bumps on every load, so a slow, stale one is dropped
};

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
  return data;
}

function channel() {
  return state.channels.find((c) => c.cid === state.cid);
}

function commandsHere() {
  return channel()?.commands ?? [];
}

// ---- people, bots and avatars ------------------------------------------------------------

function isBot(user) {
  return state.bots.has(user.id) || !state.people.has(user.id);
}

function displayName(user) {
  return user.name || state.bots.get(user.id)?.name || state.people.get(user.id)?.name || user.id;
}

function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[1][0] : (words[0] || "?").slice(0, 1);
  return letters.toUpperCase();
}

function colour(id) {
  let hash = 0;
  for (const char of id) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return AVATAR_COLOURS[hash % AVATAR_COLOURS.length];
}

// Initials in a coloured circle; a picture replaces them only once it has loaded.
function avatar(user, className = "avatar") {
  const box = el("span", className, initials(displayName(user)));
  box.style.setProperty("--colour", colour(user.id));
  box.setAttribute("aria-hidden", "true");
  const image = user.image || state.bots.get(user.id)?.image;
  if (image) {
    const picture = new Image();
    picture.alt = "";
    picture.onload = () => box.replaceChildren(picture);
    picture.src = image;
  }
  return box;
}

// ---- text: **bold**, `code`, ``` blocks ```, line breaks (the CSS keeps them) --------------

function renderText(text, parent) {
  const parts = text.split("```");
  parts.forEach((part, index) => {
    if (index % 2 === 1) {
      // A fence may name a language on its first line; an unclosed fence (still streaming) is code too.
      const firstLine = part.indexOf("\n");
      const code = firstLine >= 0 && /^[\w+#.-]*$/.test(part.slice(0, firstLine)) ? part.slice(firstLine + 1) : part;
      const pre = el("pre");
      pre.append(el("code", null, code.replace(/\n$/, "")));
      parent.append(pre);
      return;
    }
    // The blank lines around a block are the block's margin.
    if (index > 0) part = part.replace(/^\n+/, "");
    if (index < parts.length - 1) part = part.replace(/\n+$/, "");
    for (const token of part.split(/(`[^`\n]+`|\*\*[^*\n]+\*\*)/)) {
      if (!token) continue;
      if (/^`[^`\n]+`$/.test(token)) parent.append(el("code", null, token.slice(1, -1)));
      else if (/^\*\*[^*\n]+\*\*$/.test(token)) parent.append(el("strong", null, token.slice(2, -2)));
      else parent.append(document.createTextNode(token));
    }
  });
}

// ---- messages ------------------------------------------------------------------------------

function visibleInChannel(message) {
  return !message.parent_id || message.show_in_channel;
}

function time(iso) {
  return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function renderNotice(message) {
  const item = el("li", "message notice");
  item.dataset.id = message.id;
  item.append(el("span", "notice-icon", "!"));
  const body = el("div", "body");
  const meta = el("div", "meta");
  meta.append(el("span", "only-you", "Only visible to you"), el("time", null, time(message.created_at)));
  const text = el("div", "text");
  renderText(message.text || "", text);
  body.append(meta, text);
  item.append(body);
  return item;
}

// `where` is "channel" (the main list: a message there can start a thread) or "thread".
function renderMessage(message, where = "channel") {
  if (message.type === "error" || message.type === "ephemeral") return renderNotice(message);
  const user = message.user || { id: "?" };
  const bot = isBot(user);
  const item = el("li", "message");
  item.dataset.id = message.id;
  item.classList.toggle("from-bot", bot);
  item.classList.toggle("from-me", user.id === state.me);
  item.classList.toggle("generating", Boolean(message.generating));

  const meta = el("div", "meta");
  meta.append(el("span", "name", displayName(user)));
  if (bot) meta.append(el("span", "badge", "bot"));
  if (message.ai_generated) {
    const badge = el("span", "badge ai", "AI");
    badge.title = "ai_generated: written by the bot's provider, streamed in as it was written";
    meta.append(badge);
  }
  const stamp = el("time", null, time(message.created_at));
  stamp.dateTime = message.created_at;
  meta.append(stamp);

  const text = el("div", "text");
  const typed = message.text || "";
  const command = message.command && typed.startsWith(`/${message.command}`) ? `/${message.command}` : null;
  if (command) {
    text.append(el("span", "command", command));
    renderText(typed.slice(command.length), text);
  } else if (message.generating && !typed) {
    const dots = el("span", "dots");
    dots.setAttribute("aria-label", "thinking");
    dots.append(el("i"), el("i"), el("i"));
    text.append(dots);
  } else {
    renderText(typed, text);
  }
  if (message.generating && typed) text.append(el("span", "cursor"));

  const body = el("div", "body");
  body.append(meta, text);
  const actions = messageActions(message, where);
  if (actions.childElementCount) body.append(actions);
  item.append(avatar(user), body);
  return item;
}

// Under a message: its thread (reply, or the replies so far), and Stop while a bot that honours it writes it.
function messageActions(message, where) {
  const actions = el("div", "actions");
  if (message.generating && state.bots.get(message.user?.id)?.stop) {
    const stop = el("button", "stop-button", "Stop");
    stop.type = "button";
    stop.title = "Stop generating (any member of the channel may)";
    stop.addEventListener("click", () => stopGenerating(message, stop));
    actions.append(stop);
  }
  if (where === "channel" && !message.parent_id) {
    const count = message.reply_count || 0;
    const thread = el("button", count ? "replies-link" : "reply-button",
      count ? `${count} ${count === 1 ? "reply" : "replies"}` : "Reply in thread");
    thread.type = "button";
    thread.addEventListener("click", () => openThread(message.id));
    actions.append(thread);
  }
  return actions;
}

async function stopGenerating(message, button) {
  button.disabled = true;
  try {
    await api("/sandbox/api/stop", { cid: message.cid, user_id: state.me, message_id: message.id });
  } catch (error) {
    button.disabled = false;
    showProblem(`Could not stop: ${error.message}`);
  }
}

function nearBottom(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 120;
}

// Add or replace one message in `list` (the channel's or the thread's), in created_at order. An older
// copy never replaces a newer one (a snapshot and the live stream can overlap by a few events).
function place(list, store, message, where) {
  const known = store.get(message.id);
  if (known && (known.updated_at || "") > (message.updated_at || "")) return;
  store.set(message.id, message);
  const stick = nearBottom(list);
  const node = renderMessage(message, where);
  const old = list.querySelector(`[data-id="${CSS.escape(message.id)}"]`);
  if (old) {
    old.replaceWith(node);
  } else {
    const later = [...list.children].find((child) => {
      const other = store.get(child.dataset.id);
      return other && other.created_at > message.created_at;
    });
    list.insertBefore(node, later || null);
    list.querySelector(".empty")?.remove();
  }
  if (stick) list.scrollTop = list.scrollHeight;
}

function upsert(message) {
  if (message.cid !== state.cid) return;
  if (visibleInChannel(message)) place($("messages"), state.messages, message, "channel");
  if (state.threadId && (message.parent_id === state.threadId || message.id === state.threadId)) {
    place($("thread-messages"), state.threadMessages, message, "thread");
  }
  const indicator = state.indicators.get(message.cid);
  if (indicator && indicator.message_id === message.id && message.generating === false) {
    state.indicators.delete(message.cid); // the clear event is best-effort; the final text is not
    renderIndicator();
  }
}

// A new reply: its parent (no event says so) now counts one more.
function countReply(reply) {
  const parent = state.messages.get(reply.parent_id);
  if (parent) upsert({ ...parent, reply_count: (parent.reply_count || 0) + 1 });
}

function renderEmpty() {
  const empty = el("li", "empty");
  empty.append(el("p", "empty-title", `This is the beginning of #${channel()?.name ?? ""}`));
  // /echo answers without any key, so it makes the safest first try.
  const first = commandsHere().find((c) => c.name === "echo") ?? commandsHere()[0];
  if (first) {
    const hint = el("p", null, "Say something, or try ");
    hint.append(commandChip(`/${first.name} hello`), document.createTextNode("."));
    empty.append(hint);
  }
  $("messages").replaceChildren(empty);
}

async function loadMessages() {
  const token = ++state.loading;
  const query = new URLSearchParams({ cid: state.cid, user_id: state.me });
  const { messages } = await api(`/sandbox/api/messages?${query}`);
  if (token !== state.loading) return;
  state.messages.clear();
  renderEmpty();
  for (const message of messages) upsert(message);
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

// ---- the AI typing indicator ---------------------------------------------------------------

function renderIndicator() {
  const box = $("indicator");
  const event = state.indicators.get(state.cid);
  const label = event && AI_STATE_LABELS[event.ai_state];
  box.hidden = !label;
  box.replaceChildren();
  if (label) {
    const dots = el("span", "dots");
    dots.append(el("i"), el("i"), el("i"));
    box.append(
      avatar(event.user, "avatar small"),
      el("strong", null, displayName(event.user)),
      document.createTextNode(` ${label}…`),
      dots,
    );
  }
}

// ---- live events ---------------------------------------------------------------------------

function setConnection(live) {
  $("connection").dataset.state = live ? "live" : "offline";
  $("connection-text").textContent = live ? "live" : "reconnecting…";
}

function onEvent(event) {
  if (event.type === "message.new" || event.type === "message.updated") {
    const message = event.message;
    if (message.cid === state.cid) {
      const first = event.type === "message.new" && !state.messages.has(message.id)
        && !state.threadMessages.has(message.id);
      upsert(message);
      if (first && message.parent_id) countReply(message);
    } else if (event.type === "message.new" && message.user?.id !== state.me && visibleInChannel(message)) {
      state.unread.set(message.cid, (state.unread.get(message.cid) || 0) + 1);
      renderChannels();
    }
  } else if (event.type === "ai_indicator.update" && AI_STATE_LABELS[event.ai_state]) {
    state.indicators.set(event.cid, event);
    if (event.cid === state.cid) renderIndicator();
  } else if (event.type.startsWith("ai_indicator.")) {
    state.indicators.delete(event.cid); // clear, stop, or an error state: the message says what happened
    if (event.cid === state.cid) renderIndicator();
  }
}

function connect() {
  state.source?.close();
  const source = new EventSource(`/sandbox/api/events?user_id=${encodeURIComponent(state.me)}`);
  // "ready" comes once the server is subscribed, so loading now misses nothing in between.
  source.addEventListener("ready", () => {
    setConnection(true);
    state.indicators.clear();
    renderIndicator();
    loadMessages().then(() => showProblem(null), loadProblem);
  });
  source.onmessage = (message) => onEvent(JSON.parse(message.data));
  source.onerror = () => setConnection(false);
  state.source = source;
}

// ---- sidebar, header, switching ------------------------------------------------------------

// A command that puts `text` in the composer when clicked.
function commandChip(text) {
  const chip = el("button", "chip", text);
  chip.type = "button";
  chip.addEventListener("click", () => setInput(composers.main, text.includes(" ") ? text : `${text} `));
  return chip;
}

function renderChannels() {
  const list = $("channels");
  list.replaceChildren(...state.channels.map((c) => {
    const item = el("li");
    const button = el("button", "channel");
    button.type = "button";
    button.classList.toggle("active", c.cid === state.cid);
    button.append(el("span", "hash", "#"), el("span", "channel-label", c.name));
    const unread = state.unread.get(c.cid);
    if (unread) button.append(el("span", "unread", String(unread)));
    button.addEventListener("click", () => openChannel(c.cid));
    item.append(button);
    return item;
  }));
}

function renderBots() {
  $("bots").replaceChildren(...[...state.bots.values()].map((bot) => {
    const item = el("li");
    const button = el("button", "bot");
    button.type = "button";
    button.title = `Start a /${bot.command} command`;
    const label = el("span", "bot-label");
    label.append(el("span", "bot-name", bot.name), el("span", "bot-command", `/${bot.command}`));
    button.append(avatar(bot, "avatar small"), label);
    button.addEventListener("click", () => setInput(composers.main, `/${bot.command} `));
    item.append(button);
    return item;
  }));
}

function renderPeople() {
  $("people").replaceChildren(...[...state.people.values()].map((person) => {
    const button = el("button", "person");
    button.type = "button";
    button.setAttribute("role", "radio");
    button.setAttribute("aria-checked", String(person.id === state.me));
    button.append(avatar(person, "avatar small"), el("span", null, person.name));
    button.addEventListener("click", () => switchTo(person.id));
    return button;
  }));
}

function renderHeader() {
  const here = channel();
  $("channel-name").textContent = here?.name ?? "";
  const chips = commandsHere().map((c) => commandChip(`/${c.name}`));
  const intro = $("intro-commands");
  intro.replaceChildren();
  chips.forEach((chip, index) => {
    if (index) intro.append(document.createTextNode(index === chips.length - 1 ? " or " : ", "));
    intro.append(chip);
  });
  intro.append(document.createTextNode(chips.length ? "." : "saying hello."));
  $("input").placeholder = `Message #${here?.name ?? ""} as ${state.people.get(state.me)?.name ?? state.me}`;
}

function openChannel(cid) {
  state.cid = cid;
  state.unread.delete(cid);
  renderChannels();
  renderHeader();
  renderIndicator();
  closeAutocomplete(composers.main);
  closeThread();
  loadMessages().catch(loadProblem);
  $("input").focus();
}

function switchTo(userId) {
  if (userId === state.me) return;
  state.me = userId;
  state.messages.clear();
  closeThread();
  renderEmpty(); // another person's view: what only the last one saw must go at once
  renderPeople();
  renderHeader();
  connect(); // events are per user (answers only the sender sees); "ready" reloads the channel
  $("input").focus();
}

// ---- the composers (the channel's, the thread's) and their autocomplete: / commands, @ members ------

const composers = {};

function makeComposer(ids, parentId) {
  return {
    form: $(ids.form), input: $(ids.input), menu: $(ids.menu), notes: ids.notes,
    parentId, // () => the thread it writes in, or null
    kind: null, // what the open list offers: "command" or "mention"
    items: [], active: 0, dismissed: false,
    mentions: new Map(), // name -> user id, for each @mention picked (sent as mentioned_users)
  };
}

function setInput(c, text) {
  c.input.value = text;
  c.input.focus();
  c.input.setSelectionRange(text.length, text.length);
  autosize(c);
  updateAutocomplete(c);
}

function autosize(c) {
  c.input.style.height = "auto";
  c.input.style.height = `${Math.min(c.input.scrollHeight, 200)}px`;
}

// The command being typed: "/", then its name, with the caret still inside the name.
function typedCommand(c) {
  const match = /^\/([\w-]*)$/.exec(c.input.value.slice(0, c.input.selectionStart));
  return match && !/\s/.test(c.input.value.slice(0, c.input.selectionEnd)) ? match[1].toLowerCase() : null;
}

// The mention being typed: "@" at the start of a word, then up to the caret (names have spaces).
function typedMention(c) {
  const match = /(?:^|\s)@([^@\n]{0,40})$/.exec(c.input.value.slice(0, c.input.selectionStart));
  return match ? match[1] : null;
}

// Who "@" suggests: the channel's members, as Stream's composer suggests them; bots first.
function mentionable(typed) {
  const wanted = typed.toLowerCase();
  const members = (channel()?.members ?? []).filter((m) => m.id !== state.me);
  return members
    .filter((m) => displayName(m).toLowerCase().startsWith(wanted) || m.id.toLowerCase().startsWith(wanted))
    .sort((a, b) => Number(state.bots.has(b.id)) - Number(state.bots.has(a.id)));
}

function closeAutocomplete(c) {
  c.menu.hidden = true;
  c.items = [];
  c.active = 0;
  c.kind = null;
  showKeys(c, false);
}

// The note under the composer says what Enter does now: with the list open it picks.
function showKeys(c, picking) {
  if (!c.notes) return;
  $(c.notes.sending).hidden = picking;
  $(c.notes.picking).hidden = !picking;
}

function updateAutocomplete(c) {
  if (c.dismissed) return closeAutocomplete(c);
  const command = typedCommand(c);
  if (command !== null) return showCommands(c, command);
  const mention = typedMention(c);
  const people = mention === null ? [] : mentionable(mention);
  if (!people.length) return closeAutocomplete(c);
  showMentions(c, people);
}

function showCommands(c, typed) {
  const items = commandsHere().filter((command) => command.name.startsWith(typed));
  c.kind = "command";
  c.items = items;
  c.active = Math.min(c.active, Math.max(items.length - 1, 0));
  c.menu.hidden = false;
  showKeys(c, items.length > 0);
  c.menu.replaceChildren(el("li", "autocomplete-title", items.length ? "Commands" : `No command starts with /${typed}`));
  items.forEach((command, index) => {
    const head = el("span", "option-head");
    head.append(el("span", "option-name", `/${command.name}`), el("span", "option-args", command.args || ""));
    const row = option(c, index, head, el("span", "option-description", command.description || ""));
    const bot = [...state.bots.values()].find((b) => b.command === command.name);
    if (bot) row.append(el("span", "option-bot", bot.name));
  });
}

function showMentions(c, people) {
  c.kind = "mention";
  c.items = people;
  c.active = Math.min(c.active, people.length - 1);
  c.menu.hidden = false;
  showKeys(c, true);
  c.menu.replaceChildren(el("li", "autocomplete-title", "Members"));
  people.forEach((person, index) => {
    const head = el("span", "option-head");
    head.append(avatar(person, "avatar small"), el("span", "option-name", `@${displayName(person)}`));
    const bot = state.bots.get(person.id);
    option(c, index, head, el("span", "option-description", bot ? `/${bot.command}` : ""));
    if (bot) c.menu.lastChild.append(el("span", "option-bot", "bot"));
  });
}

function option(c, index, ...parts) {
  const row = el("li", `option ${c.kind}`);
  row.setAttribute("role", "option");
  row.setAttribute("aria-selected", String(index === c.active));
  row.append(...parts);
  row.addEventListener("mousedown", (event) => {
    event.preventDefault(); // keep the focus in the composer
    pick(c, index);
  });
  c.menu.append(row);
  return row;
}

function pick(c, index) {
  const item = c.items[index];
  if (item && c.kind === "command") {
    // Replace the command being typed, keeping whatever follows it.
    const rest = c.input.value.replace(/^\S*/, "").trimStart();
    setInput(c, `/${item.name} ${rest}`);
  } else if (item) {
    // Replace "@what was typed" with the member's name, as a chat composer inserts a mention.
    const name = displayName(item);
    const caret = c.input.selectionStart;
    const before = c.input.value.slice(0, caret).replace(/@[^@\n]*$/, `@${name} `);
    const after = c.input.value.slice(caret);
    c.mentions.set(name, item.id);
    c.input.value = before + after;
    c.input.setSelectionRange(before.length, before.length);
    c.input.focus();
    autosize(c);
  }
  closeAutocomplete(c);
}

function onComposerKey(c, event) {
  const open = !c.menu.hidden && c.items.length > 0;
  const count = c.items.length;
  if (open && (event.key === "ArrowDown" || event.key === "ArrowUp")) {
    event.preventDefault();
    const step = event.key === "ArrowDown" ? 1 : -1;
    c.active = (c.active + step + count) % count;
    updateAutocomplete(c);
  } else if (open && (event.key === "Tab" || (event.key === "Enter" && !event.shiftKey))) {
    event.preventDefault();
    pick(c, c.active);
  } else if (event.key === "Escape" && !c.menu.hidden) {
    event.preventDefault();
    c.dismissed = true;
    closeAutocomplete(c);
  } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    c.form.requestSubmit();
  }
}

function wire(c) {
  c.input.addEventListener("keydown", (event) => onComposerKey(c, event));
  c.input.addEventListener("input", () => {
    c.dismissed = false;
    autosize(c);
    updateAutocomplete(c);
  });
  c.input.addEventListener("click", () => updateAutocomplete(c));
  c.input.addEventListener("blur", () => closeAutocomplete(c));
  c.form.addEventListener("submit", (event) => send(c, event));
}

function showProblem(text) {
  const problem = $("problem");
  problem.hidden = !text;
  problem.textContent = text || "";
}

function loadProblem(error) {
  showProblem(`Could not load the channel: ${error.message}`);
}

async function send(c, event) {
  event.preventDefault();
  const text = c.input.value;
  if (!text.trim()) return;
  // The members picked from the list whose mention is still in the text.
  const mentioned = [...c.mentions].filter(([name]) => text.includes(`@${name}`)).map(([, id]) => id);
  const parentId = c.parentId();
  setInput(c, "");
  try {
    const body = { cid: state.cid, user_id: state.me, text, mentioned_users: [...new Set(mentioned)] };
    if (parentId) body.parent_id = parentId;
    const { message } = await api("/sandbox/api/messages", body);
    c.mentions.clear();
    showProblem(null);
    upsert(message); // as applied; a "not a command here" notice comes only this way, not as an event
  } catch (error) {
    if (!c.input.value) setInput(c, text); // nothing was lost: the text goes back in the composer
    showProblem(`Not sent: ${error.message}`);
  }
}

// ---- threads -------------------------------------------------------------------------------

async function openThread(parentId) {
  state.threadId = parentId;
  state.threadMessages.clear();
  $("thread-messages").replaceChildren();
  $("thread").hidden = false;
  document.querySelector(".app").classList.add("with-thread");
  const query = new URLSearchParams({ cid: state.cid, parent_id: parentId });
  try {
    const { parent, messages } = await api(`/sandbox/api/thread?${query}`);
    if (state.threadId !== parentId) return;
    for (const message of [parent, ...messages]) upsert(message);
  } catch (error) {
    showProblem(`Could not open the thread: ${error.message}`);
  }
  composers.thread.input.focus();
}

function closeThread() {
  state.threadId = null;
  state.threadMessages.clear();
  $("thread").hidden = true;
  document.querySelector(".app").classList.remove("with-thread");
}

// ---- start ---------------------------------------------------------------------------------

async function start() {
  const [{ people, bots }, { channels }] = await Promise.all([api("/sandbox/api/users"), api("/sandbox/api/channels")]);
  people.forEach((person) => state.people.set(person.id, person));
  bots.forEach((bot) => state.bots.set(bot.id, bot));
  state.channels = channels;
  state.me = people[0]?.id ?? state.me;
  state.cid = channels[0]?.cid ?? state.cid;

  composers.main = makeComposer(
    { form: "composer", input: "input", menu: "autocomplete", notes: { sending: "note-sending", picking: "note-picking" } },
    () => null,
  );
  composers.thread = makeComposer({ form: "thread-composer", input: "thread-input", menu: "thread-autocomplete" },
    () => state.threadId);
  wire(composers.main);
  wire(composers.thread);
  $("thread-close").addEventListener("click", closeThread);

  renderChannels();
  renderBots();
  renderPeople();
  renderHeader();
  renderEmpty();
  connect();
  composers.main.input.focus();
}

start().catch((error) => showProblem(`Could not start: ${error.message}`));
