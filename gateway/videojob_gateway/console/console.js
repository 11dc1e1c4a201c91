// The console's pages: sign-in, the list (live), a VideoJob (live), the submit form.
// Hash routes (#/, #/new, #/vj/<ns>/<name>), so the gateway serves one page at "/".

import { ApiError, api, authHeaders, credential, forget, paths, remember } from "./api.js";
import { clear, duration, el, setProgress, setText, when } from "./render.js";
import { follow } from "./sse.js";

const TERMINAL = ["Succeeded", "Failed"];
// A browser opens at most six HTTP/1.1 connections to one origin; the list keeps two of them
// free for the API calls the buttons make. The rest of the running VideoJobs wait their turn
// (a stream ends when its VideoJob does).
const LIST_STREAMS = 4;

const $ = (id) => document.getElementById(id);
const views = ["signin-view", "list-view", "new-view", "detail-view"];
let page = new AbortController(); // aborted when the page changes: its streams stop
let namespaces = null;

function say(text) {
  setText($("status"), text);
}

function show(view) {
  for (const v of views) $(v).hidden = v !== view;
  $("nav").hidden = view === "signin-view";
}

function problemText(e) {
  if (e instanceof ApiError) {
    const p = e.problem || {};
    return `${p.title || "Error"} (${e.status}): ${p.detail || e.message}`;
  }
  return `The gateway did not answer: ${e.message || e}`;
}

function unauthorised(e) {
  if (e instanceof ApiError && e.status === 401) {
    forget();
    say("Your credential was refused; sign in again.");
    location.hash = "#/";
    route();
    return true;
  }
  return false;
}

// --- sign-in

function signinView() {
  show("signin-view");
  $("secret").focus();
}

async function signIn(event) {
  event.preventDefault();
  const mode = new FormData($("signin-form")).get("mode");
  const secret = $("secret").value.trim();
  setText($("signin-error"), "");
  if (!secret) {
    setText($("signin-error"), "Paste a token or an API key.");
    $("secret").setAttribute("aria-invalid", "true");
    $("secret").focus();
    return;
  }
  remember(mode, secret);
  try {
    namespaces = null;
    await loadNamespaces();
  } catch (e) {
    forget();
    setText($("signin-error"), problemText(e));
    $("secret").setAttribute("aria-invalid", "true");
    $("secret").focus();
    return;
  }
  $("secret").value = "";
  $("secret").removeAttribute("aria-invalid");
  say("Signed in.");
  route();
}

function signOut() {
  forget();
  namespaces = null;
  page.abort();
  say("Signed out.");
  location.hash = "#/";
  route();
}

async function loadNamespaces() {
  if (namespaces) return namespaces;
  const doc = await api(paths.namespaces());
  namespaces = doc.namespaces.map((n) => n.name);
  const c = credential();
  setText($("who"), c.mode === "key" ? "API key" : "Kubernetes token");
  for (const select of [$("ns-filter"), $("new-namespace")]) {
    const keep = select.value;
    clear(select);
    if (select.id === "ns-filter" && namespaces.length > 1) {
      select.append(el("option", { value: "" , text: "All namespaces" }));
    }
    for (const ns of namespaces) select.append(el("option", { value: ns, text: ns }));
    if (keep && namespaces.includes(keep)) select.value = keep;
  }
  return namespaces;
}

// --- actions (list and detail)

function actionButtons(vj, onDone) {
  const box = el("div", { class: "actions" });
  const open = !TERMINAL.includes(vj.phase) && !vj.deleting;
  if (open) {
    const suspend = vj.suspended;
    box.append(el("button", {
      type: "button", class: "secondary", "data-action": suspend ? "resume" : "suspend",
      "aria-label": `${suspend ? "Resume" : "Suspend"} ${vj.name}`,
      text: suspend ? "Resume" : "Suspend",
      onclick: (ev) => act(ev.currentTarget, vj, suspend ? "resume" : "suspend", onDone),
    }));
  }
  if (!vj.deleting) {
    box.append(el("button", {
      type: "button", class: "danger", "data-action": "cancel",
      "aria-label": `${open ? "Cancel" : "Delete"} ${vj.name}`, text: open ? "Cancel" : "Delete",
      onclick: (ev) => act(ev.currentTarget, vj, "cancel", onDone),
    }));
  }
  return box;
}

