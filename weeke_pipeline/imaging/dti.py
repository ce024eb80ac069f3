"""Diffusion tensor metrics (FA, MD, AD, RD) from a DWI series, with an ADC fallback.

Pure functions over arrays and files as dcm2niix writes them (``.nii[.gz]`` + FSL ``.bval`` /
``.bvec``). The tensor fit, the mask and the denoisers are dipy's (Garyfallidis et al. 2014);
this module chooses, checks and packages them.

Model (Basser et al. 1994): ``S_i = S0 exp(-b_i g_i^T D g_i)``, fitted by weighted linear least
squares (WLS, Veraart et al. 2013) by default. With eigenvalues ``l1 >= l2 >= l3``:

* MD = (l1 + l2 + l3) / 3, AD = l1, RD = (l2 + l3) / 2 (all in 10^-6 mm^2/s here)
* FA = sqrt(1/2) sqrt((l1-l2)^2 + (l2-l3)^2 + (l3-l1)^2) / sqrt(l1^2 + l2^2 + l3^2)
* residual = sqrt(mean_i (S_i - S_pred_i)^2) / S0_pred over all volumes (dimensionless; 0.05 =
  5% of the non-weighted signal), high where the model or the data fail (motion, artefact, CSF
  pulsation, a wrong gradient table).

A tensor needs the 6 unknowns of ``D`` to be determined: at least 6 non-collinear directions
whose 6-column design matrix ``[gx^2, gy^2, gz^2, 2gxgy, 2gxgz, 2gygz]`` has rank 6. Otherwise
only the apparent diffusion coefficient is computed (log-linear fit of ``ln S = ln S0 - b ADC``
over all volumes) and a QC note says why.

Gradient-table check (after Jeurissen et al. 2014, MRtrix ``dwigradcheck``): the bvecs are
transformed by each of the 24 axis permutations x flips; the variant whose principal
eigenvectors give the longest deterministic streamlines through high-FA voxels is the one that
matches the anatomy. Refitting is not needed: transforming the table by an orthogonal ``P``
transforms the fitted tensor to ``P D P^T``, so ``e1`` becomes ``P e1`` and FA is unchanged.

Vector frame: dcm2niix writes bvecs in FSL convention, i.e. relative to the voxel axes, with the
first axis negated when the affine's determinant is positive. Eigenvectors returned here are in
that bvec frame; :func:`bvec_frame_to_voxel` and :func:`bvec_frame_to_world` convert them.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import nibabel as nib
import numpy as np

from weeke_pipeline.nifti import save_nifti

log = logging.getLogger(__name__)

B0_THRESHOLD = 50.0  # s/mm^2: volumes at or below count as non-diffusion-weighted (dipy default)
MIN_DIRECTIONS = 6
FIT_METHODS = ("WLS", "OLS", "RWLS", "NLLS", "RESTORE")
DENOISERS = ("none", "mppca", "patch2self")
MAP_NAMES = ("FA", "MD", "AD", "RD")


class DWIError(ValueError):
    """A DWI file set that cannot be used (names the file and the problem)."""


@dataclass
class DWI:
    """A DWI series: 4D data, its affine and the gradient table as read (FSL convention)."""

    data: np.ndarray  # (x, y, z, volumes) float32
    affine: np.ndarray
    bvals: np.ndarray  # (volumes,) s/mm^2
    bvecs: np.ndarray  # (volumes, 3) unit vectors in the bvec frame (zero for b0)
    name: str = "dwi"  # file name for messages (never a path with identifying folders)

    @property
    def zooms(self) -> np.ndarray:
        return np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))


def _read_table(path: Path, rows: int) -> np.ndarray:
    try:
        arr = np.loadtxt(path, ndmin=2, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise DWIError(f"{path.name}: cannot read gradient table ({exc})") from exc
    if arr.shape[0] != rows and arr.shape[1] == rows:
        arr = arr.T  # one vector per line instead of FSL's three rows
    if arr.shape[0] != rows:
        raise DWIError(f"{path.name}: expected {rows} row(s) (FSL format), found shape {arr.shape}")
    return arr


def load_dwi(nifti: Path | str, bval: Path | str | None = None,
             bvec: Path | str | None = None) -> DWI:
    """Read a DWI NIfTI and its ``.bval``/``.bvec`` (default: same stem, as dcm2niix names them)."""
    nifti = Path(nifti)
    stem = nifti.name.removesuffix(".gz").removesuffix(".nii")
    bval = Path(bval) if bval else nifti.with_name(stem + ".bval")
    bvec = Path(bvec) if bvec else nifti.with_name(stem + ".bvec")
    for p in (nifti, bval, bvec):
        if not p.is_file():
            raise DWIError(f"{p.name}: file not found (needed for the DWI series {nifti.name})")
    img = nib.load(nifti)
    if img.ndim != 4:
        raise DWIError(f"{nifti.name}: a DWI series must be 4D, got shape {img.shape}")
    n = img.shape[3]
    bvals = _read_table(bval, 1)[0]
    bvecs = _read_table(bvec, 3).T
    if bvals.size != n or bvecs.shape[0] != n:
        raise DWIError(f"{nifti.name}: {n} volumes but {bvals.size} b-values and "
                       f"{bvecs.shape[0]} gradient directions")
    norms = np.linalg.norm(bvecs, axis=1)
    dw = bvals > B0_THRESHOLD
    # b-values without any direction (an isotropic/trace DWI, or directions lost in the
    # export): usable for ADC, not for a tensor; run_dti says so. Only some missing: an error.
    if np.any(dw & (norms < 0.5)) and not np.all(norms[dw] < 0.5):
        raise DWIError(f"{bvec.name}: diffusion-weighted volume(s) "
                       f"{np.flatnonzero(dw & (norms < 0.5)).tolist()} have no gradient direction")
    if not np.any(~dw):
        raise DWIError(f"{bval.name}: no b=0 volume (b <= {B0_THRESHOLD:g}); cannot normalise")
    bvecs = np.where(norms[:, None] > 0.5, bvecs / np.maximum(norms, 1e-9)[:, None], 0.0)
    data = np.asarray(img.dataobj, dtype=np.float32)
    return DWI(data=data, affine=img.affine.copy(), bvals=bvals, bvecs=bvecs, name=nifti.name)


def gradient_table(bvals: np.ndarray, bvecs: np.ndarray):
    """dipy GradientTable with b <= :data:`B0_THRESHOLD` counted as b0 (direction zeroed)."""
    from dipy.core.gradients import gradient_table as _gt

    bvecs = np.where((bvals > B0_THRESHOLD)[:, None], bvecs, 0.0)
    return _gt(bvals, bvecs=bvecs, b0_threshold=B0_THRESHOLD)


def direction_summary(bvals: np.ndarray, bvecs: np.ndarray,
                      tol_deg: float = 2.0) -> tuple[int, int]:
    """(non-collinear diffusion directions, rank of the 6-column tensor design matrix)."""
    g = bvecs[bvals > B0_THRESHOLD]
    g = g[np.linalg.norm(g, axis=1) > 0.5]  # volumes without a direction do not count
    unique: list[np.ndarray] = []
    for v in g:
        if all(abs(float(v @ u)) < np.cos(np.deg2rad(tol_deg)) for u in unique):
            unique.append(v)
    if not unique:
        return 0, 0
    u = np.asarray(unique)
    design = np.column_stack([u[:, 0] ** 2, u[:, 1] ** 2, u[:, 2] ** 2, 2 * u[:, 0] * u[:, 1],
                              2 * u[:, 0] * u[:, 2], 2 * u[:, 1] * u[:, 2]])
    return len(unique), int(np.linalg.matrix_rank(design, tol=1e-3))


def brain_mask(data: np.ndarray, bvals: np.ndarray) -> np.ndarray:
    """Brain mask from the mean b0 with dipy's ``median_otsu`` (median filter + Otsu, largest
    component, holes filled)."""
    from dipy.segment.mask import median_otsu
    from scipy import ndimage

    b0 = data[..., bvals <= B0_THRESHOLD].mean(axis=-1)
    _, mask = median_otsu(b0, median_radius=1, numpass=4)
    lab, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, lab, index=np.arange(1, n + 1))
        mask = lab == (1 + int(np.argmax(sizes)))
    return ndimage.binary_fill_holes(mask)


def denoise(data: np.ndarray, bvals: np.ndarray, method: str = "none",
            mask: np.ndarray | None = None) -> np.ndarray:
    """Optional denoising: ``mppca`` (Veraart et al. 2016) or ``patch2self`` (Fadnavis et al.
    2020), both dipy's; ``none`` returns the data unchanged."""
    if method == "none":
        return data
    if method == "mppca":
        from dipy.denoise.localpca import mppca

        with np.errstate(invalid="ignore", divide="ignore"):  # empty patches outside the mask
            out = mppca(data, mask=mask, patch_radius=2, suppress_warning=True)
        return np.nan_to_num(out).astype(np.float32)
    if method == "patch2self":
        from dipy.denoise.patch2self import patch2self

        return patch2self(data, bvals, model="ols", b0_threshold=B0_THRESHOLD,
                          shift_intensity=True, clip_negative_vals=False).astype(np.float32)
    raise ValueError(f"unknown denoising method {method!r}; expected one of {DENOISERS}")


