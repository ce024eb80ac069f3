"""Region metrics: the vectorised pass against a straightforward per-label computation."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from weeke_pipeline.atlas.regions import BY_INDEX, REGIONS, indices_for, label_index
from weeke_pipeline.imaging import metrics as M

N = max(BY_INDEX)


def _random_subject(seed: int, shape=(24, 28, 20), missing=(5, 17)):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N + 1, size=shape).astype(np.int16)
    for k in missing:  # empty labels must give volume 0 and NaN statistics
        labels[labels == k] = 0
    t1w = rng.gamma(4.0, 100.0, shape)
    t2w = rng.normal(800, 120, shape)
    adc = rng.normal(1100, 300, shape)
    adc[rng.random(shape) < 0.01] = np.nan  # non-finite voxels are ignored
    return labels, t1w, t2w, adc


def _reference(labels, t1w, t2w, adc, thresholds, ref_labels, vox, fa):
    """Per-label loop with boolean masks (the obvious implementation)."""
    out = {m: np.full(N + 1, np.nan) for m in M.metric_names(thresholds)}
    ref = {c: np.median(img[np.isin(labels, ref_labels)]) for c, img in
           (("t1w", t1w), ("t2w", t2w))}
    for k in range(1, N + 1):
        m = labels == k
        out["volume_mm3"][k] = m.sum() * vox
        if not m.any():
            continue
        for c, img in (("t1w", t1w), ("t2w", t2w)):
            out[f"{c}_median"][k] = np.median(img[m])
            out[f"{c}_norm"][k] = np.median(img[m]) / ref[c]
            out[f"{c}_p25_norm"][k] = np.percentile(img[m], 25) / ref[c]
            out[f"{c}_p75_norm"][k] = np.percentile(img[m], 75) / ref[c]
        f = fa[m]
        out["fa_mean"][k], out["fa_median"][k] = f.mean(), np.median(f)
        out["fa_p10"][k] = np.percentile(f, 10)
        a = adc[m]
        a = a[np.isfinite(a)]
        out["adc_mean"][k] = a.mean()
        out["adc_median"][k] = np.median(a)
        out["adc_p10"][k] = np.percentile(a, 10)
        for t in thresholds:
            out[f"adc_frac_below_{t:g}"][k] = (a < t).mean()
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_matches_per_label_reference(seed):
    labels, t1w, t2w, adc = _random_subject(seed)
    thresholds = (650.0, 800.0, 1000.0)
    fa = np.random.default_rng(seed + 10).uniform(0, 0.8, labels.shape)
    got = M.compute_region_metrics(labels, voxel_volume_mm3=0.5, t1w=t1w, t2w=t2w, adc=adc,
                                   adc_thresholds=thresholds, reference="cerebellum",
                                   tensor={"fa": fa})
    want = _reference(labels, t1w, t2w, adc, thresholds, indices_for(tissue="cerebellum"), 0.5,
                      fa)
    for m in M.metric_names(thresholds):
        np.testing.assert_allclose(got[m][1:], want[m][1:], rtol=1e-12, atol=1e-12,
                                   equal_nan=True, err_msg=m)
    assert got["volume_mm3"][5] == 0 and np.isnan(got["adc_median"][5])


def test_percentiles_exact_with_ties_and_constant_groups():
    rng = np.random.default_rng(3)
    lk = rng.integers(1, 6, 5000)
    v = rng.integers(0, 7, 5000).astype(float)  # many ties
    v[lk == 4] = 2.5                             # a constant group
    got = M.grouped_percentiles(lk, v, 7, (0, 10, 50, 90, 100), bins=16)
    for k in range(1, 6):
        for q in (0, 10, 50, 90, 100):
            assert got[f"p{q:g}"][k] == np.percentile(v[lk == k], q)
    assert np.isnan(got["p50"][6])


def test_brain_mask_restricts_statistics_not_volume():
    labels, _, t2w, _ = _random_subject(4)
    mask = np.zeros(labels.shape, bool)
    mask[:, :, :10] = True
    got = M.compute_region_metrics(labels, voxel_volume_mm3=1.0, t2w=t2w, brain_mask=mask)
    k = label_index("thalamus", "left")
    assert got["volume_mm3"][k] == (labels == k).sum()
    assert got["t2w_median"][k] == np.median(t2w[(labels == k) & mask])


def test_missing_images_are_empty_not_zero(tmp_path):
    labels, _, t2w, _ = _random_subject(5)
    per = M.compute_region_metrics(labels, voxel_volume_mm3=1.0, t2w=t2w)
    table = M.metrics_table("sub-01", per)
    adc_rows = table[table.metric.str.startswith("adc_")]
    assert len(adc_rows) > 0 and adc_rows.value.isna().all()
    tsv, _ = M.write_metrics(table, tmp_path / "sub-01_metrics.tsv")
    text = tsv.read_text()
    assert "n/a" in text
    back = M.read_metrics(tsv)
    assert back.loc[back.metric == "adc_mean", "value"].isna().all()
    assert not back.loc[back.metric == "t2w_median", "value"].isna().all()


def test_table_layout_asymmetry_and_dictionary(tmp_path):
    labels, t1w, t2w, adc = _random_subject(6)
    per = M.compute_region_metrics(labels, voxel_volume_mm3=1.0, t1w=t1w, t2w=t2w, adc=adc)
    table = M.metrics_table("sub-02", per)
    assert list(table.columns) == list(M.COLUMNS)
    names = M.metric_names()
    assert len(table[table.hemisphere != "left_right"]) == len(REGIONS) * len(names)
    li, ri = label_index("thalamus", "left"), label_index("thalamus", "right")
    row = table[(table.region == "thalamus") & (table.metric == "ai_volume_mm3")]
    vl, vr = per["volume_mm3"][li], per["volume_mm3"][ri]
    assert row.value.item() == pytest.approx(2 * (vl - vr) / (vl + vr))
    assert set(table.loc[table.hemisphere == "left_right", "label"]) == {"n/a"}
    _, js = M.write_metrics(table, tmp_path / "m.tsv")
    d = json.loads(js.read_text())
    for col in M.COLUMNS:
        assert "Description" in d[col]
    for metric in table.metric.unique():
        assert {"LongName", "Units", "Description"} <= set(d["Metrics"][metric])
        assert metric in d["metric"]["Levels"]


def test_asymmetry_index_edge_cases():
    ai = M.asymmetry_index(np.array([1.0, 0.0, np.nan, 3.0]), np.array([1.0, 0.0, 1.0, 1.0]))
    assert ai[0] == 0 and np.isnan(ai[1]) and np.isnan(ai[2]) and ai[3] == pytest.approx(1.0)


def test_region_metrics_from_files_read_back(tmp_path):
    aff = np.diag([0.8, 0.8, 1.2, 1.0])
    tables = []
    for i in range(2):
        labels, _, t2w, adc = _random_subject(10 + i)
        paths = {}
        for name, arr in (("labels", labels), ("t2w", t2w), ("adc", np.nan_to_num(adc))):
            p = tmp_path / f"s{i}_{name}.nii.gz"
            nib.save(nib.Nifti1Image(arr, aff), p)
            paths[name] = p
        t = M.region_metrics(f"sub-{i:02d}", paths["labels"], t2w=paths["t2w"],
                             adc=paths["adc"])
        k = label_index("caudate", "right")
        vol = t[(t.label == k) & (t.metric == "volume_mm3")].value.item()
        assert vol == pytest.approx((labels == k).sum() * 0.8 * 0.8 * 1.2)
        tsv, _ = M.write_metrics(t, tmp_path / f"sub-{i:02d}_metrics.tsv")
        tables.append(tsv)
    stacked = pd.concat([M.read_metrics(tsv) for tsv in tables], ignore_index=True)
    assert set(stacked.subject) == {"sub-00", "sub-01"}
    assert list(stacked.columns) == list(M.COLUMNS)


def test_grid_mismatch_is_a_clear_error(tmp_path):
    labels, _, t2w, _ = _random_subject(7)
    lp, tp = tmp_path / "lab.nii.gz", tmp_path / "t2w.nii.gz"
    nib.save(nib.Nifti1Image(labels, np.eye(4)), lp)
    nib.save(nib.Nifti1Image(t2w[:-1], np.eye(4)), tp)
    with pytest.raises(ValueError, match=r"t2w\.nii\.gz: T2w is not on the label map's grid"):
        M.region_metrics("sub-x", lp, t2w=tp)
    with pytest.raises(ValueError, match="reference tissue"):
        M.compute_region_metrics(labels, voxel_volume_mm3=1, t2w=t2w, reference="liver")


def test_float32_fortran_order_thresholds_at_the_edges():
    """As the pipeline reads them: float32 images in Fortran order (nibabel); thresholds below
    every value, above every value and equal to voxel values; NaN voxels ignored."""
    labels, _, t2w, adc = _random_subject(8)
    labels = np.asfortranarray(labels)
    adc32 = np.asfortranarray(np.rint(adc / 50) * 50).astype(np.float32)  # ties at thresholds
    t2w32 = np.asfortranarray(t2w.astype(np.float32))
    lo, hi = float(np.nanmin(adc32)) - 1, float(np.nanmax(adc32)) + 1
    thresholds = (lo, 800.0, 1000.0, hi)
    got = M.compute_region_metrics(labels, voxel_volume_mm3=1.0, t2w=t2w32, adc=adc32,
                                   adc_thresholds=thresholds, threads=2)
    ref_vals = t2w32[np.isin(labels, indices_for(tissue="cerebellum"))]
    for k in (1, 9, 20, 39):
        m = labels == k
        a = adc32[m]
        a = a[np.isfinite(a)]
        for t in thresholds:
            assert got[f"adc_frac_below_{t:g}"][k] == (a < np.float32(t)).mean()
        assert got["adc_median"][k] == pytest.approx(np.median(a.astype(np.float64)), rel=1e-12)
        assert got["adc_mean"][k] == pytest.approx(a.astype(np.float64).mean(), rel=1e-12)
        want_norm = np.percentile(t2w32[m].astype(np.float64), 50) / float(np.median(ref_vals))
        assert got["t2w_norm"][k] == pytest.approx(want_norm, rel=1e-12)
    one = M.compute_region_metrics(labels, voxel_volume_mm3=1.0, t2w=t2w32, adc=adc32,
                                   adc_thresholds=thresholds, threads=1)
    for name, v in one.items():
        np.testing.assert_array_equal(v, got[name], err_msg=name)


def test_integer_images_as_read_from_dcm2niix():
    """An int16/uint16 image (the converted T2w as stored) gives the statistics of its values
    as float64 (integers are converted as they are read, not rounded or wrapped)."""
    labels, _, t2w, adc = _random_subject(4)
    for dtype in (np.int16, np.uint16):
        t2i = np.clip(np.rint(t2w), 0, 3000).astype(dtype)
        got = M.compute_region_metrics(labels, voxel_volume_mm3=1.0, t2w=t2i, adc=adc)
        want = M.compute_region_metrics(labels, voxel_volume_mm3=1.0,
                                        t2w=t2i.astype(np.float64), adc=adc)
        for m in ("t2w_median", "t2w_norm", "t2w_p25_norm", "t2w_p75_norm", "adc_mean"):
            np.testing.assert_array_equal(got[m], want[m], err_msg=f"{dtype.__name__} {m}")
        assert np.isfinite(got["t2w_median"][1:]).sum() > 30
