"""Synthetic 1-month neonatal subjects with known injuries: DICOM series plus ground truth.

Each subject is the phantom anatomy (:mod:`weeke_pipeline.atlas.phantom`) under a random affine
(head position and size) and a smooth non-linear deformation, with injuries planted in template
space following the patterns of hypoxic-ischaemic injury (basal ganglia/thalamus predominant,
watershed, mixed, normal), then imaged as a scanner would: T2w (TSE), T1w (IR gradient echo),
DWI with b=0 and 12 directions at b=1000 s/mm^2 from a tensor model per tissue, and a
scanner-style ADC map. Noise is Rician, with a smooth multiplicative bias field.

Layout per subject (``weeke synth --out DIR``)::

    DIR/participants.tsv, participants.json
    DIR/sub-<id>/dicom/<series>/IM<n>.dcm
    DIR/sub-<id>/truth/sub-<id>_T2w.nii.gz        T2w on the grid dcm2niix makes of the series
    DIR/sub-<id>/truth/sub-<id>_dseg.nii.gz       true labels on that grid (atlas numbering)
    DIR/sub-<id>/truth/sub-<id>_desc-lesion_mask.nii.gz   planted lesions (injury number)
    DIR/sub-<id>/truth/sub-<id>_desc-true_FA.nii.gz, ..._desc-true_MD.nii.gz  (MD in 10^-6 mm^2/s)
    DIR/sub-<id>/truth/sub-<id>_space-dwi_{dseg,desc-lesion_mask,desc-true_FA,desc-true_MD}.nii.gz
                                                   the same on the DWI grid (dcm2niix's)
    DIR/sub-<id>/truth/sub-<id>_truth.json        injuries and the Weeke items a perfect reader
                                                   would score (score engine input format)

Everything derives from ``(seed, subject number)``: the same seed gives identical files.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.uid import generate_uid
from scipy import ndimage

from weeke_pipeline.atlas import phantom as ph
from weeke_pipeline.atlas.regions import BY_INDEX, label_index
from weeke_pipeline.constants import DEFAULT_FORM
from weeke_pipeline.nifti import save_nifti
from weeke_pipeline.synth.dicom_writer import (
    AxialGrid,
    PatientInfo,
    SeriesSpec,
    write_series,
)

PATTERNS = ("normal", "bgt", "watershed", "mixed")
B_VALUE = 1000.0
LOBES = ("frontal", "parietal", "temporal", "occipital")
SIDES = ("left", "right")

# acquisition grids (neonatal protocol, about 1 month of age)
T2_GRID = dict(rows=118, cols=100, n_slices=52, pixel_mm=(1.2, 1.2), slice_mm=2.0)
T1_GRID = dict(rows=118, cols=100, n_slices=52, pixel_mm=(1.2, 1.2), slice_mm=2.0)
DWI_GRID = dict(rows=56, cols=48, n_slices=35, pixel_mm=(2.5, 2.5), slice_mm=3.0)
FOV_CENTRE_RAS = (0.0, 0.0, -4.0)


def acquisition_grids(resolution_mm: float | None = None) -> dict[str, dict[str, object]]:
    """The T2w, T1w and DWI grid parameters (``AxialGrid`` keywords).

    ``None``: the clinical neonatal protocol above (T2_GRID, T1_GRID, DWI_GRID). A number r:
    the same field of view with isotropic r mm T1w/T2w voxels and isotropic 2r mm DWI voxels
    (e.g. 1 mm anatomy, 2 mm diffusion, as a research protocol).
    """
    base = {"T2w": T2_GRID, "T1w": T1_GRID, "DWI": DWI_GRID}
    if resolution_mm is None:
        return {k: dict(v) for k, v in base.items()}
    if not resolution_mm > 0:
        raise ValueError(f"resolution_mm must be positive (got {resolution_mm})")
    out = {}
    for name, g in base.items():
        r = float(resolution_mm) * (2.0 if name == "DWI" else 1.0)
        px, sl = g["pixel_mm"], g["slice_mm"]
        out[name] = dict(rows=max(1, round(g["rows"] * px[0] / r)),
                         cols=max(1, round(g["cols"] * px[1] / r)),
                         n_slices=max(1, round(g["n_slices"] * sl / r)),
                         pixel_mm=(r, r), slice_mm=r)
    return out


def gradient_directions(n: int = 12) -> np.ndarray:
    """``n`` well-spread unit vectors on a hemisphere (golden-angle spiral, fixed)."""
    i = np.arange(n) + 0.5
    z = 1.0 - i / n  # hemisphere: z in (0, 1)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    r = np.sqrt(1.0 - z**2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


@dataclass
class Injury:
    """One planted lesion: where, how much, and how it shows."""

    region: str  # region name from the vocabulary (regions.py), e.g. "thalamus"
    hemisphere: str  # left/right/midline
    fraction: float  # fraction of the region's volume affected
    kind: str  # signal | myelination_loss | restricted_diffusion | cyst | haemorrhage | pwml
    shows_on: list[str] = field(default_factory=list)  # sequences it shows on
    factors: dict[str, float] = field(default_factory=dict)  # multiplicative T1w/T2w/ADC/FA
    count: int = 1  # punctate lesions: number of foci
    voxels: int = 0  # lesion size in template voxels (1 mm^3)


# how each kind of injury changes the tissue properties (multiplicative), and where it shows
_KIND_EFFECTS: dict[str, tuple[dict[str, float], list[str]]] = {
    "signal_deep_gm": ({"T1w": 1.3, "T2w": 1.35, "ADC": 0.85, "FA": 0.8}, ["T1w", "T2w"]),
    "myelination_loss": ({"T1w": 0.58, "T2w": 2.2, "ADC": 1.3, "FA": 0.55}, ["T1w", "T2w"]),
    "signal_wm": ({"T1w": 0.8, "T2w": 1.25, "ADC": 1.1, "FA": 0.6}, ["T1w", "T2w"]),
    "signal_cortex": ({"T1w": 0.85, "T2w": 1.35, "ADC": 1.0, "FA": 0.8}, ["T1w", "T2w"]),
    "restricted_diffusion": ({"ADC": 0.6, "FA": 0.75}, ["DWI"]),
    "haemorrhage": ({"T1w": 1.8, "T2w": 0.3, "ADC": 0.5, "FA": 0.5}, ["T1w", "T2w"]),
    "pwml": ({"T1w": 1.7, "T2w": 0.6, "ADC": 0.8, "FA": 0.7}, ["T1w", "T2w"]),
}
_CSF = {"T1w": 130.0, "T2w": 1000.0, "ADC": 3000.0, "FA": 0.0}


def _sides(rng: np.random.Generator, p_bilateral: float) -> tuple[str, ...]:
    return SIDES if rng.random() < p_bilateral else (SIDES[int(rng.integers(2))],)


def _frac(rng: np.random.Generator, extensive: bool) -> float:
    return float(rng.uniform(0.6, 0.85) if extensive else rng.uniform(0.2, 0.38))


def plan_injuries(pattern: str, rng: np.random.Generator) -> list[Injury]:
    """Draw the injuries of one subject for an HIE ``pattern`` (see PATTERNS)."""
    if pattern not in PATTERNS:
        raise ValueError(f"unknown injury pattern {pattern!r}; expected one of {PATTERNS}")
    out: list[Injury] = []
    if pattern in ("bgt", "mixed"):
        sides = _sides(rng, 0.8)
        ext = bool(rng.random() < 0.7)
        for s in sides:
            out.append(Injury("thalamus", s, _frac(rng, ext), "signal_deep_gm"))
            out.append(Injury("lentiform", s, _frac(rng, ext), "signal_deep_gm"))
            out.append(Injury("plic", s, _frac(rng, ext), "myelination_loss"))
            if rng.random() < 0.5:
                out.append(Injury("caudate", s, _frac(rng, ext), "signal_deep_gm"))
        if rng.random() < 0.5:
            for s in sides:
                out.append(Injury("brainstem", s, _frac(rng, False), "signal_deep_gm"))
        if rng.random() < 0.5:
            for s in sides:
                out.append(Injury("perirolandic_cortex", s, _frac(rng, True),
                                  "restricted_diffusion"))
    if pattern in ("watershed", "mixed"):
        for s in _sides(rng, 0.7):
            lobes = ["frontal", "parietal"] if rng.random() < 0.6 else [LOBES[int(rng.integers(2))]]
            for lobe in lobes:
                kind = "cyst" if rng.random() < 0.4 else "signal_wm"
                out.append(Injury(f"wm_{lobe}", s, float(rng.uniform(0.25, 0.45)), kind))
                if rng.random() < 0.6:
                    out.append(Injury(f"cortex_{lobe}", s, float(rng.uniform(0.25, 0.45)),
                                      "signal_cortex"))
        if rng.random() < 0.3:
            out.append(Injury("wm_parietal", SIDES[int(rng.integers(2))], 0.0, "haemorrhage"))
    if pattern == "mixed":
        s = SIDES[int(rng.integers(2))]
        out.append(Injury("wm_frontal", s, 0.0, "pwml", count=int(rng.integers(2, 9))))
        if rng.random() < 0.5:
            out.append(Injury("corpus_callosum", "midline", _frac(rng, False),
                              "restricted_diffusion"))
    return out


def _region_voxels(labels: np.ndarray, inj: Injury) -> np.ndarray:
    return np.argwhere(labels == label_index(inj.region, inj.hemisphere))


def _plant(labels: np.ndarray, maps: dict[str, np.ndarray], lesion: np.ndarray, inj: Injury,
           number: int, rng: np.random.Generator) -> None:
    """Plant one injury in template space: change ``maps`` and mark ``lesion`` with ``number``."""
    vox = _region_voxels(labels, inj)
    if inj.kind in ("haemorrhage", "pwml"):
        radius = 3.5 if inj.kind == "haemorrhage" else 1.3
        centres = vox[rng.choice(len(vox), size=inj.count, replace=False)]
        mask = np.zeros(labels.shape, dtype=bool)
        for c in centres:
            sl = tuple(slice(max(int(ci) - 5, 0), int(ci) + 6) for ci in c)
            grid = np.stack(np.meshgrid(*(np.arange(s.start, min(s.stop, n))
                                          for s, n in zip(sl, labels.shape, strict=True)),
                                        indexing="ij"), axis=-1)
            mask[sl] |= np.linalg.norm(grid - c, axis=-1) <= radius
        mask &= labels > 0
        sel = np.argwhere(mask)
    else:
        # a compact lesion: the fraction of the region's voxels nearest to a random seed voxel
        seed = vox[rng.integers(len(vox))]
        order = np.argsort(np.linalg.norm(vox - seed, axis=1), kind="stable")
        sel = vox[order[: max(1, round(inj.fraction * len(vox)))]]
    idx = tuple(sel.T)
    inj.voxels = len(sel)
    if inj.kind == "cyst":
        # a cystic core (CSF signal) inside a rim of abnormal white matter
        core = sel[: len(sel) // 2]
        factors, shows = _KIND_EFFECTS["signal_wm"]
        for name, f in factors.items():
            maps[name][idx] *= f
        for name, value in _CSF.items():
            maps[name][tuple(core.T)] = value
        inj.shows_on, inj.factors = ["T1w", "T2w", "DWI"], dict(factors)
    else:
        factors, shows = _KIND_EFFECTS[inj.kind]
        for name, f in factors.items():
            maps[name][idx] *= f
        inj.shows_on, inj.factors = list(shows), dict(factors)
    lesion[idx] = number


def weeke_truth(injuries: list[Injury], labels: np.ndarray) -> dict[str, dict[str, int]]:
    """The Weeke items (2025 consensus form) a perfect reader would score for ``injuries``.

    Deep grey matter, PLIC and brainstem: extent 1 if under 50% of the structure (per side) is
    affected, 2 if 50% or more; basal ganglia = caudate + lentiform. Cortex and white matter:
    1 if one lobe is affected, 2 if more. DWI-only items (perirolandic cortex, optic radiation):
    extent from the planted severity (ADC factor <= 0.6 is 'clear'). Punctate lesions: <6 -> 1,
    >=6 -> 2. Haemorrhage: a single focus under 1.5 cm -> 1. Laterality: number of sides.
    """
    per_side: dict[str, dict[str, int]] = {}

    def mark(item: str, side: str, extent: int) -> None:
        cur = per_side.setdefault(item, {})
        cur[side] = max(cur.get(side, 0), extent)

    def volume(region: str, side: str) -> int:
        return int((labels == label_index(region, side)).sum())

    deep: dict[tuple[str, str], int] = {}
    lobes: dict[tuple[str, str], set[str]] = {}
    pwml: dict[str, int] = {}
    for inj in injuries:
        r, s = inj.region, inj.hemisphere
        if r in ("thalamus", "plic", "brainstem"):
            item = {"thalamus": "gm_thalamus", "plic": "gm_plic", "brainstem": "gm_brainstem"}[r]
            mark(item, s, 2 if inj.voxels >= 0.5 * volume(r, s) else 1)
        elif r in ("caudate", "lentiform"):
            deep[("gm_basal_ganglia", s)] = deep.get(("gm_basal_ganglia", s), 0) + inj.voxels
        elif r in ("perirolandic_cortex", "optic_radiation"):
            item = "gm_perirolandic" if r == "perirolandic_cortex" else "wm_optic_radiation"
            mark(item, s, 2 if inj.factors.get("ADC", 1.0) <= 0.6 else 1)
        elif r == "hippocampus":
            mark("gm_hippocampus", s, 1)
        elif r == "corpus_callosum":
            mark("wm_corpus_callosum", "midline", 1)
        elif inj.kind == "pwml":
            pwml[s] = pwml.get(s, 0) + inj.count
        elif inj.kind == "haemorrhage":
            mark("wm_haemorrhage", s, 1)
        elif r.startswith("cortex_"):
            lobes.setdefault(("wm_cortex", s), set()).add(r)
        elif r.startswith("wm_"):
            lobes.setdefault(("wm_white_matter", s), set()).add(r)
    for (item, s), n in deep.items():
        total = volume("caudate", s) + volume("lentiform", s)
        mark(item, s, 2 if n >= 0.5 * total else 1)
    for (item, s), found in lobes.items():
        mark(item, s, 2 if len(found) > 1 else 1)
    if pwml:
        n = sum(pwml.values())
        for s in pwml:
            mark("wm_pwml", s, 2 if n >= 6 else 1)

    items: dict[str, dict[str, int]] = {}
    for item in _CONSENSUS_ITEMS:
        sides = per_side.get(item, {})
        extent = max(sides.values(), default=0)
        if item in _NON_LATERAL:
            items[item] = {"extent": extent}
        else:
            items[item] = {"extent": extent}
            if extent > 0:
                items[item]["laterality"] = len([v for v in sides.values() if v > 0])
    return items


_CONSENSUS_ITEMS = (
    "gm_thalamus", "gm_basal_ganglia", "gm_plic", "gm_brainstem", "gm_perirolandic",
    "gm_hippocampus", "wm_cortex", "wm_white_matter", "wm_pwml", "wm_haemorrhage",
    "wm_optic_radiation", "wm_corpus_callosum", "cb_cerebellum", "cb_haemorrhage", "add_ivh",
    "add_sdh", "add_csvt",
)
_NON_LATERAL = {"wm_corpus_callosum", "add_ivh", "add_sdh", "add_csvt"}


@dataclass(frozen=True)
class SubjectGeometry:
    """Subject world (RAS mm) -> template (RAS mm): ``q = A^-1 p + u(A^-1 p)``."""

    matrix: np.ndarray  # 4x4 affine A: template -> subject world
    warp: np.ndarray  # (3, n, n, n) displacement control grid (mm) over the template box

    @property
    def rotation(self) -> np.ndarray:
        """Closest rotation to the linear part of A (rotates fibre directions)."""
        u, _, vt = np.linalg.svd(self.matrix[:3, :3])
        return u @ vt

    def to_template(self, world: np.ndarray) -> np.ndarray:
        """Template RAS coordinates of subject world points ``(..., 3)``."""
        inv = np.linalg.inv(self.matrix)
        q = world @ inv[:3, :3].T + inv[:3, 3]
        box = ph.grid_affine()
        lo = box[:3, 3]
        hi = lo + (np.asarray(ph.GRID_SHAPE) - 1) * ph.VOXEL_MM
        fine = _upsampled(self.warp.tobytes(), self.warp.shape)
        n = fine.shape[1]
        coords = ((q - lo) / (hi - lo) * (n - 1)).reshape(-1, 3).T
        disp = np.stack([ndimage.map_coordinates(fine[c], coords, order=1, mode="nearest")
                         for c in range(3)], axis=-1)
        return q + disp.reshape(q.shape)


@lru_cache(maxsize=4)
def _upsampled(warp_bytes: bytes, shape: tuple[int, ...]) -> np.ndarray:
    """Cubic-spline upsampling of the control grid to 31^3 (then sampled trilinearly: the
    same smooth field at an eighth of the cost of cubic sampling at every voxel)."""
    warp = np.frombuffer(warp_bytes).reshape(shape)
    zoom = (30 / (shape[1] - 1),) * 3
    return np.stack([ndimage.zoom(w, zoom, order=3, mode="nearest", grid_mode=False)
                     for w in warp])


def random_geometry(rng: np.random.Generator) -> SubjectGeometry:
    """Head position, orientation and size variation, plus a smooth non-linear deformation."""
    ang = np.deg2rad(rng.normal(0.0, 4.0, size=3))
    cx, cy, cz = np.cos(ang)
    sx, sy, sz = np.sin(ang)
    rot = (np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
           @ np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
           @ np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]))
    scale = rng.uniform(0.92, 1.06) * (1.0 + rng.normal(0.0, 0.015, size=3))
    mat = np.eye(4)
    mat[:3, :3] = rot @ np.diag(scale)
    mat[:3, 3] = rng.normal(0.0, 2.5, size=3)
    warp = ndimage.gaussian_filter(rng.normal(0.0, 2.5, size=(3, 6, 6, 6)),
                                   sigma=(0, 0.7, 0.7, 0.7))
    return SubjectGeometry(matrix=mat, warp=warp)


def _sample(volume: np.ndarray, template_ras: np.ndarray, order: int) -> np.ndarray:
    inv = np.linalg.inv(ph.grid_affine())
    vox = template_ras @ inv[:3, :3].T + inv[:3, 3]
    coords = vox.reshape(-1, 3).T
    out = ndimage.map_coordinates(volume, coords, order=order, mode="constant", cval=0.0)
    return out.reshape(template_ras.shape[:-1])


def _bias_field(world: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """Smooth multiplicative field: exp of a quadratic polynomial in normalised coordinates."""
    u = world / 70.0
    x, y, z = u[..., 0], u[..., 1], u[..., 2]
    terms = np.stack([x, y, z, x * y, y * z, x * z, x * x, y * y, z * z], axis=-1)
    return np.exp(terms @ coeffs)


def _rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    n1 = rng.normal(0.0, sigma, size=signal.shape)
    n2 = rng.normal(0.0, sigma, size=signal.shape)
    return np.sqrt((signal + n1) ** 2 + n2**2)


def _tensor_eigen(fa: np.ndarray, md: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axially symmetric tensor with given FA and MD: returns (lambda_par, lambda_perp).

    With r = l_par / l_perp, FA^2 = (r - 1)^2 / (r^2 + 2), so
    r = (1 + sqrt(1 - (1 - FA^2)(1 - 2 FA^2))) / (1 - FA^2); MD = l_perp (r + 2) / 3.
    """
    fa = np.clip(fa, 0.0, 0.95)
    r = (1.0 + np.sqrt(np.clip(1.0 - (1.0 - fa**2) * (1.0 - 2.0 * fa**2), 0.0, None))) / (
        1.0 - fa**2)
    perp = 3.0 * md / (r + 2.0)
    return r * perp, perp


