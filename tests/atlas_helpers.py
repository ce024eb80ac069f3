"""Test inputs in real atlases' formats, made from the phantom at test time (no shared data):
Draw-EM 87-structure and ALBERTs 50-structure label maps, Draw-EM 9-class tissue maps, and a
TemplateFlow home in the real ``tpl-dhcpVol`` layout and file names."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nib
import numpy as np

from weeke_pipeline.atlas import phantom as ph
from weeke_pipeline.atlas.derived import as_real_atlas
from weeke_pipeline.atlas.regions import BY_INDEX
from weeke_pipeline.resources import data_dir

MAPPINGS = data_dir("atlases") / "mappings"
#: Draw-EM 9-class tissue numbering (Draw-EM tissue_labels.csv)
TISSUE_OF = {"csf": 1, "cortical_gm": 2, "wm": 3, "deep_gm": 7, "brainstem": 8,
             "cerebellum": 6}


def _rows(name: str) -> list[dict[str, str]]:
    with (MAPPINGS / name).open() as f:
        return list(csv.DictReader((ln for ln in f if not ln.startswith("#")), delimiter="\t"))


def phantom_grid(voxel: float = 2.0) -> ph.Phantom:
    """The phantom on a coarse grid (fast): same anatomy in mm."""
    shape = tuple(round(n * ph.VOXEL_MM / voxel) for n in ph.GRID_SHAPE)
    return ph.build_phantom(shape, voxel)  # type: ignore[arg-type]


def drawem_labels(vocab: np.ndarray, *, fifty: bool = False) -> np.ndarray:
    """A Draw-EM-numbered label map of a vocabulary label map (the phantom's four regions real
    atlases lack first given to their donors). ``fifty``: ALBERTs 50 labels, whose lobe labels
    cover cortex and white matter."""
    real = as_real_atlas(vocab)
    src_of: dict[str, int] = {}
    for r in _rows("drawem_all_labels.tsv"):
        if not r["region"]:
            continue
        idx = int(r["source_index"])
        if fifty and idx > 50:
            continue
        hemis = ["left", "right"] if r["hemisphere"] == "split" else [r["hemisphere"]]
        for h in hemis:
            key = r["region"] if h == "midline" else f"{r['region']}_{h}"
            src_of.setdefault(key, idx)
            if fifty and r["region"].startswith("cortex_"):  # the lobe label takes its WM too
                src_of.setdefault(f"wm_{r['region'].split('_', 1)[1]}_{h}", idx)
    out = np.zeros(real.shape, dtype=np.int16)
    for v in np.unique(real):
        if v == 0:
            continue
        name = BY_INDEX[int(v)].name
        if fifty and name == "csf_extracerebral":
            continue  # the 50-label maps have no CSF label
        out[real == v] = src_of[name]
    return out


def tissue_map(vocab: np.ndarray) -> np.ndarray:
    """Draw-EM 9-class tissue map of a vocabulary label map."""
    out = np.zeros(vocab.shape, dtype=np.int16)
    for v in np.unique(vocab):
        if v == 0:
            continue
        r = BY_INDEX[int(v)]
        if r.region == "lateral_ventricle":
            out[vocab == v] = 5
        elif r.region == "hippocampus":
            out[vocab == v] = 9
        else:
            out[vocab == v] = TISSUE_OF[r.tissue]
    return out


def write_atlas_inputs(folder: Path, *, fifty: bool = False, voxel: float = 2.0
                       ) -> dict[str, Path]:
    """T2w, label map, tissue map and brain mask of the phantom in Draw-EM numbering."""
    p = phantom_grid(voxel)
    folder.mkdir(parents=True, exist_ok=True)
    t2 = ph.property_maps(p.labels)["T2w"]
    paths = {"t2w": folder / "T2w.nii.gz", "dseg": folder / "dseg.nii.gz",
             "tissues": folder / "tissues.nii.gz", "brain_mask": folder / "mask.nii.gz"}
    nib.save(nib.Nifti1Image(t2.astype(np.float32), p.affine), paths["t2w"])
    nib.save(nib.Nifti1Image(drawem_labels(p.dseg, fifty=fifty), p.affine), paths["dseg"])
    nib.save(nib.Nifti1Image(tissue_map(p.dseg), p.affine), paths["tissues"])
    nib.save(nib.Nifti1Image(p.brain_mask.astype(np.uint8), p.affine), paths["brain_mask"])
    return paths


TEMPLATE_DESCRIPTION = {
    "Identifier": "dhcpVol", "License": "CC-BY 4.0", "TemplateFlowVersion": "1.0.0",
    "Name": "Unbiased and temporally consistent morphological atlas of neonatal brain development",
    "ReferencesAndLinks": ["https://doi.org/10.1101/251512"],
    "cohort": {str(w): {"age": [w], "units": "weeks"} for w in range(36, 45)},
}


def build_templateflow_home(home: Path, weeks: dict[int, float], *, empty: tuple[int, ...] = ()
                            ) -> dict[str, Path]:
    """A TemplateFlow home with ``tpl-dhcpVol`` in the real layout and names (FILES.txt of the
    template): for each week, T1w, T2w, brain mask, structures and tissues dseg (+ probseg
    names), made from the phantom scaled by ``weeks[week]``; weeks in ``empty`` get zero-byte
    files, as TemplateFlow's skeleton leaves them before a download. Returns written paths."""
    tpl = home / "tpl-dhcpVol"
    tpl.mkdir(parents=True)
    (tpl / "template_description.json").write_text(json.dumps(TEMPLATE_DESCRIPTION, indent=2))
    for desc, table in (("structures", "drawem_all_labels.tsv"), ("tissues", None)):
        lines = ["index\tname"]
        if table:
            lines += [f"{r['source_index']}\t{r['source_name']}" for r in _rows(table)]
        else:
            lines += [f"{i}\t{n}" for i, n in enumerate(
                ["CSF", "Cortical gray matter", "White matter", "Background", "Ventricles",
                 "Cerebellum", "Deep Gray Matter", "Brainstem", "Hippocampi and Amygdala"], 1)]
        (tpl / f"tpl-dhcpVol_desc-{desc}_dseg.tsv").write_text("\n".join(lines) + "\n")
    (tpl / "LICENSE").write_text("CC BY 4.0 (test copy)\n")
    p = phantom_grid(2.0)
    written: dict[str, Path] = {}
    for week, scale in weeks.items():
        d = tpl / f"cohort-{week}"
        d.mkdir()
        stem = f"tpl-dhcpVol_cohort-{week}"
        aff = p.affine.copy()
        aff[:3, :3] *= scale
        maps = ph.property_maps(p.labels)
        images = {
            "T1w": maps["T1w"].astype(np.float32), "T2w": maps["T2w"].astype(np.float32),
            "desc-brain_mask": p.brain_mask.astype(np.uint8),
            "desc-structures_dseg": drawem_labels(p.dseg),
            "desc-tissues_dseg": tissue_map(p.dseg),
        }
        for suffix, data in images.items():
            f = d / f"{stem}_{suffix}.nii.gz"
            if week in empty:
                f.touch()
            else:
                nib.save(nib.Nifti1Image(data, aff), f)
            written[f"{week}/{suffix}"] = f
        for suffix in ("desc-structures_probseg", "desc-tissues_probseg"):
            (d / f"{stem}_{suffix}.nii.gz").touch()  # not fetched: stay placeholders
    return written
