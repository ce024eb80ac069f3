"""Apparent diffusion coefficient (ADC) from a DWI series, as a pure numpy function.

Model (mono-exponential, trace): ``S(b) = S0 exp(-b ADC)``. Volumes are grouped into shells
(b-values within 50 s/mm^2 of each other; b <= 50 counts as b=0 with its actual value). Per
shell k the trace signal is the geometric mean over its directions,
``y_k = mean_j ln S_kj`` (= ln S0 - b_k MD for a tensor), at the shell's mean b-value ``b_k``.
The log-linear least-squares fit over shells gives

    ADC = - sum_k (b_k - mean b)(y_k - mean y) / sum_k (b_k - mean b)^2

in mm^2/s for b in s/mm^2; the map is returned in 10^-6 mm^2/s (the scanner convention, e.g.
~1100 in term white matter at 1 month, ~3000 in CSF). Voxels outside the mask, or with a
non-positive signal, are 0; negative fits are clipped to 0.

The mask is Otsu's threshold on the mean b=0 image (scikit-image), largest connected component,
holes filled.
"""

from __future__ import annotations

import numpy as np

SHELL_TOLERANCE = 50.0
B0_MAX = 50.0
SCALE = 1e6  # mm^2/s -> 10^-6 mm^2/s


def shells(bvals: np.ndarray, tol: float = SHELL_TOLERANCE) -> list[np.ndarray]:
    """Indices of the volumes of each shell, shells ordered by b-value."""
    bvals = np.asarray(bvals, float)
    order = np.argsort(bvals, kind="stable")
    groups: list[list[int]] = []
    for i in order:
        if groups and bvals[i] - bvals[groups[-1][0]] <= tol:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    return [np.asarray(g) for g in groups]


def otsu_mask(b0: np.ndarray) -> np.ndarray:
    """Brain/head mask: Otsu threshold on the b=0 image, largest component, holes filled."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    b0 = np.asarray(b0, float)
    finite = b0[np.isfinite(b0)]
    if finite.size == 0 or np.ptp(finite) == 0:
        return np.zeros(b0.shape, bool)
    mask = b0 > threshold_otsu(finite)
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
        mask = labels == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(mask)


def fit_adc(dwi: np.ndarray, bvals: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """ADC map (10^-6 mm^2/s, float32) from a 4D DWI (last axis = volumes) and its b-values.

    Needs at least two shells, one of them b <= 50 s/mm^2. ``mask=None`` -> :func:`otsu_mask`.
    """
    dwi = np.asarray(dwi, float)
    bvals = np.asarray(bvals, float).ravel()
    if dwi.ndim != 4 or dwi.shape[-1] != bvals.size:
        raise ValueError(f"DWI shape {dwi.shape} does not match {bvals.size} b-values")
    groups = shells(bvals)
    if len(groups) < 2 or bvals[groups[0]].mean() > B0_MAX:
        raise ValueError(
            f"ADC needs a b=0 shell and a b>0 shell; b-values found: {sorted(set(bvals.round(1)))}")
    b0 = dwi[..., groups[0]].mean(axis=-1)
    if mask is None:
        mask = otsu_mask(b0)
    mask = np.asarray(mask, bool) & np.all(dwi > 0, axis=-1)
    vox = dwi[mask]  # (n, volumes)
    logs = np.log(vox)
    y = np.stack([logs[:, g].mean(axis=1) for g in groups], axis=1)  # (n, shells)
    b = np.array([bvals[g].mean() for g in groups])
    bc = b - b.mean()
    slope = (y - y.mean(axis=1, keepdims=True)) @ bc / np.sum(bc**2)
    out = np.zeros(dwi.shape[:3], np.float32)
    out[mask] = np.clip(-slope * SCALE, 0, None)
    return out