@dataclass
class SubjectImages:
    """Rendered images (DICOM order: slices, rows, cols) and what is needed for the truth."""

    t2w: np.ndarray
    t1w: np.ndarray
    dwi: np.ndarray  # (volumes, slices, rows, cols)
    adc: np.ndarray
    bvals: list[float]
    bvecs_ras: np.ndarray


def render_subject(maps: dict[str, np.ndarray], labels: np.ndarray, geom: SubjectGeometry,
                   rng: np.random.Generator, *, n_directions: int = 12,
                   resolution_mm: float | None = None,
                   ) -> tuple[SubjectImages, dict[str, AxialGrid]]:
    """Image the subject on its acquisition grids (:func:`acquisition_grids`) with noise, bias
    field and partial volume."""
    grids = {name: AxialGrid(**g, centre_ras=FOV_CENTRE_RAS)
             for name, g in acquisition_grids(resolution_mm).items()}
    bias = rng.normal(0.0, 0.06, size=9)
    smooth = {name: ndimage.gaussian_filter(maps[name], 0.6) for name in ("T1w", "T2w")}
    out: dict[str, np.ndarray] = {}
    for name in ("T2w", "T1w"):
        world = grids[name].world_ras()
        q = geom.to_template(world)
        signal = _sample(smooth[name], q, order=1) * _bias_field(world, bias)
        out[name] = _rician(signal, 12.0, rng)

    # diffusion: S = S0 exp(-b g^T D g) with an axially symmetric tensor per voxel
    world = grids["DWI"].world_ras()
    q = geom.to_template(world)
    md = _sample(maps["ADC"], q, order=1)
    fa = _sample(maps["FA"], q, order=1)
    s0 = _sample(ndimage.gaussian_filter(maps["T2w"], 1.0), q, order=1)
    s0 = 1.4 * s0 * _bias_field(world, bias)
    axis_lut = ph.fibre_axes()
    axes = axis_lut[_sample(labels, q, order=0).astype(np.intp)] @ geom.rotation.T
    lpar, lperp = _tensor_eigen(fa, md * 1e-6)
    dirs = gradient_directions(n_directions)
    vols = [s0]
    for g in dirs:
        cos2 = (axes @ g) ** 2
        adc_g = lperp + (lpar - lperp) * cos2
        vols.append(s0 * np.exp(-B_VALUE * adc_g))
    dwi = np.stack([_rician(v, 10.0, rng) for v in vols])
    # scanner ADC: trace-weighted image from the geometric mean over directions
    b0 = np.maximum(dwi[0], 1.0)
    trace = np.exp(np.mean(np.log(np.maximum(dwi[1:], 1.0)), axis=0))
    adc = -np.log(np.clip(trace / b0, 1e-6, None)) / B_VALUE * 1e6
    adc = np.where(dwi[0] > 0.15 * np.percentile(dwi[0], 99), np.clip(adc, 0, 4000), 0.0)
    images = SubjectImages(t2w=out["T2w"], t1w=out["T1w"], dwi=dwi, adc=adc,
                           bvals=[0.0] + [B_VALUE] * len(dirs), bvecs_ras=dirs)
    return images, grids


