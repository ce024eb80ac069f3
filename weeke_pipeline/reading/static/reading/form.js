// Weeke form page: renders the form definition, keeps subscores/total live from the score
// engine (POST to the score endpoint), autosaves drafts with a version check, signs with
// password re-entry and records changes after signing with a reason. Every item can be scored
// from the keyboard (keys.js: move between items, extent digits, laterality, not assessable,
// save, sign, next case); the reading time is measured (timing.js) and sent with each save.
// Plain ES module, no build.
import { config, on, rebuild } from "./keys.js";
import * as clock from "./timing.js";

const form = config.form;
const csrf = document.querySelector("#weeke-form [name=csrfmiddlewaretoken]").value;
const $ = (sel, root = document) => root.querySelector(sel);
// Enter in a field must not submit the form (a handler here: the CSP forbids inline ones)
$("#weeke-form").addEventListener("submit", (e) => e.preventDefault());
const state = { version: config.version, status: config.status, revising: false,
                dirty: false, saving: null, scoreSeq: 0 };

async function api(url, body) {
  const res = await fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    body: JSON.stringify(body),
  });
  let data = {};
  try { data = await res.json(); } catch (e) { data = { error: `server answered ${res.status}` }; }
  if (!res.ok) { const err = new Error(data.error || `error ${res.status}`); err.status = res.status; err.item = data.item; throw err; }
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "text") node.textContent = v; else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c);
  return node;
}

function renderForm() {
  const root = $("#items");
  for (const sub of form.subscores) {
    root.append(el("h3", { class: "subscore", text: `${sub.label} (max ${sub.max})` }));
    for (const item of form.items.filter((i) => i.subscore === sub.id)) {
      const fs = el("fieldset", { class: "item", id: `item-${item.id}`, "data-item": item.id });
      fs.append(el("legend", {}, el("span", { text: item.label }), " ",
        el("span", { class: "item-score", id: `score-${item.id}`, "aria-label": "item score" })));
      if (item.help) fs.title = item.help;
      const ext = el("div", { class: "axis extent", role: "radiogroup", "aria-label": `${item.label}: extent` });
      for (const e of item.extents) {
        ext.append(el("label", {}, el("input", { type: "radio", name: `${item.id}-extent`, value: e.value }),
          ` ${e.value}: ${e.label}`));
      }
      fs.append(ext);
      if (item.lateralised) {
        const lat = el("div", { class: "axis laterality", role: "radiogroup", "aria-label": `${item.label}: laterality` });
        lat.append(el("label", {}, el("input", { type: "radio", name: `${item.id}-laterality`, value: 1 }), " unilateral"));
        lat.append(el("label", {}, el("input", { type: "radio", name: `${item.id}-laterality`, value: 2 }), " bilateral"));
        fs.append(lat);
      }
      fs.append(el("label", { class: "na" }, el("input", { type: "checkbox", name: `${item.id}-na` }), " not assessable"),
        " ", el("input", { type: "text", name: `${item.id}-reason`, maxlength: 500, placeholder: "reason",
          "aria-label": `${item.label}: reason not assessable`, class: "na-reason" }));
      root.append(fs);
    }
  }
}

function fill(items) {
  for (const item of form.items) {
    const v = items[item.id] || {};
    const fs = $(`#item-${item.id}`);
    fs.querySelectorAll("input[type=radio]").forEach((r) => { r.checked = false; });
    if (v.extent !== undefined) { const r = fs.querySelector(`[name="${item.id}-extent"][value="${v.extent}"]`); if (r) r.checked = true; }
    if (v.laterality) { const r = fs.querySelector(`[name="${item.id}-laterality"][value="${v.laterality}"]`); if (r) r.checked = true; }
    fs.querySelector(`[name="${item.id}-na"]`).checked = v.assessable === false;
    fs.querySelector(`[name="${item.id}-reason"]`).value = v.reason || "";
  }
}

function editable() { return !config.locked && (state.status === "draft" || state.revising); }

