"""`weeke atlas import --tissues`: lobe labels that cover cortex and white matter (the ALBERTs'
50-label maps) are split with the Draw-EM 9-class tissue map; bad inputs are refused with the
file named. Inputs are made from the phantom in Draw-EM numbering at test time."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from atlas_helpers import MAPPINGS, phantom_grid, write_atlas_inputs

from weeke_pipeline import cli
from weeke_pipeline.atlas.bundle import AtlasError, import_atlas, load_atlas
from weeke_pipeline.atlas.derived import as_real_atlas
from weeke_pipeline.atlas.regions import REGIONS

LOBAR_WM = [r for r in REGIONS if r.region.startswith("wm_")]
CORTEX = [r for r in REGIONS if r.region.startswith("cortex_")]


def _dseg(bundle_dir: Path) -> np.ndarray:
    return np.asanyarray(nib.load(bundle_dir / "dseg.nii.gz").dataobj)


def test_albert_fifty_labels_with_tissues_fill_white_matter(tmp_path: Path) -> None:
    inputs = write_atlas_inputs(tmp_path / "in", fifty=True)
    out = tmp_path / "albert-01"
    assert cli.main(["atlas", "import", "--t2w", str(inputs["t2w"]), "--dseg",
                     str(inputs["dseg"]), "--tissues", str(inputs["tissues"]), "--out", str(out),
                     "--pma-weeks", "41", "--licence", "test", "--derive", "none"]) == 0
    bundle = load_atlas(out)  # default mapping with --tissues: albert; name: the folder's
    assert bundle.name == "albert-01" and "albert_labels.tsv" in bundle.meta["built_with"]
    got, truth = _dseg(out), as_real_atlas(phantom_grid(2.0).dseg)
    for r in LOBAR_WM + CORTEX:  # each lobe's white matter and cortex, exactly as the truth
        assert (got == r.index).sum() > 0, r.name
        assert np.array_equal(got == r.index, truth == r.index), r.name
    # the CSF the 50-label map does not label comes from the tissue map
    csf = next(r.index for r in REGIONS if r.region == "csf_extracerebral")
    assert np.array_equal(got == csf, truth == csf)
    split = bundle.meta["tissue_split"]
    assert split["to_white_matter"] == int(np.isin(truth, [r.index for r in LOBAR_WM]).sum())
    assert bundle.meta["source_files"]["tissues"]["file"] == "tissues.nii.gz"


def test_fifty_labels_without_tissues_are_refused_not_counted_as_cortex(tmp_path: Path) -> None:
    inputs = write_atlas_inputs(tmp_path / "in", fifty=True)
    common = dict(t2w=inputs["t2w"], dseg=inputs["dseg"], out_dir=tmp_path / "b", name="x",
                  pma_weeks=40, licence="test")
    with pytest.raises(AtlasError, match=r"no lobar white matter.*--tissues"):
        import_atlas(mapping=MAPPINGS / "drawem_all_labels.tsv", **common)
    with pytest.raises(AtlasError, match=r"albert_labels\.tsv.*--tissues"):
        import_atlas(mapping=MAPPINGS / "albert_labels.tsv", **common)
    assert not (tmp_path / "b").exists()


def test_eighty_seven_labels_import_the_same_with_either_mapping(tmp_path: Path) -> None:
    inputs = write_atlas_inputs(tmp_path / "in")
    common = dict(t2w=inputs["t2w"], dseg=inputs["dseg"], pma_weeks=40, licence="test",
                  name="x")
    import_atlas(mapping=MAPPINGS / "drawem_all_labels.tsv", out_dir=tmp_path / "a", **common)
    import_atlas(mapping=MAPPINGS / "albert_labels.tsv", tissues=inputs["tissues"],
                 out_dir=tmp_path / "b", **common)
    assert np.array_equal(_dseg(tmp_path / "a"), _dseg(tmp_path / "b"))


def _save_like(ref: Path, data: np.ndarray, path: Path, affine: np.ndarray | None = None) -> Path:
    img = nib.load(ref)
    nib.save(nib.Nifti1Image(data, img.affine if affine is None else affine), path)
    return path


def test_bad_inputs_are_refused_with_the_file_named(tmp_path: Path) -> None:
    inputs = write_atlas_inputs(tmp_path / "in", fifty=True)
    tis = np.asanyarray(nib.load(inputs["tissues"]).dataobj)
    lab = np.asanyarray(nib.load(inputs["dseg"]).dataobj)
    base = dict(t2w=inputs["t2w"], dseg=inputs["dseg"], tissues=inputs["tissues"],
                mapping=MAPPINGS / "albert_labels.tsv", out_dir=tmp_path / "b", name="x",
                pma_weeks=40, licence="test")

    def refused(match: str, **change: object) -> None:
        with pytest.raises(AtlasError, match=match):
            import_atlas(**{**base, **change})  # type: ignore[arg-type]

    shifted = nib.load(inputs["tissues"]).affine.copy()
    shifted[0, 3] += 4.0
    refused(r"moved\.nii\.gz: tissue map grid .* does not match the template",
            tissues=_save_like(inputs["t2w"], tis, tmp_path / "moved.nii.gz", shifted))
    refused(r"cropped\.nii\.gz: tissue map grid",
            tissues=_save_like(inputs["t2w"], tis[1:], tmp_path / "cropped.nii.gz"))
    odd = tis.copy()
    odd[odd == 3] = 12
    refused(r"odd\.nii\.gz: tissue value\(s\) \[12\] are not in the tissue table",
            tissues=_save_like(inputs["t2w"], odd, tmp_path / "odd.nii.gz"))
    extra = lab.copy()
    extra[lab == np.bincount(lab[lab > 0].ravel()).argmax()] = 99
    refused(r"extra\.nii\.gz: label value\(s\) \[99\] are not in mapping",
            dseg=_save_like(inputs["t2w"], extra, tmp_path / "extra.nii.gz"))
    prob = lab.astype(np.float32) * 0.37
    refused(r"prob\.nii\.gz: the label map has non-integer values",
            dseg=_save_like(inputs["t2w"], prob, tmp_path / "prob.nii.gz"))
    refused(r"four\.nii\.gz: the label map must be a 3-D image",
            dseg=_save_like(inputs["t2w"], np.stack([lab, lab], -1), tmp_path / "four.nii.gz"))
    refused(r"nothere\.nii\.gz: no such file \(tissue map\)", tissues=tmp_path / "nothere.nii.gz")
    assert not (tmp_path / "b").exists()


def test_import_can_resample_first(tmp_path: Path) -> None:
    inputs = write_atlas_inputs(tmp_path / "in", fifty=True)  # 2 mm
    out = tmp_path / "albert-1mm"
    assert cli.main(["atlas", "import", "--t2w", str(inputs["t2w"]), "--dseg",
                     str(inputs["dseg"]), "--tissues", str(inputs["tissues"]), "--out", str(out),
                     "--pma-weeks", "41", "--licence", "test", "--resolution", "1"]) == 0
    bundle = load_atlas(out)
    assert bundle.meta["resolution_mm"] == [1.0, 1.0, 1.0]
    assert bundle.meta["resampled"] == {"voxel_mm": 1.0}
    assert bundle.meta["source_files"]["dseg"]["sha256"] == hashlib.sha256(
        inputs["dseg"].read_bytes()).hexdigest()  # the user's file, not the resampled copy
    got = _dseg(out)
    assert all((got == r.index).sum() > 0 for r in LOBAR_WM + CORTEX)


def test_mapping_and_tissue_tables_are_checked(tmp_path: Path) -> None:
    from weeke_pipeline.atlas.bundle import read_mapping, read_tissue_table

    rows = read_mapping(MAPPINGS / "albert_labels.tsv")
    assert {r["wm_region"] for r in rows if r["region"].startswith("cortex_")} == {
        "wm_frontal", "wm_parietal", "wm_temporal", "wm_occipital"}
    bad = tmp_path / "bad.tsv"
    bad.write_text("source_index\tsource_name\tregion\themisphere\twm_region\n"
                   "5\tlobe\tcortex_temporal\tleft\twm_temporale\n")
    with pytest.raises(AtlasError, match=r"bad\.tsv:2: 'wm_temporale_left' is not a region"):
        read_mapping(bad)
    table = tmp_path / "tissues.tsv"
    table.write_text("index\tname\tclass\n1\tCSF\tcsf\n8\tHigh-intensity WM\twhite\n")
    with pytest.raises(AtlasError, match=r"tissues\.tsv:3: class 'white' must be one of"):
        read_tissue_table(table)
