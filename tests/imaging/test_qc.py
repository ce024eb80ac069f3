"""QC: files written (figures, JSON, HTML), the flag, and a report for a failed subject."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from weeke_pipeline.atlas.phantom import property_table
from weeke_pipeline.atlas.regions import REGIONS
from weeke_pipeline.imaging import qc, qc_report


def _subject(tmp_path, *, drop_region: int | None = None):
    rng = np.random.default_rng(0)
    shape = (40, 48, 36)
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    r = np.sqrt(zz ** 2 + yy ** 2 + xx ** 2)
    brain = r < 0.8
    labels = np.zeros(shape, np.int16)
    blocks = np.array_split(np.flatnonzero(brain), len(REGIONS))
    for reg, idx in zip(REGIONS, blocks, strict=True):
        labels.flat[idx] = reg.index
    if drop_region is not None:
        labels[labels == drop_region] = 0
    # each label at its phantom T2w (CSF > white matter > grey matter), as on a real T2w
    t2 = property_table()[labels, 1] + np.abs(rng.normal(0, 8, shape))
    aff = np.diag([2.4, 2.4, 2.4, 1.0])  # brain of ~29k voxels x 13.8 uL = ~400 mL
    paths = {}
    for name, arr in (("t2w", t2), ("labels", labels), ("mask", brain.astype(np.uint8)),
                      ("adc", np.where(brain, rng.normal(1100, 100, shape), 0)),
                      ("t1w", np.where(brain, 300, 0) + rng.normal(0, 8, shape))):
        p = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(arr.astype(np.float32) if name != "labels" else arr, aff), p)
        paths[name] = p
    return paths


def test_qc_writes_figures_json_and_html(tmp_path):
    p = _subject(tmp_path)
    reg = {"to_atlas": {"similarity_before": {"nmi": 1.05, "correlation": 0.3},
                        "similarity_after": {"nmi": 1.2, "correlation": 0.9}, "seconds": 3.0}}
    res = qc.run_subject_qc("sub-01", tmp_path / "qc", t2w=p["t2w"], labels=p["labels"],
                            brain_mask=p["mask"], t1w=p["t1w"], adc=p["adc"], registration=reg)
    assert res.error is None, res.error
    assert set(res.figures) == {"outline", "labels", "alignment", "adc"}
    for f in res.figures.values():
        assert Path(f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads(Path(res.json).read_text())
    assert doc["status"] == res.status and doc["numbers"]["label_coverage"] == 1.0
    page = Path(res.report).read_text()
    assert "sub-01" in page and "figures/sub-01_desc-outline_qc.png" in page
    assert doc["numbers"]["brain_volume_ml"] > 0
    assert res.status in ("pass", "warn")


def test_flag_rules():
    good = {"brain_volume_ml": 450.0, "label_coverage": 1.0, "mask_coverage": 0.98,
            "snr_background": 40.0, "has_t1w": True, "has_adc": True,
            "adc_finite_fraction": 1.0, "missing_regions": [],
            "registration": {"to_atlas": {"similarity_before": {"nmi": 1.05},
                                          "similarity_after": {"nmi": 1.2,
                                                               "correlation": 0.85}}}}
    assert qc.qc_flag(good) == ("pass", [])
    status, reasons = qc.qc_flag({**good, "has_adc": False})
    assert status == "warn" and any("ADC" in r for r in reasons)
    status, reasons = qc.qc_flag({**good, "brain_volume_ml": 50.0})
    assert status == "fail" and "brain volume" in reasons[0]
    status, _ = qc.qc_flag({**good, "label_coverage": 38 / 39, "missing_regions": ["vermis"]})
    assert status == "warn"
    bad_reg = {"to_atlas": {"similarity_before": {"nmi": 1.1},
                            "similarity_after": {"nmi": 1.05, "correlation": 0.2}}}
    assert qc.qc_flag({**good, "registration": bad_reg})[0] == "fail"
    snr = {**good, "snr_background": float("nan"), "snr_wm": 5.0}
    assert qc.qc_flag(snr)[0] == "warn"


def test_missing_region_is_reported(tmp_path):
    p = _subject(tmp_path, drop_region=7)
    n = qc.qc_numbers(p["t2w"], p["labels"], p["mask"])
    assert n["label_coverage"] < 1.0 and REGIONS[6].name in n["missing_regions"]


def test_failed_subject_still_gets_a_report(tmp_path):
    res = qc.run_subject_qc("sub-02", tmp_path / "qc", error="RuntimeError: no T2w series")
    assert res.status == "fail"
    page = Path(res.report).read_text()
    assert "no T2w series" in page and "FAIL" in page
    res2 = qc.run_subject_qc("sub-03", tmp_path / "qc", t2w=tmp_path / "missing.nii.gz",
                             labels=tmp_path / "missing2.nii.gz",
                             brain_mask=tmp_path / "missing3.nii.gz")
    assert res2.status == "fail" and "missing.nii.gz" in Path(res2.report).read_text()
    index = qc_report.write_group_index([res, res2], tmp_path / "qc" / "index.html")
    text = index.read_text()
    assert "sub-02_qc.html" in text and "sub-03" in text


def test_report_escapes_html(tmp_path):
    res = qc.run_subject_qc("sub-04", tmp_path, error="<script>alert(1)</script>")
    assert "<script>alert" not in Path(res.report).read_text()
