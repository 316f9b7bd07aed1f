// zhiwen web chat: plain JavaScript, no build step, no external resources.
// Everything a model or a document wrote is shown with textContent, never as HTML: documents are hostile.
"use strict";

const TEXT = {
  en: {
    skip: "Skip to the question box", threads: "Conversations", kb: "Knowledge base", changeKey: "API key",
    newThread: "New chat", noThreads: "No conversations yet.", upload: "Add documents",
    uploadTo: "Upload to the chosen knowledge base", uploadButton: "Upload",
    welcome: "Ask a question about your documents.", question: "Your question",
    placeholder: "Ask… (Enter to send, Shift+Enter for a new line)", send: "Send", stop: "Stop",
    close: "Close", file: "File", title: "Title", page: "Page", keyTitle: "Your API key",
    keyHelp: "Kept in this browser only. Ask your administrator for a key.", keyLabel: "API key", save: "Save",
    badKey: "This key was refused. Check it and try again.", rename: "Rename", delete: "Delete",
    confirmDelete: "Delete this conversation?", you: "You", assistant: "zhiwen", source: "Source",
    stopped: "(stopped)", sources: "Sources", untitled: "New conversation", noKb: "No knowledge base",
    pass: "Checked against the sources", refuse: "Not confirmed by the knowledge base",
    verdict: "Quality check", queued: "Queued…", running: "Ingesting… {done}/{total} chunks",
    done: "Done: {added} added, {replaced} replaced, {unchanged} unchanged ({chunks} chunks).",
    failed: "Failed: {error}", pickFiles: "Choose one or more files first.", up: "Helpful", down: "Not helpful",
    thanks: "Thanks for the feedback.", network: "The server could not be reached.",
    incomplete: "(the answer was cut off: ask again)", noAnswer: "(no answer: {error})",
    unanswered: "(no answer: the question was stopped or interrupted)",
    withdrawn: "An earlier draft could not be verified against the knowledge base and was withdrawn.",
    busy: "Too many questions at once: try again in {seconds} s.",
    upstream: "The answering model is not available right now; try again later. ({detail})",
    comment: "What was wrong, or the right answer (optional)", sendComment: "Send",
  },
  zh: {
    skip: "跳到提问框", threads: "会话", kb: "知识库", changeKey: "API 密钥",
    newThread: "新会话", noThreads: "还没有会话。", upload: "添加文档",
    uploadTo: "上传到所选知识库", uploadButton: "上传",
    welcome: "就您的文档提问。", question: "您的问题",
    placeholder: "请输入问题…（Enter 发送，Shift+Enter 换行）", send: "发送", stop: "停止",
    close: "关闭", file: "文件", title: "标题", page: "页码", keyTitle: "您的 API 密钥",
    keyHelp: "只保存在本浏览器中。请向管理员索取密钥。", keyLabel: "API 密钥", save: "保存",
    badKey: "密钥被拒绝，请检查后重试。", rename: "重命名", delete: "删除",
    confirmDelete: "删除这个会话？", you: "您", assistant: "知问", source: "来源",
    stopped: "（已停止）", sources: "来源", untitled: "新会话", noKb: "没有知识库",
    pass: "已与来源核对", refuse: "知识库未能证实",
    verdict: "质量检查", queued: "排队中…", running: "正在导入… {done}/{total} 个片段",
    done: "完成：新增 {added}，替换 {replaced}，未变 {unchanged}（{chunks} 个片段）。",
    failed: "失败：{error}", pickFiles: "请先选择文件。", up: "有帮助", down: "没有帮助",
    thanks: "感谢您的反馈。", network: "无法连接服务器。",
    incomplete: "（回答被中断，请重新提问）", noAnswer: "（没有回答：{error}）",
    unanswered: "（没有回答：提问被停止或中断）",
    withdrawn: "先前的草稿未能与知识库核实，已撤回。",
    busy: "提问过于频繁，请 {seconds} 秒后再试。",
    upstream: "回答模型暂时不可用，请稍后再试。（{detail}）",
    comment: "哪里不对，或正确答案（可选）", sendComment: "发送",
  },
};
const LANG = (navigator.language || "en").toLowerCase().startsWith("zh") ? "zh" : "en";
const KEY_STORE = "zhiwen.apiKey";

