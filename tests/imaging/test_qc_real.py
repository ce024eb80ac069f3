"""QC that tells a good registration from a bad one on real neonatal brains.

The checks of :mod:`weeke_pipeline.imaging.qc_anatomy` on small arrays with a known answer, and the
calibration of benchmarks/calibrate_qc_real.py reproduced on the real templates at 3 mm
(known-good: real templates registered to each other and to deformed copies; known-bad: the
phantom atlas, a left-right flipped atlas, a wrong-age and a cropped/zero-filled input).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from weeke_pipeline.atlas.regions import label_index
from weeke_pipeline.imaging import qc
from weeke_pipeline.imaging import qc_anatomy as qa

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- pure checks
def _two_hemispheres(shape=(40, 30, 30)):
    """Left thalamus at low x (RAS: the subject's left), right thalamus at high x."""
    lab = np.zeros(shape, np.int16)
    lab[5:15, 10:20, 10:20] = label_index("thalamus", "left")
    lab[25:35, 10:20, 10:20] = label_index("thalamus", "right")
    return lab


def test_laterality_sees_a_left_right_flip():
    lab = _two_hemispheres()
    ok = qa.laterality(lab, np.eye(4))
    assert ok["laterality_pairs"] == 1 and ok["laterality_correct"] == 1.0
    assert ok["laterality_median_mm"] == pytest.approx(20.0)
    flipped = qa.laterality(lab[::-1], np.eye(4))
    assert flipped["laterality_correct"] == 0.0 and flipped["laterality_wrong"] == ["thalamus"]
    status, reasons = qc.qc_flag({**_good_numbers(), **flipped})
    assert status == "fail" and any("swapped" in r for r in reasons)


def test_jacobian_matches_ants_on_a_known_field(tmp_path):
    """A displacement field written as ANTs writes SyN warps (LPS vectors): our determinant
    equals antspyx's create_jacobian_determinant_image, and a uniform 1.2x scaling gives
    1.728 everywhere inside."""
    ants = pytest.importorskip("ants")
    n = 24
    idx = np.stack(np.meshgrid(*[np.arange(n, dtype=float)] * 3, indexing="ij"), -1)
    c = (n - 1) / 2
    disp = 0.2 * (idx - c) * 2.0  # spacing 2 mm: u = 0.2 x (mm), det = 1.2^3
    disp[..., 1] += 1.5 * np.sin(idx[..., 0] / 4.0)  # plus a shear that keeps det
    img = ants.from_numpy(disp.astype("float32"), spacing=(2.0, 2.0, 2.0), has_components=True)
    path = tmp_path / "1Warp.nii.gz"
    ants.image_write(img, str(path))
    domain = ants.from_numpy(np.zeros((n, n, n), "float32"), spacing=(2.0, 2.0, 2.0))
    ref = ants.create_jacobian_determinant_image(domain, str(path)).numpy()
    d, aff = qa.read_displacement_field(path)
    det = qa.jacobian_determinant(d, aff)
    inner = (slice(2, -2),) * 3
    assert np.allclose(det[inner], 1.728, atol=1e-3)
    assert np.allclose(det[inner], ref[inner], atol=1e-3)
    stats = qa.warp_jacobian(path)
    assert stats["jacobian_folding"] == 0.0 and stats["jacobian_extreme"] == 0.0


def test_folding_warp_is_flagged():
    n = 20
    x = np.arange(n, dtype=float)
    disp = np.zeros((n, n, n, 3))
    disp[..., 0] = (-1.5 * x)[:, None, None]  # d/dx of x - 1.5x < 0: folds everywhere
    det = qa.jacobian_determinant(disp, np.eye(4))
    stats = qa.jacobian_stats(det)
    assert stats["jacobian_folding"] == 1.0
    status, reasons = qc.qc_flag({**_good_numbers(), "jacobian": stats})
    assert status == "fail" and any("folds" in r for r in reasons)


def test_cut_and_zero_filled_brain():
    brain = np.zeros((40, 40, 40), bool)
    zz, yy, xx = np.meshgrid(*[np.arange(40)] * 3, indexing="ij")
    brain[(zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2 < 15 ** 2] = True
    t2 = np.where(brain, 500.0, 0.0)
    whole = qa.fov_truncation(t2, brain)
    assert whole["brain_cut"] < 0.2  # the flat tip of a voxelised sphere
    zero_filled = t2.copy()
    zero_filled[:, :, 25:] = 0  # a zero slab through the brain
    assert qa.fov_truncation(zero_filled, brain)["brain_cut"] > 0.5
    cropped = qa.fov_truncation(t2[:, :, :24], brain[:, :, :24])  # the array ends in it
    assert cropped["brain_cut"] > 0.5 and cropped["brain_at_fov_edge"] > 0


def test_air_noise_only_where_there_is_air():
    rng = np.random.default_rng(0)
    brain = np.zeros((48, 48, 48), bool)
    brain[14:34, 14:34, 14:34] = True
    stripped = np.where(brain, 500.0, 0.0)
    n = qa.air_noise(stripped, brain)
    assert np.isnan(n["snr_air"]) and "no background air" in n["air_note"]
    noisy = stripped + np.hypot(rng.normal(0, 10, brain.shape), rng.normal(0, 10, brain.shape))
    snr = qa.air_noise(noisy, brain)["snr_air"]
    assert 25 < snr < 60  # 0.655 x ~512 / SD of Rayleigh(10) = 6.55 ... ~51
    # a skull-stripped image is never flagged for noise, however low mean/SD in white matter
    status, reasons = qc.qc_flag({**_good_numbers(), "snr_wm": 2.3, "snr_background": np.nan,
                                  **n})
    assert status == "pass", reasons


def test_coverage_is_relative_to_the_atlas_regions():
    """An imported atlas without PLIC, vermis... (Draw-EM) is not failed for lacking them;
    a region the atlas has but the subject lost is."""
    atlas = np.array([label_index("thalamus", "left"), label_index("thalamus", "right"),
                      label_index("caudate", "left")])
    subj = np.array([0, label_index("thalamus", "left"), label_index("thalamus", "right"),
                     label_index("caudate", "left")])
    rel = qa.relative_coverage(subj, qa.regions_of(atlas))
    assert rel["label_coverage_atlas"] == 1.0
    numbers = {**_good_numbers(), "label_coverage": 0.59, "missing_regions": ["plic_left"],
               **rel}
    status, reasons = qc.qc_flag(numbers)
    assert status == "warn" and any("no label for 1 regions" in r for r in reasons)
    lost = qa.relative_coverage(subj[:2], qa.regions_of(atlas))
    assert lost["label_coverage_atlas"] == pytest.approx(1 / 3)
    assert qc.qc_flag({**numbers, **lost})[0] == "fail"


def test_expected_volume_follows_age():
    lo40, hi40 = qa.expected_brain_volume_ml(40, n_sd=3)
    lo44, hi44 = qa.expected_brain_volume_ml(44, n_sd=3)
    assert lo44 - lo40 == pytest.approx(4 * qa.TBV_ML_PER_WEEK)
    assert lo40 < 379 < hi40 and hi44 > hi40
    lo, hi = qa.expected_brain_volume_ml(None, n_sd=3)  # no age: 36-48 weeks
    assert lo < lo40 and hi > hi44


def test_age_at_scan_from_the_participants_table(tmp_path):
    """QC's expected brain volume uses the participants table's age at scan (weeks + days),
    only for a subject with a single session (the table has one age per participant)."""
    from weeke_pipeline.config import RunConfig
    from weeke_pipeline.workflows.pipeline import SubjectInputs, _pma_weeks

    table = tmp_path / "participants.tsv"
    table.write_text("participant_id\tpatient_id\tpma_at_scan_weeks\tpma_at_scan_days\n"
                     "sub-01\tX1\t43\t3\nsub-02\tX2\t41\t0\nsub-03\tX3\tn/a\t\n")
    sessions = [SubjectInputs("01", "01", "a"), SubjectInputs("02", "01", "b"),
                SubjectInputs("02", "02", "c"), SubjectInputs("03", "01", "d")]
    pma = _pma_weeks(RunConfig(input_dir="in", output_dir="out", participants=str(table)),
                     sessions)
    assert pma == {"01": pytest.approx(43 + 3 / 7)}


def _good_numbers() -> dict:
    """Numbers of a good run on a real brain (as the calibration measures them)."""
    return {"brain_volume_ml": 420.0, "label_coverage": 1.0, "mask_coverage": 0.95,
            "missing_regions": [], "has_t1w": True, "has_adc": True,
            "adc_finite_fraction": 1.0, "snr_background": float("nan"), "snr_wm": 4.0,
            "snr_air": float("nan"), "air_note": "no background air",
            "tissue_t2w": {}, "t2w_contrast": {"csf>wm": 0.4, "wm>deep_gm": 0.2},
            "tissue_eta2": 0.4, "laterality_correct": 1.0, "laterality_wrong": [],
            "brain_cut": 0.0, "brain_volume_expected_ml": {"fail": [163, 854],
                                                           "warn": [235, 764]},
            "pma_weeks": 42.0, "label_coverage_atlas": 1.0, "missing_atlas_regions": [],
            "registration": {"to_atlas": {"similarity_before": {"nmi": 1.05},
                                          "similarity_after": {"nmi": 1.2,
                                                               "correlation": 0.45}}}}


# --------------------------------------------------------------------------- real templates
@pytest.fixture(scope="module")
def calibration(shared_data, tmp_path_factory):
    pytest.importorskip("ants")
    sys.path.insert(0, str(REPO / "benchmarks"))
    import calibrate_qc_real as cal

    real = cal.RealImages(shared_data, 3.0)
    out = tmp_path_factory.mktemp("qc-real")
    return [cal.run_case(c, out / f"case{i}") for i, c in enumerate(cal.cases(real))]


@pytest.mark.slow
def test_confusion_table_on_real_templates(calibration):
    """Every known-bad run fails, no known-good run fails (the table of
    docs/registration_metrics_qc.md), each bad run for the reason it is bad."""
    table = {(r["case"], r["expected"]): r for r in calibration}
    bad = [r for r in calibration if r["expected"] == "bad"]
    good = [r for r in calibration if r["expected"] == "good"]
    assert len(bad) == 8 and len(good) == 5
    assert all(r["status"] == "fail" for r in bad), [(r["case"], r["reasons"]) for r in bad]
    assert not any(r["status"] == "fail" for r in good), \
        [(r["case"], r["reasons"]) for r in good if r["status"] == "fail"]

    def why(case):
        return " ".join(next(r for (c, _), r in table.items() if c == case)["reasons"])

    # the phantom atlas is failed by the atlas notice everywhere and by the images alone where
    # its labels miss the tissue (eta^2)
    assert "phantom" in why("serag40<-phantom").lower()
    phantom = [r["image_status"] for r in bad if "phantom" in r["case"]]
    assert "pass" not in phantom and "fail" in phantom, phantom
    assert "swapped" in why("serag36<-flipped40") and "swapped" in why("unc<-flipped40")
    assert "brain volume" in why("shrunk36<-serag40")
    assert "ends inside the brain" in why("cropped36<-serag40")
    assert "ends inside the brain" in why("zerofilled-unc<-serag40")
    # a good run on an image with air gets its noise measured; skull-stripped ones do not
    air = next(r for r in good if "air" in r["case"])["numbers"]
    assert air["snr_air"] > 10
    assert all(np.isnan(r["numbers"]["snr_air"]) for r in good if "air" not in r["case"])
