"""Automated injury index: z-scores, roll-up to Weeke items, and the truth-folder metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from weeke_pipeline.analysis import injury_index as ii
from weeke_pipeline.atlas.regions import REGIONS


# ----------------------------------------------------------------- the reference loop
def region_index_loop(metrics: pd.DataFrame, reference: pd.DataFrame,
                      thresholds: ii.Thresholds | None = None) -> pd.DataFrame:
    """Same result as ``region_index(region_zscores(...))`` with a Python loop per region side
    and metric: the reference the vectorised code is checked against (written plainly, one
    value at a time, from the rules in docs/injury_index.md)."""
    df = ii._prepare(metrics)
    ref = {(r.region, r.hemisphere, r.metric): r for r in reference.itertuples(index=False)}
    raw = {(r.subject, r.region, r.hemisphere, r.metric): r.y for r in df.itertuples()}
    # recentring offsets (see _recentre), one subject/metric/side at a time
    offsets: dict[tuple[str, str, str], float] = {}
    by_subject: dict[str, list[tuple[tuple[str, str, str, str], float]]] = {}
    for k, y in raw.items():
        by_subject.setdefault(k[0], []).append((k, y))
    for subj, entries in sorted(by_subject.items()):
        for m in ii.INTENSITY_METRICS:
            for side in ("left", "right"):
                devs = [y - ref[(k[1], k[2], m)].mu for k, y in entries
                        if k[3] == m and k[2] == side
                        and k[1] not in ii._CSF_REGIONS and (k[1], k[2], m) in ref]
                if devs:
                    offsets[(subj, m, side)] = float(np.median(devs))
            sides = [offsets[(subj, m, s)] for s in ("left", "right") if (subj, m, s) in offsets]
            if sides:
                offsets[(subj, m, "midline")] = float(np.mean(sides))
    vals = {k: y - offsets.get((k[0], k[3], k[2]), 0.0) for k, y in raw.items()}
    t = thresholds or ii.Thresholds()
    rows = []
    for (subj, region, hemi) in sorted({k[:3] for k in vals}):
        best, ext = (0.0, "", math.nan, math.nan, math.nan), 0
        for m in ii.INDEX_METRICS:
            y = vals.get((subj, region, hemi, m))
            rr = ref.get((region, hemi, m))
            if y is None or rr is None:
                continue
            d = y - rr.mu
            zr = d / rr.sd
            zc = math.nan
            if hemi != "midline":
                other = vals.get((subj, region, "right" if hemi == "left" else "left", m))
                if other is not None:
                    sgn = 1.0 if hemi == "left" else -1.0
                    zc = ((y - other) - sgn * rr.mu_asym) / rr.sd_asym
            contra = (not math.isnan(zc)) and np.sign(zc) == np.sign(zr) and abs(zc) >= \
                t.z_threshold
            need = t.z_threshold / 2 if contra else t.z_threshold
            min_eff = t.min_effect_myelinated if region in ii.MYELINATED_REGIONS else t.min_effect
            abn = abs(zr) >= need and abs(d) >= min_eff
            if abn:
                thr = t.extensive_effect_myelinated if region in ii.MYELINATED_REGIONS else \
                    t.extensive_effect
                ext = max(ext, 2 if m in ii.EXTENT_METRICS and abs(d) >= thr else 1)
                if abs(zr) > best[0]:
                    best = (abs(zr), m, zr, zc, d)
            elif best[0] == 0.0 and best[1] == "" and math.isnan(best[2]):
                best = (0.0, "", zr, zc, d)
        rows.append({"subject": subj, "region": region, "hemisphere": hemi,
                     "driving_metric": best[1], "abnormality": best[0], "z_ref": best[2],
                     "z_contra": best[3], "d": best[4], "extent": ext})
    return pd.DataFrame(rows)


BASE = {"t2w_norm": 1.0, "t1w_norm": 1.0, "adc_median": 1100.0, "adc_p10": 900.0,
        "t1w_p25_norm": 0.9, "t1w_p75_norm": 1.1, "t2w_p25_norm": 0.9, "t2w_p75_norm": 1.1}


def _subject(name: str, rng: np.random.Generator, changes: dict | None = None,
             gain: float = 1.0) -> pd.DataFrame:
    """A long metrics table: every region x metric, 1% noise; ``changes`` multiply values."""
    rows = []
    for r in REGIONS:
        for m, v in BASE.items():
            f = (changes or {}).get((r.region, r.hemisphere, m), 1.0)
            g = gain if m.startswith("t") else 1.0
            rows.append({"subject": name, "region": r.region, "hemisphere": r.hemisphere,
                         "label": r.index, "metric": m,
                         "value": v * f * g * float(np.exp(rng.normal(0, 0.01)))})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    normals = pd.concat([_subject(f"n{i}", rng) for i in range(6)], ignore_index=True)
    return ii.build_reference(normals)


def _items(metrics, reference):
    _, sugg = ii.injury_index(metrics, reference)
    return sugg.set_index("subject")


def test_normal_subject_and_global_gain_give_no_finding(reference):
    rng = np.random.default_rng(1)
    df = pd.concat([_subject("a", rng), _subject("b", rng, gain=1.3)], ignore_index=True)
    s = _items(df, reference)
    assert (s["total"] == 0).all()


def test_extensive_unilateral_and_bilateral_deep_grey_matter(reference):
    rng = np.random.default_rng(2)
    uni = {("thalamus", "left", "t2w_norm"): 1.3, ("thalamus", "left", "t1w_norm"): 1.25}
    bil = {("lentiform", s, "t2w_norm"): 1.3 for s in ("left", "right")}
    bil.update({("plic", s, "t2w_norm"): 2.0 for s in ("left", "right")})
    df = pd.concat([_subject("uni", rng, uni), _subject("bil", rng, bil)], ignore_index=True)
    s = _items(df, reference)
    assert (s.loc["uni", "gm_thalamus_ext"], s.loc["uni", "gm_thalamus_lat"]) == (2, 1)
    assert s.loc["uni", "gm_basal_ganglia_ext"] == 0
    assert s.loc["bil", "gm_basal_ganglia_score"] == 4 and s.loc["bil", "gm_plic_score"] == 4
    assert s.loc["bil", "grey_matter"] == 8
    assert s.loc["bil", "grey_matter_complete"]  # every grey-matter item is suggested
    assert not s.loc["bil", "white_matter_cortex_complete"]  # PWML, haemorrhage left missing


def test_focal_and_lobe_count(reference):
    rng = np.random.default_rng(3)
    ch = {("thalamus", "right", "t2w_p75_norm"): 1.12,  # small shift of a percentile only
          ("wm_frontal", "left", "t1w_p25_norm"): 0.8, ("wm_parietal", "left", "t1w_p25_norm"):
          0.8, ("wm_frontal", "right", "t1w_p25_norm"): 0.8}
    s = _items(_subject("x", rng, ch), reference)
    assert (s.loc["x", "gm_thalamus_ext"], s.loc["x", "gm_thalamus_lat"]) == (1, 1)
    # two lobes on the left -> extensive; bilateral
    assert (s.loc["x", "wm_white_matter_ext"], s.loc["x", "wm_white_matter_lat"]) == (2, 2)


def test_vectorised_equals_loop(reference):
    rng = np.random.default_rng(4)
    ch = {("thalamus", "left", "t2w_norm"): 1.3, ("plic", "right", "t1w_norm"): 0.6,
          ("wm_occipital", "right", "adc_median"): 0.7}
    df = pd.concat([_subject("p", rng, ch), _subject("q", rng, gain=0.9)], ignore_index=True)
    vec = ii.region_index(ii.region_zscores(df, reference))
    loop = region_index_loop(df, reference)
    m = vec.merge(loop, on=["subject", "region", "hemisphere"], suffixes=("", "_l"))
    assert len(m) == len(vec) == len(loop)
    assert (m["extent"] == m["extent_l"]).all()
    assert np.allclose(m["abnormality"], m["abnormality_l"])


def test_atlas_reference_and_bad_input(reference):
    rng = np.random.default_rng(5)
    ref = ii.reference_from_atlas(_subject("atlas", rng))
    assert set(ref["source"]) == {"atlas"} and (ref["sd"] == ii.Thresholds().atlas_sd).all()
    s = _items(_subject("n", rng), ref)
    assert s.loc["n", "total"] == 0
    with pytest.raises(ValueError, match="lacks columns"):
        ii.region_zscores(pd.DataFrame({"subject": ["a"]}), reference)


def test_label_percentiles_match_numpy():
    rng = np.random.default_rng(6)
    lab = rng.integers(0, 5, size=(10, 10, 10))
    val = rng.normal(size=lab.shape)
    got = ii.label_medians(lab, val, [10, 50], 4)
    for k in range(1, 5):
        assert got[50][k] == pytest.approx(np.percentile(val[lab == k], 50))
        assert got[10][k] == pytest.approx(np.percentile(val[lab == k], 10))


@pytest.fixture(scope="session")
def synth_pair(tmp_path_factory, dcm2niix_bin):
    from weeke_pipeline.synth.study import generate_study

    out = tmp_path_factory.mktemp("ii_synth")
    return generate_study(out, n_subjects=2, seed=5, patterns=["normal", "bgt"])


@pytest.mark.slow  # generates two synthetic subjects (~15-35 s)
def test_truth_region_metrics_see_planted_injury(synth_pair):
    normal, injured = synth_pair
    mn, mi = ii.truth_region_metrics(normal), ii.truth_region_metrics(injured)
    assert list(mn.columns) == ["subject", "region", "hemisphere", "label", "metric", "value"]
    assert set(mn["metric"]) >= {"t1w_norm", "t2w_norm", "adc_median", "adc_p10"}
    assert mn["value"].notna().all()
    truth = ii.truth_items(injured)
    assert truth["gm_plic"]["extent"] > 0  # the bgt pattern always injures the PLIC

    def val(df, side):
        return float(df[(df.region == "plic") & (df.hemisphere == side)
                        & (df.metric == "t2w_norm")]["value"].iloc[0])

    import json

    doc = json.loads((injured / "truth" / f"{injured.name}_truth.json").read_text())
    side = next(i["hemisphere"] for i in doc["injuries"] if i["region"] == "plic")
    # loss of myelination: PLIC T2w rises well above the normal subject's
    assert val(mi, side) > 1.1 * val(mn, side)