function t(name, values) {
  let text = TEXT[LANG][name] || TEXT.en[name] || name;
  for (const [k, v] of Object.entries(values || {})) text = text.replaceAll(`{${k}}`, String(v));
  return text;
}

const $ = (id) => document.getElementById(id);
const state = { key: "", kbs: [], kb: "", thread: null, threads: [], admin: false, turn: null };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function translate() {
  document.documentElement.lang = LANG === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-placeholder]")) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
  for (const node of document.querySelectorAll("[data-i18n-label]")) {
    node.setAttribute("aria-label", t(node.dataset.i18nLabel));
    node.title = t(node.dataset.i18nLabel);
  }
}

// ---- API ----------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, retryAfter) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter || "";
  }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = options.key !== undefined ? options.key : state.key; // a key being tried is not kept yet
  if (key) headers.set("Authorization", `Bearer ${key}`);
  if (options.json !== undefined) {
    headers.set("Content-Type", "application/json");
    options = { ...options, body: JSON.stringify(options.json) };
  }
  let resp;
  try {
    resp = await fetch(path, { ...options, headers, cache: "no-store" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, t("network"));
  }
  if (!resp.ok) {
    let message = `HTTP ${resp.status}`;
    try {
      message = (await resp.json()).error.message || message;
    } catch (_) { /* not JSON */ }
    if (resp.status === 401) askForKey(t("badKey"));
    throw new ApiError(resp.status, message, resp.headers.get("Retry-After"));
  }
  return resp;
}

const apiJson = async (path, options) => (await api(path, options)).json();

// The server's words, except where the page can say it in the reader's language: a rate limit (with when to
// try again) and a model endpoint that failed (the server's detail kept in brackets).
function describe(err) {
  if (!(err instanceof ApiError)) return err.message || String(err);
  if (err.status === 429) return t("busy", { seconds: err.retryAfter || "60" });
  if (err.status >= 502 && err.status <= 504) return t("upstream", { detail: err.message });
  return err.message;
}

function showError(err) {
  $("error").textContent = err ? describe(err) : "";
}

// ---- key ----------------------------------------------------------------------------------------------

function askForKey(message) {
  $("key-error").textContent = message || "";
  $("key-input").value = "";
  if (!$("key-dialog").open) $("key-dialog").showModal();
  $("key-input").focus();
}

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("key-input").value.trim();
  if (!key) return;
  try {
    await api("/v1/models", { key }); // refused: api() shows "badKey" and the dialog stays open
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) $("key-error").textContent = describe(err);
    return;
  }
  // Another person's key on a shared screen: the conversation on show and its thread are not theirs.
  if (state.key && key !== state.key) newThread();
  state.key = key;
  localStorage.setItem(KEY_STORE, key);
  $("key-dialog").close();
  start();
});
$("key-dialog").addEventListener("cancel", (event) => {
  if (!state.key) event.preventDefault(); // nothing works without one
});
$("change-key").addEventListener("click", () => askForKey(""));

// ---- knowledge bases, role ----------------------------------------------------------------------------

async function loadKbs() {
  const models = await apiJson("/v1/models");
  state.kbs = models.data.map((m) => m.id);
  const select = $("kb");
  select.replaceChildren();
  for (const name of state.kbs) select.append(new Option(name, name));
  if (!state.kbs.length) select.append(new Option(t("noKb"), ""));
  const saved = localStorage.getItem("zhiwen.kb");
  state.kb = state.kbs.includes(saved) ? saved : state.kbs[0] || "";
  select.value = state.kb;
}

$("kb").addEventListener("change", () => {
  state.kb = $("kb").value;
  localStorage.setItem("zhiwen.kb", state.kb);
});

async function loadRole() {
  // Only an admin key may list the knowledge bases' management view; a chat key is answered 403.
  try {
    await api("/v1/kbs");
    state.admin = true;
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 403) throw err;
    state.admin = false;
  }
  $("upload-panel").hidden = !state.admin;
}

// ---- threads ------------------------------------------------------------------------------------------

async function loadThreads() {
  const list = await apiJson("/v1/threads");
  state.threads = list.data;
  renderThreads();
}

