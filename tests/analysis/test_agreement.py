"""Agreement statistics against published worked examples and independent computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from weeke_pipeline.analysis import agreement as ag
from weeke_pipeline.analysis import tables as tb
from weeke_pipeline.scoring import load_form

# Gwet (2014) Handbook of Inter-Rater Reliability, 4th ed.: 100 pregnant women classified by two
# abstractors (ectopic, abnormal intrauterine, normal intrauterine) -- the "cont3x3abstractors"
# table of Gwet's irrCAC package. Published: kappa 0.796, quadratic kappa 0.892, AC1 0.849,
# quadratic AC2 0.940.
ABSTRACTORS = np.array([[13, 0, 0], [0, 20, 7], [0, 4, 56]])

# Gwet (2014) p. 120: 4 raters, 12 subjects, categories 1-5, missing ratings ("raw4raters").
# Published: AC1 0.775 (pa 0.818, pe 0.190); quadratic AC2 0.914 (pa 0.975, pe 0.714).
RAW4 = np.array([
    [1, 1, np.nan, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
    [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [np.nan, 5, 5, 5], [np.nan, np.nan, 1, 1],
    [np.nan, np.nan, 3, np.nan]])

# Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges. Published: ICC(1,1) 0.17,
# ICC(2,1) 0.29, ICC(3,1) 0.71.
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6],
                          [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float)


def _table_to_pairs(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = [], []
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            a += [i] * int(table[i, j])
            b += [j] * int(table[i, j])
    return np.array(a), np.array(b)


def _hand_weighted_kappa(table: np.ndarray) -> float:
    """Cohen (1968) by hand: 1 - sum(v * observed) / sum(v * expected), v = (i - j)^2."""
    p = table / table.sum()
    e = np.outer(p.sum(axis=1), p.sum(axis=0))
    q = table.shape[0]
    v = np.array([[(i - j) ** 2 for j in range(q)] for i in range(q)], dtype=float)
    return 1 - (v * p).sum() / (v * e).sum()


def test_weighted_kappa_matches_gwet_example_and_hand_computation():
    a, b = _table_to_pairs(ABSTRACTORS)
    k, reason = ag.weighted_kappa(a, b, [0, 1, 2])
    assert reason is None
    assert round(k, 3) == 0.892
    assert k == pytest.approx(_hand_weighted_kappa(ABSTRACTORS), abs=1e-12)
    assert round(cohen_kappa_score(a, b), 3) == 0.796  # unweighted, same published table


def test_vectorised_bootstrap_kappa_equals_sklearn():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.integers(0, 5, 40)
        b = np.clip(a + rng.integers(-1, 2, 40), 0, 4)
        t = np.zeros((5, 5))
        np.add.at(t, (a, b), 1)
        assert ag.kappa_from_tables(t) == pytest.approx(
            cohen_kappa_score(a, b, labels=list(range(5)), weights="quadratic"), abs=1e-12)


def test_gwet_ac2_raw_data_matches_published_example():
    q = ag.gwet_ac2(RAW4, [1, 2, 3, 4, 5], "quadratic")
    assert (round(q["pa"], 3), round(q["pe"], 3), round(q["ac2"], 3)) == (0.975, 0.714, 0.914)
    u = ag.gwet_ac2(RAW4, [1, 2, 3, 4, 5], "identity")
    assert (round(u["pa"], 3), round(u["pe"], 3), round(u["ac2"], 3)) == (0.818, 0.190, 0.775)


def test_gwet_ac2_two_rater_table_matches_published_and_raw_form():
    w = ag.quadratic_weights([0, 1, 2])
    assert round(float(ag.ac2_from_tables(ABSTRACTORS, w)), 3) == 0.940
    assert round(float(ag.ac2_from_tables(ABSTRACTORS, np.eye(3))), 3) == 0.849
    a, b = _table_to_pairs(ABSTRACTORS)
    raw = ag.gwet_ac2(np.stack([a, b], axis=1), [0, 1, 2])
    assert raw["ac2"] == pytest.approx(float(ag.ac2_from_tables(ABSTRACTORS, w)), abs=1e-12)


def test_gwet_ac2_rejects_unknown_category():
    with pytest.raises(ValueError, match="not among the categories"):
        ag.gwet_ac2(np.array([[0, 7]]), [0, 1, 2])


def test_icc_matches_shrout_fleiss_and_pingouin():
    import pingouin as pg

    ci = ag.icc_confidence(SHROUT_FLEISS)
    assert (round(ci["icc1"], 2), round(ci["icc2"], 2), round(ci["icc3"], 2)) == (0.17, 0.29,
                                                                                  0.71)
    long = pd.DataFrame([{"reading_code": f"t{i}", "read_number": j + 1,
                          "value": SHROUT_FLEISS[i, j]} for i in range(6) for j in range(4)])
    res = ag.icc_table(long)
    for key in ("icc1", "icc2", "icc3"):
        assert res[key] == pytest.approx(ci[key], abs=1e-9)
    pgr = pg.intraclass_corr(long, "reading_code", "read_number", "value").set_index("Type")
    for key, typ in (("icc1", "ICC(1,1)"), ("icc2", "ICC(A,1)"), ("icc3", "ICC(C,1)")):
        lo, hi = pgr.loc[typ, "CI95"]
        assert round(res[f"{key}_ci_low"], 2) == pytest.approx(lo, abs=0.011)
        assert round(res[f"{key}_ci_high"], 2) == pytest.approx(hi, abs=0.011)


def test_bland_altman_figures():
    x1 = np.array([10.0, 12, 9, 15, 7, 11])
    x2 = np.array([9.0, 12, 10, 13, 7, 10])
    d = x1 - x2
    r = ag.bland_altman(x1, x2)
    sd = d.std(ddof=1)
    assert r["bias"] == pytest.approx(d.mean())
    assert r["loa_high"] == pytest.approx(d.mean() + 1.96 * sd, abs=1e-3)
    # Bland & Altman 1999: SE(LoA) ~ sqrt(3 s^2 / n) for large n; exact form used here
    from scipy import stats

    t = stats.t.ppf(0.975, 5)
    se = sd * np.sqrt(1 / 6 + 1.959964**2 / 10)
    assert r["loa_low_ci_high"] - r["loa_low"] == pytest.approx(t * se, rel=1e-6)
    assert r["bias_ci_high"] - r["bias"] == pytest.approx(t * sd / np.sqrt(6))


def test_all_zero_item_gives_na_kappa_with_reason_but_ac2():
    res = ag.item_agreement(np.zeros(20, int), np.zeros(20, int), 4, n_boot=200)
    assert np.isnan(res["kappa_w"]) and "all ratings 0" in res["kappa_na_reason"]
    assert res["ac2"] == pytest.approx(1.0)
    assert res["percent_agreement"] == 100.0


def test_bootstrap_is_deterministic():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 4, 50)
    b = np.clip(a + rng.integers(-1, 2, 50), 0, 4)
    r1 = ag.item_agreement(a, b, 4, n_boot=300, seed=5)
    r2 = ag.item_agreement(a, b, 4, n_boot=300, seed=5)
    assert r1 == r2
    assert r1["kappa_ci_low"] <= r1["kappa_w"] <= r1["kappa_ci_high"]


def _records(n_cases: int, seed: int = 0) -> list[dict]:
    form = load_form("weeke-consensus-2025")
    rng = np.random.default_rng(seed)
    recs = []
    for c in range(n_cases):
        base = {}
        for it in form.items:
            e = int(rng.integers(0, len(it.extents))) if rng.random() < 0.4 else 0
            if it.id == "add_csvt":
                e = 0  # an item nobody scores: kappa undefined
            base[it.id] = {"extent": e, **({"laterality": int(rng.integers(1, 3))}
                                           if it.lateralised and e else {})}
        for rn in (1, 2):
            items = dict(base)
            if rn == 2 and rng.random() < 0.3:
                items["gm_thalamus"] = {"extent": 0}
            recs.append({"reading_code": f"C{c:03d}", "reader": f"R{rn}", "read_number": rn,
                         "kind": "read", "form_id": form.id, "form_version": form.version,
                         "status": "signed", "signed_at": "2026-01-01T00:00:00Z",
                         "items": items})
    return recs


def test_write_agreement_report(tmp_path):
    long = tb.reads_long_from_records(_records(30))
    paths = ag.write_agreement_report(long, tmp_path, n_boot=200)
    items = pd.read_csv(paths["items"], sep="\t", keep_default_na=False)
    assert len(items) == 17
    csvt = items.set_index("item").loc["add_csvt"]
    assert csvt["kappa_w"] == "n/a" and "kappa undefined" in csvt["kappa_na_reason"]
    scores = pd.read_csv(paths["scores"], sep="\t")
    assert list(scores["score"]) == ["grey_matter", "white_matter_cortex", "cerebellum",
                                     "additional", "total"]
    assert (tmp_path / "bland_altman_total.png").stat().st_size > 1000
    assert (tmp_path / "bland_altman_total.svg").read_text().lstrip().startswith("<?xml")
    html = paths["html"].read_text()
    assert "add_csvt" in html and "bland_altman_total.png" in html
    assert (tmp_path / "agreement_items.json").exists()


def test_report_needs_paired_reads(tmp_path):
    long = tb.reads_long_from_records(_records(3))
    long = long[long["read_number"] == 1]
    with pytest.raises(ValueError, match="nothing to compare"):
        ag.write_agreement_report(long, tmp_path)
