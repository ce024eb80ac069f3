"""NIfTI reading for the computing steps, and writing with deterministic bytes and nothing
identifying in the header."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np


def save_nifti(data: np.ndarray, affine: np.ndarray, path: Path | str, *,
               descrip: str = "") -> Path:
    """Save ``data`` as NIfTI-1 with ``affine`` as both qform and sform (code 1, scanner).

    nibabel writes gzip with mtime 0, so the same array gives byte-identical files; the
    ``descrip`` and ``aux_file`` fields are set explicitly (never copied from a source header).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(np.asarray(data), np.asarray(affine, dtype=float))
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    img.header["descrip"] = descrip.encode()[:79]
    img.header["aux_file"] = b""
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, path)
    return path


def load_canonical(x: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A 3D image (path or nibabel image) as an array in closest-canonical (RAS) orientation,
    and its voxel sizes; a clear ``ValueError`` naming the file and ``what`` it is otherwise."""
    try:
        img = x if hasattr(x, "dataobj") else nib.load(os.fspath(x))
        img = nib.as_closest_canonical(img)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{x}: cannot read {what}: {exc}") from None
    arr = np.asanyarray(img.dataobj)
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f"{x}: {what} must be 3D (got shape {arr.shape})")
    return arr, np.asarray(img.header.get_zooms()[:3], float)
