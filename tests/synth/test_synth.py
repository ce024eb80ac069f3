"""Synthetic neonatal subjects: determinism, anatomy, contrast, DICOM conversion, ground truth."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from weeke_pipeline import cli
from weeke_pipeline.atlas import phantom as ph
from weeke_pipeline.atlas.regions import REGIONS, indices_for, label_index
from weeke_pipeline.scoring import load_form, score_items
from weeke_pipeline.synth import study as synth


def _series(converted: dict[str, Path], kind: str) -> Path:
    (name,) = [n for n in converted if n.split("_", 1)[1].startswith(kind)
               and (kind != "DWI" or not n.endswith("_ADC"))]
    return converted[name]


def _truth(study: Path, sub: str) -> tuple[nib.Nifti1Image, np.ndarray, dict]:
    t = study / sub / "truth"
    dseg = nib.load(t / f"{sub}_dseg.nii.gz")
    doc = json.loads((t / f"{sub}_truth.json").read_text())
    return dseg, np.asanyarray(dseg.dataobj), doc


def _tissue_median(img: np.ndarray, dseg: np.ndarray, **crit: str) -> float:
    return float(np.median(img[np.isin(dseg, indices_for(**crit))]))


def test_same_seed_gives_identical_files(synth_study: Path, tmp_path: Path) -> None:
    synth.generate_study(tmp_path, n_subjects=1, seed=11, patterns=["normal"], n_directions=6)
    a, b = synth_study / "sub-01", tmp_path / "sub-01"
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) > 300
    _, mismatch, errors = filecmp.cmpfiles(a, b, [str(f) for f in files_a], shallow=False)
    assert mismatch == [] and errors == []


def test_different_seed_gives_a_different_subject(tmp_path: Path, synth_study: Path) -> None:
    synth.generate_study(tmp_path, n_subjects=1, seed=12, patterns=["normal"], n_directions=6)
    a = json.loads((synth_study / "sub-01/truth/sub-01_truth.json").read_text())
    b = json.loads((tmp_path / "sub-01/truth/sub-01_truth.json").read_text())
    assert a["geometry"] != b["geometry"]


def test_every_labelled_region_occurs(synth_study: Path) -> None:
    _, dseg, _ = _truth(synth_study, "sub-01")
    present = set(np.unique(dseg).tolist())
    missing = [r.name for r in REGIONS if r.index not in present]
    assert missing == []
    assert set(np.unique(ph.build_phantom().dseg).tolist()) == {0} | {r.index for r in REGIONS}


def test_dcm2niix_converts_every_series_with_right_geometry(synth_converted) -> None:
    conv = synth_converted["sub-01"]
    assert len(conv) == 4
    t2 = nib.load(_series(conv, "T2"))
    t1 = nib.load(_series(conv, "T1"))
    dwi = nib.load(_series(conv, "DWI"))
    adc = nib.load(_series(conv, "DWI_6DIR_B1000_ADC"))
    assert t2.header.get_zooms()[:3] == pytest.approx((1.2, 1.2, 2.0))
    assert t2.shape == (synth.T2_GRID["cols"], synth.T2_GRID["rows"], synth.T2_GRID["n_slices"])
    # same acquisition grid (dcm2niix may store the 3D T1w with the other x order)
    c1, c2 = nib.as_closest_canonical(t1), nib.as_closest_canonical(t2)
    assert c1.shape == c2.shape and np.allclose(c1.affine, c2.affine, atol=1e-3)
    assert dwi.shape[3] == 7 and dwi.header.get_zooms()[:3] == pytest.approx((2.5, 2.5, 3.0))
    assert adc.shape == dwi.shape[:3]
    # axial slices, patient axes: first axis runs along x (L-R), third along z (S-I)
    assert nib.aff2axcodes(t2.affine)[1:] == ("A", "S")
    assert nib.aff2axcodes(t2.affine)[0] in ("L", "R")
    bval = np.loadtxt(dwi.get_filename().replace(".nii.gz", ".bval"))
    assert bval.tolist() == [0.0] + [1000.0] * 6
    bvec = np.loadtxt(dwi.get_filename().replace(".nii.gz", ".bvec"))
    assert np.allclose(np.linalg.norm(bvec[:, 1:], axis=0), 1.0, atol=1e-3)


def test_truth_labels_line_up_with_converted_t2w(synth_study: Path, synth_converted) -> None:
    """The image predicted from the truth labels matches the converted T2w, and matches it
    clearly better than its left-right mirror (the phantom's folding is asymmetric)."""
    dseg_img, dseg, _ = _truth(synth_study, "sub-01")
    t2 = nib.load(_series(synth_converted["sub-01"], "T2"))
    assert np.allclose(dseg_img.affine, t2.affine, atol=1e-4)
    img = t2.get_fdata()
    predicted = ph.property_table()[dseg, 1]
    brain = dseg > 0
    r = np.corrcoef(img[brain], predicted[brain])[0, 1]
    r_flip = np.corrcoef(img[brain], predicted[::-1][brain])[0, 1]
    assert r > 0.85
    assert r - r_flip > 0.1


def test_neonatal_contrast_in_generated_images(synth_study: Path, synth_converted) -> None:
    _, dseg, _ = _truth(synth_study, "sub-01")
    conv = synth_converted["sub-01"]
    t2 = nib.load(_series(conv, "T2")).get_fdata()
    t1_img = nib.load(_series(conv, "T1"))
    t1 = t1_img.get_fdata()
    if not np.allclose(t1_img.affine, nib.load(_series(conv, "T2")).affine, atol=1e-3):
        t1 = t1[::-1]  # the same grid stored with the other x order
    # erode labels so partial volume at tissue borders does not decide the comparison
    core = {name: ndimage.binary_erosion(np.isin(dseg, indices_for(**crit)))
            for name, crit in {"wm": {"tissue": "wm"}, "cgm": {"tissue": "cortical_gm"},
                               "csf": {"region": "lateral_ventricle"},
                               "plic": {"region": "plic"}, "deep": {"tissue": "deep_gm"}}.items()}
    med = {(seq, k): float(np.median(img[m])) for seq, img in (("t2", t2), ("t1", t1))
           for k, m in core.items() if m.any()}
    # T2w: CSF > unmyelinated white matter > grey matter > myelinated PLIC
    assert med["t2", "csf"] > med["t2", "wm"] > med["t2", "cgm"]
    assert med["t2", "plic"] < med["t2", "wm"] and med["t2", "plic"] < med["t2", "deep"]
    # T1w: the reverse for white vs grey matter; PLIC brightest
    assert med["t1", "wm"] < med["t1", "cgm"]
    assert med["t1", "plic"] > max(med["t1", "wm"], med["t1", "deep"], med["t1", "cgm"])


def test_adc_values_are_plausible(synth_study: Path, synth_converted) -> None:
    dseg_img, dseg, _ = _truth(synth_study, "sub-01")
    adc_img = nib.load(_series(synth_converted["sub-01"], "DWI_6DIR_B1000_ADC"))
    adc = adc_img.get_fdata()
    # truth labels onto the ADC grid (nearest neighbour)
    vox = np.linalg.inv(dseg_img.affine) @ adc_img.affine
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in adc.shape), indexing="ij"), -1)
    src = ijk @ vox[:3, :3].T + vox[:3, 3]
    lab = ndimage.map_coordinates(dseg, src.reshape(-1, 3).T, order=0).reshape(adc.shape)
    wm = np.median(adc[ndimage.binary_erosion(np.isin(lab, indices_for(tissue="wm")))])
    gm = np.median(adc[np.isin(lab, indices_for(tissue="deep_gm"))])
    assert 1100 <= wm <= 1300
    assert gm < wm