def _series_specs(images: SubjectImages) -> dict[str, SeriesSpec]:
    lps = images.bvecs_ras * np.array([-1.0, -1.0, 1.0])
    dwi_name = f"DWI_{len(images.bvals) - 1}DIR_B1000"
    bvecs = [[0.0, 0.0, 0.0]] + [list(map(float, g)) for g in lps]
    return {
        "T2w": SeriesSpec(3, "T2_TSE_AX", ("ORIGINAL", "PRIMARY", "M", "NORM"), "SE", "SK\\SP",
                          "*tse2d1_16", tr_ms=9000.0, te_ms=150.0, echo_train=16),
        "T1w": SeriesSpec(2, "T1_IR_GRE_AX", ("ORIGINAL", "PRIMARY", "M", "NORM"), "GR\\IR",
                          "SP\\MP", "*tfl3d1", tr_ms=2100.0, te_ms=3.6, ti_ms=1100.0,
                          flip_deg=9.0, acquisition_type="3D"),
        "DWI": SeriesSpec(5, dwi_name, ("ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"), "EP",
                          "SK\\SP", "*ep_b1000", tr_ms=5200.0, te_ms=88.0, bvals=images.bvals,
                          bvecs_lps=bvecs),
        "ADC": SeriesSpec(6, f"{dwi_name}_ADC", ("DERIVED", "PRIMARY", "DIFFUSION", "ADC"),
                          "EP", "SK\\SP", "*ep_b1000", tr_ms=5200.0, te_ms=88.0),
    }


