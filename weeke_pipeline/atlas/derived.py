"""The Weeke regions real atlases lack, derived by deterministic rules from the atlas's own labels.

dHCP and Draw-EM (ALBERTs) label maps have no posterior limb of the internal capsule (PLIC),
optic radiation, perirolandic cortex or vermis, yet Weeke items score them. Each rule below
takes a label map in the weeke vocabulary (:mod:`weeke_pipeline.atlas.regions`), measures
distances in millimetres on the atlas grid, and re-labels voxels of a *donor* label (white
matter, cortex or cerebellum: a rule never takes a voxel from deep grey matter, CSF or another
structure). The rules are versioned (:data:`RULES_VERSION`) and their text is recorded in the
bundle's ``atlas.json`` (``derived_regions``), so a metric on a derived region says how it came
about. Validated against the phantom, whose true regions are known (``docs/atlases.md``,
``tests/test_atlas_derived.py``).

Rules (distances in mm; "hemisphere" = the side of the donor label):

- ``plic``: on each axial level where the hemisphere's lentiform nucleus and thalamus both
  exist, the white matter *between* them: ``d_L + d_T <= g + 2`` where ``d_L``/``d_T`` are the
  in-plane distances to lentiform and thalamus and ``g`` is the smallest such sum on that level
  (the width of the gap), and posterior to the genu (not anterior to the thalamus's front on
  that level). Donor: that hemisphere's white matter, and unlabelled voxels there (an atlas
  that leaves the internal capsule as intracranial background).
- ``optic_radiation``: periventricular white matter lateral to the trigone and occipital horn:
  parietal/temporal/occipital white matter within 1-6 mm of the lateral ventricle, lateral to
  and not above the ventricle's centre on that coronal level, and posterior to the thalamus's
  posterior pole (the lateral geniculate body sits under the pulvinar). Donor: that white
  matter.
- ``perirolandic_cortex``: the cortical ribbon within 6 mm either side of the frontal-parietal
  boundary (the central sulcus in Draw-EM's lobes), on the dorsal convexity (above the centroid
  of the lateral ventricles). Donor: frontal and parietal cortex.
- ``vermis``: the cerebellum within a midline band whose width is 20 % of the transverse
  cerebellar diameter measured on the atlas (the phantom's and a term neonate's vermis width
  are about a fifth of the TCD). The midline is the plane between the left and right
  cerebellum labels. Donor: both cerebellar hemispheres.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from weeke_pipeline.atlas.regions import BY_NAME, indices_for

RULES_VERSION = "1"
DERIVABLE = ("plic", "optic_radiation", "perirolandic_cortex", "vermis")

RULE_TEXT = {
    "plic": "white matter between lentiform nucleus and thalamus on each axial level where both "
            "exist (in-plane d_lentiform + d_thalamus <= level minimum + 2 mm), not anterior to "
            "the thalamus on that level (posterior to the genu); donors: white matter and "
            "unlabelled voxels",
    "optic_radiation": "parietal/temporal/occipital white matter 1-6 mm from the lateral "
                       "ventricle, lateral to and not above the ventricle's centre on that "
                       "coronal level, posterior to the thalamus's posterior pole",
    "perirolandic_cortex": "frontal and parietal cortex within 6 mm of the frontal-parietal "
                           "boundary, above the centroid of the lateral ventricles",
    "vermis": "cerebellum within a midline band 20 % of the transverse cerebellar diameter wide, "
              "centred between the left and right cerebellum labels",
}

HEMIS = ("left", "right")


@dataclass(frozen=True)
class DerivedRegion:
    """What one rule did: region, voxels per hemisphere (or midline), and why if it could not."""

    region: str
    voxels: dict[str, int]
    skipped: str = ""

    def as_json(self) -> dict[str, object]:
        doc: dict[str, object] = {"rule": RULE_TEXT[self.region], "rules_version": RULES_VERSION,
                                  "voxels": self.voxels}
        if self.skipped:
            doc["skipped"] = self.skipped
        return doc


def _idx(name: str) -> int:
    return BY_NAME[name].index


def _coords(shape: Sequence[int], affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World x, y, z (mm) of every voxel centre (broadcastable open grids)."""
    ii, jj, kk = np.ogrid[:shape[0], :shape[1], :shape[2]]
    a = affine
    return tuple(a[r, 0] * ii + a[r, 1] * jj + a[r, 2] * kk + a[r, 3]  # type: ignore[return-value]
                 for r in range(3))


