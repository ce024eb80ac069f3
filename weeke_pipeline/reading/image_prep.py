"""Smaller images for the reading page: each image cropped to the brain mask's bounding box
(in millimetres) plus a margin, before it is stored under the reading code.

Viewers download every sequence of a case before showing it; neonatal scans are acquired with a
field of view well beyond the brain (head, neck, air), so cropping cuts the bytes on the wire
and the WebGL texture upload (the slow part with software rendering). The box is computed in
world coordinates and applied to each image on its own grid (``nibabel``'s ``slicer`` keeps
the affine right), so sequences on different grids stay aligned. The default margin (15 mm)
keeps the extra-axial spaces the Weeke form scores (subdural haemorrhage, venous sinuses).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

DEFAULT_MARGIN_MM = 15.0


def brain_box(mask: Any, margin_mm: float = DEFAULT_MARGIN_MM) -> np.ndarray | None:
    """(2, 3) world-coordinate box [min, max] (mm) around the mask's voxels, grown by
    ``margin_mm``; None when the mask is empty."""
    data = np.asarray(mask.dataobj) > 0
    if not data.any():
        return None
    idx = np.argwhere(data)
    lo, hi = idx.min(axis=0) - 0.5, idx.max(axis=0) + 0.5  # voxel edges
    corners = np.array([[(lo, hi)[c][a] for a, c in enumerate(combo)]
                        for combo in itertools.product((0, 1), repeat=3)])
    world = corners @ mask.affine[:3, :3].T + mask.affine[:3, 3]
    return np.stack([world.min(axis=0) - margin_mm, world.max(axis=0) + margin_mm])


def crop_to_box(img: Any, box: np.ndarray) -> Any:
    """``img`` cut to the voxels inside the world box (whole image when it lies inside)."""
    corners = np.array(list(itertools.product(*box.T)))  # 8 corners, mm
    inv = np.linalg.inv(img.affine)
    vox = corners @ inv[:3, :3].T + inv[:3, 3]
    shape = np.array(img.shape[:3])
    lo = np.clip(np.floor(vox.min(axis=0) + 0.5).astype(int), 0, shape)
    hi = np.clip(np.ceil(vox.max(axis=0) + 0.5).astype(int), 0, shape)
    if np.any(hi - lo < 1):
        return img  # no overlap: keep the image whole rather than lose it
    if np.array_equal(lo, 0) and np.array_equal(hi, shape):
        return img
    return img.slicer[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
