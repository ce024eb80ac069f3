// Linked viewer laid out by the study's hanging protocol (config.protocol): by default one large
// axial view per sequence side by side (T2w, T1w, ADC; FA where the study shows it), all at the
// same anatomical position (crosshair in millimetres), zoom and pan; the focused sequence in
// three planes or alone on demand. Window/level per sequence: presets from the protocol
// (robust fractions for T1w/T2w, absolute units for ADC in 10^-6 mm^2/s and FA), right-drag
// and keys. The layout a reader last used is stored on the server (POST /api/preferences).
import { Niivue, SLICE_TYPE, DRAG_MODE } from "../vendor/niivue/index.js";
import { config, on } from "./keys.js";

const protocol = config.protocol;
const PLANE = { axial: SLICE_TYPE.AXIAL, coronal: SLICE_TYPE.CORONAL, sagittal: SLICE_TYPE.SAGITTAL };
const views = []; // {sequence, nv, figure, preset}
const timing = { attached: {}, loaded: {}, firstImage: null, allImages: null };
const state = { layout: config.layout, focus: 0 };
const csrf = document.querySelector("[name=csrfmiddlewaretoken]")?.value;

function layoutDef(id = state.layout) {
  return protocol.layouts.find((l) => l.id === id) || protocol.layouts[0];
}

function presetsOf(sequence) {
  return protocol.windows[sequence] || [{ id: "default", label: "Default", mode: "robust", range: [0, 1] }];
}

function applyPreset(view, index) {
  const vol = view.nv.volumes[0];
  if (!vol) return;
  const presets = presetsOf(view.sequence);
  view.preset = ((index % presets.length) + presets.length) % presets.length;
  const p = presets[view.preset];
  if (p.mode === "absolute") {
    [vol.cal_min, vol.cal_max] = p.range;
  } else {
    const lo = vol.robust_min, span = vol.robust_max - vol.robust_min;
    vol.cal_min = lo + p.range[0] * span;
    vol.cal_max = lo + p.range[1] * span;
  }
  view.nv.updateGLVolume();
  showWindow(view, p.label);
}

function showWindow(view, label) {
  const vol = view.nv.volumes[0];
  const el = view.figure.querySelector(".wl");
  const fmt = (x) => (Math.abs(x) >= 10 ? x.toFixed(0) : x.toFixed(2));
  el.textContent = `${label || "custom"} · W ${fmt(vol.cal_max - vol.cal_min)} L ${fmt((vol.cal_max + vol.cal_min) / 2)}`;
  view.figure.dataset.calMin = String(vol.cal_min);
  view.figure.dataset.calMax = String(vol.cal_max);
}

/** Window width and level by keys: coarse 20 % of the width, fine (Shift) 4 %. */
function adjustWindow(view, widthFactor, levelShift) {
  const vol = view.nv.volumes[0];
  if (!vol) return;
  const width = Math.max(vol.cal_max - vol.cal_min, 1e-6);
  const level = (vol.cal_max + vol.cal_min) / 2 + levelShift * width;
  const w = width * widthFactor;
  vol.cal_min = level - w / 2; vol.cal_max = level + w / 2;
  view.nv.updateGLVolume();
  showWindow(view, null);
}

/** Bring every other view to the focused view's position (mm), zoom and pan. */
function syncFrom(src) {
  const mm = src.nv.frac2mm(src.nv.scene.crosshairPos);
  for (const v of views) {
    if (v === src) continue;
    v.nv.scene.crosshairPos = v.nv.mm2frac(mm);
    v.nv.scene.pan2Dxyzmm = [...src.nv.scene.pan2Dxyzmm];
    v.nv.drawScene();
  }
  document.body.dataset.positionMm = Array.from(mm.slice(0, 3), (x) => x.toFixed(2)).join(",");
}

function focused() { return views[state.focus] || views[0]; }

function setFocus(index) {
  if (!views.length) return;
  state.focus = ((index % views.length) + views.length) % views.length;
  views.forEach((v, i) => v.figure.classList.toggle("focused", i === state.focus));
  document.body.dataset.focusedSequence = focused().sequence;
  if (layoutDef().kind !== "row") applyLayout(state.layout, false);
}

function applyLayout(id, remember = true) {
  const def = layoutDef(id);
  state.layout = def.id;
  const box = document.getElementById("viewers");
  box.dataset.layout = def.id;
  box.dataset.kind = def.kind;
  views.forEach((v, i) => {
    const visible = def.kind === "row" || i === state.focus;
    v.figure.hidden = !visible;
    v.nv.setSliceType(def.kind === "multiplanar" ? SLICE_TYPE.MULTIPLANAR : PLANE[def.plane || "axial"]);
  });
  document.querySelectorAll("[data-layout-button]").forEach((b) =>
    b.setAttribute("aria-pressed", String(b.dataset.layoutButton === def.id)));
  document.body.dataset.layout = def.id;
  // canvases that were hidden have no size: let NiiVue measure them again once laid out
  requestAnimationFrame(() => views.forEach((v) => { if (!v.figure.hidden) v.nv.resizeListener(); }));
  if (remember && config.prefs_url) {
    fetch(config.prefs_url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ layout: def.id }),
    }).then((r) => { if (r.ok) document.body.dataset.layoutSaved = def.id; });
  }
}

function stepSlice(n) {
  const v = focused();
  if (!v) return;
  const plane = layoutDef().kind === "multiplanar" ? "axial" : (layoutDef().plane || "axial");
  const d = { axial: [0, 0, n], coronal: [0, n, 0], sagittal: [n, 0, 0] }[plane];
  v.nv.moveCrosshairInVox(...d);
  syncFrom(v);
}