def _check_axes(affine: np.ndarray) -> np.ndarray:
    """Voxel sizes; the rules assume voxel axes along x (L-R), y (P-A), z (I-S)."""
    codes = "".join(__import__("nibabel").aff2axcodes(affine))
    if codes != "RAS":
        raise ValueError(f"derived regions need a RAS-oriented grid (got {codes}); "
                         "reorient with nibabel.as_closest_canonical first")
    return np.sqrt((affine[:3, :3] ** 2).sum(axis=0))


def _bbox(mask: np.ndarray, margin_mm: float, zooms: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of ``mask`` grown by ``margin_mm`` (the distance maps of a rule only matter
    within its distance limits of the anchors, so they are computed in this box: faster)."""
    idx = np.nonzero(mask)
    pad = np.ceil(margin_mm / zooms).astype(int) + 1
    return tuple(slice(max(int(i.min()) - p, 0), min(int(i.max()) + p + 1, n))
                 for i, p, n in zip(idx, pad, mask.shape, strict=True))


def _wm(hemi: str, lobes: Iterable[str] = ("frontal", "parietal", "temporal", "occipital")
        ) -> list[int]:
    return [_idx(f"wm_{lobe}_{hemi}") for lobe in lobes]


def derive_plic(dseg: np.ndarray, zooms: np.ndarray, y: np.ndarray, hemi: str) -> np.ndarray:
    """Mask of the PLIC rule for one hemisphere (see module docstring)."""
    out = np.zeros(dseg.shape, dtype=bool)
    anchors = np.isin(dseg, [_idx(f"lentiform_{hemi}"), _idx(f"thalamus_{hemi}")])
    if not anchors.any():
        return out
    box = _bbox(anchors, 10.0, zooms)
    sub = dseg[box]
    lent, thal = sub == _idx(f"lentiform_{hemi}"), sub == _idx(f"thalamus_{hemi}")
    donor = np.isin(sub, _wm(hemi)) | (sub == 0)  # 0: a capsule left as background
    part = np.zeros(sub.shape, dtype=bool)
    yy = np.broadcast_to(y, dseg.shape)[box]
    for k in range(sub.shape[2]):
        lk, tk, dk = lent[:, :, k], thal[:, :, k], donor[:, :, k]
        if not (lk.any() and tk.any() and dk.any()):
            continue
        d_l = ndimage.distance_transform_edt(~lk, sampling=zooms[:2])
        d_t = ndimage.distance_transform_edt(~tk, sampling=zooms[:2])
        s = d_l + d_t
        gap = s[dk].min()
        front = yy[:, :, k][tk].max()
        part[:, :, k] = dk & (s <= gap + 2.0) & (yy[:, :, k] <= front)
    out[box] = part
    return out


def derive_optic_radiation(dseg: np.ndarray, zooms: np.ndarray, x: np.ndarray, y: np.ndarray,
                           z: np.ndarray, mid_x: float, hemi: str) -> np.ndarray:
    """Mask of the optic-radiation rule for one hemisphere (see module docstring)."""
    vent = dseg == _idx(f"lateral_ventricle_{hemi}")
    thal = dseg == _idx(f"thalamus_{hemi}")
    donor = np.isin(dseg, _wm(hemi, ("parietal", "temporal", "occipital")))
    out = np.zeros(dseg.shape, dtype=bool)
    if not (vent.any() and thal.any() and donor.any()):
        return out
    box = _bbox(vent, 7.0, zooms)
    d_v = np.full(dseg.shape, np.inf)
    d_v[box] = ndimage.distance_transform_edt(~vent[box], sampling=zooms)
    xx, yy = np.broadcast_to(x, dseg.shape), np.broadcast_to(y, dseg.shape)
    zz = np.broadcast_to(z, dseg.shape)
    lateral = np.abs(xx - mid_x)
    # the ventricle's centre on each coronal level (y): mean |x - mid| and mean z of its voxels
    c_lat, c_z = np.full(dseg.shape[1], np.inf), np.full(dseg.shape[1], -np.inf)
    ys = np.nonzero(vent.any(axis=(0, 2)))[0]
    for j in ys:
        c_lat[j] = lateral[:, j, :][vent[:, j, :]].mean()
        c_z[j] = zz[:, j, :][vent[:, j, :]].mean()
    # behind the occipital horn's tip keep the tip's centre (the radiation goes on to the pole)
    c_lat[: ys.min()], c_z[: ys.min()] = c_lat[ys.min()], c_z[ys.min()]
    post_pole = yy[thal].min()
    return (donor & (d_v >= 1.0) & (d_v <= 6.0) & (lateral > c_lat[None, :, None])
            & (zz <= c_z[None, :, None]) & (yy <= post_pole))


def derive_perirolandic(dseg: np.ndarray, zooms: np.ndarray, z: np.ndarray, hemi: str
                        ) -> np.ndarray:
    """Mask of the perirolandic-cortex rule for one hemisphere (see module docstring)."""
    frontal = np.isin(dseg, [_idx(f"cortex_frontal_{hemi}"), _idx(f"wm_frontal_{hemi}")])
    parietal = np.isin(dseg, [_idx(f"cortex_parietal_{hemi}"), _idx(f"wm_parietal_{hemi}")])
    vent = np.isin(dseg, indices_for(region="lateral_ventricle"))
    cortex = np.isin(dseg, [_idx(f"cortex_frontal_{hemi}"), _idx(f"cortex_parietal_{hemi}")])
    if not (frontal.any() and parietal.any() and vent.any()):
        return np.zeros(dseg.shape, dtype=bool)
    zz = np.broadcast_to(z, dseg.shape)
    dorsal = zz > zz[vent].mean()
    out = np.zeros(dseg.shape, dtype=bool)
    if not (cortex & dorsal).any():
        return out
    box = _bbox(cortex & dorsal, 7.0, zooms)
    d_f = ndimage.distance_transform_edt(~frontal[box], sampling=zooms)
    d_p = ndimage.distance_transform_edt(~parietal[box], sampling=zooms)
    near = (frontal[box] & (d_p <= 6.0)) | (parietal[box] & (d_f <= 6.0))
    out[box] = cortex[box] & near & dorsal[box]
    return out


def derive_vermis(dseg: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Mask of the vermis rule and the band width (mm) (see module docstring)."""
    left, right = dseg == _idx("cerebellum_left"), dseg == _idx("cerebellum_right")
    if not (left.any() and right.any()):
        return np.zeros(dseg.shape, dtype=bool), 0.0
    xx = np.broadcast_to(x, dseg.shape)
    xl, xr = xx[left], xx[right]
    # midline: halfway between the facing edges of the two hemispheres' labels; TCD: the
    # transverse extent. Percentiles, so a few stray voxels do not move them.
    if xl.mean() > xr.mean():  # a grid whose x runs the other way round
        xl, xr = -xl, -xr
        sign = -1.0
    else:
        sign = 1.0
    mid = sign * 0.5 * (np.percentile(xl, 99) + np.percentile(xr, 1))
    tcd = float(np.percentile(xr, 99.9) - np.percentile(xl, 0.1))
    width = 0.2 * tcd
    return (left | right) & (np.abs(xx - mid) < width / 2.0), float(width)


def derive_regions(dseg: np.ndarray, affine: np.ndarray,
                   regions: Sequence[str] = DERIVABLE) -> tuple[np.ndarray, list[DerivedRegion]]:
    """Add ``regions`` (a subset of :data:`DERIVABLE`) to a vocabulary label map by rule.

    Returns the new label map (a copy) and one :class:`DerivedRegion` per region. A region
    the label map already has is left as it is (``skipped``); so is one whose anchors are
    absent (e.g. no thalamus). Rules run in a fixed order (vermis, PLIC, optic radiation,
    perirolandic cortex) on the input labels, so no rule sees another's output.
    """
    unknown = [r for r in regions if r not in DERIVABLE]
    if unknown:
        raise ValueError(f"no rule for region(s) {unknown}; derivable: {', '.join(DERIVABLE)}")
    zooms = _check_axes(affine)
    x, y, z = _coords(dseg.shape, affine)
    src = np.asarray(dseg)
    out = src.copy()
    present = {int(v) for v in np.unique(src)}
    report: list[DerivedRegion] = []
    brainstem = np.isin(src, indices_for(region="brainstem"))
    xx = np.broadcast_to(x, src.shape)
    cereb = np.isin(src, indices_for(region="cerebellum"))
    mid_x = float(xx[brainstem].mean()) if brainstem.any() else (
        float(xx[cereb].mean()) if cereb.any() else 0.0)
    for region in ("vermis", "plic", "optic_radiation", "perirolandic_cortex"):
        if region not in regions:
            continue
        own = [_idx(region)] if region == "vermis" else [_idx(f"{region}_{h}") for h in HEMIS]
        if present & set(own):
            report.append(DerivedRegion(region, {}, "the atlas labels it already"))
            continue
        counts: dict[str, int] = {}
        if region == "vermis":
            mask, _ = derive_vermis(src, x)
            out[mask] = _idx("vermis")
            counts["midline"] = int(mask.sum())
        else:
            for hemi in HEMIS:
                if region == "plic":
                    mask = derive_plic(src, zooms, y, hemi)
                elif region == "optic_radiation":
                    mask = derive_optic_radiation(src, zooms, x, y, z, mid_x, hemi)
                else:
                    mask = derive_perirolandic(src, zooms, z, hemi)
                out[mask] = _idx(f"{region}_{hemi}")
                counts[hemi] = int(mask.sum())
        skipped = "" if sum(counts.values()) else ("the rule selected no voxel (are its anchor "
                                                    "structures labelled?)")
        report.append(DerivedRegion(region, counts, skipped))
    return out, report


def as_real_atlas(dseg: np.ndarray) -> np.ndarray:
    """What a Draw-EM-style atlas would label where the phantom has the four derived regions.

    PLIC and optic radiation become the nearest lobar white matter, perirolandic cortex the
    nearest frontal/parietal cortex, the vermis the cerebellum of its side (Draw-EM splits the
    cerebellum at the midline). Used to validate the rules against the phantom's truth.
    """
    out = np.asarray(dseg).copy()
    for region, donors in (("plic", indices_for(tissue="wm")),
                           ("optic_radiation", indices_for(tissue="wm")),
                           ("perirolandic_cortex", [_idx(f"cortex_{lo}_{h}") for lo in
                                                    ("frontal", "parietal") for h in HEMIS])):
        targets = np.isin(out, indices_for(region=region))
        keep = np.isin(out, [d for d in donors if d not in indices_for(region=region)
                             and d not in indices_for(region="plic")
                             and d not in indices_for(region="optic_radiation")
                             and d != _idx("corpus_callosum")])
        if not targets.any():
            continue
        box = _bbox(targets, 12.0, np.ones(3))
        sub = out[box]
        _, ind = ndimage.distance_transform_edt(~keep[box], return_indices=True)
        sub[targets[box]] = sub[tuple(i[targets[box]] for i in ind)]
    vermis = out == _idx("vermis")
    if vermis.any():  # split at the vermis's own centre (voxel axis 0 = left-right in RAS)
        ii = np.nonzero(vermis)[0]
        left = np.zeros(out.shape, dtype=bool)
        left[: int(np.ceil(0.5 * (ii.min() + ii.max())))] = True
        out[vermis & left] = _idx("cerebellum_left")
        out[vermis & ~left] = _idx("cerebellum_right")
    return out


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap 2|A and B| / (|A| + |B|) (nan when both are empty)."""
    s = int(a.sum()) + int(b.sum())
    return float("nan") if s == 0 else 2.0 * float((a & b).sum()) / s
