"""Atlas bundles: the shipped default atlas, its byte-identical rebuild, validation, import."""

from __future__ import annotations

import csv
import filecmp
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from weeke_pipeline import cli
from weeke_pipeline.atlas.bundle import (
    AtlasError,
    build_default,
    import_atlas,
    load_atlas,
    read_mapping,
)
from weeke_pipeline.atlas.regions import BY_NAME, REGIONS, indices_for
from weeke_pipeline.resources import data_dir, default_atlas_dir

MAPPINGS = data_dir("atlases") / "mappings"


def test_shipped_atlas_is_valid_and_complete() -> None:
    bundle = load_atlas(default_atlas_dir())
    assert bundle.name == "weeke-phantom" and bundle.meta["postmenstrual_age_weeks"] == 44
    for name in ("T2w", "T1w", "ADC", "FA", "brain_mask", "dseg"):
        assert bundle.has(name)
    dseg = np.asanyarray(nib.load(bundle.image("dseg")).dataobj)
    assert set(np.unique(dseg).tolist()) - {0} == {r.index for r in REGIONS}
    names = [row["name"] for row in bundle.labels]
    assert names == [r.name for r in REGIONS]
    assert nib.load(bundle.image("T2w")).header.get_zooms() == (1.0, 1.0, 1.0)


def test_build_default_regenerates_the_shipped_bundle_byte_identically(tmp_path: Path) -> None:
    build_default(tmp_path)
    shipped = default_atlas_dir()
    names = sorted(p.name for p in shipped.iterdir())
    assert names == sorted(p.name for p in tmp_path.iterdir())
    _, mismatch, errors = filecmp.cmpfiles(shipped, tmp_path, names, shallow=False)
    assert mismatch == [] and errors == []


def test_phantom_atlas_contrast_is_neonatal() -> None:
    bundle = load_atlas(default_atlas_dir())
    t2 = nib.load(bundle.image("T2w")).get_fdata()
    t1 = nib.load(bundle.image("T1w")).get_fdata()
    dseg = np.asanyarray(nib.load(bundle.image("dseg")).dataobj)

    def med(img: np.ndarray, **crit: str) -> float:
        return float(np.median(img[np.isin(dseg, indices_for(**crit))]))

    assert med(t2, tissue="csf") > med(t2, tissue="wm") > med(t2, tissue="cortical_gm")
    assert med(t1, tissue="wm") < med(t1, tissue="cortical_gm")
    assert med(t1, region="plic") > med(t1, tissue="deep_gm")


def test_tissue_order_on_t2w_matches_the_real_serag_template(shared_data: Path) -> None:
    """Real neonatal T2w at 40 weeks (Serag 2012 template, Draw-EM tissue map): CSF > white
    matter > cortical grey > deep grey; the phantom atlas has the same ordering."""
    root = shared_data / "atlases" / "serag2012_neonatal"
    t2 = nib.load(root / "template-40.nii.gz").get_fdata()
    tis = np.rint(nib.load(root / "tissues-40.nii.gz").get_fdata()).astype(int)
    names = {}
    for line in (root / "tissue_labels.csv").read_text().splitlines()[1:]:
        idx, name = line.split(maxsplit=1)
        names[name.strip()] = int(idx)
    real = {k: float(np.median(t2[tis == names[n]])) for k, n in
            (("csf", "CSF"), ("wm", "White matter"), ("cgm", "Cortical gray matter"),
             ("dgm", "Deep Gray Matter"))}
    assert real["csf"] > real["wm"] > real["cgm"] > real["dgm"]

    bundle = load_atlas(default_atlas_dir())
    p2 = nib.load(bundle.image("T2w")).get_fdata()
    dseg = np.asanyarray(nib.load(bundle.image("dseg")).dataobj)
    ours = {k: float(np.median(p2[np.isin(dseg, indices_for(tissue=t))])) for k, t in
            (("csf", "csf"), ("wm", "wm"), ("cgm", "cortical_gm"), ("dgm", "deep_gm"))}
    assert sorted(ours, key=ours.get) == sorted(real, key=real.get)