function renderThreads() {
  const ul = $("thread-list");
  ul.replaceChildren();
  $("threads-empty").hidden = state.threads.length > 0;
  for (const thread of state.threads) {
    const item = $("thread-item").content.firstElementChild.cloneNode(true);
    item.dataset.id = thread.id;
    const open = item.querySelector(".thread-open");
    open.textContent = thread.title || t("untitled");
    if (state.thread === thread.id) open.setAttribute("aria-current", "true");
    open.addEventListener("click", () => openThread(thread.id));
    const rename = item.querySelector(".thread-rename");
    rename.setAttribute("aria-label", `${t("rename")}: ${open.textContent}`);
    rename.title = t("rename");
    rename.addEventListener("click", () => startRename(item, thread));
    const del = item.querySelector(".thread-delete");
    del.setAttribute("aria-label", `${t("delete")}: ${open.textContent}`);
    del.title = t("delete");
    del.addEventListener("click", () => deleteThread(thread));
    ul.append(item);
  }
}

function startRename(item, thread) {
  const input = item.querySelector(".thread-title-input");
  const open = item.querySelector(".thread-open");
  input.value = thread.title || "";
  input.setAttribute("aria-label", t("rename"));
  open.hidden = true;
  input.hidden = false;
  input.focus();
  input.select();
  let finished = false;
  const finish = async (save) => {
    if (finished) return;
    finished = true;
    const title = input.value.trim();
    input.hidden = true;
    open.hidden = false;
    if (save && title && title !== thread.title) {
      try {
        await apiJson(`/v1/threads/${encodeURIComponent(thread.id)}`, { method: "POST", json: { title } });
        await loadThreads();
      } catch (err) {
        showError(err);
      }
    }
    const again = document.querySelector(`.thread[data-id="${CSS.escape(thread.id)}"] .thread-open`);
    (again || open).focus();
  };
  input.onkeydown = (event) => {
    if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      finish(false);
    }
  };
  input.onblur = () => finish(true);
}

async function deleteThread(thread) {
  if (!window.confirm(t("confirmDelete"))) return;
  try {
    await api(`/v1/threads/${encodeURIComponent(thread.id)}`, { method: "DELETE" });
    if (state.thread === thread.id) newThread();
    await loadThreads();
    $("new-thread").focus();
  } catch (err) {
    showError(err);
  }
}

function newThread() {
  stopTurn();
  state.thread = null;
  localStorage.removeItem("zhiwen.thread");
  $("log").replaceChildren();
  $("welcome").hidden = false;
  renderThreads();
  $("question").focus();
}

async function openThread(id) {
  stopTurn();
  showError(null);
  try {
    const thread = await apiJson(`/v1/threads/${encodeURIComponent(id)}`);
    state.thread = id;
    localStorage.setItem("zhiwen.thread", id);
    const listed = state.threads.find((x) => x.id === id);
    if (listed && listed.kb && state.kbs.includes(listed.kb)) {
      state.kb = listed.kb;
      $("kb").value = listed.kb;
    }
    $("log").replaceChildren();
    $("welcome").hidden = thread.messages.length > 0;
    const last = thread.messages.map((m) => m.role).lastIndexOf("assistant");
    thread.messages.forEach((m, i) => {
      if (m.role === "user") {
        addUser(m.content);
        const next = thread.messages[i + 1];
        // A stopped or interrupted turn kept its question and no answer: say so rather than show nothing.
        if (!next || next.role === "user") markUnfinished(addAssistant(), t("unanswered"));
      } else if (m.role === "assistant") {
        const turn = addAssistant();
        // Each answer keeps the sources its [n] refer to; threads saved before that have the last answer's.
        const sources = m.sources || (i === last ? thread.sources : []);
        const quality = m.quality || (i === last ? thread.quality : null);
        finishTurn(turn, m.content, sources, quality, i === thread.messages.length - 1);
      }
    });
    renderThreads();
    closePanelOnPhone();
  } catch (err) {
    showError(err);
  }
}

$("new-thread").addEventListener("click", () => {
  newThread();
  closePanelOnPhone();
});

// ---- messages -----------------------------------------------------------------------------------------

function addUser(text) {
  const box = el("article", "message user");
  box.append(el("h3", "who visually-hidden", t("you")), el("p", "text", text));
  $("log").append(box);
  $("welcome").hidden = true;
  box.scrollIntoView({ block: "end" });
}