def test_truth_weeke_items_obey_the_score(synth_study: Path) -> None:
    form = load_form("weeke-consensus-2025")
    totals = {}
    for sub in ("sub-01", "sub-02"):
        _, _, doc = _truth(synth_study, sub)
        result = score_items(form, doc["weeke"])  # raises on any rule violation
        assert result.complete
        totals[sub] = result.total
    assert totals["sub-01"] == 0  # normal
    _, _, mixed = _truth(synth_study, "sub-02")
    assert totals["sub-02"] > 0 and mixed["injuries"]
    assert all(i["voxels"] > 0 and i["shows_on"] for i in mixed["injuries"])


def test_planted_injuries_show_on_the_images(synth_study: Path, synth_converted) -> None:
    """Every planted T2-visible lesion changes the T2w signal where the truth mask says."""
    t = synth_study / "sub-02" / "truth"
    lesion = np.asanyarray(nib.load(t / "sub-02_desc-lesion_mask.nii.gz").dataobj)
    dseg = np.asanyarray(nib.load(t / "sub-02_dseg.nii.gz").dataobj)
    t2 = nib.load(_series(synth_converted["sub-02"], "T2")).get_fdata()
    doc = json.loads((t / "sub-02_truth.json").read_text())
    checked = 0
    for inj in doc["injuries"]:
        f = inj["factors"].get("T2w", 1.0)
        inside = lesion == inj["number"]
        # punctate lesions are 2-3 mm across: partial volume on a 2 mm slice dilutes them
        if abs(f - 1.0) < 0.2 or inside.sum() < 20 or inj["kind"] == "pwml":
            continue
        region = dseg == label_index(inj["region"], inj["hemisphere"])
        healthy = region & (lesion == 0)
        if healthy.sum() < 20:
            continue
        ratio = np.median(t2[inside]) / np.median(t2[healthy])
        assert (ratio > 1.08) if f > 1 else (ratio < 0.92), inj
        checked += 1
    assert checked >= 1