_FIRST = ("AVA", "NOAH", "MIA", "LIAM", "ZOE", "OMAR", "LENA", "KAI", "NORA", "ELI")
_LAST = ("JOHNSON", "NGUYEN", "MUELLER", "SILVA", "KOWALSKI", "TANAKA", "OKAFOR", "BERG")


def fake_patient(rng: np.random.Generator, number: int, age_days: int) -> PatientInfo:
    """Realistic-looking identifying values (all fake) for de-identification to remove."""
    birth = np.datetime64("2026-01-01") + int(rng.integers(0, 300))
    scan = birth + age_days
    fmt = lambda d: str(d).replace("-", "")  # noqa: E731
    return PatientInfo(
        name=f"{_LAST[int(rng.integers(len(_LAST)))]}^{_FIRST[int(rng.integers(len(_FIRST)))]}",
        patient_id=f"HN{int(rng.integers(1e6, 1e7))}", birth_date=fmt(birth),
        study_date=fmt(scan), sex=("M", "F")[int(rng.integers(2))], age_days=age_days,
        weight_kg=float(rng.uniform(3.2, 4.6)),
        accession=f"ACC{number:02d}{int(rng.integers(1e5, 1e6))}",
    )


def _dcm2niix_grid(series_dir: Path, work: Path) -> nib.Nifti1Image:
    """Convert one series as the ingest does (:func:`weeke_pipeline.ingest.convert.run_dcm2niix`)
    and return its image (the grid a pipeline will see)."""
    from weeke_pipeline.ingest.convert import run_dcm2niix

    try:
        img = nib.load(run_dcm2niix(series_dir, work)[0])
    except Exception as exc:  # dcm2niix failed or wrote no image
        raise RuntimeError(f"dcm2niix could not convert {series_dir}: {exc}") from exc
    return nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine)


