"""Region metrics: every label of a subject in one pass per image (numpy, with the per-voxel
loops compiled by numba; pandas only to shape the output tables).

All statistics are computed for all labels at once (no Python loop over labels):
- the labelled voxels are found once (:class:`LabelIndex`) and every image is read at those
  indices, in memory order;
- one histogram per image of the key ``label * bins + bin(value)`` gives every label's counts
  and sums; its cumulative counts tell which bin holds any rank of any label, and only the few
  voxels of those bins are sorted (:func:`histogram_statistics`): exact order statistics
  without sorting the image. The per-voxel passes are compiled (:mod:`metrics_kernels`).

Definitions (voxels of label ``k`` with a finite value ``x_1 <= ... <= x_n``; ``V`` = voxel
volume):

- ``volume_mm3``  = n_k(label) * V  (all voxels of the label, whether or not images exist)
- ``<c>_median``  = percentile 50 of the T1w/T2w intensity (arbitrary units)
- ``<c>_norm``    = ``<c>_median`` / reference, reference = median intensity over the reference
  tissue (``reference`` argument; default the cerebellum, left + right + vermis, usually spared
  in hypoxic-ischaemic injury; ``"brain"`` = all non-CSF labels). Dimensionless; 1 = as bright
  as the reference.
- ``adc_mean``    = (1/n) sum x_i (10^-6 mm^2/s)
- ``adc_median``, ``adc_p10`` = percentiles 50 and 10 (numpy's default linear interpolation:
  position p/100*(n-1) between order statistics)
- ``adc_frac_below_<t>`` = #{x_i < t} / n, for each threshold t (10^-6 mm^2/s)
- ``ai_<metric>`` = 2 (L - R) / (L + R), the left-right asymmetry index of a lateralised
  region (positive: left larger; NaN where L + R = 0 or either side is missing).

A missing image (``None``) gives NaN values (written ``n/a``), never zeros.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from weeke_pipeline.atlas.regions import BY_INDEX, REGIONS, indices_for

DEFAULT_ADC_THRESHOLDS: tuple[float, ...] = (800.0, 1000.0)
CONTRASTS = ("t1w", "t2w")
#: diffusion tensor maps (FA dimensionless; MD, AD, RD in 10^-6 mm^2/s) and their statistics
TENSOR_MAPS = ("fa", "md", "ad", "rd")
TENSOR_STATS = ("mean", "median", "p10")
COLUMNS = ("subject", "region", "hemisphere", "label", "metric", "value")


# --------------------------------------------------------------------------- core kernel
#: value bins per label of the (label, value-bin) histogram that locates order statistics
DEFAULT_BINS = 2048


class LabelIndex:
    """The labelled voxels of a label map, found once and shared by every image.

    ``flat`` = flat indices, in the label map's memory order and ascending, of the voxels with
    a label in 1..n_labels (and inside ``mask``); ``lab`` = their labels; ``counts`` = voxels
    per label. Every image is read at the same indices: an ascending gather streams through
    memory (grouping the voxels by label instead made the gather 3x slower: it jumps around
    the image).
    """

    def __init__(self, labels: np.ndarray, n_labels: int, mask: np.ndarray | None = None):
        labels = np.asarray(labels)
        # gather in the label map's memory order: an image with the same layout is then read
        # through a view (nibabel arrays are Fortran-ordered; a C-order ravel would copy each)
        self.order = "F" if labels.flags.f_contiguous and not labels.flags.c_contiguous else "C"
        self.shape = labels.shape
        self.n_labels = n_labels
        from weeke_pipeline.imaging.metrics_kernels import count_labels

        lab = labels.ravel(order=self.order)
        flat = np.flatnonzero((lab > 0) & (lab <= n_labels))
        # 8-bit labels where they fit: the per-voxel passes read an eighth of the bytes
        labs = lab[flat].astype(np.uint8 if n_labels < 256 else np.intp)
        #: voxels per label whether inside ``mask`` or not (region volumes)
        self.volume_counts = count_labels(labs, n_labels + 1)
        if mask is not None:
            m = self._flat(mask, "mask")
            inside = m[flat] if m.dtype == bool else m[flat] != 0
            flat, labs = flat[inside], labs[inside]
            self.counts = count_labels(labs, n_labels + 1)
        else:
            self.counts = self.volume_counts
        self.flat, self.lab = flat, labs

    def _flat(self, values: np.ndarray, what: str = "image") -> np.ndarray:
        if np.shape(values) != self.shape:
            raise ValueError(f"{what} grid {np.shape(values)} differs from the label map"
                             f" {self.shape}")
        return np.asarray(values).ravel(order=self.order)

    def stats(self, values: np.ndarray, *, percentiles: Sequence[float] = (),
              thresholds: Sequence[float] = (), mean: bool = False,
              pooled: Sequence[int] = (), bins: int = DEFAULT_BINS) -> dict[str, Any]:
        """:func:`label_stats` of one image on these voxels, plus ``pooled_median`` (the median
        over the voxels of the labels in ``pooled`` taken together, e.g. the reference tissue);
        all from one (label, value-bin) histogram (:func:`histogram_statistics`)."""
        from weeke_pipeline.imaging import metrics_kernels as mk

        img = self._flat(values)
        # values in the image's floating type, integer images as float64 (converted as read)
        v = np.empty(self.flat.size, dtype=img.dtype if img.dtype.kind == "f" else np.float64)
        vmin, vmax, _ = mk.gather_range(img, self.flat, v)
        out = histogram_statistics(self.lab, v, self.n_labels + 1, bins=bins,
                                   percentiles=percentiles, thresholds=thresholds,
                                   pooled=pooled, sums=mean, value_range=(vmin, vmax))
        if mean:
            with np.errstate(invalid="ignore", divide="ignore"):
                out["mean"] = out["sum"] / out["count"]
        return out


def label_stats(labels: np.ndarray | LabelIndex, values: np.ndarray, n_labels: int, *,
                percentiles: Sequence[float] = (), thresholds: Sequence[float] = ()
                ) -> dict[str, np.ndarray]:
    """Per-label statistics of ``values`` for labels 1..n_labels, all at once.

    Returns arrays indexed by label (index 0 = background, ignored): ``count`` (voxels with a
    finite value), ``mean``, ``p<q>`` for each percentile q, ``below_<t>`` (fraction < t).
    Labels outside 1..n_labels are ignored. NaN where a label has no finite voxel.
    """
    index = labels if isinstance(labels, LabelIndex) else LabelIndex(labels, n_labels)
    return index.stats(values, percentiles=percentiles, thresholds=thresholds, mean=True)


def grouped_percentiles(lk: np.ndarray, v: np.ndarray, k: int, percentiles: Sequence[float],
                        *, bins: int = DEFAULT_BINS) -> dict[str, np.ndarray]:
    """Exact per-label percentiles (linear interpolation as ``np.percentile``) of values ``v``
    with labels ``lk`` in 0..k-1 (see :func:`histogram_statistics`)."""
    st = histogram_statistics(np.asarray(lk), np.asarray(v), k, bins=bins,
                              percentiles=percentiles)
    return {f"p{q:g}": st[f"p{q:g}"] for q in percentiles}


def histogram_statistics(lab: np.ndarray, v: np.ndarray, k: int, *, bins: int,
                         percentiles: Sequence[float] = (), thresholds: Sequence[float] = (),
                         pooled: Sequence[int] = (), sums: bool = True,
                         value_range: tuple[float, float] | None = None) -> dict[str, Any]:
    """Exact per-label order statistics without sorting the voxels or looping over labels.

    ``lab`` = label (0..k-1) of each voxel, ``v`` its value (non-finite values are left out);
    ``value_range`` = (min, max) of the finite values when already known. One histogram of the
    key label * bins + bin(x), bin(x) = floor((x - min) * scale), scale = (bins - 0.5) /
    (max - min) in double precision (monotone in x, so it preserves ranks), gives each label's
    histogram and cumulative counts; they tell which bin holds any rank of any label. Only the
    voxels of those bins are then sorted (a few per label). The per-voxel passes are compiled
    (:mod:`weeke_pipeline.imaging.metrics_kernels`).

    - ``count``: voxels per label (index 0..k-1); ``sum``: their sum (float64; NaN unless
      ``sums``);
    - ``p<q>``: percentile q as ``np.percentile`` (linear): x_lo + (x_hi - x_lo) (pos - lo),
      pos = q/100 (n-1), lo = floor(pos), hi = min(lo+1, n-1), x_i the sorted values;
    - ``below_<t>``: #{x < t} / n (t in the values' precision, as numpy compares) = (count in
      the bins below bin(t)) + (count of bin(t)'s values < t), divided by n;
    - ``pooled_median``: ``np.median`` of the voxels of the labels in ``pooled`` together.
    NaN where a label has no voxel.
    """
    from weeke_pipeline.imaging import metrics_kernels as mk

    lab = np.ascontiguousarray(lab)
    if lab.dtype not in (np.uint8, np.intp):  # the two label types the kernels are built for
        lab = lab.astype(np.intp)
    v = np.ascontiguousarray(v)
    if v.dtype.kind != "f":
        v = v.astype(np.float64)
    nq = len(percentiles)
    out: dict[str, Any] = {"count": np.zeros(k), "sum": np.zeros(k)}
    nan = np.full(k, np.nan)
    out.update({f"p{q:g}": nan.copy() for q in percentiles})
    out.update({f"below_{t:g}": nan.copy() for t in thresholds})
    if len(pooled):
        out["pooled_median"] = np.nan
    if value_range is None:
        finite = v[np.isfinite(v)]
        value_range = (float(finite.min()), float(finite.max())) if finite.size else (
            np.inf, -np.inf)
    vmin, vmax = float(value_range[0]), float(value_range[1])
    if not vmin <= vmax:  # no finite value
        return out
    span = vmax - vmin
    # the largest value maps below ``bins`` (to bins - 0.5 up to rounding): no clipping
    scale = (bins - 0.5) / span if span > 0 else 0.0
    if bins >= 2**16:
        raise ValueError(f"bins must be below 65536 (got {bins})")
    flat_hist = np.zeros(k * bins, dtype=np.int64)
    total = np.zeros(k)
    vbin = np.empty(v.size, dtype=np.uint16)  # each voxel's bin (bins = not finite)
    mk.histogram(v, lab, vmin, scale, bins, flat_hist, total, sums, vbin)
    hist = flat_hist.reshape(k, bins)
    cum = np.cumsum(hist, axis=1)
    cnt = cum[:, -1]
    labs = np.flatnonzero(cnt > 0)
    n = cnt[labs]
    out["count"], out["sum"] = cnt.astype(np.float64), (total if sums else nan.copy())
    table = np.zeros(k * bins, dtype=np.bool_)      # (label, bin) pairs whose voxels we sort

    # percentiles: the bin of every needed rank, all labels at once (searchsorted in the
    # concatenated cumulative counts, each row offset by row * total)
    pos = np.array([(q / 100.0) * (n - 1) for q in percentiles]).reshape(nq, len(labs))
    lo = np.floor(pos).astype(np.intp)
    ranks = np.concatenate([lo, np.minimum(lo + 1, n - 1)])           # (2Q, L)
    big = int(cnt.sum()) + 1
    off = np.arange(k, dtype=np.int64)[:, None] * big
    b = np.searchsorted((cum + off).ravel(), ranks + off[labs, 0], side="right") - labs * bins
    within = ranks - (cum[labs, b] - hist[labs, b])
    tkey = labs * bins + b
    table[tkey.ravel()] = True

    # thresholds: bin(t) by the same double-precision arithmetic as the voxels' bins
    tvals = [v.dtype.type(t) for t in thresholds]
    tbins = []
    for t in tvals:
        tb = int((float(t) - vmin) * scale) if vmin <= t <= vmax else -1
        tbins.append(tb)
        if tb >= 0:
            table[labs * bins + tb] = True

    # pooled median: the pooled labels' histogram is the sum of their rows
    pool = np.zeros(k, dtype=bool)
    pn = 0
    if len(pooled):
        pool[np.asarray(pooled, dtype=np.intp)] = True
        phist = hist[pool].sum(axis=0)
        pcum = np.cumsum(phist)
        pn = int(pcum[-1])
        if pn:
            pranks = np.array([(pn - 1) // 2, pn // 2])
            pb = np.searchsorted(pcum, pranks, side="right")
            pwithin = pranks - (pcum[pb] - phist[pb])
            for bb in np.unique(pb):
                table[np.flatnonzero(pool) * bins + bb] = True

    size = int(flat_hist[table].sum())
    ck, cv = np.empty(size, dtype=np.int64), np.empty(size, dtype=v.dtype)
    mk.candidates(v, lab, vbin, bins, table, ck, cv)
    o = np.lexsort((cv, ck))
    ck, cv = ck[o], cv[o]                            # candidates by (label, bin), then value
    if nq:
        vals = cv[np.searchsorted(ck, tkey) + within].astype(np.float64)
        vlo, vhi = vals[:nq], vals[nq:]
        frac = pos - lo
        for i, q in enumerate(percentiles):
            out[f"p{q:g}"][labs] = vlo[i] + (vhi[i] - vlo[i]) * frac[i]
    with np.errstate(invalid="ignore", divide="ignore"):
        for t, tv, tb in zip(thresholds, tvals, tbins, strict=True):
            if tb < 0:
                below = cnt if tv > vmax else np.zeros(k, dtype=np.int64)
            else:
                below = cum[:, tb] - hist[:, tb]
                sel = (ck % bins == tb) & (cv < tv)
                below = below + np.bincount(ck[sel] // bins, minlength=k)
            out[f"below_{t:g}"] = np.where(cnt > 0, below / cnt, np.nan)
    if pn:
        sel = pool[ck // bins]
        pk, pv = ck[sel] % bins, cv[sel]             # still sorted by (bin, value) per label;
        o = np.lexsort((pv, pk))                     # re-sort across the pooled labels
        pk, pv = pk[o], pv[o]
        x = pv[np.searchsorted(pk, pb) + pwithin]
        # as np.median: the middle value, or the mean of the two middle values (in the
        # image's precision, as np.median)
        out["pooled_median"] = float(x[0]) if pn % 2 else float((x[0] + x[1]) / 2)
    return out


def asymmetry_index(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """AI = 2 (L - R) / (L + R); NaN where L + R == 0 or a side is NaN."""
    left, right = np.asarray(left, float), np.asarray(right, float)
    s = left + right
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s != 0, 2.0 * (left - right) / s, np.nan)


# --------------------------------------------------------------------------- subject table
def _reference_labels(reference: str | Sequence[int]) -> list[int]:
    if isinstance(reference, str):
        if reference == "cerebellum":
            return indices_for(tissue="cerebellum")
        if reference == "brain":
            return [r.index for r in REGIONS if r.tissue != "csf"]
        if reference == "white_matter":
            return indices_for(tissue="wm")
        raise ValueError(f"unknown reference tissue {reference!r}"
                         " (cerebellum, brain, white_matter or a list of label indices)")
    return [int(i) for i in reference]


def _check_shape(name: str, img: np.ndarray | None, shape: tuple[int, ...]) -> None:
    if img is not None and np.shape(img) != shape:
        raise ValueError(f"{name} grid {np.shape(img)} differs from the label map {shape};"
                         " resample it into the T2w space first")


def metric_names(adc_thresholds: Sequence[float] = DEFAULT_ADC_THRESHOLDS) -> list[str]:
    """Names of the per-label metrics, in output order."""
    names = ["volume_mm3"]
    for c in CONTRASTS:
        names += [f"{c}_median", f"{c}_norm", f"{c}_p25_norm", f"{c}_p75_norm"]
    names += ["adc_mean", "adc_median", "adc_p10"]
    names += [f"adc_frac_below_{t:g}" for t in adc_thresholds]
    names += [f"{m}_{s}" for m in TENSOR_MAPS for s in TENSOR_STATS]
    return names


def compute_region_metrics(labels: np.ndarray, *, voxel_volume_mm3: float,
                           t1w: np.ndarray | None = None, t2w: np.ndarray | None = None,
                           adc: np.ndarray | None = None,
                           adc_thresholds: Sequence[float] = DEFAULT_ADC_THRESHOLDS,
                           reference: str | Sequence[int] = "cerebellum",
                           brain_mask: np.ndarray | None = None,
                           tensor: Mapping[str, np.ndarray] | None = None,
                           threads: int | None = None) -> dict[str, np.ndarray]:
    """All per-label metrics as arrays indexed by label (0..max regions.py index).

    Images must be on the label map's grid (T2w space). ``brain_mask`` (optional) restricts
    intensity/ADC statistics to the brain (volumes always count every labelled voxel).
    ``tensor`` maps ``fa``/``md``/``ad``/``rd`` to tensor maps (mean, median, 10th percentile).
    ``<c>_p25_norm``/``<c>_p75_norm``: the region's 25th/75th intensity percentile over the
    reference tissue's median (sensitive to a partly abnormal region).
    The images are processed by ``threads`` threads (default: up to 2 on the usable CPUs;
    numpy releases the GIL in the heavy steps); results do not depend on it.
    """
    lab = np.asarray(labels)
    if lab.ndim != 3:
        raise ValueError(f"label map must be 3D (got shape {lab.shape})")
    if not np.issubdtype(lab.dtype, np.integer) and not np.array_equal(lab, np.rint(lab)):
        raise ValueError("label map holds non-integer values; resample labels with"
                         " nearest-neighbour/genericLabel interpolation")
    if not np.issubdtype(lab.dtype, np.integer):
        lab = np.rint(lab).astype(np.int32)
    n = max(BY_INDEX)
    tensor = {k.lower(): v for k, v in (tensor or {}).items()}
    unknown = sorted(set(tensor) - set(TENSOR_MAPS))
    if unknown:
        raise ValueError(f"unknown tensor map(s) {unknown}; expected {TENSOR_MAPS}")
    for name, img in (("T1w", t1w), ("T2w", t2w), ("ADC", adc), ("brain mask", brain_mask),
                      *((k.upper(), v) for k, v in tensor.items())):
        _check_shape(name, img, lab.shape)
    index = LabelIndex(lab, n, mask=brain_mask)
    out: dict[str, np.ndarray] = {"volume_mm3": index.volume_counts * float(voxel_volume_mm3)}
    nan = np.full(n + 1, np.nan)
    ref_labels = [i for i in _reference_labels(reference) if 0 < i <= n]
    jobs: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
    for c, img in (("t1w", t1w), ("t2w", t2w)):
        if img is not None:
            jobs[c] = (img, {"percentiles": (25, 50, 75), "pooled": ref_labels})
    if adc is not None:
        jobs["adc"] = (adc, {"percentiles": (50, 10), "thresholds": adc_thresholds,
                             "mean": True})
    for m in TENSOR_MAPS:
        if m in tensor:
            jobs[m] = (tensor[m], {"percentiles": (50, 10), "mean": True})
    stats = _stats_of_images(index, jobs, threads)
    for c in ("t1w", "t2w"):
        if c not in stats:
            for m in ("median", "norm", "p25_norm", "p75_norm"):
                out[f"{c}_{m}"] = nan.copy()
            continue
        st = stats[c]
        out[f"{c}_median"] = st["p50"]
        ref = st.get("pooled_median", np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            for q, m in ((50, "norm"), (25, "p25_norm"), (75, "p75_norm")):
                out[f"{c}_{m}"] = st[f"p{q}"] / ref if ref else nan.copy()
    if "adc" not in stats:
        for m in ("adc_mean", "adc_median", "adc_p10"):
            out[m] = nan.copy()
        for t in adc_thresholds:
            out[f"adc_frac_below_{t:g}"] = nan.copy()
    else:
        st = stats["adc"]
        out["adc_mean"], out["adc_median"], out["adc_p10"] = st["mean"], st["p50"], st["p10"]
        for t in adc_thresholds:
            out[f"adc_frac_below_{t:g}"] = st[f"below_{t:g}"]
    for m in TENSOR_MAPS:
        if m not in stats:
            for stat in TENSOR_STATS:
                out[f"{m}_{stat}"] = nan.copy()
            continue
        st = stats[m]
        out[f"{m}_mean"], out[f"{m}_median"], out[f"{m}_p10"] = st["mean"], st["p50"], st["p10"]
    return out


def _stats_of_images(index: LabelIndex, jobs: Mapping[str, tuple[np.ndarray, dict[str, Any]]],
                     threads: int | None) -> dict[str, dict[str, Any]]:
    """``index.stats`` of every image of ``jobs`` (name -> (image, keyword arguments))."""
    from weeke_pipeline.imaging import metrics_kernels as mk
    from weeke_pipeline.workers import usable_cpus

    if threads is None:
        threads = min(2, usable_cpus())

    mk.warm_up()  # compiled (or loaded from numba's cache) once, before any thread
    if threads <= 1 or len(jobs) <= 1:
        return {name: index.stats(img, **kw) for name, (img, kw) in jobs.items()}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = {name: pool.submit(index.stats, img, **kw) for name, (img, kw) in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


def metrics_table(subject: str, per_label: Mapping[str, np.ndarray],
                  adc_thresholds: Sequence[float] = DEFAULT_ADC_THRESHOLDS) -> pd.DataFrame:
    """Long (tidy) table: one row per (region, hemisphere, metric) plus asymmetry rows.

    Asymmetry rows have ``hemisphere = "left_right"``, ``label = n/a`` and metric ``ai_<m>``.
    """
    names = metric_names(adc_thresholds)
    idx = np.array([r.index for r in REGIONS])
    vals = np.stack([per_label[m][idx] for m in names], axis=1)  # (regions, metrics)
    base = pd.DataFrame({
        "subject": subject,
        "region": np.repeat([r.region for r in REGIONS], len(names)),
        "hemisphere": np.repeat([r.hemisphere for r in REGIONS], len(names)),
        "label": np.repeat(idx, len(names)).astype(object),
        "metric": np.tile(names, len(REGIONS)),
        "value": vals.ravel(),
    })
    pairs = [(r.region, r.index, next(q.index for q in REGIONS
                                      if q.region == r.region and q.hemisphere == "right"))
             for r in REGIONS if r.hemisphere == "left"]
    li = np.array([p[1] for p in pairs])
    ri = np.array([p[2] for p in pairs])
    ai = np.stack([asymmetry_index(per_label[m][li], per_label[m][ri]) for m in names], axis=1)
    asym = pd.DataFrame({
        "subject": subject,
        "region": np.repeat([p[0] for p in pairs], len(names)),
        "hemisphere": "left_right",
        "label": "n/a",
        "metric": np.tile([f"ai_{m}" for m in names], len(pairs)),
        "value": ai.ravel(),
    })
    return pd.concat([base, asym], ignore_index=True)[list(COLUMNS)]


def region_metrics(subject: str, labels: Any, *, t1w: Any | None = None, t2w: Any | None = None,
                   adc: Any | None = None, brain_mask: Any | None = None,
                   adc_thresholds: Sequence[float] = DEFAULT_ADC_THRESHOLDS,
                   reference: str | Sequence[int] = "cerebellum",
                   tensor: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Long metrics table of one subject from NIfTI paths (or nibabel images) in T2w space."""
    import nibabel as nib

    def load(x: Any, what: str) -> tuple[np.ndarray, Any] | tuple[None, None]:
        if x is None:
            return None, None
        try:
            img = x if hasattr(x, "dataobj") else nib.load(os.fspath(x))
            return np.asanyarray(img.dataobj), img
        except (OSError, ValueError) as exc:
            raise ValueError(f"{x}: cannot read {what}: {exc}") from None

    lab, lab_img = load(labels, "label map")
    if lab is None:
        raise ValueError("a label map is required")
    grid = lab_img.affine
    arrays = {}
    tensor_in = {k.lower(): v for k, v in (tensor or {}).items() if v is not None}
    for name, x in (("T1w", t1w), ("T2w", t2w), ("ADC", adc), ("brain mask", brain_mask),
                    *((k.upper(), v) for k, v in tensor_in.items())):
        arr, img = load(x, name)
        if img is not None:
            if arr.ndim == 4 and arr.shape[3] == 1:
                arr = arr[..., 0]
            if arr.shape != lab.shape or not np.allclose(img.affine, grid, atol=1e-3):
                raise ValueError(f"{x}: {name} is not on the label map's grid"
                                 f" ({arr.shape} vs {lab.shape}); resample into T2w space")
        arrays[name] = arr
    vox = float(abs(np.linalg.det(grid[:3, :3])))
    per_label = compute_region_metrics(
        lab, voxel_volume_mm3=vox, t1w=arrays["T1w"], t2w=arrays["T2w"], adc=arrays["ADC"],
        brain_mask=arrays["brain mask"], adc_thresholds=adc_thresholds, reference=reference,
        tensor={k: arrays[k.upper()] for k in tensor_in})
    return metrics_table(subject, per_label, adc_thresholds)


# --------------------------------------------------------------------------- data dictionary
def _metric_dictionary(adc_thresholds: Sequence[float], reference: str | Sequence[int]
                       ) -> dict[str, dict[str, str]]:
    ref = reference if isinstance(reference, str) else f"labels {list(reference)}"
    d: dict[str, dict[str, str]] = {
        "volume_mm3": {"LongName": "Region volume", "Units": "mm^3",
                       "Description": "Number of voxels with this label times the voxel volume."},
    }
    for c, cname in (("t1w", "T1-weighted"), ("t2w", "T2-weighted")):
        d[f"{c}_median"] = {"LongName": f"{cname} median intensity", "Units": "arbitrary",
                            "Description": f"Median {cname} signal of the region's voxels"
                                           " (within the brain mask when given)."}
        d[f"{c}_norm"] = {"LongName": f"Normalised {cname} intensity", "Units": "ratio",
                          "Description": f"{c}_median divided by the median {cname} signal of"
                                         f" the reference tissue ({ref})."}
        for q in (25, 75):
            d[f"{c}_p{q}_norm"] = {
                "LongName": f"Normalised {cname} {q}th percentile", "Units": "ratio",
                "Description": f"{q}th percentile of the region's {cname} signal divided by"
                               f" the reference tissue's median ({ref}); picks up an abnormal"
                               " part of a region."}
    d["adc_mean"] = {"LongName": "ADC mean", "Units": "10^-6 mm^2/s",
                     "Description": "Mean apparent diffusion coefficient of the region."}
    d["adc_median"] = {"LongName": "ADC median", "Units": "10^-6 mm^2/s",
                       "Description": "Median apparent diffusion coefficient of the region."}
    d["adc_p10"] = {"LongName": "ADC 10th percentile", "Units": "10^-6 mm^2/s",
                    "Description": "10th percentile (linear interpolation) of the region's ADC;"
                                   " sensitive to a restricted-diffusion sub-volume."}
    for t in adc_thresholds:
        d[f"adc_frac_below_{t:g}"] = {
            "LongName": f"Fraction of ADC below {t:g}", "Units": "fraction",
            "Description": f"Fraction of the region's voxels with ADC < {t:g} x 10^-6 mm^2/s."}
    for m, long, units in (("fa", "fractional anisotropy", "dimensionless"),
                           ("md", "mean diffusivity", "10^-6 mm^2/s"),
                           ("ad", "axial diffusivity", "10^-6 mm^2/s"),
                           ("rd", "radial diffusivity", "10^-6 mm^2/s")):
        for stat, what in (("mean", "Mean"), ("median", "Median"),
                           ("p10", "10th percentile of")):
            d[f"{m}_{stat}"] = {
                "LongName": f"{long} {stat}", "Units": units,
                "Description": f"{what} the region's {long} from the diffusion tensor fit"
                               " (dipy, on the T2w grid); n/a without a DWI of 6+ directions."
                               + (" Lower FA at 1 month marks injured white matter."
                                  if m == "fa" else "")}
    for m in list(d):
        d[f"ai_{m}"] = {"LongName": f"Asymmetry index of {m}", "Units": "dimensionless",
                        "Description": f"2 (L - R) / (L + R) of {m} between the left and right"
                                       " region; positive = left larger."}
    return d


def data_dictionary(adc_thresholds: Sequence[float] = DEFAULT_ADC_THRESHOLDS,
                    reference: str | Sequence[int] = "cerebellum",
                    extra_metrics: Mapping[str, dict[str, str]] | None = None
                    ) -> dict[str, Any]:
    """BIDS-style sidecar for the metrics TSV: one entry per column, ``Levels`` for metrics
    (``extra_metrics``: entries of metrics added by other steps, e.g. multi-atlas agreement)."""
    metric_levels = {**_metric_dictionary(adc_thresholds, reference), **(extra_metrics or {})}
    return {
        "subject": {"LongName": "Subject pseudonym", "Description": "Study pseudonym (no"
                    " identifying information)."},
        "region": {"LongName": "Region", "Description": "Region name from the shared vocabulary"
                   " (weeke_pipeline.atlas.regions)."},
        "hemisphere": {"LongName": "Hemisphere", "Description": "Side of the region.",
                       "Levels": {"left": "left hemisphere", "right": "right hemisphere",
                                  "midline": "midline structure",
                                  "left_right": "asymmetry between left and right"}},
        "label": {"LongName": "Label index", "Description": "Index in the atlas label table"
                  " (n/a for asymmetry rows)."},
        "metric": {"LongName": "Metric", "Description": "Metric name; see Levels for each"
                   " metric's definition and units.",
                   "Levels": {k: f"{v['LongName']} [{v['Units']}]: {v['Description']}"
                              for k, v in metric_levels.items()}},
        "value": {"LongName": "Metric value", "Description": "Value of the metric, in the units"
                  " of the metric (see metric); n/a when the image is missing or the region"
                  " is empty."},
        "Metrics": metric_levels,
        "ReferenceTissue": reference if isinstance(reference, str) else list(reference),
        "ADCThresholds": {"Values": list(adc_thresholds), "Units": "10^-6 mm^2/s"},
    }


def write_metrics(table: pd.DataFrame, tsv: str | os.PathLike[str], *,
                  adc_thresholds: Sequence[float] = DEFAULT_ADC_THRESHOLDS,
                  reference: str | Sequence[int] = "cerebellum",
                  extra_metrics: Mapping[str, dict[str, str]] | None = None
                  ) -> tuple[Path, Path]:
    """Write the long table as TSV (``n/a`` for missing) and its JSON data dictionary."""
    tsv = Path(tsv)
    tsv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(tsv, sep="\t", index=False, na_rep="n/a", float_format="%.6g")
    sidecar = tsv.with_suffix(".json")
    sidecar.write_text(json.dumps(data_dictionary(adc_thresholds, reference, extra_metrics),
                                  indent=2) + "\n", encoding="utf-8")
    return tsv, sidecar


def read_metrics(tsv: str | os.PathLike[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(tsv, sep="\t", na_values=["n/a"], keep_default_na=False,
                         dtype={"subject": str, "label": str})
    except (OSError, pd.errors.ParserError) as exc:
        raise ValueError(f"{tsv}: cannot read metrics table: {exc}") from None
    missing = set(COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{tsv}: metrics table lacks columns {sorted(missing)}")
    return df