async function act(button, vj, action, onDone) {
  if (action === "cancel" && button.dataset.armed !== "yes") {
    // Two presses: a VideoJob deleted by a stray tap is gone.
    button.dataset.armed = "yes";
    button.textContent = "Press again to confirm";
    say(`Press the button again to ${button.getAttribute("aria-label").toLowerCase()}.`);
    setTimeout(() => {
      if (button.isConnected && button.dataset.armed === "yes") {
        button.dataset.armed = "";
        button.textContent = vj.phase && TERMINAL.includes(vj.phase) ? "Delete" : "Cancel";
      }
    }, 8000);
    return;
  }
  button.disabled = true;
  try {
    if (action === "cancel") {
      await api(paths.one(vj.namespace, vj.name), { method: "DELETE" });
      say(`${vj.name}: cancelling.`);
    } else {
      const doc = await api(paths[action](vj.namespace, vj.name), { method: "POST" });
      say(`${vj.name}: ${action === "suspend" ? "suspended" : "resumed"}.`);
      onDone?.(doc);
      return;
    }
  } catch (e) {
    if (unauthorised(e)) return;
    say(`${vj.name}: ${problemText(e)}`);
  }
  button.disabled = false;
}

// --- the list

function jobRow(vj) {
  const li = el("li", { class: "job", "data-namespace": vj.namespace, "data-name": vj.name });
  const bar = el("progress", { max: "100", "aria-valuemin": "0", "aria-valuemax": "100" });
  li.append(
    el("div", { class: "job-head" },
       el("a", { href: `#/vj/${encodeURIComponent(vj.namespace)}/${encodeURIComponent(vj.name)}`,
                 text: vj.name }),
       el("span", { class: "phase" }),
       el("span", { class: "small", text: vj.namespace }),
       el("span", { class: "small percent" })),
    bar,
    el("p", { class: "small message" }),
    el("div", { class: "actions" }));
  fillRow(li, vj);
  return li;
}

/** The buttons a VideoJob in this state has; rebuilt only when that changes, so that a
 *  progress update neither takes the keyboard focus away nor disarms a cancel. */
function setActions(box, vj, onDone) {
  const open = !TERMINAL.includes(vj.phase) && !vj.deleting;
  // The VideoJob's identity is part of it: the detail page's box serves one VideoJob, then another.
  const kind = JSON.stringify([vj.namespace, vj.name, vj.uid, open, vj.suspended, vj.deleting]);
  if (box.dataset.kind === kind) return;
  box.dataset.kind = kind;
  box.replaceChildren(...actionButtons(vj, onDone).children);
}

function fillRow(li, vj) {
  const phase = vj.deleting ? "Cancelling" : vj.phase;
  const badge = li.querySelector(".phase");
  badge.className = `phase phase-${phase}`;
  badge.dataset.phase = phase;
  setText(badge, phase);
  setText(li.querySelector(".percent"), `${vj.progress} %`);
  setProgress(li.querySelector("progress"), vj.progress, `Progress of ${vj.name}`);
  setText(li.querySelector(".message"), [vj.stage && `stage ${vj.stage}`,
                                         vj.queuePosition && `queue position ${vj.queuePosition}`,
                                         vj.message].filter(Boolean).join(" · "));
  setActions(li.querySelector(".actions"), vj, (doc) => {
    // A row that follows its stream gets this change from it, and anything newer: the
    // action's answer can arrive after the operator's next write, and would roll it back.
    if (li.dataset.live !== "yes") fillRow(li, doc);
  });
}

function deletedRow(li) {
  li.querySelectorAll("button").forEach((b) => b.remove());
  const badge = li.querySelector(".phase");
  if (badge) { badge.textContent = "Deleted"; badge.className = "phase"; badge.dataset.phase = "Deleted"; }
}

/** Streams for the rows of running VideoJobs, at most LIST_STREAMS at once. */
class LiveRows {
  constructor(signal) {
    this.signal = signal;
    this.waiting = [];
    this.active = 0;
  }

  add(li, vj) {
    this.waiting.push([li, vj]);
    this.next();
  }