@dataclass
class TensorMaps:
    """Maps on the DWI grid (zero outside the mask). MD/AD/RD in 10^-6 mm^2/s."""

    fa: np.ndarray
    md: np.ndarray
    ad: np.ndarray
    rd: np.ndarray
    evec: np.ndarray  # (x, y, z, 3) principal eigenvector, bvec frame
    residual: np.ndarray  # RMS prediction error / S0
    s0: np.ndarray


def fit_tensor(data: np.ndarray, bvals: np.ndarray, bvecs: np.ndarray, mask: np.ndarray,
               fit_method: str = "WLS") -> TensorMaps:
    """Fit the tensor with dipy ``TensorModel`` inside ``mask``; see module docstring."""
    from dipy.reconst.dti import TensorModel

    if fit_method not in FIT_METHODS:
        raise ValueError(f"unknown fit method {fit_method!r}; expected one of {FIT_METHODS}")
    gtab = gradient_table(bvals, bvecs)
    kwargs = {}
    if fit_method == "RESTORE":
        kwargs["sigma"] = _noise_sigma(data, bvals, mask)
    model = TensorModel(gtab, fit_method=fit_method, return_S0_hat=True, **kwargs)
    idx = np.nonzero(mask)
    vox = np.maximum(data[idx].astype(np.float64), 1e-3)  # (n, volumes): fit only brain voxels
    fit = model.fit(vox)
    evals = np.clip(np.nan_to_num(fit.evals), 0.0, None)  # negative eigenvalues are noise
    s0 = np.nan_to_num(fit.S0_hat)
    pred = fit.predict(gtab, S0=s0)
    resid = np.sqrt(np.mean((vox - pred) ** 2, axis=1)) / np.maximum(s0, 1e-6)

    def put(values: np.ndarray) -> np.ndarray:
        out = np.zeros(mask.shape + values.shape[1:], dtype=np.float32)
        out[idx] = values
        return out

    from dipy.reconst.dti import fractional_anisotropy

    fa = np.clip(np.nan_to_num(fractional_anisotropy(evals)), 0.0, 1.0)
    return TensorMaps(
        fa=put(fa), md=put(evals.mean(axis=1) * 1e6), ad=put(evals[:, 0] * 1e6),
        rd=put(evals[:, 1:].mean(axis=1) * 1e6), evec=put(np.nan_to_num(fit.evecs[..., 0])),
        residual=put(np.clip(np.nan_to_num(resid), 0.0, 10.0)), s0=put(s0))


