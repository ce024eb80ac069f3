"""Scoring form definitions: find, load, validate, freeze.

A definition is one YAML or JSON file ``scoring_forms/<form id>/<version>.(yaml|json)``. It is
checked in two passes, both at load time:

1. the JSON Schema ``scoring_forms/schema/form.schema.json`` (structure, types, allowed values),
   with jsonschema;
2. semantic checks the schema cannot express: unique subscore and item ids, every item's subscore
   declared, extents 0, 1, ..., n in order, item max = highest extent (+ 2 when lateralised),
   subscore max = sum of its item maxima, declared total = sum of subscore maxima, and the file
   named after the form's id and version.

Released versions are frozen: ``scoring_forms/frozen.json`` records the sha256 of each released
file, and a released file whose content no longer matches is refused (a change needs a new
version). Every read stores the form id, version and sha256 it was scored with.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: laterality codes of a lateralised item with extent > 0 (0 = not applicable, extent 0)
LATERALITY: dict[int, str] = {1: "unilateral", 2: "bilateral"}
#: file extensions a definition may have
DEFINITION_SUFFIXES = (".yaml", ".yml", ".json")
SCHEMA_RELPATH = Path("schema") / "form.schema.json"
FROZEN_FILENAME = "frozen.json"


class FormError(ValueError):
    """A form that does not exist, or a definition file that is invalid."""


@dataclass(frozen=True)
class Extent:
    """One allowed extent/severity value of an item and its meaning."""

    value: int
    label: str


@dataclass(frozen=True)
class Subscore:
    id: str
    label: str
    max: int


@dataclass(frozen=True)
class Item:
    """One scored item. ``max_score`` = ``max_extent`` (+ 2 when ``lateralised``)."""

    id: str
    subscore: str
    label: str
    lateralised: bool
    extents: tuple[Extent, ...]
    max_extent: int
    max_score: int
    sequences: tuple[str, ...]
    help: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "subscore": self.subscore, "label": self.label,
            "lateralised": self.lateralised,
            "extents": [{"value": e.value, "label": e.label} for e in self.extents],
            "max_extent": self.max_extent, "max_score": self.max_score,
            "sequences": list(self.sequences), "help": self.help,
        }


@dataclass(frozen=True)
class Form:
    """One version of a scoring form, validated."""

    id: str
    version: str
    title: str
    total_max: int
    subscores: tuple[Subscore, ...]
    items: tuple[Item, ...]
    sha256: str
    description: str = ""
    references: tuple[str, ...] = ()
    released: bool = False  # listed in frozen.json (content checked against the recorded hash)
    path: Path | None = field(default=None, compare=False)

    def item(self, item_id: str) -> Item:
        """The item ``item_id``; KeyError naming the form when there is none."""
        for it in self.items:
            if it.id == item_id:
                return it
        raise KeyError(f"form {self.id} {self.version} has no item {item_id!r}")

    def subscore(self, subscore_id: str) -> Subscore:
        for sub in self.subscores:
            if sub.id == subscore_id:
                return sub
        raise KeyError(f"form {self.id} {self.version} has no subscore {subscore_id!r}")

    def items_of(self, subscore_id: str) -> tuple[Item, ...]:
        return tuple(it for it in self.items if it.subscore == subscore_id)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable definition (what the reading app renders the form from)."""
        return {
            "id": self.id, "version": self.version, "title": self.title,
            "description": self.description, "references": list(self.references),
            "sha256": self.sha256, "released": self.released, "total_max": self.total_max,
            "laterality": [{"value": v, "label": lab} for v, lab in LATERALITY.items()],
            "subscores": [{"id": s.id, "label": s.label, "max": s.max} for s in self.subscores],
            "items": [it.as_dict() for it in self.items],
        }


# --------------------------------------------------------------------------- locating files

def forms_root(forms_dir: str | Path | None = None) -> Path:
    """The folder holding the definitions (default: the shipped ``scoring_forms/``)."""
    if forms_dir is not None:
        return Path(forms_dir)
    from weeke_pipeline.resources import data_dir

    return data_dir("scoring_forms")


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (-1,)


def _definition_files(root: Path) -> dict[tuple[str, str], Path]:
    """(form id, version) -> file, from the ``<id>/<version>.<ext>`` layout."""
    found: dict[tuple[str, str], Path] = {}
    if not root.is_dir():
        raise FormError(f"scoring forms folder {root} does not exist")
    for path in sorted(root.glob("*/*")):
        if path.suffix not in DEFINITION_SUFFIXES or path.parent.name == "schema":
            continue
        key = (path.parent.name, path.stem)
        if key in found:
            raise FormError(f"form {key[0]} version {key[1]} is defined twice: "
                            f"{found[key]} and {path}")
        found[key] = path
    return found