  next() {
    while (this.active < LIST_STREAMS && this.waiting.length && !this.signal.aborted) {
      const [li, vj] = this.waiting.shift();
      this.active += 1;
      li.dataset.live = "yes";
      follow(paths.events(vj.namespace, vj.name), {
        headers: authHeaders(), signal: this.signal, final: ["deleted"],
        onEvent: (ev) => {
          if (ev.type === "status") fillRow(li, JSON.parse(ev.data));
          else if (ev.type === "deleted") deletedRow(li);
        },
        onError: (status) => { if (status === 401) signOut(); },
      }).finally(() => {
        li.dataset.live = "";
        this.active -= 1;
        this.next();
      });
    }
  }
}

async function listView() {
  show("list-view");
  const signal = page.signal;
  let all;
  try {
    all = await loadNamespaces();
  } catch (e) {
    if (!unauthorised(e)) say(problemText(e));
    return;
  }
  const chosen = $("ns-filter").value;
  const wanted = chosen ? [chosen] : all;
  const items = [];
  try {
    const pages = await Promise.all(wanted.map((ns) => api(paths.list(ns))));
    for (const p of pages) items.push(...p.items);
  } catch (e) {
    if (!unauthorised(e)) say(problemText(e));
    return;
  }
  if (signal.aborted) return;
  items.sort((a, b) => (b.createdAt || "").localeCompare(a.createdAt || ""));
  const list = $("jobs");
  const live = new LiveRows(signal);
  list.replaceChildren();
  for (const vj of items) {
    const li = jobRow(vj);
    list.append(li);
    if (!TERMINAL.includes(vj.phase)) live.add(li, vj);
  }
  $("list-empty").hidden = items.length > 0;
  setText($("list-count"), `${items.length} VideoJob${items.length === 1 ? "" : "s"} in ${
    wanted.length === 1 ? wanted[0] : `${wanted.length} namespaces`}.`);
}

// --- one VideoJob

let shownPhase = "";

function renderDetail(vj) {
  setText($("detail-title"), vj.name);
  setText($("detail-namespace"), `namespace ${vj.namespace}`);
  const phase = vj.deleting ? "Cancelling" : vj.phase;
  setText($("detail-phase"), phase);
  $("detail-phase").dataset.phase = phase;
  setText($("detail-stage"), vj.stage ? `· stage ${vj.stage}` : "");
  setProgress($("detail-progress"), vj.progress, `Progress of ${vj.name}`);
  setText($("detail-message"), [vj.message, vj.reason && `reason: ${vj.reason}`,
                                vj.queuePosition && `queue position ${vj.queuePosition}`]
    .filter(Boolean).join(" · "));
  setActions($("detail-actions"), vj, (doc) => {
    if ($("detail-view").dataset.live !== "yes") renderDetail(doc); // as fillRow's
  });

  const stages = $("stages");
  stages.replaceChildren(...vj.stages.map((s) => el("li", { "data-stage": s.name },
    el("strong", { text: s.name }), ` ${s.phase}`,
    s.attempts ? ` · ${s.attempts} attempt${s.attempts === 1 ? "" : "s"}` : "",
    s.total ? ` · ${s.completed ?? 0}/${s.total}` : "",
    s.startTime ? ` · ${duration(s.startTime, s.completionTime)}${s.completionTime ? "" : " so far"}` : "",
    s.startTime ? el("span", { class: "small", text: ` (from ${when(s.startTime)})` }) : "",
    s.message ? el("div", { class: "small", text: s.message }) : "")));
  if (!vj.stages.length) stages.append(el("li", { text: "No stage has started yet." }));

  const rows = $("conditions").tBodies[0];
  rows.replaceChildren(...vj.conditions.map((c) => el("tr", {},
    el("td", { text: c.type }), el("td", { text: c.status }), el("td", { text: c.reason || "" }),
    el("td", { text: c.message || "" }), el("td", { text: when(c.lastTransitionTime) }))));

  const key = `${vj.phase}/${vj.stage}/${vj.suspended}`;
  if (key !== shownPhase) {
    shownPhase = key;
    loadKubeEvents(vj);
  }
  if (vj.phase === "Succeeded" && vj.result && !$("player").dataset.for) playVideo(vj);
}