// Laterality only when extent > 0; extent and laterality off while "not assessable".
function syncEnabled() {
  const on = editable();
  for (const item of form.items) {
    const fs = $(`#item-${item.id}`);
    const na = fs.querySelector(`[name="${item.id}-na"]`).checked;
    const extent = fs.querySelector(`[name="${item.id}-extent"]:checked`);
    const latOn = on && !na && extent !== null && Number(extent.value) > 0;
    fs.querySelectorAll(`[name="${item.id}-extent"]`).forEach((r) => { r.disabled = !on || na; });
    const lat = fs.querySelector(".laterality");
    if (lat) {
      lat.setAttribute("aria-disabled", String(!latOn));
      lat.querySelectorAll("input").forEach((r) => { r.disabled = !latOn; if (!latOn && (!extent || Number(extent.value) === 0 || na)) r.checked = false; });
    }
    fs.querySelector(`[name="${item.id}-na"]`).disabled = !on;
    fs.querySelector(`[name="${item.id}-reason"]`).disabled = !on || !na;
  }
}

function collect() {
  const items = {};
  for (const item of form.items) {
    const fs = $(`#item-${item.id}`);
    if (fs.querySelector(`[name="${item.id}-na"]`).checked) {
      items[item.id] = { assessable: false, reason: fs.querySelector(`[name="${item.id}-reason"]`).value };
      continue;
    }
    const extent = fs.querySelector(`[name="${item.id}-extent"]:checked`);
    if (!extent) continue;
    const v = { extent: Number(extent.value) };
    const lat = fs.querySelector(`[name="${item.id}-laterality"]:checked`);
    if (lat && v.extent > 0) v.laterality = Number(lat.value);
    items[item.id] = v;
  }
  return items;
}

function showScore(data) {
  const s = data.score;
  const body = el("tbody");
  for (const sub of form.subscores) {
    const complete = s.subscores_complete[sub.id];
    body.append(el("tr", { "data-subscore": sub.id }, el("td", { text: sub.label }),
      el("td", { class: "num", text: `${s.subscores[sub.id]} / ${sub.max}` }),
      el("td", { class: complete ? "ok" : "bad", text: complete ? "" : "incomplete" })));
  }
  $("#subscores").replaceChildren(body);
  $("#total").textContent = String(s.total);
  const open = s.missing.length + (data.pending || []).length;
  $("#total-flag").textContent = s.complete ? ""
    : open ? `(incomplete: ${open} to score)` : `(incomplete: ${s.not_assessable.length} not assessable)`;
  for (const item of form.items) {
    const r = s.items[item.id];
    $(`#score-${item.id}`).textContent = r ? (r.assessable === false ? "n/a" : String(r.score)) : "";
    $(`#item-${item.id}`).classList.toggle("pending", (data.pending || []).includes(item.id));
  }
}

async function refreshScore() {
  const seq = ++state.scoreSeq;
  try {
    const data = await api(config.score_url, { items: collect() });
    if (seq === state.scoreSeq) { showScore(data); $("#error").textContent = ""; }
  } catch (err) { if (seq === state.scoreSeq) $("#error").textContent = err.message; }
}

async function saveNow() {
  if (state.saving) { state.dirty = true; return state.saving; }
  state.dirty = false;
  state.saving = (async () => {
    try {
      const spent = clock.take();
      let data;
      try {
        data = await api(config.api, { items: collect(), version: state.version, timing: spent });
      } catch (err) { clock.giveBack(spent); throw err; }
      state.version = data.version;
      $("#save-state").textContent = `Draft saved ${new Date().toLocaleTimeString()}`;
      document.body.dataset.saved = String(state.version);
    } catch (err) {
      $("#save-state").textContent = "Not saved";
      $("#error").textContent = err.message;
    }
  })();
  await state.saving;
  state.saving = null;
  if (state.dirty) return saveNow();
  if (!saveTimer) document.body.dataset.saveState = "saved";
}

let saveTimer = null;
function changed() {
  syncEnabled();
  refreshScore();
  if (state.status !== "draft" || config.locked) return;
  $("#save-state").textContent = "Unsaved changes…";
  document.body.dataset.saveState = "pending";
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => { saveTimer = null; saveNow(); }, 600);
}

async function flush() { if (saveTimer) { clearTimeout(saveTimer); saveTimer = null; await saveNow(); } else if (state.saving) await state.saving; }

