"""The neonatal brain phantom: term-equivalent anatomy (about 44 weeks postmenstrual) with a label
for every region a Weeke item names, and tissue properties at that age.

The phantom is built once on a 1 mm template grid (RAS millimetres, origin near the brain's
centre) from geometric primitives: an ellipsoidal cerebrum whose surface is folded by sulci that
follow the zero level set of a smooth random field on the sphere, a cortical ribbon found with a
Euclidean distance transform, lobes by position, ellipsoidal deep grey nuclei, an obliquely set
posterior limb of the internal capsule, an arched corpus callosum, an optic radiation tube,
brainstem, cerebellum with vermis, lateral ventricles, extra-cerebral CSF, skull and scalp.
Synthetic subjects (:mod:`weeke_pipeline.synth.study`) and the default atlas bundle are both sampled
from it, so the atlas and the subjects share exact ground truth.

Contrast at about 1 month of age (term-equivalent), in arbitrary scanner units:
T2w: CSF > unmyelinated white matter > grey matter > myelinated PLIC/brainstem;
T1w: the reverse for white vs grey matter, PLIC brightest; ADC (10^-6 mm^2/s): white matter
1100-1300, grey matter lower, CSF about 3000 (Dudink et al. 2008; Rutherford et al. 2004).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from weeke_pipeline.atlas.regions import BY_NAME, REGIONS, label_index

#: template grid: shape and voxel size (mm); voxel centres at half-mm so no voxel sits on x = 0
GRID_SHAPE = (120, 144, 112)
VOXEL_MM = 1.0
GRID_CENTRE_MM = (0.0, 2.0, -4.0)

#: labels used only inside the phantom for non-brain head tissue (never in a dseg output)
SKULL, SCALP = 250, 251

#: Tissue properties per region: T1w, T2w (arbitrary units), ADC (10^-6 mm^2/s), FA, fibre axis.
#: Fibre axes (RAS unit vectors) apply where FA is high: callosal fibres run left-right, the PLIC
#: and brainstem tracts superior-inferior, the optic radiation anterior-posterior.
_PROPERTIES: dict[str, tuple[float, float, float, float, tuple[float, float, float]]] = {
    "csf_extracerebral": (150, 1000, 3000, 0.0, (0, 0, 1)),
    "lateral_ventricle": (130, 1000, 3000, 0.0, (0, 0, 1)),
    "cortex_frontal": (520, 430, 1050, 0.12, (0, 0, 1)),
    "cortex_parietal": (520, 430, 1050, 0.12, (0, 0, 1)),
    "cortex_temporal": (520, 430, 1050, 0.12, (0, 0, 1)),
    "cortex_occipital": (520, 430, 1050, 0.12, (0, 0, 1)),
    "perirolandic_cortex": (560, 400, 1000, 0.14, (0, 0, 1)),
    "wm_frontal": (380, 640, 1250, 0.22, (0, 1, 0)),
    "wm_parietal": (380, 640, 1250, 0.22, (0, 0, 1)),
    "wm_temporal": (380, 640, 1250, 0.22, (0, 1, 0)),
    "wm_occipital": (380, 640, 1250, 0.22, (0, 1, 0)),
    "optic_radiation": (430, 570, 1150, 0.40, (0, 1, 0)),
    "corpus_callosum": (400, 600, 1200, 0.55, (1, 0, 0)),
    "thalamus": (560, 380, 1000, 0.18, (0, 0, 1)),
    "caudate": (500, 450, 1050, 0.10, (0, 0, 1)),
    "lentiform": (540, 400, 1000, 0.12, (0, 0, 1)),
    "plic": (680, 260, 850, 0.55, (0, 0, 1)),
    "hippocampus": (480, 470, 1050, 0.12, (0, 1, 0)),
    "brainstem": (600, 330, 900, 0.45, (0, 0, 1)),
    "cerebellum": (500, 420, 950, 0.15, (0, 1, 0)),
    "vermis": (520, 400, 950, 0.15, (0, 0, 1)),
}
#: non-brain head tissue: skull (dark on both), scalp with fat (bright on T1w)
_HEAD_PROPERTIES = {SKULL: (60, 60, 0, 0.0), SCALP: (700, 450, 1000, 0.05)}


@dataclass(frozen=True)
class Phantom:
    """The phantom on its template grid: labels, tissue property maps and the grid affine."""

    labels: np.ndarray  # uint8 region labels (0 background, 1..39 regions, 250/251 skull/scalp)
    affine: np.ndarray  # voxel -> RAS mm

    @property
    def dseg(self) -> np.ndarray:
        """Region labels only (skull and scalp set to background)."""
        out = self.labels.copy()
        out[out >= SKULL] = 0
        return out

    @property
    def brain_mask(self) -> np.ndarray:
        """Brain parenchyma plus ventricles (extra-cerebral CSF, skull and scalp excluded)."""
        csf = label_index("csf_extracerebral")
        return (self.labels > 0) & (self.labels < SKULL) & (self.labels != csf)


def property_table() -> np.ndarray:
    """Lookup table ``(256, 5)``: per label T1w, T2w, ADC, FA and a fibre-axis index."""
    lut = np.zeros((256, 5), dtype=np.float64)
    for region in REGIONS:
        t1, t2, adc, fa, _ = _PROPERTIES[region.region]
        lut[region.index, :4] = (t1, t2, adc, fa)
    for label, (t1, t2, adc, fa) in _HEAD_PROPERTIES.items():
        lut[label, :4] = (t1, t2, adc, fa)
    return lut


def fibre_axes() -> np.ndarray:
    """``(256, 3)`` unit fibre direction per label (RAS)."""
    axes = np.zeros((256, 3))
    axes[:, 2] = 1.0
    for region in REGIONS:
        axes[region.index] = _PROPERTIES[region.region][4]
    return axes


def grid_affine(shape: tuple[int, int, int] = GRID_SHAPE, voxel: float = VOXEL_MM,
                centre: tuple[float, float, float] = GRID_CENTRE_MM) -> np.ndarray:
    """RAS affine of a grid whose centre lies at ``centre`` (voxel centres at +-0.5 voxel)."""
    aff = np.eye(4)
    aff[:3, :3] *= voxel
    aff[:3, 3] = np.asarray(centre) - voxel * (np.asarray(shape) - 1) / 2.0
    return aff


def _ellipsoid(x, y, z, centre, semi) -> np.ndarray:
    """Normalised ellipsoid radius: < 1 inside."""
    return np.sqrt(((x - centre[0]) / semi[0]) ** 2 + ((y - centre[1]) / semi[1]) ** 2
                   + ((z - centre[2]) / semi[2]) ** 2)


def _rot_ellipsoid(x, y, z, centre, semi, yaw_deg=0.0, pitch_deg=0.0) -> np.ndarray:
    """Ellipsoid radius after rotating the frame about z (yaw) then about x (pitch)."""
    dx, dy, dz = x - centre[0], y - centre[1], z - centre[2]
    a, b = np.deg2rad(yaw_deg), np.deg2rad(pitch_deg)
    u = np.cos(a) * dx - np.sin(a) * dy
    v = np.sin(a) * dx + np.cos(a) * dy
    v, w = np.cos(b) * v - np.sin(b) * dz, np.sin(b) * v + np.cos(b) * dz
    return np.sqrt((u / semi[0]) ** 2 + (v / semi[1]) ** 2 + (w / semi[2]) ** 2)


def _sulcal_field(dirs: np.ndarray) -> np.ndarray:
    """Smooth random field on the unit sphere (fixed seed): the sulci follow its zero set."""
    rng = np.random.default_rng(44)  # the phantom is one fixed anatomy
    waves = rng.normal(size=(16, 3))
    waves /= np.linalg.norm(waves, axis=1, keepdims=True)
    freqs = rng.uniform(9.0, 13.0, size=16)
    phases = rng.uniform(0, 2 * np.pi, size=16)
    proj = dirs @ (waves * freqs[:, None]).T
    return np.cos(proj + phases).sum(axis=-1) / np.sqrt(8.0)


@lru_cache(maxsize=2)
def build_phantom(shape: tuple[int, int, int] = GRID_SHAPE, voxel: float = VOXEL_MM) -> Phantom:
    """Build the phantom anatomy on a grid (deterministic, about 1 s at 1 mm)."""
    affine = grid_affine(shape, voxel)
    ii, jj, kk = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    x = affine[0, 0] * ii + affine[0, 3]
    y = affine[1, 1] * jj + affine[1, 3]
    z = affine[2, 2] * kk + affine[2, 3]
    ax = np.abs(x)  # the right-hemisphere geometry mirrored to the left
    right = x > 0
    labels = np.zeros(shape, dtype=np.uint8)

    def put(mask: np.ndarray, region: str, lateral: bool = True) -> None:
        if lateral:
            labels[mask & right] = label_index(region, "right")
            labels[mask & ~right] = label_index(region, "left")
        else:
            labels[mask] = label_index(region)

    # cerebrum: folded ellipsoid, carved by the interhemispheric fissure and the tentorium
    c_cen, c_semi = (0.0, 2.0, 4.0), (45.0, 56.0, 36.0)
    rho = _ellipsoid(x, y, z, c_cen, c_semi)
    p = np.stack([x - c_cen[0], y - c_cen[1], z - c_cen[2]], axis=-1)
    pn = np.linalg.norm(p, axis=-1) + 1e-6
    depth = (1.0 - rho) * pn / np.maximum(rho, 1e-6)  # mm below the smooth surface, along the ray
    # sulcal depth (mm) along the field's zero set; only the outer 12 mm can be reached by it
    band = (depth > -1.0) & (depth < 12.0)
    sulcus = np.zeros(shape, dtype=np.float32)
    g = _sulcal_field((p[band] / pn[band][:, None]).astype(np.float64))
    sulcus[band] = 10.0 * np.exp(-((g / 0.2) ** 2))
    cb_cen, cb_semi = (0.0, -36.0, -27.0), (29.0, 17.0, 13.0)
    cb_rho = _ellipsoid(x, y, z, cb_cen, cb_semi)
    cerebrum = (depth > sulcus) & (rho < 1.0) & (ax > 1.0) & (cb_rho > 1.25)
    # cortex: within 2.5 mm of the CSF outside the cerebrum (follows sulci and the fissure)
    dist_out = ndimage.distance_transform_edt(cerebrum, sampling=voxel)
    cortex = cerebrum & (dist_out <= 2.5)

    # lobes by position (relative to the cerebrum's centre)
    yr, zr = y - c_cen[1], z - c_cen[2]
    occipital = yr < -34 + 0.2 * zr
    frontal = (yr > 12 - 0.35 * zr) & ~occipital
    temporal = (zr < -8) & ~occipital & ~(frontal & (zr > -14)) & (ax > 14)
    parietal = ~(occipital | frontal | temporal)
    central = np.abs(yr - (12 - 0.35 * zr) + 4) < 5.0
    perirolandic = cortex & central & (zr > 8)
    wm = cerebrum & ~cortex
    for lobe, mask in (("frontal", frontal), ("parietal", parietal), ("temporal", temporal),
                       ("occipital", occipital)):
        put(cortex & mask, f"cortex_{lobe}")
        put(wm & mask, f"wm_{lobe}")
    put(perirolandic, "perirolandic_cortex")

    # deep structures (right-side coordinates, mirrored)
    put(_rot_ellipsoid(ax, y, z, (22.0, -20.0, -14.0), (4.0, 13.0, 4.0), yaw_deg=-15) < 1,
        "hippocampus")
    put(_ellipsoid(ax, y, z, (8.0, -2.0, 10.0), (4.5, 25.0, 6.0)) < 1, "lateral_ventricle")
    put(_ellipsoid(ax, y, z, (14.0, -24.0, 5.0), (4.0, 8.0, 6.0)) < 1, "lateral_ventricle")
    put(_ellipsoid(ax, y, z, (13.5, 9.0, 7.0), (4.0, 10.0, 6.0)) < 1, "caudate")
    put(_ellipsoid(ax, y, z, (8.0, -12.0, 2.0), (6.5, 10.0, 7.0)) < 1, "thalamus")
    put(_rot_ellipsoid(ax, y, z, (21.0, 1.0, 0.0), (5.0, 11.0, 8.0), yaw_deg=-10) < 1,
        "lentiform")
    put(_rot_ellipsoid(ax, y, z, (16.0, -6.0, 1.0), (2.0, 8.0, 7.5), yaw_deg=-22) < 1, "plic")
    # corpus callosum: an arch over the ventricles in the sagittal plane
    arch = np.sqrt(((y + 2.0) / 27.0) ** 2 + ((z - 6.0) / 12.5) ** 2)
    cc = (ax < 15.0) & (arch > 0.82) & (arch < 1.0) & (z > 6.0)
    put(cc, "corpus_callosum", lateral=False)
    # optic radiation: a tube from the lateral geniculate to the occipital pole, in white matter
    a0, a1 = np.array([21.0, -20.0, 0.0]), np.array([15.0, -50.0, 5.0])
    seg = a1 - a0
    t = np.clip(((ax - a0[0]) * seg[0] + (y - a0[1]) * seg[1] + (z - a0[2]) * seg[2])
                / seg.dot(seg), 0.0, 1.0)
    d_or = np.sqrt((ax - a0[0] - t * seg[0]) ** 2 + (y - a0[1] - t * seg[1]) ** 2
                   + (z - a0[2] - t * seg[2]) ** 2)
    wm_now = np.isin(labels, [BY_NAME[f"wm_{lo}_{h}"].index for lo in
                              ("parietal", "temporal", "occipital") for h in ("left", "right")])
    put((d_or < 3.0) & wm_now, "optic_radiation")
    # brainstem (cerebral peduncles down to the medulla) and cerebellum with vermis
    bs = (((ax / 9.0) ** 2 + ((y + 14.0) / 8.5) ** 2) < 1.0) & (z < -4.0) & (z > -60.0)
    put(bs, "brainstem")
    cereb = (cb_rho < 1.0) & ~bs
    put(cereb & (ax >= 6.0), "cerebellum")
    put(cereb & (ax < 6.0), "vermis", lateral=False)

    # extra-cerebral CSF, skull and scalp as shells around the brain
    brain = labels > 0
    dist_brain = ndimage.distance_transform_edt(~brain, sampling=voxel)
    labels[~brain & (dist_brain <= 3.0)] = label_index("csf_extracerebral")
    labels[(dist_brain > 3.0) & (dist_brain <= 5.0)] = SKULL
    labels[(dist_brain > 5.0) & (dist_brain <= 8.0)] = SCALP
    return Phantom(labels=labels, affine=affine)


def property_maps(labels: np.ndarray) -> dict[str, np.ndarray]:
    """T1w, T2w, ADC and FA maps (float32) from a label map via the property table."""
    lut = property_table()
    return {name: lut[labels, col].astype(np.float32)
            for col, name in enumerate(("T1w", "T2w", "ADC", "FA"))}
