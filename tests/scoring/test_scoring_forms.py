"""Scoring form definitions: the shipped forms, the frozen registry, broken definitions refused."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from weeke_pipeline.resources import data_dir
from weeke_pipeline.scoring import (
    FormError,
    file_sha256,
    freeze,
    list_forms,
    load_form,
    load_form_file,
    load_frozen,
)
from weeke_pipeline.scoring.forms import _definition_files

FORMS = data_dir("scoring_forms")
WEEKE = "weeke-consensus-2025"
REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "weeke_score.md"

# The 2025 consensus table (shared/reference/weeke_score.md), transcribed independently of the
# YAML: id -> (subscore, lateralised, highest extent, item max, sequences).
WEEKE_TABLE: dict[str, tuple[str, bool, int, int, tuple[str, ...]]] = {
    "gm_thalamus": ("grey_matter", True, 2, 4, ("T1w", "T2w", "DWI")),
    "gm_basal_ganglia": ("grey_matter", True, 2, 4, ("T1w", "T2w", "DWI")),
    "gm_plic": ("grey_matter", True, 2, 4, ("T1w", "T2w", "DWI")),
    "gm_brainstem": ("grey_matter", True, 2, 4, ("T1w", "T2w", "DWI")),
    "gm_perirolandic": ("grey_matter", True, 2, 4, ("DWI",)),
    "gm_hippocampus": ("grey_matter", True, 1, 3, ("DWI",)),
    "wm_cortex": ("white_matter_cortex", True, 2, 4, ("T1w", "T2w", "DWI")),
    "wm_white_matter": ("white_matter_cortex", True, 2, 4, ("T1w", "T2w", "DWI")),
    "wm_pwml": ("white_matter_cortex", True, 2, 4, ("T1w", "T2w", "DWI", "SWI")),
    "wm_haemorrhage": ("white_matter_cortex", True, 2, 4, ("T1w", "T2w", "SWI")),
    "wm_optic_radiation": ("white_matter_cortex", True, 2, 4, ("DWI",)),
    "wm_corpus_callosum": ("white_matter_cortex", False, 1, 1, ("DWI",)),
    "cb_cerebellum": ("cerebellum", True, 2, 4, ("T1w", "T2w", "DWI")),
    "cb_haemorrhage": ("cerebellum", True, 2, 4, ("T1w", "T2w", "DWI")),
    "add_ivh": ("additional", False, 1, 1, ("T1w", "T2w", "SWI")),
    "add_sdh": ("additional", False, 1, 1, ("T1w", "T2w", "SWI")),
    "add_csvt": ("additional", False, 2, 2, ("T1w", "T2w", "MRV")),
}


# ---------------------------------------------------------------------------- shipped forms

def test_list_forms_finds_both_shipped_definitions() -> None:
    forms = list_forms()
    assert (WEEKE, "1.0.0") in forms
    assert ("barkovich-1998", "1.0.0") in forms


def test_weeke_form_matches_the_consensus_table() -> None:
    form = load_form(WEEKE)
    assert (form.id, form.version) == (WEEKE, "1.0.0")
    assert [it.id for it in form.items] == list(WEEKE_TABLE)
    for item in form.items:
        subscore, lateralised, max_extent, item_max, sequences = WEEKE_TABLE[item.id]
        assert item.subscore == subscore, item.id
        assert item.lateralised is lateralised, item.id
        assert item.max_extent == max_extent, item.id
        assert [e.value for e in item.extents] == list(range(max_extent + 1)), item.id
        assert item.max_score == item_max, item.id
        assert item.sequences == sequences, item.id
        assert all(e.label for e in item.extents) and item.label
    assert {s.id: s.max for s in form.subscores} == {
        "grey_matter": 23, "white_matter_cortex": 21, "cerebellum": 8, "additional": 4}
    assert form.total_max == 56


def _reference_rows() -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in REFERENCE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and re.fullmatch(r"(gm|wm|cb|add)_[a-z_]+", cells[0]):
            rows[cells[0]] = cells
    return rows


def test_weeke_form_matches_the_reference_file_verbatim() -> None:
    """Extent meanings, laterality and item maxima against the reference table itself."""
    if not REFERENCE.is_file():
        pytest.skip(f"reference table not found at {REFERENCE}")
    rows = _reference_rows()
    form = load_form(WEEKE)
    assert list(rows) == [it.id for it in form.items]
    for item in form.items:
        _, _, _, _, e0, e1, e2, lateral, item_max = rows[item.id]
        labels = [e.label for e in item.extents]
        expected = [e0, e1] + ([] if e2 == "-" else [e2])
        norm = [re.sub(r"\bDR\b", "diffusion restriction", x) for x in expected]
        assert labels == norm, item.id
        assert item.lateralised is (lateral == "yes"), item.id
        assert item.max_score == int(item_max), item.id


def test_barkovich_form_expresses_single_choice_scores() -> None:
    form = load_form("barkovich-1998")
    assert {s.id: s.max for s in form.subscores} == {"basal_ganglia": 4, "watershed": 5}
    assert [(it.id, it.max_extent, it.lateralised) for it in form.items] == [
        ("bg_score", 4, False), ("w_score", 5, False)]


def test_as_dict_is_json_and_carries_what_the_web_form_needs() -> None:
    form = load_form(WEEKE)
    d = json.loads(json.dumps(form.as_dict()))
    assert d["id"] == WEEKE and d["version"] == "1.0.0" and d["sha256"] == form.sha256
    assert d["laterality"] == [{"value": 1, "label": "unilateral"},
                               {"value": 2, "label": "bilateral"}]
    thal = d["items"][0]
    assert set(thal) >= {"id", "subscore", "label", "lateralised", "extents", "max_extent",
                         "max_score", "sequences", "help"}
    assert form.item("gm_thalamus").label == thal["label"]
    with pytest.raises(KeyError, match="gm_nope"):
        form.item("gm_nope")


def test_unknown_form_or_version_is_refused_with_the_alternatives() -> None:
    with pytest.raises(FormError, match=r"unknown form 'weeke-1999'.*weeke-consensus-2025"):
        load_form("weeke-1999")
    with pytest.raises(FormError, match=r"no version '9\.9\.9'.*1\.0\.0"):
        load_form(WEEKE, "9.9.9")


# ---------------------------------------------------------------------------- frozen versions

def test_every_released_version_still_matches_its_hash() -> None:
    """A released definition is frozen: editing it fails here (make a new version instead)."""
    released = load_frozen()
    files = _definition_files(FORMS)
    assert released[WEEKE]["1.0.0"] and released["barkovich-1998"]["1.0.0"]
    for form_id, versions in released.items():
        for version, sha in versions.items():
            path = files[(form_id, version)]
            assert file_sha256(path) == sha, (
                f"{path} changed after release; restore it and put the change in a new version")
            assert load_form(form_id, version).released


def _write_tree(root: Path, form_id: str, version: str, text: str, suffix: str = ".yaml") -> Path:
    path = root / form_id / f"{version}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_changed_released_version_is_refused_at_load_and_a_new_version_works(
        tmp_path: Path) -> None:
    text = (FORMS / WEEKE / "1.0.0.yaml").read_text(encoding="utf-8")
    _write_tree(tmp_path, WEEKE, "1.0.0", text)
    assert freeze(WEEKE, "1.0.0", forms_dir=tmp_path) == load_form(WEEKE).sha256
    edited = text.replace("help: Score the deepest", "help: Score only the deepest")
    _write_tree(tmp_path, WEEKE, "1.0.0", edited)
    with pytest.raises(FormError, match=r"1\.0\.0\.yaml: .*released with sha256.*new version"):
        load_form(WEEKE, "1.0.0", forms_dir=tmp_path)
    # the change as a new (draft) version loads, and becomes the latest
    _write_tree(tmp_path, WEEKE, "1.1.0", edited.replace("version: 1.0.0", "version: 1.1.0"))
    latest = load_form(WEEKE, forms_dir=tmp_path)
    assert (latest.version, latest.released) == ("1.1.0", False)


# ---------------------------------------------------------------------------- broken definitions

def _weeke_doc() -> dict[str, Any]:
    return yaml.safe_load((FORMS / WEEKE / "1.0.0.yaml").read_text(encoding="utf-8"))


def _load_broken(tmp_path: Path, doc: dict[str, Any]) -> str:
    path = _write_tree(tmp_path, doc["id"], doc["version"], yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(FormError) as exc:
        load_form(doc["id"], doc["version"], forms_dir=tmp_path)
    message = str(exc.value)
    assert str(path) in message  # names the file
    return message


def _mutated(change: Any) -> dict[str, Any]:
    doc = copy.deepcopy(_weeke_doc())
    change(doc)
    return doc


def test_a_valid_copy_loads_from_another_folder(tmp_path: Path) -> None:
    doc = _weeke_doc()
    _write_tree(tmp_path, doc["id"], doc["version"], yaml.safe_dump(doc, sort_keys=False))
    form = load_form(WEEKE, forms_dir=tmp_path)
    assert form.total_max == 56 and not form.released


def test_duplicate_item_id_refused(tmp_path: Path) -> None:
    doc = _mutated(lambda d: d["items"].append(copy.deepcopy(d["items"][0])))
    msg = _load_broken(tmp_path, doc)
    assert "duplicate item id 'gm_thalamus'" in msg


def test_item_without_subscore_refused(tmp_path: Path) -> None:
    doc = _mutated(lambda d: d["items"][3].pop("subscore"))
    assert "items[3]: 'subscore' is a required property" in _load_broken(tmp_path, doc)


def test_item_with_unknown_subscore_refused(tmp_path: Path) -> None:
    doc = _mutated(lambda d: d["items"][0].update(subscore="deep_grey"))
    assert "item 'gm_thalamus': unknown subscore 'deep_grey'" in _load_broken(tmp_path, doc)


def test_item_maxima_not_adding_up_to_subscore_max_refused(tmp_path: Path) -> None:
    doc = _mutated(lambda d: d["subscores"][0].update(max=24))
    assert "subscore 'grey_matter': max 24 != sum of its item maxima 23" in _load_broken(
        tmp_path, doc)


def test_subscore_maxima_not_adding_up_to_total_refused(tmp_path: Path) -> None:
    doc = _mutated(lambda d: d.update(total_max=55))
    assert "total_max 55 != sum of subscore maxima 56" in _load_broken(tmp_path, doc)


def test_item_max_inconsistent_with_extents_and_laterality_refused(tmp_path: Path) -> None:
    doc = _mutated(lambda d: d["items"][5].update(max_score=4))  # hippocampus: 1 + 2 = 3
    msg = _load_broken(tmp_path, doc)
    assert "item 'gm_hippocampus': max_score 4 != highest extent 1 + laterality 2 = 3" in msg


def test_extents_not_consecutive_from_zero_refused(tmp_path: Path) -> None:
    doc = _mutated(lambda d: d["items"][0]["extents"][2].update(value=3))
    assert "item 'gm_thalamus': extent values must be 0, 1, ... in order, got [0, 1, 3]" in (
        _load_broken(tmp_path, doc))


def test_duplicate_subscore_and_empty_subscore_refused(tmp_path: Path) -> None:
    doc = _mutated(lambda d: d["subscores"].append({"id": "spare", "label": "x", "max": 0}))
    assert "subscore 'spare' has no items" in _load_broken(tmp_path, doc)
    doc = _mutated(lambda d: d["subscores"].append(dict(d["subscores"][0])))
    assert "duplicate subscore id 'grey_matter'" in _load_broken(tmp_path, doc)


def test_schema_violations_refused_with_their_location(tmp_path: Path) -> None:
    doc = _mutated(lambda d: d["items"][1].update(lateralised="yes", sequences=["CT"]))
    msg = _load_broken(tmp_path, doc)
    assert "items[1].lateralised: 'yes' is not of type 'boolean'" in msg
    assert "items[1].sequences[0]: 'CT' is not one of" in msg
    doc = _mutated(lambda d: d.update(colour="red"))
    assert "Additional properties are not allowed ('colour'" in _load_broken(tmp_path, doc)


def test_file_name_must_match_id_and_version(tmp_path: Path) -> None:
    doc = _weeke_doc()
    path = _write_tree(tmp_path, WEEKE, "1.0.1", yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(FormError, match=r"file must be weeke-consensus-2025/1\.0\.0\.yaml"):
        load_form_file(path)


def test_duplicate_yaml_key_and_bad_syntax_refused(tmp_path: Path) -> None:
    text = (FORMS / WEEKE / "1.0.0.yaml").read_text(encoding="utf-8")
    dup = text.replace("    max_score: 3\n", "    max_score: 3\n    max_score: 4\n")
    path = _write_tree(tmp_path, WEEKE, "1.0.0", dup)
    with pytest.raises(FormError, match=r"\.yaml: not valid YAML.*duplicate key 'max_score'"):
        load_form_file(path)
    path = _write_tree(tmp_path, WEEKE, "1.0.0", "items: [\n")
    with pytest.raises(FormError, match="not valid YAML"):
        load_form_file(path)


def test_json_definitions_load_and_duplicate_json_keys_refused(tmp_path: Path) -> None:
    doc = _weeke_doc()
    path = _write_tree(tmp_path, WEEKE, "1.0.0", json.dumps(doc), suffix=".json")
    assert load_form_file(path).total_max == 56
    path.write_text('{"format": 1, "format": 1}', encoding="utf-8")
    with pytest.raises(FormError, match="not valid JSON: duplicate key 'format'"):
        load_form_file(path)


def test_same_version_in_two_formats_refused(tmp_path: Path) -> None:
    text = (FORMS / WEEKE / "1.0.0.yaml").read_text(encoding="utf-8")
    _write_tree(tmp_path, WEEKE, "1.0.0", text)
    _write_tree(tmp_path, WEEKE, "1.0.0", json.dumps(_weeke_doc()), suffix=".json")
    with pytest.raises(FormError, match="defined twice"):
        load_form(WEEKE, forms_dir=tmp_path)