function showStatus() {
  const signed = state.status === "signed";
  $("#sign-open").hidden = signed || config.locked;
  $("#revise-open").hidden = !signed || config.locked || state.revising;
  $("#reason").hidden = $("#reason-label").hidden = !state.revising;
  $("#sign-submit").textContent = state.revising ? "Save change" : "Sign";
  if (!signed && state.version > 1 && !state.saving) $("#save-state").textContent = "Draft (saved)";
  if (signed && !state.revising) $("#save-state").textContent = `Signed ${config.signed_at ? new Date(config.signed_at).toLocaleString() : ""}`;
  if (config.locked) $("#save-state").textContent = "Database locked: read only";
  document.body.dataset.status = state.status;
  $("#next-case").hidden = !signed || state.revising;
  syncEnabled();
}

async function submitSign() {
  const password = $("#sign-password").value;
  try {
    let data;
    if (state.revising) {
      data = await api(`${config.api}/revise`, { items: collect(), reason: $("#reason").value, password, version: state.version });
    } else {
      await flush();
      const spent = clock.take();
      try {
        data = await api(`${config.api}/sign`, { password, version: state.version, timing: spent });
      } catch (err) { clock.giveBack(spent); throw err; }
    }
    state.version = data.version; state.status = data.status; state.revising = false;
    config.signed_at = data.signed_at;
    $("#sign-password").value = ""; $("#reason").value = ""; $("#sign-box").hidden = true;
    $("#error").textContent = "";
    showScore(data);
    showStatus();
    if (state.status === "signed" && !config.locked) {
      $("#next-case").hidden = false;
      $("#next-case").focus();
    }
  } catch (err) { $("#error").textContent = err.message; }
}

// ---------------------------------------------------------------- keyboard scoring

const cursor = { index: 0 };
function currentItem() { return form.items[cursor.index]; }

function goTo(index, focus = true) {
  cursor.index = Math.max(0, Math.min(form.items.length - 1, index));
  const item = currentItem();
  document.querySelectorAll("fieldset.item.current").forEach((f) => f.classList.remove("current"));
  const fs = $(`#item-${item.id}`);
  fs.classList.add("current");
  if (focus) { fs.focus({ preventScroll: true }); fs.scrollIntoView({ block: "nearest" }); }
  clock.setItem(item.id);
  document.body.dataset.currentItem = item.id;
}

function note(text) { $("#key-hint").textContent = text; }

function choose(name, value) {
  const r = document.querySelector(`[name="${name}"][value="${value}"]`);
  if (!r || r.disabled) return false;
  r.checked = true;
  r.dispatchEvent(new Event("change", { bubbles: true }));
  return true;
}

function scoreExtent(value) {
  if (!editable()) { note("This read cannot be changed now."); return; }
  const item = currentItem();
  const fs = $(`#item-${item.id}`);
  const na = fs.querySelector(`[name="${item.id}-na"]`);
  if (na.checked) { na.checked = false; na.dispatchEvent(new Event("change", { bubbles: true })); }
  if (!item.extents.some((e) => e.value === value)) {
    note(`${item.label}: extent ${value} does not exist (${item.extents.map((e) => e.value).join("/")})`);
    return;
  }
  choose(`${item.id}-extent`, value);
  if (item.lateralised && value > 0) note("Unilateral or bilateral?");
  else { note(""); goTo(cursor.index + 1); }
}

function scoreSide(value) {
  if (!editable()) return;
  const item = currentItem();
  if (!item.lateralised) { note(`${item.label} has no laterality`); return; }
  if (!choose(`${item.id}-laterality`, value)) { note("Score the extent first (laterality only when extent > 0)"); return; }
  note("");
  goTo(cursor.index + 1);
}

function notAssessable() {
  if (!editable()) return;
  const item = currentItem();
  const na = $(`#item-${item.id} [name="${item.id}-na"]`);
  na.checked = true;
  na.dispatchEvent(new Event("change", { bubbles: true }));
  const reason = $(`#item-${item.id} [name="${item.id}-reason"]`);
  reason.focus();
  note("Type the reason, then Enter");
}

function zoneTo(target) {
  const toViewer = target === "viewer";
  document.body.dataset.zone = toViewer ? "viewer" : "form";
  if (toViewer) {
    const fig = document.querySelector("#viewers figure.focused canvas") || document.querySelector("#viewers canvas");
    if (fig) fig.focus({ preventScroll: true });
  } else goTo(cursor.index);
}