def _grid_world(img: nib.Nifti1Image) -> np.ndarray:
    ijk = np.stack(np.meshgrid(*(np.arange(n) for n in img.shape[:3]), indexing="ij"), axis=-1)
    return ijk @ img.affine[:3, :3].T + img.affine[:3, 3]


def generate_subject(out_dir: Path, subject: str, *, seed: int, number: int, pattern: str,
                     compress: bool = True, n_directions: int = 12,
                     resolution_mm: float | None = None) -> dict[str, object]:
    """Generate one subject under ``out_dir/sub-<subject>``; returns its participants row.

    ``resolution_mm``: see :func:`acquisition_grids` (default: the clinical grids)."""
    rng = np.random.default_rng([seed, number])
    phantom = ph.build_phantom()
    labels = phantom.labels
    maps = {k: v.copy() for k, v in ph.property_maps(labels).items()}
    injuries = plan_injuries(pattern, rng)
    lesion = np.zeros(labels.shape, dtype=np.uint8)
    for i, inj in enumerate(injuries, start=1):
        _plant(labels, maps, lesion, inj, i, rng)
    geom = random_geometry(rng)
    images, grids = render_subject(maps, labels, geom, rng, n_directions=n_directions,
                                   resolution_mm=resolution_mm)

    day_of_life = int(rng.integers(26, 36))
    ga_birth_days = int(rng.integers(36 * 7, 41 * 7))
    pma_days = ga_birth_days + day_of_life
    patient = fake_patient(rng, number, day_of_life)
    sub_dir = out_dir / f"sub-{subject}"
    if sub_dir.exists():
        shutil.rmtree(sub_dir)
    dicom_dir = sub_dir / "dicom"
    study_uid = generate_uid(entropy_srcs=[str(seed), subject, "study"])
    specs = _series_specs(images)
    volumes = {"T2w": images.t2w, "T1w": images.t1w, "DWI": images.dwi, "ADC": images.adc}
    for name, spec in specs.items():
        grid = grids["DWI" if name == "ADC" else name]
        write_series(volumes[name] * (1.0 if name == "ADC" else 2.0), grid, spec, patient,
                     dicom_dir / f"{spec.number:02d}_{spec.description}", study_uid=study_uid,
                     uid_seed=f"{seed}-{subject}", compress=compress)

    # ground truth on the grid dcm2niix makes of the T2w series
    truth = sub_dir / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        t2 = _dcm2niix_grid(dicom_dir / f"{specs['T2w'].number:02d}_{specs['T2w'].description}",
                            Path(tmp))
    q = geom.to_template(_grid_world(t2))
    dseg = _sample(phantom.dseg, q, order=0).astype(np.uint8)
    save_nifti(np.asanyarray(t2.dataobj), t2.affine, truth / f"sub-{subject}_T2w.nii.gz")
    save_nifti(dseg, t2.affine, truth / f"sub-{subject}_dseg.nii.gz")
    save_nifti(_sample(lesion, q, order=0).astype(np.uint8), t2.affine,
               truth / f"sub-{subject}_desc-lesion_mask.nii.gz")
    # FA to 3 decimals and MD in whole 10^-6 mm^2/s: exact enough, and they compress well
    save_nifti(np.round(_sample(maps["FA"], q, order=1), 3).astype(np.float32), t2.affine,
               truth / f"sub-{subject}_desc-true_FA.nii.gz")
    save_nifti(np.rint(_sample(maps["ADC"], q, order=1)).astype(np.uint16), t2.affine,
               truth / f"sub-{subject}_desc-true_MD.nii.gz")
    # the same truth on the DWI grid, sampled at the points the DWI signal was generated from
    # (resampling the T2w-grid truth blurs thin structures by more than a fit's error)
    with tempfile.TemporaryDirectory() as tmp:
        dw = _dcm2niix_grid(dicom_dir / f"{specs['DWI'].number:02d}_{specs['DWI'].description}",
                            Path(tmp))
    dw_affine = dw.affine
    q = geom.to_template(_grid_world(dw))
    save_nifti(_sample(phantom.dseg, q, order=0).astype(np.uint8), dw_affine,
               truth / f"sub-{subject}_space-dwi_dseg.nii.gz")
    save_nifti(_sample(lesion, q, order=0).astype(np.uint8), dw_affine,
               truth / f"sub-{subject}_space-dwi_desc-lesion_mask.nii.gz")
    save_nifti(np.round(_sample(maps["FA"], q, order=1), 3).astype(np.float32), dw_affine,
               truth / f"sub-{subject}_space-dwi_desc-true_FA.nii.gz")
    save_nifti(np.rint(_sample(maps["ADC"], q, order=1)).astype(np.uint16), dw_affine,
               truth / f"sub-{subject}_space-dwi_desc-true_MD.nii.gz")

    truth_doc = {
        "subject": subject,
        "pattern": pattern,
        "seed": seed,
        "postmenstrual_age_days": pma_days,
        "day_of_life": day_of_life,
        "injuries": [
            {**asdict(inj), "number": i, "weeke_item": BY_INDEX[
                label_index(inj.region, inj.hemisphere)].weeke_item}
            for i, inj in enumerate(injuries, start=1)
        ],
        "weeke": {"form": DEFAULT_FORM, "items": weeke_truth(injuries, labels)},
        "geometry": {"template_to_subject": geom.matrix.round(6).tolist()},
    }
    (truth / f"sub-{subject}_truth.json").write_text(json.dumps(truth_doc, indent=2) + "\n")
    return {
        "participant_id": f"sub-{subject}",
        "patient_id": patient.patient_id,
        "sex": patient.sex,
        "gestational_age_at_birth_weeks": ga_birth_days // 7,
        "gestational_age_at_birth_days": ga_birth_days % 7,
        "day_of_life_at_scan": day_of_life,
        "pma_at_scan_weeks": pma_days // 7,
        "pma_at_scan_days": pma_days % 7,
    }