function addAssistant() {
  const box = el("article", "message assistant");
  const turn = {
    box,
    notice: el("p", "notice"),
    answer: el("div", "text answer"),
    sources: el("ol", "sources"),
    quality: el("p", "quality"),
    streamed: "",
    withdrawn: "",
  };
  turn.notice.hidden = true;
  turn.sources.hidden = true;
  box.append(el("h3", "who visually-hidden", t("assistant")), turn.notice, turn.answer, turn.sources, turn.quality);
  $("log").append(box);
  return turn;
}

// The answer as text, with each [n] that names a source made a link showing that source's passage.
function renderAnswer(target, text, sources) {
  const byNumber = new Map((sources || []).map((s) => [String(s.n), s]));
  target.replaceChildren();
  const pattern = /\[(\d{1,3})\]/g;
  let at = 0;
  for (const match of text.matchAll(pattern)) {
    const source = byNumber.get(match[1]);
    if (!source) continue;
    target.append(document.createTextNode(text.slice(at, match.index)));
    const link = el("a", "cite", `[${match[1]}]`);
    link.href = "#";
    link.setAttribute("role", "button");
    link.setAttribute("aria-label", `${t("source")} ${match[1]}: ${sourceName(source)}`);
    link.addEventListener("click", (event) => {
      event.preventDefault();
      showSource(source, link);
    });
    target.append(link);
    at = match.index + match[0].length;
  }
  target.append(document.createTextNode(text.slice(at)));
}

// Bidirectional overrides and isolates in a document's name or text ("invoice\u202efdp.exe" shows as
// "invoiceexe.pdf") are shown as a visible mark, not obeyed.
const BIDI_CONTROLS = /[\u202a-\u202e\u2066-\u2069]/g;
const visible = (text) => String(text || "").replace(BIDI_CONTROLS, "\ufffd");

function sourceName(source) {
  return visible(source.title || source.source || `#${source.n}`);
}

function sourcePage(source) {
  const meta = source.metadata || {};
  return meta.page !== undefined && meta.page !== null ? String(meta.page) : "";
}

function renderSources(turn, sources) {
  turn.sources.replaceChildren();
  turn.sources.hidden = !sources.length;
  turn.sources.setAttribute("aria-label", t("sources"));
  for (const source of sources) {
    const li = el("li");
    const link = el("a", "source-link", `[${source.n}] ${sourceName(source)}`);
    link.href = "#";
    link.setAttribute("role", "button");
    link.addEventListener("click", (event) => {
      event.preventDefault();
      showSource(source, link);
    });
    li.append(link);
    turn.sources.append(li);
  }
}

function renderQuality(turn, quality) {
  if (!quality || !quality.verdict) {
    turn.quality.textContent = "";
    return;
  }
  const verdict = quality.verdict;
  turn.quality.dataset.verdict = verdict;
  turn.quality.textContent = verdict === "pass" ? `✓ ${t("pass")}` : verdict === "refuse" ? `· ${t("refuse")}`
    : `· ${t("verdict")}: ${verdict}`;
  const details = [];
  for (const name of ["grounded", "relevance", "attempts"]) {
    if (typeof quality[name] === "number") details.push(`${name} ${Math.round(quality[name] * 100) / 100}`);
  }
  if (Array.isArray(quality.reasons) && quality.reasons.length) details.push(quality.reasons.join(", "));
  turn.quality.title = details.join(" · ");
}

function finishTurn(turn, answer, sources, quality, rateable = true) {
  turn.streamed = answer;
  renderAnswer(turn.answer, answer, sources || []);
  renderSources(turn, sources || []);
  renderQuality(turn, quality);
  // Feedback rates a thread's latest message when it is an answer (what the server records): no other.
  if (rateable && quality && quality.verdict && state.thread) addFeedback(turn);
}

function addFeedback(turn) {
  const bar = el("div", "feedback");
  const thread = state.thread;
  for (const [rating, label, mark] of [["up", t("up"), "👍"], ["down", t("down"), "👎"]]) {
    const button = el("button", "icon-button", mark);
    button.type = "button";
    button.setAttribute("aria-label", label);
    button.title = label;
    button.addEventListener("click", async () => {
      try {
        await api("/v1/feedback", { method: "POST", json: { thread_id: thread, rating, kb: state.kb } });
        bar.replaceChildren(el("span", "muted", t("thanks")));
        if (rating === "down") bar.append(commentForm(thread)); // the correction becomes the gold answer
      } catch (err) {
        showError(err);
      }
    });
    bar.append(button);
  }
  turn.box.querySelector(".feedback")?.remove();
  for (const old of $("log").querySelectorAll(".feedback")) old.remove(); // only the latest answer is rated
  turn.box.append(bar);
}

