"""Reads long/wide, consensus, data dictionaries, REDCap export and unblinding summary."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import mannwhitneyu

from weeke_pipeline.analysis import tables as tb
from weeke_pipeline.scoring import load_form, score_items

FORM = load_form("weeke-consensus-2025")


def _rec(code, rn, items, *, kind="read", status="signed", reader=None):
    return {"reading_code": code, "reader": reader or f"R{rn}", "read_number": rn, "kind": kind,
            "form_id": FORM.id, "form_version": FORM.version, "status": status,
            "signed_at": "2026-02-01T10:00:00Z" if status == "signed" else None, "items": items}


def _all_zero():
    return {it.id: {"extent": 0} for it in FORM.items}


def _with(**changes):
    items = _all_zero()
    items.update(changes)
    return items


BGT = _with(gm_thalamus={"extent": 2, "laterality": 2},
            gm_basal_ganglia={"extent": 2, "laterality": 2},
            gm_plic={"extent": 2, "laterality": 2})


@pytest.fixture()
def records():
    na = _with(gm_hippocampus={"assessable": False, "reason": "motion"})
    part = {k: v for k, v in BGT.items() if k != "add_csvt"}  # one item missing (draft)
    return [
        _rec("A01", 1, BGT), _rec("A01", 2, BGT),                       # agree
        _rec("A02", 1, BGT), _rec("A02", 2, _all_zero()),               # disagree, adjudicated
        _rec("A02", 0, _with(gm_thalamus={"extent": 1, "laterality": 1}), kind="adjudication",
             reader="ADJ"),
        _rec("A03", 1, na), _rec("A03", 2, _all_zero()),                # disagree, unresolved
        _rec("A04", 1, part, status="draft"),
    ]


def test_long_has_every_item_and_engine_scores(records):
    long = tb.reads_long_from_records(records)
    assert list(long.columns) == list(tb.READS_LONG_COLUMNS)
    assert len(long) == len(records) * len(FORM.items)
    a01 = long[(long.reading_code == "A01") & (long.read_number == 1)].set_index("item")
    assert a01.loc["gm_thalamus", "item_score"] == 4
    a03 = long[(long.reading_code == "A03") & (long.read_number == 1)].set_index("item")
    assert a03.loc["gm_hippocampus", "item_state"] == "not_assessable"
    assert a03.loc["gm_hippocampus", "reason"] == "motion"
    assert pd.isna(a03.loc["gm_hippocampus", "item_score"])
    a04 = long[long.reading_code == "A04"].set_index("item")
    assert a04.loc["add_csvt", "item_state"] == "missing"


def test_wide_matches_engine_and_round_trips(records):
    long = tb.reads_long_from_records(records)
    wide = tb.reads_wide(long)
    assert list(wide.columns) == tb.wide_columns(FORM)
    for rec in records:
        res = score_items(FORM, {"items": rec["items"]})
        row = wide[(wide.reading_code == rec["reading_code"]) & (wide.kind == rec["kind"])
                   & (wide.read_number == rec["read_number"])].iloc[0]
        assert row["total"] == res.total and bool(row["complete"]) == res.complete
        for sub in FORM.subscores:
            assert row[sub.id] == res.subscores[sub.id]
            assert bool(row[f"{sub.id}_complete"]) == res.subscores_complete[sub.id]
    back = tb.wide_to_long(wide, FORM)
    key = ["reading_code", "kind", "read_number", "reader"]
    expect = long.sort_values(key, kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(back.reset_index(drop=True), expect)
    assert tb.reads_wide(back).equals(wide)


def test_consensus_rules(records):
    cons = tb.consensus(tb.reads_long_from_records(records)).set_index("reading_code")
    assert cons.loc["A01", "consensus_source"] == "agreed"
    assert cons.loc["A01", "grey_matter"] == 12 and cons.loc["A01", "total"] == 12
    assert cons.loc["A02", "consensus_source"] == "adjudicated"
    assert cons.loc["A02", "gm_thalamus_score"] == 2
    assert cons.loc["A03", "consensus_source"] == "unresolved"
    assert pd.isna(cons.loc["A03", "total"])
    assert cons.loc["A04", "consensus_source"] == "unresolved"  # a draft is not a read
    assert cons.loc["A04", "n_reads"] == 0


def test_data_dictionaries_cover_columns_and_write(tmp_path, records):
    long = tb.reads_long_from_records(records)
    p = tb.write_table(long, tmp_path / "reads_long.tsv", tb.reads_long_dictionary(FORM))
    side = json.loads(p.with_suffix(".json").read_text())
    assert set(side) == set(long.columns)
    assert side["item_score"]["Format"] == "integer" and side["item_score"]["Units"] == "points"
    assert "n/a" in p.read_text()  # BIDS missing value
    wide = tb.reads_wide(long)
    tb.write_table(wide, tmp_path / "reads_wide.csv", tb.reads_wide_dictionary(FORM))
    cons = tb.consensus(long)
    d = tb.reads_wide_dictionary(FORM, consensus_table=True)
    assert set(cons.columns) <= set(d)
    assert d["gm_thalamus_ext"]["Levels"]["2"] == "extensive (>=50%)"
    with pytest.raises(ValueError, match="missing from the data dictionary"):
        tb.write_table(long.assign(extra=1), tmp_path / "x.tsv", tb.reads_long_dictionary(FORM))


def test_redcap_export_validates(tmp_path, records):
    cons = tb.consensus(tb.reads_long_from_records(records))
    dd = tb.redcap_data_dictionary(FORM)
    assert list(dd.columns) == list(tb.REDCAP_DD_COLUMNS)
    assert dd.iloc[0]["Variable / Field Name"] == "reading_code"
    names = dd["Variable / Field Name"]
    assert names.str.fullmatch(r"[a-z][a-z0-9_]*").all() and names.is_unique
    recs = tb.redcap_records(cons, FORM)
    assert list(recs.columns) == list(names)
    assert tb.validate_redcap(recs, dd) == []
    row = recs.set_index("reading_code").loc["A02"]
    assert row["consensus_source"] == "1" and row["gm_thalamus_ext"] == "1"
    assert row["gm_thalamus_assess"] == "1"
    bad = recs.copy()
    bad.loc[0, "gm_thalamus_ext"] = "7"
    bad.loc[0, "total"] = "99"
    problems = tb.validate_redcap(bad, dd)
    assert any("gm_thalamus_ext" in p for p in problems) and any("total" in p for p in problems)
    dd.to_csv(tmp_path / "dd.csv", index=False)
    assert pd.read_csv(tmp_path / "dd.csv").columns[0] == "Variable / Field Name"


def _cons_with_totals(gm_a, gm_b):
    recs = []
    for i, gm in enumerate(list(gm_a) + list(gm_b)):
        ext = {0: 0, 1: 1, 2: 1, 3: 2, 4: 2}[min(gm, 4)]
        lat = {0: None, 1: None, 2: 1, 3: 1, 4: 2}[min(gm, 4)]
        items = _all_zero()
        if ext:
            items["gm_thalamus"] = {"extent": ext, "laterality": lat or 0}
            if gm == 1:
                items["gm_thalamus"] = {"extent": 1, "laterality": 0}
        recs += [_rec(f"C{i:02d}", 1, items), _rec(f"C{i:02d}", 2, items)]
    # gm == 1 is not representable by thalamus alone; use corpus callosum-like item instead
    for r in recs:
        t = r["items"]["gm_thalamus"]
        if t.get("laterality") == 0 and t["extent"] == 1:
            r["items"]["gm_thalamus"] = {"extent": 0}
            r["items"]["wm_corpus_callosum"] = {"extent": 1}
    return tb.consensus(tb.reads_long_from_records(recs))


def test_unblinding_summary_and_plots(tmp_path):
    cons = _cons_with_totals([0, 0, 2, 3, 4, 4], [0, 0, 0, 2, 3, 0])
    alloc = pd.DataFrame({"reading_code": cons["reading_code"],
                          "arm": ["MSC"] * 6 + ["placebo"] * 6})
    joined = tb.join_allocation(cons, alloc)
    by_arm, comp = tb.unblinding_summary(joined, FORM, n_boot=500)
    gm = by_arm[(by_arm.score == "grey_matter")].set_index("arm")
    msc = joined.loc[joined.arm == "MSC", "grey_matter"].astype(float).to_numpy()
    pla = joined.loc[joined.arm == "placebo", "grey_matter"].astype(float).to_numpy()
    assert gm.loc["MSC", "median"] == np.median(msc)
    assert gm.loc["MSC", "iqr"] == pytest.approx(np.subtract(*np.percentile(msc, [75, 25])))
    assert gm.loc["placebo", "sd"] == pytest.approx(pla.std(ddof=1))
    prop = by_arm[by_arm.score == "gm_ge3"].set_index("arm")["proportion"]
    assert prop["MSC"] == pytest.approx(np.mean(msc >= 3))
    c = comp.set_index("score").loc["grey_matter"]
    ref = mannwhitneyu(msc, pla, alternative="two-sided")
    assert c["mannwhitney_u"] == ref.statistic and c["p_value"] == pytest.approx(ref.pvalue)
    assert c["median_diff"] == np.median(pla) - np.median(msc)
    assert c["median_diff_ci_low"] <= c["median_diff"] <= c["median_diff_ci_high"]
    again = tb.unblinding_summary(joined, FORM, n_boot=500)[1]
    pd.testing.assert_frame_equal(comp, again)
    paths = tb.unblinding_plots(joined, FORM, tmp_path)
    assert all(p.stat().st_size > 1000 for p in paths)


def test_allocation_must_cover_every_case():
    cons = _cons_with_totals([0, 2], [3])
    alloc = pd.DataFrame({"reading_code": cons["reading_code"][:2], "arm": ["A", "B"]})
    with pytest.raises(ValueError, match="1 case"):
        tb.join_allocation(cons, alloc)
    subj = pd.DataFrame({"reading_code": cons["reading_code"], "subject": ["s1", "s2", "s3"]})
    by_subject = pd.DataFrame({"subject": ["s1", "s2", "s3"], "arm": ["A", "B", "A"]})
    joined = tb.join_allocation(cons, by_subject, subjects=subj)
    assert list(joined["arm"]) == ["A", "B", "A"]
    assert "subject" not in joined.columns  # the export stays pseudonymised


def test_read_allocation_accepts_subjects_and_names_bad_lines(tmp_path):
    p = tmp_path / "alloc.csv"
    p.write_text("participant_id,arm\nsub-01,MSC\n02 , placebo\n")
    a = tb.read_allocation(p)
    assert list(a.columns) == ["subject", "arm"]
    assert list(a["subject"]) == ["01", "02"] and list(a["arm"]) == ["MSC", "placebo"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("reading_code\tarm\nK1\tMSC\nK2\t\n")
    with pytest.raises(ValueError, match=r"bad\.tsv line 3: empty arm"):
        tb.read_allocation(bad)
    bad.write_text("reading_code\tarm\nK1\tMSC\nK1\tplacebo\n")
    with pytest.raises(ValueError, match="line 3: reading_code listed twice"):
        tb.read_allocation(bad)
    bad.write_text("code\tgroup\nK1\tMSC\n")
    with pytest.raises(ValueError, match="needs an 'arm' column"):
        tb.read_allocation(bad)


def test_formula_cells_are_neutralised_numbers_kept(tmp_path) -> None:
    """CSV injection (issue 13): text starting with = + - @ tab CR gets a leading apostrophe."""
    df = pd.DataFrame({"reason": ["=HYPERLINK(\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\r=1",
                                  "-1.5", "+4", "1e-3", "ok - fine", None],
                       "n": [-1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]})
    out = tb.neutralise_formulas(df)
    assert list(out["reason"][:6]) == ["'=HYPERLINK(\"x\")", "'+1+1", "'-2+3", "'@SUM(A1)",
                                       "'\tx", "'\r=1"]
    assert list(out["reason"][6:10]) == ["-1.5", "+4", "1e-3", "ok - fine"]
    assert out["reason"].isna().iloc[-1] and list(out["n"]) == list(df["n"])
    assert df["reason"].iloc[0].startswith("=")  # the caller's frame is not changed