on("next_item", () => goTo(cursor.index + 1));
on("prev_item", () => goTo(cursor.index - 1));
on("extent_0", () => scoreExtent(0));
on("extent_1", () => scoreExtent(1));
on("extent_2", () => scoreExtent(2));
on("unilateral", () => scoreSide(1));
on("bilateral", () => scoreSide(2));
on("not_assessable", () => notAssessable());
on("save", () => { flush(); });
on("sign", () => {
  if (config.locked) return false;
  if (state.status === "signed") { state.revising = true; showStatus(); }
  $("#sign-box").hidden = false;
  (state.revising ? $("#reason") : $("#sign-password")).focus();
});
on("next_case", () => { if ($("#next-case").hidden) return false; window.location.assign(config.next_url); });
on("zone", () => zoneTo(document.body.dataset.zone === "viewer" ? "form" : "viewer"));

// a click in the form makes its item the current one (reading time is credited to it)
$("#items").addEventListener("pointerdown", (e) => {
  const fs = e.target.closest("fieldset.item");
  if (fs) goTo(form.items.findIndex((i) => i.id === fs.dataset.item), false);
  document.body.dataset.zone = "form";
});
document.querySelector(".viewer-pane").addEventListener("pointerdown", () => {
  document.body.dataset.zone = "viewer"; clock.setItem(null);
});
$("#items").addEventListener("keydown", (e) => {
  // Enter in a reason box: back to the items, on to the next one
  if (e.key === "Enter" && e.target.matches(".na-reason")) {
    e.preventDefault();
    changed();
    note("");
    goTo(cursor.index + 1);
  } else if (e.key === "Escape" && e.target.matches("input")) {
    e.preventDefault();
    goTo(cursor.index);
  }
});

// ---------------------------------------------------------------- shortcut list and editor

function renderShortcuts() {
  const body = el("tbody");
  for (const [action, key] of Object.entries(config.keys)) {
    const input = el("input", { value: key, "data-action": action, "data-keycapture": true,
      "aria-label": `key for ${config.key_help[action] || action}`, size: 10 });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Tab") return;
      e.preventDefault();
      if (e.key === "Escape") { input.value = config.keys[action]; return; }
      input.value = e.key.length === 1 && !/[a-z]/i.test(e.key) ? e.key
        : `${e.altKey ? "Alt+" : ""}${e.shiftKey ? "Shift+" : ""}${e.key === " " ? "Space" : e.key}`;
    });
    body.append(el("tr", {}, el("td", {}, input), el("td", { text: config.key_help[action] || action })));
  }
  $("#shortcut-table").replaceChildren(body);
}

async function saveShortcuts(keys) {
  try {
    const data = await api(config.prefs_url, { keys });
    rebuild(data.keys);
    renderShortcuts();
    $("#shortcut-state").textContent = "Saved";
  } catch (err) { $("#shortcut-state").textContent = err.message; }
}

$("#shortcut-save").addEventListener("click", () => {
  const keys = {};
  document.querySelectorAll("#shortcut-table input").forEach((i) => { keys[i.dataset.action] = i.value; });
  saveShortcuts(keys);
});
$("#shortcut-reset").addEventListener("click", () => saveShortcuts({}));
$("#weeke-form").addEventListener("submit", (e) => e.preventDefault());
$("#next-case").addEventListener("click", () => window.location.assign(config.next_url));

renderForm();
form.items.forEach((item) => { $(`#item-${item.id}`).tabIndex = -1; });
renderShortcuts();
fill(config.items);
showStatus();
refreshScore();
$("#total-max").textContent = String(form.total_max);
clock.start(config.protocol.idle_threshold_s || 60);
goTo(0);
$("#items").addEventListener("change", changed);
$("#items").addEventListener("input", (e) => { if (e.target.type === "text") changed(); });
$("#sign-open").addEventListener("click", () => { $("#sign-box").hidden = false; $("#sign-password").focus(); });
$("#revise-open").addEventListener("click", () => { state.revising = true; showStatus(); $("#sign-box").hidden = false; $("#reason").focus(); });
$("#sign-cancel").addEventListener("click", () => { state.revising = false; $("#sign-box").hidden = true; fill(config.items); showStatus(); refreshScore(); });
$("#sign-submit").addEventListener("click", submitSign);
$("#sign-password").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); submitSign(); } });
window.addEventListener("beforeunload", (e) => { if (saveTimer || state.saving) { saveNow(); e.preventDefault(); } });
