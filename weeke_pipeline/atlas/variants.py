"""Phantom-variant atlases: the shipped phantom atlas under a small random affine, a
different "anatomy" whose labels are exact for it. They let tests, the demo of multi-atlas
segmentation and benchmarks run several atlases without third-party data (the plumbing, not
an accuracy claim: real atlases for that)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from weeke_pipeline.atlas.bundle import AtlasBundle, load_atlas


def phantom_variant(dst: Path, name: str, seed: int, *, source: Path | None = None,
                    scale: float = 0.05, shift_mm: float = 2.0) -> AtlasBundle:
    """Write bundle ``dst``: ``source`` (default: the phantom atlas) resampled through a random
    affine about the grid centre (per-axis scale in 1 +- ``scale``, shift up to ``shift_mm``
    voxels); T2w linear, brain mask and labels nearest neighbour; same label table."""
    import nibabel as nib
    from scipy import ndimage

    from weeke_pipeline.resources import default_atlas_dir

    src = Path(source or default_atlas_dir())
    rng = np.random.default_rng(seed)
    mat = np.diag(rng.uniform(1 - scale, 1 + scale, 3))
    shift = rng.uniform(-shift_mm, shift_mm, 3)
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("T2w", "brain_mask", "dseg"):
        img = nib.load(src / f"{f}.nii.gz")
        arr = np.asanyarray(img.dataobj)
        centre = (np.array(arr.shape[:3]) - 1) / 2
        out = ndimage.affine_transform(arr.astype(np.float32), mat,
                                       offset=centre - mat @ centre + shift,
                                       order=1 if f == "T2w" else 0)
        nib.save(nib.Nifti1Image(np.rint(out).astype(arr.dtype), img.affine, img.header),
                 dst / f"{f}.nii.gz")
    shutil.copy(src / "labels.tsv", dst / "labels.tsv")
    doc = json.loads((src / "atlas.json").read_text())
    doc["name"] = name
    doc["built_with"] = f"weeke_pipeline.atlas.variants.phantom_variant(seed={seed})"
    (dst / "atlas.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return load_atlas(dst)