def _noise_sigma(data: np.ndarray, bvals: np.ndarray, mask: np.ndarray) -> float:
    """Noise SD for RESTORE: dipy's ``estimate_sigma`` on the b0 volumes (median)."""
    from dipy.denoise.noise_estimate import estimate_sigma

    return float(np.median(estimate_sigma(data[..., bvals <= B0_THRESHOLD])))


def fit_adc(data: np.ndarray, bvals: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """ADC (10^-6 mm^2/s) by log-linear least squares of ``ln S = ln S0 - b ADC`` over all volumes.

    With directions spread over the sphere this approximates MD (the trace); with one direction
    it is that direction's diffusivity. Clipped to [0, 5000].
    """
    idx = np.nonzero(mask)
    y = np.log(np.maximum(data[idx].astype(np.float64), 1e-3)).T  # (volumes, n)
    design = np.column_stack([np.ones_like(bvals), -bvals])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    out = np.zeros(mask.shape, dtype=np.float32)
    out[idx] = np.clip(coef[1] * 1e6, 0.0, 5000.0)
    return out


# ---------------------------------------------------------------------------- frames and check

def bvec_frame_to_voxel(vectors: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Vectors in the FSL bvec frame -> voxel-axis frame (first axis negated if det(A) > 0)."""
    out = np.array(vectors, dtype=np.float64, copy=True)
    if np.linalg.det(affine[:3, :3]) > 0:
        out[..., 0] *= -1.0
    return out


def bvec_frame_to_world(vectors: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Vectors in the FSL bvec frame -> RAS world directions (unit length kept)."""
    rot = affine[:3, :3] / np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    return bvec_frame_to_voxel(vectors, affine) @ rot.T


def table_variants() -> list[tuple[str, np.ndarray]]:
    """The 24 signed axis permutations (identity first), named like ``swap xz, flip y``.

    Flipping two axes equals flipping the third for a tensor (``e1`` and ``-e1`` are one axis),
    so flips of none / x / y / z with the 6 permutations cover every distinct variant.
    """
    axes = "xyz"
    out: list[tuple[str, np.ndarray]] = []
    for perm in itertools.permutations(range(3)):
        for flip in (None, 0, 1, 2):
            p = np.eye(3)[list(perm)]
            if flip is not None:
                p[flip] *= -1.0
            parts = []
            if perm != (0, 1, 2):
                parts.append("permute " + "".join(axes[i] for i in perm))
            if flip is not None:
                parts.append(f"flip {axes[flip]}")
            out.append((", ".join(parts) or "identity", p))
    return out


def fibre_coherence(fa: np.ndarray, evec_vox: np.ndarray, mask: np.ndarray, zooms: np.ndarray,
                    *, fa_seed: float = 0.3, fa_stop: float = 0.15, max_angle_deg: float = 45.0,
                    max_steps: int = 40, max_seeds: int = 5000) -> float:
    """Mean length (mm) of deterministic tensor streamlines seeded in voxels with FA > ``fa_seed``.

    Written here rather than with dipy's tracking because the check runs 24 times per series and
    needs only this vectorised nearest-neighbour walk (all seeds at once, both directions):
    step 0.5 voxel along ``e1``, stop at FA < ``fa_stop``, outside the mask or on a turn sharper
    than ``max_angle_deg``. A wrong gradient table makes ``e1`` point across, not along, the
    tracts, so streamlines are shorter (Jeurissen et al. 2014).
    """
    seeds = np.argwhere(mask & (fa > fa_seed)).astype(np.float64)
    if len(seeds) == 0:
        return 0.0
    if len(seeds) > max_seeds:
        seeds = seeds[np.linspace(0, len(seeds) - 1, max_seeds).astype(int)]
    step_mm = 0.5 * float(zooms.min())
    shape = np.array(fa.shape)
    cos_max = np.cos(np.deg2rad(max_angle_deg))
    ok = (mask & (fa > fa_stop)).ravel()
    ev = evec_vox.reshape(-1, 3)
    stride = step_mm / zooms
    total = 0.0
    for sign in (1.0, -1.0):
        pos = seeds.copy()
        d = sign * ev[np.ravel_multi_index(seeds.astype(int).T, fa.shape)]
        for _ in range(max_steps):  # only live streamlines are carried (arrays shrink)
            new = pos + d * stride
            v = np.rint(new).astype(int)
            inside = np.all((v >= 0) & (v < shape), axis=1)
            flat = np.ravel_multi_index(np.clip(v, 0, shape - 1).T, fa.shape)
            e = ev[flat]
            dots = np.sum(e * d, axis=1)
            cont = inside & ok[flat] & (np.abs(dots) >= cos_max)
            total += step_mm * int(cont.sum())
            if not cont.any():
                break
            pos = new[cont]
            d = np.where((dots[cont] < 0)[:, None], -e[cont], e[cont])
    return float(total / len(seeds))


@dataclass
class GradientCheck:
    """Coherence (mean streamline length, mm) per bvec variant; best first."""

    scores: dict[str, float]
    best: str  # the most coherent variant
    is_identity: bool  # the table as read is the most coherent
    consistent: bool  # no variant is more than ``tie_tol`` more coherent than the table as read
    ratio_best_to_identity: float  # coherence of the best variant / of the table as read
    seeds: int


def gradient_check(fa: np.ndarray, evec: np.ndarray, mask: np.ndarray, affine: np.ndarray,
                   *, fa_seed: float | None = None, tie_tol: float = 0.03) -> GradientCheck:
    """Try the 24 flips/permutations of the table; report the most coherent one.

    ``fa_seed`` defaults to 0.3, lowered to the 95th FA percentile in the mask when fewer than
    200 voxels exceed 0.3 (neonatal white matter is less anisotropic than adult). A flip cannot
    be seen where all tracts run along image axes (the flipped ``e1`` is the same axis), so
    variants within ``tie_tol`` of each other are indistinguishable: ``consistent`` is then true.
    """
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if fa_seed is None:
        fa_seed = 0.3
        if int((fa[mask] > fa_seed).sum()) < 200:
            fa_seed = float(np.percentile(fa[mask], 95))
    scores: dict[str, float] = {}
    for name, p in table_variants():
        ev = bvec_frame_to_voxel(evec @ p.T, affine)
        scores[name] = fibre_coherence(fa, ev, mask, zooms, fa_seed=fa_seed,
                                       fa_stop=0.5 * fa_seed)
    best = max(scores, key=lambda k: (scores[k], k == "identity"))
    ident = scores["identity"]
    return GradientCheck(
        scores=dict(sorted(scores.items(), key=lambda kv: -kv[1])), best=best,
        is_identity=best == "identity",
        consistent=bool(ident >= (1.0 - tie_tol) * scores[best]),
        ratio_best_to_identity=float(scores[best] / ident) if ident > 0 else float("inf"),
        seeds=int((mask & (fa > fa_seed)).sum()))


# ----------------------------------------------------------------------------- the whole step

@dataclass
class DTIResult:
    """Outcome for one DWI series: tensor maps, or ADC only, plus QC numbers and notes."""

    mode: Literal["tensor", "adc"]
    affine: np.ndarray
    mask: np.ndarray
    adc: np.ndarray  # 10^-6 mm^2/s (MD when a tensor was fitted)
    maps: TensorMaps | None = None
    check: GradientCheck | None = None
    qc: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def run_dti(dwi: DWI, *, fit_method: str = "WLS", denoising: str = "none",
            check_gradients: bool = True) -> DTIResult:
    """Mask, optionally denoise, fit the tensor (or ADC only), and check the gradient table."""
    if denoising not in DENOISERS:
        raise ValueError(f"unknown denoising method {denoising!r}; expected one of {DENOISERS}")
    n_dirs, rank = direction_summary(dwi.bvals, dwi.bvecs)
    mask = brain_mask(dwi.data, dwi.bvals)
    data = denoise(dwi.data, dwi.bvals, denoising, mask=mask)
    dw_b = dwi.bvals[dwi.bvals > B0_THRESHOLD]
    qc: dict[str, object] = {
        "volumes": int(dwi.bvals.size), "b0_volumes": int((dwi.bvals <= B0_THRESHOLD).sum()),
        "directions": n_dirs, "design_rank": rank,
        "b_values": sorted({round(float(b)) for b in dw_b}),
        "mask_volume_ml": round(float(mask.sum() * np.prod(dwi.zooms)) / 1000.0, 2),
        "fit_method": fit_method, "denoising": denoising,
    }
    notes: list[str] = []
    if n_dirs == 0:
        notes.append(f"{dwi.name}: b-values without gradient directions (an isotropic or trace "
                     "DWI, or directions lost in the export): tensor fit skipped (no FA/MD/AD/RD),"
                     " ADC only")
    elif n_dirs < MIN_DIRECTIONS or rank < 6:
        notes.append(
            f"{dwi.name}: {n_dirs} non-collinear diffusion direction(s) (design rank {rank}); a "
            f"tensor needs at least {MIN_DIRECTIONS} with rank 6, so only ADC was computed "
            f"(no FA/MD/AD/RD)" + ("; with a single direction the ADC is directional, not the "
                                   "trace" if n_dirs == 1 else ""))
    if n_dirs < MIN_DIRECTIONS or rank < 6:
        adc = fit_adc(data, dwi.bvals, mask)
        qc["mode"] = "adc"
        return DTIResult(mode="adc", affine=dwi.affine, mask=mask, adc=adc, qc=qc, notes=notes)
    if dw_b.size and dw_b.max() > 1500:
        notes.append(f"{dwi.name}: b up to {dw_b.max():.0f} s/mm^2; non-Gaussian diffusion lowers "
                     "tensor MD at b > 1500, compare MD only across matched protocols")
    maps = fit_tensor(data, dwi.bvals, dwi.bvecs, mask, fit_method)
    qc.update({
        "mode": "tensor",
        "fa_p95": round(float(np.percentile(maps.fa[mask], 95)), 3),
        "md_median": round(float(np.median(maps.md[mask])), 1),
        "residual_median": round(float(np.median(maps.residual[mask])), 4),
        "residual_p95": round(float(np.percentile(maps.residual[mask], 95)), 4),
    })
    check = None
    if check_gradients:
        check = gradient_check(maps.fa, maps.evec, mask, dwi.affine)
        qc.update({"gradcheck_best": check.best, "gradcheck_identity": check.is_identity,
                   "gradcheck_consistent": check.consistent,
                   "gradcheck_ratio": round(check.ratio_best_to_identity, 3),
                   "gradcheck_identity_mm": round(check.scores["identity"], 2)})
        if not check.consistent:
            notes.append(f"{dwi.name}: gradient check: '{check.best}' gives "
                         f"{check.ratio_best_to_identity:.2f}x longer fibres than the table as "
                         "read; the gradient table may be misread (check before using FA)")
    return DTIResult(mode="tensor", affine=dwi.affine, mask=mask, adc=maps.md, maps=maps,
                     check=check, qc=qc, notes=notes)


def save_result(result: DTIResult, out_dir: Path | str, prefix: str) -> dict[str, Path]:
    """Write the maps as NIfTI (BIDS-derivative-like names) and return ``{name: path}``.

    Names: ``<prefix>_desc-brain_mask``, ``<prefix>_ADC`` (ADC mode) or ``<prefix>_{FA,MD,AD,RD}``,
    ``<prefix>_desc-e1_dwimap`` (4D, bvec frame), ``<prefix>_desc-residual_dwimap``.
    """
    out_dir = Path(out_dir)
    aff = result.affine
    paths = {"mask": save_nifti(result.mask.astype(np.uint8), aff,
                                out_dir / f"{prefix}_desc-brain_mask.nii.gz")}
    if result.maps is None:
        paths["ADC"] = save_nifti(result.adc, aff, out_dir / f"{prefix}_ADC.nii.gz")
        return paths
    m = result.maps
    for name, arr in zip(MAP_NAMES, (m.fa, m.md, m.ad, m.rd), strict=True):
        paths[name] = save_nifti(arr, aff, out_dir / f"{prefix}_{name}.nii.gz")
    paths["e1"] = save_nifti(m.evec, aff, out_dir / f"{prefix}_desc-e1_dwimap.nii.gz")
    paths["residual"] = save_nifti(m.residual, aff,
                                   out_dir / f"{prefix}_desc-residual_dwimap.nii.gz")
    return paths