def list_forms(forms_dir: str | Path | None = None) -> list[tuple[str, str]]:
    """(form id, version) of every definition, sorted by id then version."""
    keys = _definition_files(forms_root(forms_dir))
    return sorted(keys, key=lambda k: (k[0], _version_key(k[1])))


def load_form(form_id: str, version: str | None = None, *,
              forms_dir: str | Path | None = None) -> Form:
    """Load and validate form ``form_id`` at ``version`` (the latest when None)."""
    root = forms_root(forms_dir)
    files = _definition_files(root)
    versions = sorted((v for (fid, v) in files if fid == form_id), key=_version_key)
    if not versions:
        known = ", ".join(sorted({fid for fid, _ in files})) or "none"
        raise FormError(f"unknown form {form_id!r} (known forms: {known})")
    if version is None:
        version = versions[-1]
    if (form_id, version) not in files:
        raise FormError(f"form {form_id!r} has no version {version!r} "
                        f"(versions: {', '.join(versions)})")
    return load_form_file(files[(form_id, version)], frozen=load_frozen(root))


# --------------------------------------------------------------------------- frozen registry

def load_frozen(forms_dir: str | Path | None = None) -> dict[str, dict[str, str]]:
    """``{form id: {version: sha256}}`` of released versions (empty when no frozen.json)."""
    path = forms_root(forms_dir) / FROZEN_FILENAME
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        released = doc["released"]
        assert isinstance(released, dict)
        return {str(k): {str(v): str(h) for v, h in vs.items()} for k, vs in released.items()}
    except (ValueError, KeyError, AssertionError, AttributeError) as exc:
        raise FormError(f"{path}: not a valid frozen-version registry (expected "
                        f"{{\"released\": {{form: {{version: sha256}}}}}}): {exc}") from None