async function loadKubeEvents(vj) {
  const list = $("kube-events");
  try {
    const doc = await api(paths.kubeEvents(vj.namespace, vj.name));
    setText($("events-note"), doc.items.length ? "" : "No Events recorded.");
    list.replaceChildren(...doc.items.map((e) => el("li", {},
      el("span", { class: e.type === "Warning" ? "warning" : "", text: `${e.type} ${e.reason}` }),
      e.count > 1 ? ` ×${e.count}` : "", " · ", el("span", { text: e.message }),
      el("span", { class: "small", text: ` (${when(e.lastTime)})` }))));
  } catch (e) {
    if (unauthorised(e)) return;
    list.replaceChildren();
    setText($("events-note"), e instanceof ApiError && e.status === 403
      ? "You may not read this namespace's Events." : problemText(e));
  }
}

async function playVideo(vj) {
  // A <video src> sends no Authorization header: ask for a short-lived link (the gateway
  // checks our rights now), and for a new one if it expires while the video is open.
  const player = $("player");
  player.dataset.for = `${vj.namespace}/${vj.name}`;
  $("player-part").hidden = false;
  try {
    const link = await api(paths.downloadLink(vj.namespace, vj.name), { method: "POST" });
    player.dataset.expires = link.expiresAt;
    player.src = link.url;
  } catch (e) {
    if (!unauthorised(e)) setText($("player-error"), problemText(e));
  }
}

async function refreshLink() {
  const player = $("player");
  const [ns, name] = (player.dataset.for || "").split("/");
  if (!ns || Date.parse(player.dataset.expires || 0) > Date.now() + 5000) {
    setText($("player-error"), "The video cannot be played here.");
    return;
  }
  const at = player.currentTime;
  try {
    const link = await api(paths.downloadLink(ns, name), { method: "POST" });
    player.dataset.expires = link.expiresAt;
    player.src = link.url;
    player.currentTime = at;
  } catch (e) {
    if (!unauthorised(e)) setText($("player-error"), problemText(e));
  }
}

async function detailView(ns, name) {
  show("detail-view");
  const signal = page.signal;
  shownPhase = "";
  $("detail-view").dataset.live = "";
  const player = $("player");
  player.removeAttribute("src");
  player.dataset.for = "";
  player.load();
  $("player-part").hidden = true;
  setText($("player-error"), "");
  $("kube-events").replaceChildren();
  setText($("events-note"), "");
  try {
    renderDetail(await api(paths.one(ns, name)));
  } catch (e) {
    if (unauthorised(e)) return;
    setText($("detail-title"), name);
    say(problemText(e));
    return;
  }
  $("detail-title").setAttribute("tabindex", "-1");
  $("detail-title").focus();
  $("detail-view").dataset.live = "yes";
  follow(paths.events(ns, name), {
    headers: authHeaders(), signal, final: ["deleted"],
    onEvent: (ev) => {
      if (ev.type === "status") renderDetail(JSON.parse(ev.data));
      else if (ev.type === "deleted") {
        setText($("detail-phase"), "Deleted");
        $("detail-phase").dataset.phase = "Deleted";
        $("detail-actions").replaceChildren();
        $("detail-actions").dataset.kind = "";
        say(`${name} was deleted.`);
      }
    },
    onError: (status, problem) => {
      if (status === 401) signOut();
      else say(`Live updates stopped: ${(problem && problem.detail) || status}`);
    },
  }).finally(() => {
    if (page.signal === signal) $("detail-view").dataset.live = ""; // not the next page's
  });
}

// --- the submit form

const FIELDS = {
  name: "new-name", "metadata.name": "new-name", "spec.prompt": "new-prompt",
  "spec.images": "new-images", images: "new-images", "spec.audio": "new-audio", audio: "new-audio",
  "spec.resolution": "new-resolution", "spec.durationSeconds": "new-duration",
  "spec.transition": "new-transition", "spec.scenes": "new-images",
};

function fieldError(inputId, text) {
  const input = $(inputId);
  input.setAttribute("aria-invalid", "true");
  setText($(`${inputId}-error`), text);
}

function clearErrors() {
  setText($("new-error"), "");
  for (const id of new Set(Object.values(FIELDS))) {
    $(id).removeAttribute("aria-invalid");
    setText($(`${id}-error`), "");
  }
}

