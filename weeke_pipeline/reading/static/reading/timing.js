// Active reading time, measured in the page (weeke_pipeline/reading/timing.py documents the
// definition): the time between consecutive reader actions counts when the gap is at most
// the protocol's idle threshold; a longer gap is idle and left out whole. Each counted interval
// is credited to the item the reader was on. What was measured since the last acknowledged
// save is taken with each save (take) and given back if the save failed (giveBack).
let threshold = 60_000;
let last = null;
let item = null;
let pending = { active: 0, items: {} };

function activity() {
  const now = Date.now();
  if (last !== null) {
    const gap = now - last;
    if (gap <= threshold) {
      pending.active += gap;
      if (item) pending.items[item] = (pending.items[item] || 0) + gap;
    }
  }
  last = now;
}

export function start(idleThresholdS) {
  threshold = idleThresholdS * 1000;
  last = Date.now();
  for (const type of ["keydown", "pointerdown", "wheel"]) {
    window.addEventListener(type, activity, { capture: true, passive: true });
  }
  let moved = 0; // pointer moves: at most one activity per second
  window.addEventListener("pointermove", () => {
    const now = Date.now();
    if (now - moved >= 1000) { moved = now; activity(); }
  }, { capture: true, passive: true });
}

/** Credit the time up to now to the previous item, then to ``id`` (null: the viewer). */
export function setItem(id) { if (last !== null) activity(); item = id; }

/** What was measured since the last save, in seconds; reset until given back. */
export function take() {
  activity();
  const out = { active_s: pending.active / 1000, items: {} };
  for (const [k, ms] of Object.entries(pending.items)) out.items[k] = ms / 1000;
  pending = { active: 0, items: {} };
  return out;
}

export function giveBack(spent) {
  pending.active += spent.active_s * 1000;
  for (const [k, s] of Object.entries(spent.items)) pending.items[k] = (pending.items[k] || 0) + s * 1000;
}

export function peek() { return { active_s: pending.active / 1000 }; }