def test_mapping_tables_name_the_real_atlas_labels(shared_data: Path) -> None:
    tables = shared_data / "label_tables"
    drawem = {int(i): n.strip() for i, n in (line.split("\t") for line in
              (tables / "drawem_albert/all_labels.csv").read_text().splitlines())}
    with (tables / "dhcp_vol/tpl-dhcpVol_desc-structures_dseg.tsv").open() as f:
        dhcp = {int(r["index"]): r["name"].strip() for r in csv.DictReader(f, delimiter="\t")}
    for fname, names in (("drawem_all_labels.tsv", drawem), ("dhcp_vol_structures.tsv", dhcp)):
        rows = read_mapping(MAPPINGS / fname)
        assert {int(r["source_index"]): r["source_name"] for r in rows} == names
        mapped = {r["region"] for r in rows if r["region"]}
        assert {"thalamus", "lentiform", "caudate", "hippocampus", "brainstem",
                "corpus_callosum", "cerebellum"} <= mapped


def _to_drawem(dseg: np.ndarray) -> np.ndarray:
    """Renumber phantom labels into Draw-EM numbering (first source label of each region)."""
    rows = read_mapping(MAPPINGS / "drawem_all_labels.tsv")
    out = np.zeros(dseg.shape, dtype=np.int16)
    for r in REGIONS:
        for row in rows:
            hemi = row["hemisphere"]
            if row["region"] == r.region and hemi in (r.hemisphere, "split"):
                out[dseg == r.index] = int(row["source_index"])
                break
    return out


def test_import_round_trip_and_missing_regions(tmp_path: Path) -> None:
    src = default_atlas_dir()
    dseg_img = nib.load(src / "dseg.nii.gz")
    dseg = np.asanyarray(dseg_img.dataobj)
    nib.save(nib.Nifti1Image(_to_drawem(dseg), dseg_img.affine), tmp_path / "drawem.nii.gz")
    rc = cli.main(["atlas", "import", "--t2w", str(src / "T2w.nii.gz"), "--dseg",
                   str(tmp_path / "drawem.nii.gz"), "--mapping", "drawem", "--out",
                   str(tmp_path / "bundle"), "--name", "roundtrip", "--pma-weeks", "44",
                   "--licence", "Apache-2.0", "--derive", "none"])
    assert rc == 0
    bundle = load_atlas(tmp_path / "bundle")
    assert set(bundle.meta["missing_regions"]) == {"plic", "perirolandic_cortex",
                                                   "optic_radiation", "vermis"}
    back = np.asanyarray(nib.load(bundle.image("dseg")).dataobj)
    for name in ("thalamus_left", "lentiform_right", "caudate_left", "hippocampus_right",
                 "corpus_callosum", "cerebellum_left", "wm_frontal_right"):
        idx = BY_NAME[name].index
        assert np.array_equal(back == idx, dseg == idx), name
    # the brainstem, one label across the midline in Draw-EM, is split back into left/right
    for side in ("left", "right"):
        idx = BY_NAME[f"brainstem_{side}"].index
        agree = np.logical_and(back == idx, dseg == idx).sum() / (dseg == idx).sum()
        assert agree > 0.95


def test_import_refuses_labels_the_mapping_does_not_list(tmp_path: Path) -> None:
    src = default_atlas_dir()
    img = nib.load(src / "dseg.nii.gz")
    bad = np.asanyarray(img.dataobj).astype(np.int16) + 200
    nib.save(nib.Nifti1Image(bad, img.affine), tmp_path / "bad.nii.gz")
    with pytest.raises(AtlasError, match=r"bad\.nii\.gz: label value\(s\) \[20"):
        import_atlas(t2w=src / "T2w.nii.gz", dseg=tmp_path / "bad.nii.gz",
                     mapping=MAPPINGS / "drawem_all_labels.tsv", out_dir=tmp_path / "o",
                     name="x", pma_weeks=40, licence="x")


def test_broken_bundle_is_refused_with_the_file_named(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "atlas"
    shutil.copytree(default_atlas_dir(), bundle)
    meta = json.loads((bundle / "atlas.json").read_text())
    del meta["licence"]
    (bundle / "atlas.json").write_text(json.dumps(meta))
    assert cli.main(["atlas", "validate", str(bundle)]) == 2
    assert "atlas.json: missing field(s) licence" in capsys.readouterr().err
    shutil.copy(default_atlas_dir() / "atlas.json", bundle / "atlas.json")
    t2 = nib.load(bundle / "T2w.nii.gz")
    nib.save(nib.Nifti1Image(np.asanyarray(t2.dataobj)[:-1], t2.affine), bundle / "T1w.nii.gz")
    with pytest.raises(AtlasError, match=r"T1w\.nii\.gz: grid"):
        load_atlas(bundle)