def test_dicom_carries_standard_diffusion_tags_and_fake_identity(synth_study: Path) -> None:
    dwi_dir = next(p for p in (synth_study / "sub-02/dicom").iterdir()
                   if "DWI" in p.name and not p.name.endswith("ADC"))
    bvals = set()
    for f in sorted(dwi_dir.iterdir())[:14]:
        ds = pydicom.dcmread(f)
        bvals.add(float(ds.DiffusionBValue))
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
        assert ds.PatientName and ds.PatientBirthDate and ds.InstitutionName
        assert ds.AccessionNumber and ds.DeviceSerialNumber
    assert bvals == {0.0, 1000.0}


def test_cli_refuses_unknown_pattern(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli.main(["synth", "--out", str(tmp_path), "--pattern", "stroke"])
    assert rc == 2
    assert "unknown pattern 'stroke'" in capsys.readouterr().err


def test_acquisition_grids_default_and_isotropic_resolution() -> None:
    """Default: the clinical grids unchanged; resolution r: same field of view, r mm anatomy
    and 2r mm diffusion voxels."""
    g = synth.acquisition_grids()
    assert (g["T2w"], g["T1w"], g["DWI"]) == (synth.T2_GRID, synth.T1_GRID, synth.DWI_GRID)
    one = synth.acquisition_grids(1.0)
    for name, base in (("T2w", synth.T2_GRID), ("DWI", synth.DWI_GRID)):
        r = 2.0 if name == "DWI" else 1.0
        assert one[name]["pixel_mm"] == (r, r) and one[name]["slice_mm"] == r
        fov = one[name]["rows"] * r, one[name]["n_slices"] * r
        want = base["rows"] * base["pixel_mm"][0], base["n_slices"] * base["slice_mm"]
        assert fov == pytest.approx(want, abs=r)
    with pytest.raises(ValueError, match="positive"):
        synth.acquisition_grids(0)


def test_shipped_sample_data_is_what_weeke_synth_makes(tmp_path: Path) -> None:
    """sample_data/README.md's command regenerates the shipped study byte for byte (sub-01)."""
    from weeke_pipeline.resources import data_dir

    sample = data_dir("sample_data")
    synth.generate_study(tmp_path, n_subjects=1, seed=2026, patterns=["normal"], n_directions=6)
    ours = sorted(p.relative_to(tmp_path / "sub-01") for p in (tmp_path / "sub-01").rglob("*")
                  if p.is_file())
    shipped = sorted(p.relative_to(sample / "sub-01") for p in (sample / "sub-01").rglob("*")
                     if p.is_file())
    assert ours == shipped
    _, mismatch, errors = filecmp.cmpfiles(sample / "sub-01", tmp_path / "sub-01",
                                           [str(f) for f in ours], shallow=False)
    assert mismatch == [] and errors == []