// A 👎 may say what was wrong, or give the right answer: `zhiwen feedback export` makes it the gold answer.
function commentForm(thread) {
  const form = el("form", "comment");
  const box = el("textarea");
  box.rows = 2;
  box.maxLength = 2000;
  box.setAttribute("aria-label", t("comment"));
  box.placeholder = t("comment");
  const send = el("button", "", t("sendComment"));
  send.type = "submit";
  form.append(box, send);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const comment = box.value.trim();
    if (!comment) return;
    try {
      await api("/v1/feedback", { method: "POST", json: { thread_id: thread, rating: "down", comment, kb: state.kb } });
      form.replaceWith(el("span", "muted", t("thanks")));
    } catch (err) {
      showError(err);
    }
  });
  return form;
}

// ---- the source passage -------------------------------------------------------------------------------

let sourceOpener = null;

function showSource(source, opener) {
  sourceOpener = opener;
  $("source-heading").textContent = `${t("source")} [${source.n}]`;
  $("source-file").textContent = visible(source.source) || "—";
  $("source-title").textContent = visible(source.title) || "—";
  $("source-page").textContent = sourcePage(source) || "—";
  $("source-text").textContent = visible(source.text);
  $("source-panel").hidden = false;
  $("source-close").focus();
}

function hideSource() {
  if ($("source-panel").hidden) return false;
  $("source-panel").hidden = true;
  if (sourceOpener) sourceOpener.focus();
  return true;
}

$("source-close").addEventListener("click", hideSource);

// ---- a turn: stream the answer ------------------------------------------------------------------------

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").disabled = !busy;
  document.body.classList.toggle("busy", busy);
}

function stopTurn() {
  if (state.turn) state.turn.abort();
}

async function ensureThread(question) {
  if (state.thread) return state.thread;
  const created = await apiJson("/v1/threads", {
    method: "POST",
    json: { kb: state.kb, title: question.replace(/\s+/g, " ").slice(0, 80) },
  });
  state.thread = created.id;
  localStorage.setItem("zhiwen.thread", created.id);
  return created.id;
}

function applyFrame(turn, frame) {
  if (frame.error) throw new ApiError(500, frame.error.message);
  const choice = (frame.choices || [])[0];
  if (!choice) return false;
  const content = (choice.delta && choice.delta.content) || "";
  if (frame.withdrawn) {
    // The draft shown so far is withdrawn: replace it by the notice; what follows the notice is the answer.
    turn.withdrawn = frame.withdrawn;
    turn.notice.textContent = t("withdrawn");
    turn.notice.hidden = false;
    const at = content.indexOf(frame.withdrawn);
    turn.streamed = (at >= 0 ? content.slice(at + frame.withdrawn.length) : "").replace(/^\s+/, "");
    turn.answer.textContent = turn.streamed;
  } else if (content) {
    turn.streamed += content;
    turn.answer.textContent = turn.streamed;
  }
  if (choice.finish_reason) {
    const answer = typeof frame.answer === "string" && frame.answer ? frame.answer : turn.streamed;
    finishTurn(turn, answer, frame.sources || [], frame.quality || null);
    return true;
  }
  return false;
}

async function ask(question) {
  showError(null);
  if (!state.kb) return showError(new Error(t("noKb")));
  const controller = new AbortController();
  state.turn = controller;
  setBusy(true);
  addUser(question);
  const turn = addAssistant();
  turn.box.setAttribute("aria-busy", "true");
  try {
    const thread = await ensureThread(question);
    const resp = await api("/v1/chat/completions", {
      method: "POST",
      signal: controller.signal,
      json: { model: state.kb, stream: true, thread_id: thread, messages: [{ role: "user", content: question }] },
    });
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let finished = false;
    while (!finished) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue; // comments (": ping") and other fields
          const data = line.slice(5).trim();
          if (data === "[DONE]") {
            finished = true;
            break;
          }
          if (applyFrame(turn, JSON.parse(data))) turn.box.scrollIntoView({ block: "end" });
        }
        if (finished) break;
      }
      turn.answer.scrollIntoView({ block: "end" });
    }
    if (!turn.quality.dataset.verdict) markUnfinished(turn, t("incomplete")); // the stream ended early
  } catch (err) {
    if (err.name === "AbortError") {
      if (!turn.quality.dataset.verdict) markUnfinished(turn, t("stopped"));
    } else {
      showError(err);
      if (!turn.streamed) {
        markUnfinished(turn, t("noAnswer", { error: describe(err) }));
        if (!$("question").value) $("question").value = question; // to send again as it was
      } else if (!turn.quality.dataset.verdict) {
        markUnfinished(turn, t("incomplete"));
      }
    }
  } finally {
    turn.box.removeAttribute("aria-busy");
    if (state.turn === controller) state.turn = null;
    setBusy(false);
    loadThreads().catch(showError);
  }
}

