"""Hanging protocols and reader preferences of the reading page.

A hanging protocol (``scoring_forms/hanging_protocols/<id>/<version>.yaml``, checked against
``scoring_forms/schema/hanging_protocol.schema.json``) is data: the viewer order of the
sequences, the layouts a reader can switch between (all sequences side by side in one plane,
the focused sequence in three planes, the focused sequence alone), window/level presets per
sequence and the idle threshold of the reading-time clock. The study picks one (study setting
``hanging_protocol``, default :data:`DEFAULT_PROTOCOL`), as OHIF and Weasis let a site define
hanging protocols without touching the viewer's code.

A reader's own choices (the layout last used, key bindings) are
:class:`~weeke_pipeline.reading.models.ReaderPreference`; :func:`keymap` merges them over
:data:`DEFAULT_KEYS`.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

DEFAULT_PROTOCOL = "neonatal-hie@1.0.0"

#: action -> default key (KeyboardEvent.key; "Shift+" prefix for shifted letters/Enter).
#: Form zone: move between items, score, save, sign. Viewer zone: slices, window/level, zoom,
#: layout. ``zone`` toggles between them from anywhere (the viewer never keeps the keyboard).
DEFAULT_KEYS: dict[str, str] = {
    "zone": "`",
    "next_item": "j", "prev_item": "k",
    "extent_0": "0", "extent_1": "1", "extent_2": "2",
    "unilateral": "u", "bilateral": "b",
    "not_assessable": "n",
    "save": "s", "sign": "Shift+Enter",
    "next_case": "Shift+N",
    "slice_up": "ArrowUp", "slice_down": "ArrowDown",
    "slice_up_5": "PageUp", "slice_down_5": "PageDown",
    "preset_next": "w",
    "window_narrow": "[", "window_widen": "]",
    "level_down": ";", "level_up": "'",
    "zoom_in": "+", "zoom_out": "-", "reset_view": "r",
    "layout_next": "l", "three_plane": "t", "single": "f",
    "focus_next_sequence": "v",
}
#: what each action does, shown on the page
KEY_HELP: dict[str, str] = {
    "zone": "switch between form and images",
    "next_item": "next item", "prev_item": "previous item",
    "extent_0": "extent 0", "extent_1": "extent 1", "extent_2": "extent 2",
    "unilateral": "unilateral", "bilateral": "bilateral",
    "not_assessable": "not assessable (type the reason, Enter)",
    "save": "save now", "sign": "sign (password, Enter)",
    "next_case": "next case (after signing)",
    "slice_up": "slice up", "slice_down": "slice down",
    "slice_up_5": "5 slices up", "slice_down_5": "5 slices down",
    "preset_next": "next window/level preset",
    "window_narrow": "narrower window (Shift: fine)", "window_widen": "wider window (Shift: fine)",
    "level_down": "lower level (Shift: fine)", "level_up": "higher level (Shift: fine)",
    "zoom_in": "zoom in", "zoom_out": "zoom out", "reset_view": "reset zoom, pan, window",
    "layout_next": "next layout", "three_plane": "three planes of the focused sequence",
    "single": "focused sequence full size", "focus_next_sequence": "focus the next sequence",
}
_KEY = re.compile(r"^(Shift\+|Alt\+)?([!-~]|Enter|Escape|Tab|Backspace|Delete|Home|End|PageUp|"
                  r"PageDown|Arrow(Up|Down|Left|Right)|F([1-9]|1[0-2])|Space)$")
#: keys the browser or the password box need: never bindable
RESERVED = {"Escape", "Backspace", "Delete"}


class ProtocolError(ValueError):
    """A hanging protocol or key binding that cannot be used (the message names it)."""


def protocols_root() -> Path:
    from weeke_pipeline.resources import data_dir

    return data_dir("scoring_forms") / "hanging_protocols"


@functools.lru_cache(maxsize=8)
def load_protocol(ref: str = DEFAULT_PROTOCOL) -> dict[str, Any]:
    """The protocol ``id@version`` as a dict, validated against the schema."""
    import jsonschema
    import yaml

    pid, _, version = ref.partition("@")
    path = protocols_root() / pid / f"{version}.yaml"
    if not version or not path.is_file():
        known = sorted(f"{p.parent.name}@{p.stem}" for p in protocols_root().glob("*/*.yaml"))
        raise ProtocolError(f"unknown hanging protocol {ref!r} (known: {', '.join(known)})")
    data = yaml.safe_load(path.read_text())
    schema = json.loads((protocols_root().parent / "schema" /
                         "hanging_protocol.schema.json").read_text())
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise ProtocolError(f"{path}: {where}: {exc.message}") from exc
    if (data["id"], data["version"]) != (pid, version):
        raise ProtocolError(f"{path}: id/version inside ({data['id']}@{data['version']}) "
                            "differ from the file name")
    layouts = [lay["id"] for lay in data["layouts"]]
    if data["default_layout"] not in layouts:
        raise ProtocolError(f"{path}: default_layout {data['default_layout']!r} is not one of "
                            f"{layouts}")
    return data


def check_keys(keys: Any) -> dict[str, str]:
    """A reader's key bindings (action -> key) after checks: known actions, valid keys, no key
    bound twice once merged with the defaults."""
    if not isinstance(keys, dict):
        raise ProtocolError("key bindings must be an object {action: key}")
    unknown = sorted(set(keys) - set(DEFAULT_KEYS))
    if unknown:
        raise ProtocolError(f"unknown action(s) {', '.join(map(str, unknown))}")
    for action, key in keys.items():
        if not isinstance(key, str) or not _KEY.match(key) or key in RESERVED:
            raise ProtocolError(f"{action}: {key!r} is not a key that can be bound "
                                "(a printable character, Enter, Tab, arrows, PageUp/PageDown, "
                                "F1-F12, optionally with Shift+ or Alt+)")
    merged = {**DEFAULT_KEYS, **keys}
    seen: dict[str, str] = {}
    for action, key in merged.items():
        if key in seen:
            raise ProtocolError(f"{key!r} is bound to both {seen[key]} and {action}")
        seen[key] = action
    return dict(keys)


def keymap(custom: dict[str, str] | None) -> dict[str, str]:
    """The reader's effective bindings: defaults overridden by their own."""
    return {**DEFAULT_KEYS, **(custom or {})}