function showProblem(e) {
  const summary = $("new-error");
  summary.replaceChildren(el("p", { text: problemText(e) }));
  const errors = (e instanceof ApiError && Array.isArray(e.problem.errors)) ? e.problem.errors : [];
  let first = null;
  for (const err of errors) {
    const field = String(err.field || "");
    const id = FIELDS[field] || FIELDS[field.replace(/\[\d+\]$/, "")] ||
      (field.startsWith("images") ? "new-images" : null);
    if (id) {
      fieldError(id, err.detail || "refused");
      first = first || id;
    } else {
      summary.append(el("p", { text: `${field}: ${err.detail || ""}` }));
    }
  }
  $(first || "new-error").focus?.();
  if (!first) { summary.setAttribute("tabindex", "-1"); summary.focus(); }
}

function toggleSource() {
  const source = new FormData($("new-form")).get("source");
  $("prompt-part").hidden = source !== "prompt";
  $("images-part").hidden = source !== "images";
}

async function newView() {
  show("new-view");
  toggleSource();
  try {
    await loadNamespaces();
  } catch (e) {
    if (!unauthorised(e)) say(problemText(e));
  }
}

async function submit(event) {
  event.preventDefault();
  clearErrors();
  const form = new FormData($("new-form"));
  const ns = form.get("namespace");
  const spec = {
    resolution: form.get("resolution"),
    durationSeconds: Number(form.get("durationSeconds")),
    transition: form.get("transition"),
  };
  const button = $("new-submit");
  if (!ns) { fieldError("new-name", "No namespace to create in."); return; }
  if (form.get("source") === "prompt") {
    const prompt = String(form.get("prompt") || "").trim();
    if (!prompt) { fieldError("new-prompt", "Write what the video shows."); $("new-prompt").focus(); return; }
    spec.prompt = prompt;
  } else {
    const images = $("new-images").files;
    if (!images.length) { fieldError("new-images", "Choose at least one image."); $("new-images").focus(); return; }
    const upload = new FormData();
    for (const f of images) upload.append("images", f, f.name);
    const audio = $("new-audio").files[0];
    if (audio) upload.append("audio", audio, audio.name);
    button.disabled = true;
    say("Uploading…");
    try {
      const done = await api(paths.uploads(ns), { method: "POST", form: upload });
      spec.images = done.images;
      spec.scenes = done.images.length;
      if (done.audio) spec.audio = done.audio;
    } catch (e) {
      button.disabled = false;
      say("");
      if (!unauthorised(e)) showProblem(e);
      return;
    }
  }
  const body = { spec };
  const name = String(form.get("name") || "").trim();
  if (name) body.name = name;
  button.disabled = true;
  try {
    const made = await api(paths.create(ns), { method: "POST", json: body });
    say(`Created ${made.name}.`);
    $("new-prompt").value = "";
    $("new-name").value = "";
    location.hash = `#/vj/${encodeURIComponent(made.namespace)}/${encodeURIComponent(made.name)}`;
  } catch (e) {
    if (!unauthorised(e)) showProblem(e);
  } finally {
    button.disabled = false;
  }
}

// --- routing

function route() {
  page.abort();
  page = new AbortController();
  if (!credential()) { signinView(); return; }
  const hash = location.hash || "#/";
  const detail = /^#\/vj\/([^/]+)\/([^/]+)$/.exec(hash);
  let ns = null;
  let name = null;
  try {
    if (detail) [ns, name] = [decodeURIComponent(detail[1]), decodeURIComponent(detail[2])];
  } catch { /* a mangled link: show the list */ }
  if (ns !== null) detailView(ns, name);
  else if (hash === "#/new") newView();
  else listView();
  $("main").focus({ preventScroll: true });
}

function start() {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("new-form").addEventListener("submit", submit);
  $("new-form").addEventListener("change", (ev) => { if (ev.target.name === "source") toggleSource(); });
  $("ns-filter").addEventListener("change", () => { page.abort(); page = new AbortController(); listView(); });
  $("refresh").addEventListener("click", () => { page.abort(); page = new AbortController(); listView(); });
  $("player").addEventListener("error", refreshLink);
  window.addEventListener("hashchange", route);
  route();
}

start();