function markUnfinished(turn, note) {
  if (turn.box.classList.contains("stopped")) return;
  turn.box.classList.add("stopped");
  turn.box.append(el("p", "muted stopped-note", note));
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || state.turn) return;
  $("question").value = "";
  ask(question);
});

$("question").addEventListener("keydown", (event) => {
  // Enter sends; Shift+Enter is a new line; an IME composing Chinese uses Enter itself.
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});

$("stop").addEventListener("click", () => {
  stopTurn();
  $("question").focus();
});

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || $("key-dialog").open) return;
  if (state.turn) {
    event.preventDefault();
    stopTurn();
  } else if (hideSource()) {
    event.preventDefault();
  } else if (document.body.classList.contains("threads-open")) {
    closePanelOnPhone();
    $("toggle-threads").focus();
  }
});

// ---- uploads (admin keys) -----------------------------------------------------------------------------

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("upload-files");
  const status = $("upload-status");
  const bar = $("upload-progress");
  if (!input.files.length) {
    status.textContent = t("pickFiles");
    return;
  }
  const form = new FormData();
  for (const file of input.files) form.append("files", file, file.name);
  $("upload-button").disabled = true;
  bar.hidden = false;
  bar.removeAttribute("value"); // indeterminate until the job reports chunks
  try {
    const kb = state.kb;
    let job = await apiJson(`/v1/kbs/${encodeURIComponent(kb)}/documents`, { method: "POST", body: form });
    while (job.status === "queued" || job.status === "running") {
      const { chunks_done: done, chunks_total: total } = job.progress;
      status.textContent = job.status === "queued" ? t("queued") : t("running", { done, total });
      if (total) {
        bar.max = total;
        bar.value = done;
      }
      await new Promise((resolve) => setTimeout(resolve, 400));
      job = await apiJson(`/v1/kbs/${encodeURIComponent(kb)}/jobs/${encodeURIComponent(job.id)}`);
    }
    if (job.status === "done") {
      bar.max = 1;
      bar.value = 1;
      status.textContent = t("done", job.report || {});
      input.value = "";
      await loadKbs();
    } else {
      bar.hidden = true;
      status.textContent = t("failed", { error: job.error || job.status });
    }
    status.dataset.status = job.status;
  } catch (err) {
    bar.hidden = true;
    status.textContent = err.message;
    status.dataset.status = "failed";
  } finally {
    $("upload-button").disabled = false;
  }
});

// ---- phone width: the thread list slides in ----------------------------------------------------------

function closePanelOnPhone() {
  document.body.classList.remove("threads-open");
  $("toggle-threads").setAttribute("aria-expanded", "false");
}

$("toggle-threads").addEventListener("click", () => {
  const open = !document.body.classList.contains("threads-open");
  document.body.classList.toggle("threads-open", open);
  $("toggle-threads").setAttribute("aria-expanded", String(open));
  if (open) $("new-thread").focus();
});

// ---- start --------------------------------------------------------------------------------------------

async function start() {
  showError(null);
  try {
    await loadKbs();
    await loadRole();
    await loadThreads();
    const saved = localStorage.getItem("zhiwen.thread");
    if (saved && state.threads.some((x) => x.id === saved)) await openThread(saved);
    document.body.dataset.ready = "true";
    $("question").focus();
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) showError(err);
  }
}

translate();
state.key = localStorage.getItem(KEY_STORE) || "";
// A server without keys (local use) needs none: try once without asking.
if (state.key) start();
else fetch("/v1/models", { cache: "no-store" }).then((r) => (r.ok ? start() : askForKey("")), () => askForKey(""));
