// Keyboard shortcuts of the reading page: one listener (capture phase, so NiiVue's own canvas
// listeners never see a bound key) turns a key press into an action name from the reader's
// key map (config.keys: action -> key) and hands it to the handler registered for it (form.js
// registers the scoring actions, viewer.js the image actions). Every key has one action
// (checked on the server), so the same key does the same thing wherever the focus is: focus
// cannot be "lost" in the viewer. Keys typed into a text or password box stay there.
const config = JSON.parse(document.getElementById("weeke-config").textContent);
const handlers = {};

/** "Shift+n" / "N" -> "Shift+N"; "shift+enter" -> "Shift+Enter"; other keys unchanged. */
export function normalise(binding) {
  let shift = false, alt = false, key = binding;
  for (;;) {
    if (/^shift\+./i.test(key)) { shift = true; key = key.slice(6); }
    else if (/^alt\+./i.test(key)) { alt = true; key = key.slice(4); }
    else break;
  }
  if (key.length === 1 && /[a-z]/i.test(key)) {
    if (key === key.toUpperCase()) shift = true;
    key = shift ? key.toUpperCase() : key.toLowerCase();
  } else if (key.length === 1) {
    shift = false; // a shifted character names itself ("+", "{")
  }
  return `${alt ? "Alt+" : ""}${shift ? "Shift+" : ""}${key === " " ? "Space" : key}`;
}

export function describe(event) {
  const key = event.key === " " ? "Space" : event.key;
  const shift = event.shiftKey && (key.length > 1 || /[a-z]/i.test(key));
  return normalise(`${event.altKey ? "Alt+" : ""}${shift ? "Shift+" : ""}${key}`);
}

const byKey = new Map();
export function bindings() { return byKey; }
export function rebuild(keys) {
  byKey.clear();
  for (const [action, key] of Object.entries(keys)) byKey.set(normalise(key), action);
  config.keys = keys;
}
rebuild(config.keys);

/** Register ``fn(event)`` for an action; it returns false when it did not handle the key. */
export function on(action, fn) { handlers[action] = fn; }

export let presses = 0; // key presses handled as shortcuts (tests report them)

window.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.isComposing) return;
  const t = event.target;
  const typing = t instanceof HTMLElement && (t.matches("input[type=text], input[type=password], textarea, select, [data-keycapture]"));
  if (typing) return;
  const action = byKey.get(describe(event));
  if (!action || !handlers[action]) return;
  if (handlers[action](event) === false) return;
  presses += 1;
  document.body.dataset.shortcutPresses = String(presses);
  event.preventDefault();
  event.stopPropagation();
}, true);

export { config };