PARTICIPANTS_JSON = {
    "participant_id": {"Description": "subject label (BIDS): the study pseudonym"},
    "patient_id": {"Description": "the (fake) DICOM PatientID: this table is the site's "
                                  "linkage table and stays at the site; the pipeline maps "
                                  "PatientID to participant_id with it and drops this column "
                                  "from everything it writes"},
    "sex": {"Description": "sex", "Levels": {"M": "male", "F": "female"}},
    "gestational_age_at_birth_weeks": {"Description": "gestational age at birth, completed weeks",
                                       "Units": "weeks"},
    "gestational_age_at_birth_days": {"Description": "days beyond the completed weeks (0-6)",
                                      "Units": "days"},
    "day_of_life_at_scan": {"Description": "day of life at the MRI (day of birth = 0)",
                            "Units": "days"},
    "pma_at_scan_weeks": {"Description": "postmenstrual age at scan, completed weeks",
                          "Units": "weeks"},
    "pma_at_scan_days": {"Description": "postmenstrual age at scan, days beyond the weeks (0-6)",
                         "Units": "days"},
}


def generate_study(out_dir: Path, *, n_subjects: int, seed: int,
                   patterns: list[str] | None = None, compress: bool = True,
                   n_directions: int = 12, resolution_mm: float | None = None) -> list[Path]:
    """Generate ``n_subjects`` subjects (patterns cycled) and the participants table.

    ``resolution_mm``: None = the clinical acquisition grids; r = isotropic r mm T1w/T2w and
    2r mm DWI over the same field of view (:func:`acquisition_grids`)."""
    patterns = patterns or list(PATTERNS)
    for p in patterns:
        if p not in PATTERNS:
            raise ValueError(f"unknown injury pattern {p!r}; expected one of {PATTERNS}")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in range(n_subjects):
        rows.append(generate_subject(out_dir, f"{n + 1:02d}", seed=seed, number=n + 1,
                                     pattern=patterns[n % len(patterns)], compress=compress,
                                     n_directions=n_directions, resolution_mm=resolution_mm))
    header = list(rows[0])
    lines = ["\t".join(header)] + ["\t".join(str(r[h]) for h in header) for r in rows]
    (out_dir / "participants.tsv").write_text("\n".join(lines) + "\n")
    (out_dir / "participants.json").write_text(json.dumps(PARTICIPANTS_JSON, indent=2) + "\n")
    return [out_dir / r["participant_id"] for r in rows]
