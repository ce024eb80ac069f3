"""NIfTI writing with deterministic bytes and nothing identifying in the header."""

from __future__ import annotations

from pathlib import Path

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
