"""The score engine: worked examples of the reference, every item, every rule, properties."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weeke_pipeline.scoring import Form, ScoringError, load_form, score_items

WEEKE = load_form("weeke-consensus-2025")
BARKOVICH = load_form("barkovich-1998")


def _entry(item_id: str, extent: int, laterality: int | None = None) -> dict[str, Any]:
    return {"items": {item_id: {"extent": extent} if laterality is None
                      else {"extent": extent, "laterality": laterality}}}


def _all_at(form: Form, which: str) -> dict[str, Any]:
    """Every item at its maximum ('max') or at 0 ('zero')."""
    items: dict[str, Any] = {}
    for it in form.items:
        if which == "zero":
            items[it.id] = {"extent": 0}
        else:
            items[it.id] = ({"extent": it.max_extent, "laterality": 2} if it.lateralised
                            else {"extent": it.max_extent})
    return {"items": items}


# ---------------------------------------------------------------------------- worked examples

@pytest.mark.parametrize(("extent", "laterality", "score"), [
    (1, 2, 3),  # focal, bilateral
    (2, 1, 3),  # extensive, unilateral
    (2, 2, 4),  # extensive, bilateral
    (1, 1, 2),
    (0, None, 0),
])
def test_thalamus_worked_examples(extent: int, laterality: int | None, score: int) -> None:
    r = score_items(WEEKE, _entry("gm_thalamus", extent, laterality))
    assert r.items["gm_thalamus"].score == score
    assert r.subscores["grey_matter"] == score and r.total == score


def test_hippocampus_unilateral_is_2_and_corpus_callosum_is_1() -> None:
    r = score_items(WEEKE, {"items": {"gm_hippocampus": {"extent": 1, "laterality": 1},
                                      "wm_corpus_callosum": {"extent": 1}}})
    assert r.items["gm_hippocampus"].score == 2
    assert r.items["wm_corpus_callosum"].score == 1
    assert r.items["wm_corpus_callosum"].laterality is None
    assert r.subscores == {"grey_matter": 2, "white_matter_cortex": 1, "cerebellum": 0,
                           "additional": 0}
    assert r.total == 3


def test_bilateral_extensive_deep_grey_and_absent_plic_is_12() -> None:
    payload = _all_at(WEEKE, "zero")
    for item_id in ("gm_basal_ganglia", "gm_thalamus", "gm_plic"):
        payload["items"][item_id] = {"extent": 2, "laterality": 2}
    r = score_items(WEEKE, payload)
    assert r.subscores["grey_matter"] == 12
    assert r.total == 12 and r.complete and r.missing == [] and r.not_assessable == []


def test_all_items_at_maximum_is_23_21_8_4_total_56() -> None:
    r = score_items(WEEKE, _all_at(WEEKE, "max"))
    assert r.subscores == {"grey_matter": 23, "white_matter_cortex": 21, "cerebellum": 8,
                           "additional": 4}
    assert r.total == 56 and r.complete
    assert all(r.subscores_complete.values())


def test_normal_read_is_a_complete_zero() -> None:
    r = score_items(WEEKE, _all_at(WEEKE, "zero"))
    assert r.total == 0 and r.complete
    assert all(s.laterality == 0 for k, s in r.items.items() if WEEKE.item(k).lateralised)


# ---------------------------------------------------------------------------- every item

@pytest.mark.parametrize("item", WEEKE.items, ids=lambda it: it.id)
def test_every_item_scores_every_allowed_value_into_its_subscore(item: Any) -> None:
    laterality_values = (1, 2) if item.lateralised else (None,)
    for extent in range(1, item.max_extent + 1):
        for lat in laterality_values:
            r = score_items(WEEKE, _entry(item.id, extent, lat))
            expected = extent + (lat or 0)
            assert r.items[item.id].score == expected
            assert r.subscores[item.subscore] == expected == r.total
            assert expected <= item.max_score
    r = score_items(WEEKE, _entry(item.id, item.max_extent, 2 if item.lateralised else None))
    assert r.items[item.id].score == item.max_score
    with pytest.raises(ScoringError, match="out of range") as exc:
        score_items(WEEKE, _entry(item.id, item.max_extent + 1, 1 if item.lateralised else None))
    assert exc.value.item == item.id


@pytest.mark.parametrize(("item_id", "extent", "score"), [("bg_score", 3, 3), ("w_score", 5, 5)])
def test_barkovich_single_choice_items(item_id: str, extent: int, score: int) -> None:
    r = score_items(BARKOVICH, _entry(item_id, extent))
    assert r.items[item_id].score == score and not r.complete
    with pytest.raises(ScoringError, match="not lateralised"):
        score_items(BARKOVICH, _entry(item_id, extent, 1))


# ---------------------------------------------------------------------------- every rule

@pytest.mark.parametrize(("items", "item", "message"), [
    ({"gm_thalamic": {"extent": 1, "laterality": 1}}, "gm_thalamic", "unknown item 'gm_thalamic'"),
    ({"gm_thalamus": {"extent": 3, "laterality": 1}}, "gm_thalamus", "extent 3 out of range"),
    ({"gm_thalamus": {"extent": -1}}, "gm_thalamus", "extent -1 out of range"),
    ({"gm_hippocampus": {"extent": 2, "laterality": 2}}, "gm_hippocampus", "extent 2 out of range"),
    ({"gm_thalamus": {"extent": 1.0, "laterality": 1}}, "gm_thalamus",
     "extent must be an integer, got 1.0"),
    ({"gm_thalamus": {"extent": "1", "laterality": 1}}, "gm_thalamus",
     "extent must be an integer, got '1'"),
    ({"add_ivh": {"extent": True}}, "add_ivh", "extent must be an integer, got True"),
    ({"gm_thalamus": {"laterality": 1}}, "gm_thalamus", "extent missing"),
    ({"gm_thalamus": {"extent": 1}}, "gm_thalamus", "laterality missing"),
    ({"gm_thalamus": {"extent": 1, "laterality": None}}, "gm_thalamus", "laterality missing"),
    ({"gm_thalamus": {"extent": 0, "laterality": 1}}, "gm_thalamus",
     "laterality given (1) but extent is 0"),
    ({"gm_thalamus": {"extent": 0, "laterality": 2}}, "gm_thalamus",
     "laterality given (2) but extent is 0"),
    ({"wm_corpus_callosum": {"extent": 1, "laterality": 2}}, "wm_corpus_callosum",
     "not lateralised"),
    ({"add_csvt": {"extent": 0, "laterality": 0}}, "add_csvt", "not lateralised"),
    ({"gm_thalamus": {"extent": 1, "laterality": 3}}, "gm_thalamus",
     "laterality must be 1 or 2"),
    ({"gm_thalamus": {"extent": 1, "laterality": 0}}, "gm_thalamus",
     "laterality must be 1 or 2"),
    ({"gm_thalamus": {"extent": 1, "laterality": "left"}}, "gm_thalamus",
     "laterality must be 1 or 2"),
    ({"gm_thalamus": {"extent": 1, "laterality": True}}, "gm_thalamus",
     "laterality must be 1 or 2"),
    ({"gm_hippocampus": {"assessable": False}}, "gm_hippocampus", "without a reason"),
    ({"gm_hippocampus": {"assessable": False, "reason": "  "}}, "gm_hippocampus",
     "without a reason"),
    ({"gm_hippocampus": {"assessable": False, "reason": "motion", "extent": 0}},
     "gm_hippocampus", "not assessable but also given an extent"),
    ({"gm_hippocampus": {"assessable": "no", "reason": "motion"}}, "gm_hippocampus",
     "'assessable' must be true or false"),
    ({"gm_hippocampus": {"extent": 0, "reason": "motion"}}, "gm_hippocampus",
     "reason is only recorded for a not-assessable item"),
    ({"gm_thalamus": {"extent": 1, "lateralty": 1}}, "gm_thalamus",
     "unexpected field(s) 'lateralty'"),
    ({"gm_thalamus": 3}, "gm_thalamus", "expected an object"),
])
def test_invalid_items_refused_naming_the_item(items: dict[str, Any], item: str,
                                               message: str) -> None:
    with pytest.raises(ScoringError) as exc:
        score_items(WEEKE, {"items": items})
    assert exc.value.item == item
    assert message in str(exc.value)
    assert f"item {item!r}" in str(exc.value)
    assert isinstance(exc.value, ValueError)


@pytest.mark.parametrize("payload", [None, [], {"itmes": {}}, {"items": []}])
def test_payload_without_an_items_object_refused(payload: Any) -> None:
    with pytest.raises(ScoringError, match=r'\{"items"') as exc:
        score_items(WEEKE, payload)
    assert exc.value.item is None


def test_zero_laterality_with_zero_extent_is_the_not_applicable_code() -> None:
    r = score_items(WEEKE, {"items": {"gm_thalamus": {"extent": 0, "laterality": 0}}})
    assert (r.items["gm_thalamus"].laterality, r.items["gm_thalamus"].score) == (0, 0)


def test_explicitly_assessable_item_scores_normally() -> None:
    r = score_items(WEEKE, {"items": {"gm_plic": {"extent": 2, "laterality": 1,
                                                  "assessable": True, "reason": None}}})
    assert r.items["gm_plic"].score == 3 and r.items["gm_plic"].assessable


# ---------------------------------------------------------------------------- completeness

def test_not_assessable_item_makes_its_subscore_and_total_incomplete() -> None:
    payload = _all_at(WEEKE, "max")
    payload["items"]["gm_hippocampus"] = {"assessable": False, "reason": "DWI pseudo-normalised"}
    r = score_items(WEEKE, payload)
    assert r.subscores["grey_matter"] == 20  # the scored items only, flagged incomplete
    assert r.subscores_complete == {"grey_matter": False, "white_matter_cortex": True,
                                    "cerebellum": True, "additional": True}
    assert r.total == 53 and not r.complete
    assert r.missing == []
    assert r.not_assessable == [{"item": "gm_hippocampus", "reason": "DWI pseudo-normalised"}]
    d = r.as_dict()
    assert d["items"]["gm_hippocampus"] == {"extent": None, "laterality": None, "score": None,
                                            "assessable": False,
                                            "reason": "DWI pseudo-normalised"}


def test_items_left_out_are_missing_not_zero() -> None:
    r = score_items(WEEKE, {"items": {}})
    assert r.missing == [it.id for it in WEEKE.items]
    assert r.total == 0 and not r.complete and not any(r.subscores_complete.values())
    assert r.items == {}
    payload = _all_at(WEEKE, "zero")
    del payload["items"]["add_csvt"]
    r = score_items(WEEKE, payload)
    assert r.missing == ["add_csvt"] and not r.complete
    assert not r.subscores_complete["additional"] and r.subscores_complete["cerebellum"]


def test_contract_example_result_shape() -> None:
    """The example payload of docs/scoring.md and the result keys the reading app reads."""
    payload = {"items": {"gm_thalamus": {"extent": 1, "laterality": 2},
                         "wm_corpus_callosum": {"extent": 1},
                         "gm_hippocampus": {"assessable": False, "reason": "motion"}},
               "sequences_available": ["T1w", "T2w"]}  # other top-level keys are ignored
    d = score_items(WEEKE, payload).as_dict()
    assert d["form"] == {"id": "weeke-consensus-2025", "version": "1.0.0"}
    assert list(d["items"]) == ["gm_thalamus", "gm_hippocampus", "wm_corpus_callosum"]
    assert d["items"]["gm_thalamus"] == {"extent": 1, "laterality": 2, "score": 3,
                                         "assessable": True, "reason": None}
    assert d["subscores"] == {"grey_matter": 3, "white_matter_cortex": 1, "cerebellum": 0,
                              "additional": 0}
    assert set(d) == {"form", "items", "subscores", "subscores_complete", "total", "complete",
                      "missing", "not_assessable"}
    assert d["total"] == 4 and d["complete"] is False
    assert d["not_assessable"] == [{"item": "gm_hippocampus", "reason": "motion"}]
    assert len(d["missing"]) == 14


# ---------------------------------------------------------------------------- properties

@st.composite
def item_sets(draw: st.DrawFn, form: Form) -> dict[str, Any]:
    """Any valid item set: each item scored, not assessable, or left out."""
    items: dict[str, Any] = {}
    for it in form.items:
        kind = draw(st.sampled_from(["scored", "scored", "scored", "not_assessable", "missing"]))
        if kind == "missing":
            continue
        if kind == "not_assessable":
            items[it.id] = {"assessable": False, "reason": draw(st.text(min_size=1).filter(
                str.strip))}
            continue
        extent = draw(st.integers(0, it.max_extent))
        entry: dict[str, Any] = {"extent": extent}
        if it.lateralised and extent > 0:
            entry["laterality"] = draw(st.sampled_from([1, 2]))
        items[it.id] = entry
    return {"items": items}


@pytest.mark.parametrize("form", [WEEKE, BARKOVICH], ids=lambda f: f.id)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_totals_add_up_and_items_stay_within_their_maxima(form: Form, data: st.DataObject) -> None:
    payload = data.draw(item_sets(form))
    r = score_items(form, payload)
    scored = {k: v.score for k, v in r.items.items() if v.assessable}
    assert r.total == sum(r.subscores.values()) == sum(s for s in scored.values() if s is not None)
    for sub in form.subscores:
        assert 0 <= r.subscores[sub.id] <= sub.max
    for item_id, s in r.items.items():
        item = form.item(item_id)
        if s.assessable:
            assert s.score is not None and 0 <= s.score <= item.max_score
            assert s.score == s.extent + (s.laterality or 0)
        else:
            assert s.score is None and s.reason
    assert 0 <= r.total <= form.total_max
    unscored = set(r.missing) | {d["item"] for d in r.not_assessable}
    assert r.complete == (not unscored)
    for sub in form.subscores:
        assert r.subscores_complete[sub.id] == all(
            it.id not in unscored for it in form.items_of(sub.id))