def file_sha256(path: str | Path) -> str:
    """sha256 of the file's bytes (the hash stored with every read)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def freeze(form_id: str, version: str, *, forms_dir: str | Path | None = None) -> str:
    """Validate a definition and record it as released in frozen.json; returns its sha256.

    Refuses a version already released with different content.
    """
    root = forms_root(forms_dir)
    form = load_form(form_id, version, forms_dir=root)
    registry_path = root / FROZEN_FILENAME
    doc: dict[str, Any] = (json.loads(registry_path.read_text(encoding="utf-8"))
                           if registry_path.is_file() else {})
    doc.setdefault("description", FROZEN_DESCRIPTION)
    released = doc.setdefault("released", {})
    released.setdefault(form_id, {})[version] = form.sha256
    doc["released"] = {k: dict(sorted(v.items(), key=lambda kv: _version_key(kv[0])))
                       for k, v in sorted(released.items())}
    registry_path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return form.sha256


FROZEN_DESCRIPTION = (
    "Released scoring form versions and the sha256 of each definition file. A released version "
    "is frozen: its file must keep this hash (checked when loaded and by the test suite). "
    "Put any change in a new version; add it here with `weeke forms freeze FORM VERSION`."
)


# --------------------------------------------------------------------------- loading one file

class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader (libyaml when built with it) refusing duplicate mapping keys
    (PyYAML silently keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode,
                       deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _no_duplicate_json_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = Counter(k for k, _ in pairs)
    dup = [k for k, n in keys.items() if n > 1]
    if dup:
        raise ValueError(f"duplicate key {dup[0]!r}")
    return dict(pairs)


def _parse(path: Path, raw: bytes) -> Any:
    text = raw.decode("utf-8")
    if path.suffix == ".json":
        return json.loads(text, object_pairs_hook=_no_duplicate_json_keys)
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass


@functools.cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    schema_path = forms_root() / SCHEMA_RELPATH  # always the shipped schema
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _json_path(parts: Any) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out.lstrip(".") or "(top level)"


def _schema_errors(doc: Any) -> list[str]:
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_json_path(e.absolute_path)}: {e.message}" for e in errors]


def _semantic_errors(doc: dict[str, Any], path: Path) -> list[str]:
    """Checks the JSON Schema cannot express (see the module docstring)."""
    errors: list[str] = []
    if path.parent.name != doc["id"] or path.stem != doc["version"]:
        errors.append(f"file must be {doc['id']}/{doc['version']}{path.suffix} "
                      f"(id and version of the definition), not {path.parent.name}/{path.name}")
    sub_ids = [s["id"] for s in doc["subscores"]]
    errors += [f"duplicate subscore id {s!r}" for s, n in Counter(sub_ids).items() if n > 1]
    item_ids = [it["id"] for it in doc["items"]]
    errors += [f"duplicate item id {i!r}" for i, n in Counter(item_ids).items() if n > 1]

    item_max_by_sub: dict[str, int] = dict.fromkeys(sub_ids, 0)
    for it in doc["items"]:
        where = f"item {it['id']!r}"
        if it["subscore"] not in item_max_by_sub:
            errors.append(f"{where}: unknown subscore {it['subscore']!r} "
                          f"(declared: {', '.join(sub_ids)})")
        values = [e["value"] for e in it["extents"]]
        if values != list(range(len(values))):
            errors.append(f"{where}: extent values must be 0, 1, ... in order, got {values}")
        expected = max(values) + (max(LATERALITY) if it["lateralised"] else 0)
        if it["max_score"] != expected:
            errors.append(f"{where}: max_score {it['max_score']} != highest extent {max(values)}"
                          + (" + laterality 2" if it["lateralised"] else "") + f" = {expected}")
        if it["subscore"] in item_max_by_sub:
            item_max_by_sub[it["subscore"]] += it["max_score"]
    for sub in doc["subscores"]:
        got = item_max_by_sub.get(sub["id"], 0)
        if not any(it["subscore"] == sub["id"] for it in doc["items"]):
            errors.append(f"subscore {sub['id']!r} has no items")
        elif got != sub["max"]:
            errors.append(f"subscore {sub['id']!r}: max {sub['max']} != sum of its item "
                          f"maxima {got}")
    sub_sum = sum(s["max"] for s in doc["subscores"])
    if doc["total_max"] != sub_sum:
        errors.append(f"total_max {doc['total_max']} != sum of subscore maxima {sub_sum}")
    return errors


def validate_document(doc: Any, path: Path) -> list[str]:
    """All problems of a parsed definition (empty when valid)."""
    errors = _schema_errors(doc)
    return errors if errors else _semantic_errors(doc, path)


def load_form_file(path: str | Path, *, frozen: dict[str, dict[str, str]] | None = None) -> Form:
    """Load and validate one definition file. ``frozen``: the registry to check it against
    (default: frozen.json beside the file's form folder)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FormError(f"{path}: cannot read form definition: {exc.strerror}") from None
    if frozen is None:
        frozen = load_frozen(path.parent.parent)
    key = (str(path.resolve()), hashlib.sha256(raw).hexdigest(), json.dumps(frozen, sort_keys=True))
    if key not in _FORM_CACHE:  # Form is immutable; re-parse only when the file changed
        _FORM_CACHE[key] = _build_form(path, raw, frozen)
    return _FORM_CACHE[key]


_FORM_CACHE: dict[tuple[str, str, str], Form] = {}


def _build_form(path: Path, raw: bytes, frozen: dict[str, dict[str, str]]) -> Form:
    try:
        doc = _parse(path, raw)
    except (ValueError, yaml.YAMLError) as exc:  # JSON and UTF-8 errors are ValueErrors
        raise FormError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: "
                        f"{exc}") from None
    problems = validate_document(doc, path)
    if problems:
        raise FormError(f"{path}: invalid form definition:\n  - " + "\n  - ".join(problems))

    sha = hashlib.sha256(raw).hexdigest()
    recorded = frozen.get(doc["id"], {}).get(doc["version"])
    if recorded is not None and recorded != sha:
        raise FormError(
            f"{path}: form {doc['id']} version {doc['version']} was released with sha256 "
            f"{recorded} (frozen.json) but the file now hashes to {sha}: a released version is "
            f"frozen; restore it and put the change in a new version")

    items = tuple(
        Item(
            id=it["id"], subscore=it["subscore"], label=it["label"],
            lateralised=it["lateralised"],
            extents=tuple(Extent(e["value"], e["label"]) for e in it["extents"]),
            max_extent=max(e["value"] for e in it["extents"]), max_score=it["max_score"],
            sequences=tuple(it["sequences"]), help=it.get("help", "").strip(),
        )
        for it in doc["items"]
    )
    return Form(
        id=doc["id"], version=doc["version"], title=doc["title"], total_max=doc["total_max"],
        subscores=tuple(Subscore(s["id"], s["label"], s["max"]) for s in doc["subscores"]),
        items=items, sha256=sha, description=doc.get("description", "").strip(),
        references=tuple(r.strip() for r in doc.get("references", ())),
        released=recorded is not None, path=path,
    )