function zoom(factor) {
  const v = focused();
  if (!v) return;
  const p = v.nv.scene.pan2Dxyzmm;
  v.nv.scene.pan2Dxyzmm = [p[0], p[1], p[2], Math.min(8, Math.max(0.5, p[3] * factor))];
  v.nv.drawScene();
  syncFrom(v);
}

async function open(img, figure) {
  const canvas = figure.querySelector("canvas");
  const nv = new Niivue({
    backColor: [0, 0, 0, 1], crosshairColor: [1, 0.2, 0.2, 1], show3Dcrosshair: true,
    isOrientationTextVisible: true, viewModeHotKey: "", clipPlaneHotKey: "", cycleClipPlaneHotKey: "",
  });
  await nv.attachTo(canvas.id);
  // left drag: crosshair; Shift+left or middle: pan; right drag: window/level
  nv.setMouseEventConfig({
    leftButton: { primary: DRAG_MODE.crosshair, withShift: DRAG_MODE.pan },
    rightButton: DRAG_MODE.windowing, centerButton: DRAG_MODE.pan,
  });
  timing.attached[img.sequence] = performance.now();
  const def = layoutDef();
  nv.setSliceType(def.kind === "multiplanar" ? SLICE_TYPE.MULTIPLANAR : PLANE[def.plane || "axial"]);
  await nv.loadVolumes([{ url: img.url, colormap: img.colormap || "gray", name: `${img.sequence}.nii.gz` }]);
  timing.loaded[img.sequence] = performance.now();
  if (timing.firstImage === null) timing.firstImage = timing.loaded[img.sequence];
  const view = { sequence: img.sequence, nv, figure, preset: 0 };
  applyPreset(view, 0);
  canvas.addEventListener("pointerdown", () => setFocus(views.indexOf(view)));
  return view;
}

async function main() {
  const figures = [...document.querySelectorAll("#viewers figure.viewer")];
  const images = config.images;
  // the first sequence of the protocol alone first (the reader sees it while the others
  // load: with software WebGL, parallel uploads delay every image), then the rest together
  const first = await Promise.allSettled(images.slice(0, 1).map((img) => open(img, figures[0])));
  const rest = await Promise.allSettled(images.slice(1).map((img, i) => open(img, figures[i + 1])));
  const results = [...first, ...rest];
  results.forEach((r, i) => {
    if (r.status === "fulfilled") views.push(r.value);
    else figures[i].querySelector("figcaption").append(" (could not load)");
  });
  timing.allImages = performance.now();
  for (const v of views) v.nv.broadcastTo(views.filter((o) => o !== v).map((o) => o.nv), { "2d": true });
  setFocus(0);
  applyLayout(state.layout, false);
  // start on a voxel centre of the first sequence (a position between two slices would show
  // an interpolated mix of both), the others at the same millimetre position
  if (views.length) { views[0].nv.moveCrosshairInVox(0, 0, 0); syncFrom(views[0]); }
  document.querySelectorAll("[data-layout-button]").forEach((b) =>
    b.addEventListener("click", () => applyLayout(b.dataset.layoutButton)));
  document.querySelectorAll("[data-preset-step]").forEach((b) =>
    b.addEventListener("click", () => { const v = focused(); if (v) applyPreset(v, v.preset + 1); }));
  window.weekeViewers = views.map((v) => v.nv);
  window.weekeViews = views;
  window.weekeViewerTiming = timing;
  document.body.dataset.viewersLoaded = String(views.length);
}

const fine = (e) => e.shiftKey;
on("slice_up", () => stepSlice(1));
on("slice_down", () => stepSlice(-1));
on("slice_up_5", () => stepSlice(5));
on("slice_down_5", () => stepSlice(-5));
on("preset_next", () => { const v = focused(); if (!v) return false; applyPreset(v, v.preset + 1); });
on("window_narrow", (e) => { const v = focused(); if (!v) return false; adjustWindow(v, fine(e) ? 0.96 : 0.8, 0); });
on("window_widen", (e) => { const v = focused(); if (!v) return false; adjustWindow(v, fine(e) ? 1.04 : 1.25, 0); });
on("level_down", (e) => { const v = focused(); if (!v) return false; adjustWindow(v, 1, fine(e) ? -0.04 : -0.2); });
on("level_up", (e) => { const v = focused(); if (!v) return false; adjustWindow(v, 1, fine(e) ? 0.04 : 0.2); });
on("zoom_in", () => zoom(1.25));
on("zoom_out", () => zoom(0.8));
on("reset_view", () => {
  for (const v of views) { v.nv.scene.pan2Dxyzmm = [0, 0, 0, 1]; applyPreset(v, 0); v.nv.drawScene(); }
});
on("layout_next", () => {
  const ids = protocol.layouts.map((l) => l.id);
  applyLayout(ids[(ids.indexOf(state.layout) + 1) % ids.length]);
});
on("three_plane", () => {
  const mp = protocol.layouts.find((l) => l.kind === "multiplanar");
  if (!mp) return false;
  applyLayout(state.layout === mp.id ? protocol.default_layout : mp.id);
});
on("single", () => {
  const single = protocol.layouts.find((l) => l.kind === "single");
  if (!single) return false;
  applyLayout(state.layout === single.id ? protocol.default_layout : single.id);
});
on("focus_next_sequence", () => { setFocus(state.focus + 1); });

main();
