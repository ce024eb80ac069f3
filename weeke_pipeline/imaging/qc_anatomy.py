"""QC checks that tell a good atlas registration from a bad one on real neonatal brains.

Pure numpy functions over arrays already on the subject's T2w grid (closest-canonical RAS, as
:func:`weeke_pipeline.qc._load` returns them), plus one reader for an ITK displacement field.
Why these and not image similarity: the T2w-to-atlas correlation across different anatomy and
mean/SD inside white matter (anatomy, not noise) did not separate good from bad runs on real
templates (docs/registration_metrics_qc.md, "QC on real brains"). Each check answers one
question a reader of the labels would ask:

- :func:`tissue_contrast`: do the propagated labels sit on the right tissue? T2w at term:
  CSF > white matter > cortex > deep grey matter (measured on the Serag 40-week template with
  its Draw-EM tissue map: median T2w / labelled-brain median 1.82 (ventricles), 1.04, 0.89,
  0.84). Reported: each
  tissue's median relative to the brain median, the ordered pair contrasts and the correlation
  ratio eta^2 = 1 - sum_k n_k var_k / (N var) of the T2w explained by the tissue classes
  (Pearson's correlation ratio; the same quantity the "CR" registration metric maximises,
  Roche et al. 1998).
- :func:`laterality`: are left labels on the subject's left? (a left-right flipped atlas or
  label map registers just as well as the right one: only the side gives it away).
- :func:`jacobian_stats`: is the non-linear warp plausible? (folding: det J <= 0; extreme local
  volume change: |log det J| percentiles).
- :func:`expected_brain_volume_ml`: is the brain the size expected for the postmenstrual age?
- :func:`relative_coverage`: are the regions the atlas has all present on the subject?
- :func:`fov_truncation`: does the brain run off the field of view or into zero-filled slices?
- :func:`air_noise`: SNR from background air only where there is air; a skull-stripped or
  zero-filled image has none (returned as a reason, never flagged).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy import ndimage

from weeke_pipeline.atlas.regions import BY_INDEX, REGIONS

#: T2w order at term, brightest first (Serag 40-week template, Draw-EM tissue map)
T2W_ORDER: tuple[str, ...] = ("csf", "wm", "cortical_gm", "deep_gm")

#: Weeke-vocabulary label indices per tissue class used by the contrast checks. CSF = the
#: lateral ventricles (the extracerebral CSF is a thin, partial-volumed rim that skull
#: stripping often removes); PLIC and optic radiation are left out of "wm" (myelinating at
#: term: dark on T2w), hippocampus out of "cortical_gm" (archicortex, brighter than neocortex).
_CLASS_REGIONS: dict[str, tuple[str, ...]] = {
    "csf": ("lateral_ventricle",),
    "wm": ("wm_frontal", "wm_parietal", "wm_temporal", "wm_occipital"),
    "cortical_gm": ("cortex_frontal", "cortex_parietal", "cortex_temporal",
                    "cortex_occipital", "perirolandic_cortex"),
    "deep_gm": ("thalamus", "caudate", "lentiform"),
}
TISSUE_CLASSES: dict[str, list[int]] = {
    cls: [r.index for r in REGIONS if r.region in names]
    for cls, names in _CLASS_REGIONS.items()
}


# --------------------------------------------------------------------------- contrast
def tissue_contrast(t2w: np.ndarray, labels: np.ndarray, brain: np.ndarray | None = None,
                    *, min_voxels: int = 20) -> dict[str, Any]:
    """Median T2w per tissue class (relative to the median over all labelled brain voxels),
    the contrasts of consecutive classes of :data:`T2W_ORDER` and eta^2.

    ``contrast[a>b]`` = (median_a - median_b) / median_brain; positive when the order holds.
    ``eta2`` = 1 - sum_k n_k var_k / (N var) over the voxels of the four classes (0..1; 0 when
    the classes do not explain the intensities at all). Classes with fewer than ``min_voxels``
    voxels are left out (an atlas without them); the contrast then spans the gap
    (e.g. CSF > cortex when the atlas has no white-matter label).
    """
    img = np.asarray(t2w, float)
    lab = np.asarray(labels)
    sel = lab > 0 if brain is None else (lab > 0) & np.asarray(brain, bool)
    ref = float(np.median(img[sel])) if sel.any() else float("nan")
    medians: dict[str, float] = {}
    groups: list[np.ndarray] = []
    for cls in T2W_ORDER:
        vals = img[sel & np.isin(lab, TISSUE_CLASSES[cls])]
        if vals.size >= min_voxels and ref > 0:
            medians[cls] = float(np.median(vals) / ref)
            groups.append(vals / ref)
    present = [c for c in T2W_ORDER if c in medians]
    contrast = {f"{a}>{b}": medians[a] - medians[b] for a, b in itertools.pairwise(present)}
    eta2 = float("nan")
    if len(groups) >= 2:
        allv = np.concatenate(groups)
        total = allv.var() * allv.size
        within = sum(g.var() * g.size for g in groups)
        eta2 = float(1.0 - within / total) if total > 0 else float("nan")
    return {"tissue_t2w": medians, "t2w_contrast": contrast, "tissue_eta2": eta2}


# --------------------------------------------------------------------------- laterality
def laterality(labels: np.ndarray, affine: np.ndarray, *, min_voxels: int = 20
               ) -> dict[str, Any]:
    """Which side each lateralised region is on, in world (RAS) coordinates.

    For every region with both a left and a right label (>= ``min_voxels`` voxels each):
    ``x_right - x_left`` of the label centroids (mm; positive = as it should be, since RAS x
    grows to the subject's right). Returns the number of pairs, the fraction on the correct
    side (``laterality_correct``) and the median separation.
    """
    lab = np.asarray(labels).astype(np.int64)
    n = max(r.index for r in REGIONS) + 1
    counts = np.bincount(lab.ravel(), minlength=n)[:n]
    with np.errstate(invalid="ignore", divide="ignore"):
        cen_vox = np.array(ndimage.center_of_mass(np.ones(lab.shape), lab, np.arange(n)))
    cen = cen_vox @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3]
    seps: dict[str, float] = {}
    for r in REGIONS:
        if r.hemisphere != "left":
            continue
        right = next((q for q in REGIONS if q.region == r.region and q.hemisphere == "right"),
                     None)
        if right is None or counts[r.index] < min_voxels or counts[right.index] < min_voxels:
            continue
        seps[r.region] = float(cen[right.index, 0] - cen[r.index, 0])
    vals = np.array(list(seps.values()))
    return {"laterality_pairs": int(vals.size),
            "laterality_correct": float(np.mean(vals > 0)) if vals.size else float("nan"),
            "laterality_median_mm": float(np.median(vals)) if vals.size else float("nan"),
            "laterality_wrong": sorted(k for k, v in seps.items() if v <= 0)}


# --------------------------------------------------------------------------- jacobian
def read_displacement_field(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """An ITK/ANTs displacement field NIfTI (x, y, z, 1, 3; vectors in LPS mm) as
    (displacement in RAS mm with shape (x, y, z, 3), voxel -> RAS affine)."""
    import nibabel as nib

    img = nib.load(os.fspath(path))
    d = np.asarray(img.dataobj, dtype=np.float32)
    if d.ndim == 5:
        d = d[:, :, :, 0, :]
    if d.ndim != 4 or d.shape[-1] != 3:
        raise ValueError(f"{path}: not a 3D displacement field (shape {d.shape})")
    d = d * np.array([-1.0, -1.0, 1.0], np.float32)  # ITK: LPS vectors; nibabel affine: RAS
    return d, img.affine


def jacobian_determinant(disp: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """det(I + du/dx) of a displacement field u (RAS mm) on a grid with ``affine``.

    du/dx = (du/di) A^-1 with A the 3x3 voxel-to-world matrix; du/di by central differences
    (numpy.gradient). ANTs' ``CreateJacobianDeterminantImage`` computes the same quantity; this
    avoids writing and reading images in the QC step.
    """
    ainv = np.linalg.inv(np.asarray(affine)[:3, :3])
    # J[i][j] = delta_ij + sum_k du_i/di_k ainv[k, j], one component at a time (float32) so a
    # 0.5 mm atlas grid stays within the QC node's memory
    jac: list[list[Any]] = [[None] * 3 for _ in range(3)]
    for i in range(3):
        g = np.gradient(disp[..., i].astype(np.float32), axis=(0, 1, 2))
        for j in range(3):
            jac[i][j] = sum(g[k] * np.float32(ainv[k, j]) for k in range(3)) + (i == j)
        del g
    (a, b, c), (d, e, f), (g2, h, k) = jac
    return a * (e * k - f * h) - b * (d * k - f * g2) + c * (d * h - e * g2)


def jacobian_stats(det: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """Folding and volume change of a warp: ``jacobian_folding`` = fraction of voxels with
    det J <= 0; ``jacobian_log_p01``/``p99`` = 1st/99th percentile of ln det J (det J > 0)
    and ``jacobian_extreme`` = fraction with det J outside [1/3, 3] (volume change by 3x)."""
    vals = np.asarray(det)[np.asarray(mask, bool)] if mask is not None else np.ravel(det)
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return {}
    pos = vals[vals > 0]
    logs = np.log(pos) if pos.size else np.array([np.nan])
    return {"jacobian_folding": float(np.mean(vals <= 0)),
            "jacobian_log_p01": float(np.percentile(logs, 1)),
            "jacobian_log_p99": float(np.percentile(logs, 99)),
            "jacobian_extreme": float(np.mean((vals < 1 / 3) | (vals > 3)))}


def warp_jacobian(path: str | os.PathLike[str]) -> dict[str, float]:
    """:func:`jacobian_stats` of the displacement field in ``path`` over the voxels it moves
    (|u| > 0.01 mm: the warp is zero where the masked metric never reached)."""
    disp, aff = read_displacement_field(path)
    if disp[..., 0].size > 4_000_000:  # e.g. a 0.5 mm atlas grid: every 2nd voxel (the SyN
        disp = disp[::2, ::2, ::2]     # field is smooth over several voxels)
        aff = aff @ np.diag([2.0, 2.0, 2.0, 1.0])
    det = jacobian_determinant(disp, aff)
    moved = np.linalg.norm(disp, axis=-1) > 0.01
    return jacobian_stats(det, moved if moved.any() else None)


# --------------------------------------------------------------------------- volumes
#: total brain volume at term-equivalent age: 379 mL, SD 72 mL (weighted mean of 13 studies,
#: n = 756; Romberg et al., Arch Dis Child Fetal Neonatal Ed 2022;107:520-526), growing by
#: 22 mL a week around term (Hüppi et al., Ann Neurol 1998;43:224-235; Holland et al., JAMA
#: Neurol 2014;71:1266-1274: ~1 %/day after birth, 347/336 mL at birth in boys/girls).
TBV_TERM_ML = 379.0
TBV_TERM_SD_ML = 72.0
TBV_TERM_WEEKS = 40.0
TBV_ML_PER_WEEK = 22.0
#: the pipeline's brain mask is the atlas brain mask warped back: it holds the extracerebral
#: CSF and ventricles too (Serag 40-week template: mask 483 mL, its grey + white matter,
#: deep grey, cerebellum and brainstem classes 341 mL: x 1.42), so the upper bound allows it
MASK_OVER_TISSUE = 1.42


def expected_brain_volume_ml(pma_weeks: float | None, *, n_sd: float) -> tuple[float, float]:
    """(low, high) brain-mask volume for a postmenstrual age: tissue volume
    ``TBV(w) = 379 + 22 (w - 40)`` mL +- ``n_sd`` x 72 mL, the upper bound x 1.42 (CSF in the
    mask). Without an age: the range from 36 to 48 weeks (the trial scans at about 1 month)."""
    lo_w, hi_w = (36.0, 48.0) if pma_weeks is None or not np.isfinite(pma_weeks) \
        else (float(pma_weeks), float(pma_weeks))
    lo = TBV_TERM_ML + TBV_ML_PER_WEEK * (lo_w - TBV_TERM_WEEKS) - n_sd * TBV_TERM_SD_ML
    hi = (TBV_TERM_ML + TBV_ML_PER_WEEK * (hi_w - TBV_TERM_WEEKS)
          + n_sd * TBV_TERM_SD_ML) * MASK_OVER_TISSUE
    return max(lo, 0.0), hi


# --------------------------------------------------------------------------- coverage
def relative_coverage(labels: np.ndarray, atlas_regions: Iterable[int]) -> dict[str, Any]:
    """Fraction of the regions the atlas has that are present (>= 1 voxel) on the subject,
    and the names of those missing. An atlas without, e.g., a PLIC label is not penalised."""
    have = {int(i) for i in atlas_regions if int(i) in BY_INDEX}
    if not have:
        return {"label_coverage_atlas": float("nan"), "missing_atlas_regions": []}
    present = set(np.unique(np.asarray(labels)).astype(int).tolist())
    missing = sorted(have - present)
    return {"label_coverage_atlas": 1.0 - len(missing) / len(have),
            "atlas_region_count": len(have),
            "missing_atlas_regions": [BY_INDEX[i].name for i in missing]}


# --------------------------------------------------------------------------- FOV / air
def fov_truncation(t2w: np.ndarray, brain: np.ndarray) -> dict[str, float]:
    """Is part of the brain outside the acquired image?

    Along each axis the signal ends at the first and last plane with any non-zero voxel (the
    field of view's faces when there is air; a zero-filled slab ends it earlier). A brain
    inside the image only touches such an end plane (tangent: a few voxels); a cut runs
    through it. ``brain_cut`` = max over the six ends of (brain-mask voxels in the end plane /
    the largest brain-mask cross-section along that axis). Also reported:
    ``brain_at_fov_edge`` (fraction of the brain mask on the outermost voxel layer) and
    ``brain_zero_fraction`` (T2w <= 1 % of the brain median: reported only, a skull-stripped
    input without extracerebral CSF has a rim of them).
    """
    b = np.asarray(brain, bool)
    n = int(b.sum())
    if n == 0:
        return {"brain_at_fov_edge": float("nan"), "brain_cut": float("nan"),
                "brain_zero_fraction": float("nan")}
    img = np.asarray(t2w, float)
    nonzero = img != 0
    cut = 0.0
    for ax in range(3):
        other = tuple(a for a in range(3) if a != ax)
        alive = np.flatnonzero(nonzero.any(axis=other))
        area = b.sum(axis=other)
        if alive.size == 0 or area.max() == 0:
            continue
        cut = max(cut, float(max(area[alive[0]], area[alive[-1]]) / area.max()))
    edge = np.zeros_like(b)
    edge[[0, -1], :, :] = edge[:, [0, -1], :] = edge[:, :, [0, -1]] = True
    vals = img[b]
    med = float(np.median(vals))
    return {"brain_at_fov_edge": float((b & edge).sum() / n),
            "brain_cut": cut,
            "brain_zero_fraction": float(np.mean(vals <= 0.01 * med)) if med > 0 else 1.0}


def air_noise(t2w: np.ndarray, brain: np.ndarray) -> dict[str, Any]:
    """SNR from background air: 0.655 mean(brain) / SD(air) (Kaufman et al. 1989, Rayleigh
    correction of magnitude noise), air = the eight corner blocks (1/8 of each axis) outside
    the brain mask's bounding box grown by 10 voxels. No air when fewer than 50 such voxels
    remain, more than half of them are exactly zero or they are constant (skull-stripped,
    masked or zero-filled export, or a field of view tight on the head): then ``snr_air`` is
    NaN and ``air_note`` says so; it is not a QC finding."""
    img = np.asarray(t2w, float)
    b = np.asarray(brain, bool)
    s = [max(1, n // 8) for n in img.shape]
    corner = np.zeros(img.shape, bool)
    for sx in (slice(0, s[0]), slice(-s[0], None)):
        for sy in (slice(0, s[1]), slice(-s[1], None)):
            for sz in (slice(0, s[2]), slice(-s[2], None)):
                corner[sx, sy, sz] = True
    if b.any():  # not within 10 voxels of the brain's bounding box (cheap on big grids)
        idx = np.argwhere(b)
        lo, hi = np.maximum(idx.min(0) - 10, 0), idx.max(0) + 11
        corner[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = False
    vals = img[corner]
    if vals.size < 50 or np.mean(vals == 0) > 0.5 or vals.std() == 0 or not b.any():
        return {"snr_air": float("nan"),
                "air_note": "no background air in the field of view's corners (skull-stripped,"
                            " masked or zero-filled image): noise not measured"}
    return {"snr_air": float(0.655 * img[b].mean() / vals.std()), "air_note": ""}


def regions_of(atlas_labels: np.ndarray) -> list[int]:
    """Weeke-vocabulary label indices present in an atlas label map."""
    vals = np.unique(np.asarray(atlas_labels)).astype(int)
    return [int(v) for v in vals if int(v) in BY_INDEX]


def deep_gm_agreement(confidence: Mapping[str, Any] | None) -> float:
    """Mean multi-atlas pairwise Dice over the deep grey nuclei (thalamus, caudate,
    lentiform, both sides) from the label-confidence record of a multi-atlas run
    (``{"regions": {name: {"agreement", "pairwise_dice"}}}``, :mod:`weeke_pipeline.label_fusion`);
    NaN for a one-atlas run. Small structures in the middle of the brain: where atlases
    registered wrongly disagree first."""
    regions = (confidence or {}).get("regions", {})
    deep = {r.name for r in REGIONS if r.tissue == "deep_gm"}
    vals = [float(v.get("pairwise_dice", np.nan)) for k, v in regions.items()
            if isinstance(v, Mapping) and (v.get("name", k) in deep)]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


# --------------------------------------------------------------------------- numbers + rules
#: thresholds of the anatomy rules (calibrated on real templates, docs/registration_metrics_qc.md)
THRESHOLDS: dict[str, float] = {
    "label_coverage_atlas_fail": 0.9,      # fraction of the atlas's own regions present
    "t2w_contrast_fail": 0.0,              # CSF>WM and WM>deep GM (fraction of brain median)
    "t2w_contrast_warn": 0.05,
    "tissue_eta2_fail": 0.05,              # T2w variance explained by the tissue classes
    "tissue_eta2_warn": 0.2,
    "laterality_fail": 0.5,                # fraction of left/right pairs on the right side
    "jacobian_folding_fail": 0.001,        # fraction of warped voxels with det J <= 0
    "jacobian_folding_warn": 0.0,
    "jacobian_extreme_fail": 0.05,         # fraction with det J outside [1/3, 3]
    "jacobian_extreme_warn": 0.01,
    "brain_volume_sd_fail": 3.0,           # SDs around the expected volume for the PMA
    "brain_volume_sd_warn": 2.0,
    "brain_cut_fail": 0.4,                 # brain cross-section where the signal ends
    "brain_cut_warn": 0.25,                # (e.g. the cerebellum cut by the FOV's lower end)
    "snr_air_fail": 3.0,
    "snr_air_warn": 10.0,
    "atlas_agreement_deep_gm_warn": 0.7,   # multi-atlas: pairwise Dice, deep grey nuclei
}


def anatomy_numbers(t2w: np.ndarray, labels: np.ndarray, brain: np.ndarray,
                    zooms: Iterable[float], *, warp: str | os.PathLike[str] | None = None,
                    atlas_regions: Iterable[int] | None = None,
                    pma_weeks: float | None = None) -> dict[str, Any]:
    """All numbers of this module for one subject (arrays in closest-canonical RAS, so voxel
    axis 0 runs to the subject's right and ``diag(zooms)`` orients it)."""
    z = np.asarray(list(zooms), float)
    out: dict[str, Any] = {}
    out.update(tissue_contrast(t2w, labels, brain))
    med = out["tissue_t2w"]
    if "wm" in med and "deep_gm" in med:
        out["t2w_contrast"]["wm>deep_gm"] = med["wm"] - med["deep_gm"]
    out.update(laterality(labels, np.diag([*z, 1.0])))
    out.update(fov_truncation(t2w, brain))
    out.update(air_noise(t2w, brain))
    lo3, hi3 = expected_brain_volume_ml(pma_weeks, n_sd=THRESHOLDS["brain_volume_sd_fail"])
    lo2, hi2 = expected_brain_volume_ml(pma_weeks, n_sd=THRESHOLDS["brain_volume_sd_warn"])
    out["pma_weeks"] = float(pma_weeks) if pma_weeks is not None else float("nan")
    out["brain_volume_expected_ml"] = {"fail": [lo3, hi3], "warn": [lo2, hi2]}
    if atlas_regions is not None:
        out.update(relative_coverage(labels, atlas_regions))
    if warp is not None:
        out["jacobian"] = warp_jacobian(warp)
    return out


def anatomy_rules(n: Mapping[str, Any], t: Mapping[str, float] = THRESHOLDS
                  ) -> tuple[list[str], list[str]]:
    """(fail reasons, warn reasons) of the numbers of :func:`anatomy_numbers`."""
    t = {**THRESHOLDS, **t}
    fails: list[str] = []
    warns: list[str] = []
    cov = n.get("label_coverage_atlas", float("nan"))
    if np.isfinite(cov):
        missing = ", ".join(n.get("missing_atlas_regions", [])[:6])
        if cov < t["label_coverage_atlas_fail"]:
            fails.append(f"only {cov:.0%} of the atlas's regions on the subject (missing:"
                         f" {missing})")
        elif cov < 1.0:
            warns.append(f"atlas regions missing on the subject: {missing}")
    for pair, c in n.get("t2w_contrast", {}).items():
        if pair not in ("csf>wm", "wm>deep_gm"):
            continue  # cortex vs deep grey: close at term and changed by injury: not flagged
        a, b = pair.split(">")
        if c < t["t2w_contrast_fail"]:
            fails.append(f"T2w order of the labels wrong: {a} not brighter than {b}"
                         f" ({c:+.2f} of the brain median)")
        elif c < t["t2w_contrast_warn"]:
            warns.append(f"T2w contrast {a} > {b} weak ({c:+.2f} of the brain median)")
    eta = n.get("tissue_eta2", float("nan"))
    if np.isfinite(eta):
        if eta < t["tissue_eta2_fail"]:
            fails.append(f"tissue labels explain {eta:.0%} of the T2w variance"
                         f" (< {t['tissue_eta2_fail']:.0%}): labels off the anatomy")
        elif eta < t["tissue_eta2_warn"]:
            warns.append(f"tissue labels explain only {eta:.0%} of the T2w variance")
    lat = n.get("laterality_correct", float("nan"))
    if np.isfinite(lat):
        wrong = ", ".join(n.get("laterality_wrong", [])[:6])
        if lat < t["laterality_fail"]:
            fails.append(f"left and right labels swapped ({wrong}): atlas or image flipped"
                         " left-right")
        elif lat < 1.0:
            warns.append(f"left/right labels on the wrong side: {wrong}")
    j = n.get("jacobian", {})
    if j:
        for key, what in (("jacobian_folding", "folds (det J <= 0)"),
                          ("jacobian_extreme", "changes volume more than 3x")):
            v = j.get(key, 0.0)
            if v > t[f"{key}_fail"]:
                fails.append(f"warp {what} in {v:.2%} of the voxels it moves")
            elif v > t[f"{key}_warn"]:
                warns.append(f"warp {what} in {v:.2%} of the voxels it moves")
    v = n.get("brain_volume_ml", float("nan"))
    rng = n.get("brain_volume_expected_ml")
    if rng and np.isfinite(v):
        age = n.get("pma_weeks", float("nan"))
        at = f"{age:g} weeks" if np.isfinite(age) else "36-48 weeks"
        (f0, f1), (w0, w1) = rng["fail"], rng["warn"]
        if not f0 <= v <= f1:
            fails.append(f"brain volume {v:.0f} mL outside {f0:.0f}-{f1:.0f} mL expected at"
                         f" {at}: wrong age, wrong voxel size or a failed registration")
        elif not w0 <= v <= w1:
            warns.append(f"brain volume {v:.0f} mL outside {w0:.0f}-{w1:.0f} mL expected at"
                         f" {at}")
    cut = n.get("brain_cut", float("nan"))
    if np.isfinite(cut) and cut > t["brain_cut_fail"]:
        fails.append(f"the image ends inside the brain (a cut {cut:.0%} of the brain's largest"
                     " cross-section): cropped or zero-filled acquisition")
    elif np.isfinite(cut) and cut > t["brain_cut_warn"]:
        warns.append(f"the image ends close to or inside the brain (a cut {cut:.0%} of its"
                     " largest cross-section): check the field of view")
    snr = n.get("snr_air", float("nan"))
    if np.isfinite(snr):
        if snr < t["snr_air_fail"]:
            fails.append(f"SNR (background air) {snr:.1f} < {t['snr_air_fail']:g}")
        elif snr < t["snr_air_warn"]:
            warns.append(f"SNR (background air) {snr:.1f} < {t['snr_air_warn']:g}")
    conf = deep_gm_agreement(n.get("label_confidence"))
    if np.isfinite(conf) and conf < t["atlas_agreement_deep_gm_warn"]:
        warns.append(f"the atlases disagree on the deep grey nuclei (mean pairwise Dice"
                     f" {conf:.2f} < {t['atlas_agreement_deep_gm_warn']:.2f})")
    return fails, warns
