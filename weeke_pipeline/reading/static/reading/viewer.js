// Linked multiplanar viewer: one NiiVue instance per sequence (T1w, T2w, ADC, and FA where the
// study shows it), each broadcasting its crosshair and pan/zoom to the others; window/level
// presets for all at once. A sequence with a fixed window (FA: 0-1) keeps it per preset;
// anatomical images use their robust range.
import { Niivue, SLICE_TYPE } from "../vendor/niivue/index.js";

const config = JSON.parse(document.getElementById("weeke-config").textContent);
const viewers = [];
// milliseconds since navigation start, per sequence: viewer attached (WebGL ready), image shown
const timing = { attached: {}, loaded: {} };

async function open(img) {
  const canvas = document.getElementById(`gl-${img.sequence}`);
  const nv = new Niivue({ backColor: [0, 0, 0, 1], crosshairColor: [1, 0.2, 0.2, 1], show3Dcrosshair: true });
  await nv.attachTo(canvas.id);
  timing.attached[img.sequence] = performance.now();
  nv.setSliceType(SLICE_TYPE.MULTIPLANAR);
  const volume = { url: img.url, colormap: img.colormap || "gray", name: `${img.sequence}.nii.gz` };
  if (img.window) [volume.cal_min, volume.cal_max] = img.window.default;
  await nv.loadVolumes([volume]);
  nv.weekeImage = img;
  timing.loaded[img.sequence] = performance.now();
  return nv;
}

function preset(nv, name) {
  const vol = nv.volumes[0];
  if (!vol) return;
  const fixed = nv.weekeImage && nv.weekeImage.window;
  if (fixed) {
    [vol.cal_min, vol.cal_max] = fixed[name] || fixed.default;
    nv.updateGLVolume();
    return;
  }
  const lo = vol.robust_min, hi = vol.robust_max, mid = (lo + hi) / 2, half = (hi - lo) / 2;
  const [a, b] = name === "narrow" ? [mid - half / 2, mid + half / 2]
    : name === "wide" ? [vol.global_min, vol.global_max] : [lo, hi];
  vol.cal_min = a; vol.cal_max = b;
  nv.updateGLVolume();
}

async function main() {
  const results = await Promise.allSettled(config.images.map(open));
  results.forEach((r, i) => {
    if (r.status === "fulfilled") viewers.push(r.value);
    else document.querySelector(`#gl-${config.images[i].sequence}`).closest("figure")
      .querySelector("figcaption").textContent += " (could not load)";
  });
  for (const nv of viewers) nv.broadcastTo(viewers.filter((o) => o !== nv), { "2d": true, "3d": true });
  document.querySelectorAll("[data-preset]").forEach((b) =>
    b.addEventListener("click", () => viewers.forEach((nv) => preset(nv, b.dataset.preset))));
  window.weekeViewers = viewers;
  window.weekeViewerTiming = timing;
  document.body.dataset.viewersLoaded = String(viewers.length);
}

main();
