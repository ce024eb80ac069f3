"""Region metrics: every label of a subject in one vectorised pass (pure numpy; pandas only to
shape the output tables).

All statistics are computed for all labels at once from
- ``np.bincount`` over the label of each in-brain voxel (counts, sums, counts below thresholds);
- one ``np.argsort`` per image of a composite key ``label + scaled value`` that orders the voxels
  by label, then by value. Group boundaries come from the cumulative counts, so any percentile of
  every label is read off with fancy indexing (no Python loop over labels).

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
from collections.abc import Iterable, Mapping, Sequence
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
class LabelIndex:
    """The labelled voxels of a label map, gathered once and shared by every image.

    ``flat`` = flat indices of voxels with label in 1..n_labels (restricted to the bounding box
    is unnecessary: one ``flatnonzero`` pass), ``lab`` = their labels.
    """

    def __init__(self, labels: np.ndarray, n_labels: int, mask: np.ndarray | None = None):
        lab = np.asarray(labels).ravel()
        flat = np.flatnonzero(lab)
        lk = lab[flat]
        keep = (lk > 0) & (lk <= n_labels)
        if mask is not None:
            keep &= np.asarray(mask).ravel()[flat] > 0
        self.shape = np.shape(labels)
        self.n_labels = n_labels
        self.flat = flat if keep.all() else flat[keep]
        self.lab = (lk if keep.all() else lk[keep]).astype(np.intp)

    def subset(self, mask: np.ndarray) -> LabelIndex:
        """The labelled voxels inside ``mask`` (same grid)."""
        if np.shape(mask) != self.shape:
            raise ValueError(f"mask grid {np.shape(mask)} differs from the label map {self.shape}")
        keep = np.asarray(mask).ravel()[self.flat] > 0
        out = object.__new__(LabelIndex)
        out.shape, out.n_labels = self.shape, self.n_labels
        out.flat, out.lab = self.flat[keep], self.lab[keep]
        return out

    def gather(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels, values) of the labelled voxels with a finite value."""
        if np.shape(values) != self.shape:
            raise ValueError(f"image grid {np.shape(values)} differs from the label map"
                             f" {self.shape}")
        v = np.asarray(values).ravel()[self.flat]
        ok = np.isfinite(v)
        if ok.all():
            return self.lab, v
        return self.lab[ok], v[ok]


def label_stats(labels: np.ndarray | LabelIndex, values: np.ndarray, n_labels: int, *,
                percentiles: Sequence[float] = (), thresholds: Sequence[float] = ()
                ) -> dict[str, np.ndarray]:
    """Per-label statistics of ``values`` for labels 1..n_labels, all at once.

    Returns arrays indexed by label (index 0 = background, ignored): ``count`` (voxels with a
    finite value), ``mean``, ``p<q>`` for each percentile q, ``below_<t>`` (fraction < t).
    Labels outside 1..n_labels are ignored. NaN where a label has no finite voxel.
    """
    index = labels if isinstance(labels, LabelIndex) else LabelIndex(labels, n_labels)
    lk, v = index.gather(values)
    k = n_labels + 1
    count = np.bincount(lk, minlength=k).astype(np.float64)
    out: dict[str, np.ndarray] = {"count": count}
    with np.errstate(invalid="ignore", divide="ignore"):
        out["mean"] = np.bincount(lk, weights=v, minlength=k) / count
        for t in thresholds:
            out[f"below_{t:g}"] = np.bincount(lk, weights=(v < t), minlength=k) / count
    if percentiles:
        out.update(grouped_percentiles(lk, v, k, percentiles))
    return out


def grouped_percentiles(lk: np.ndarray, v: np.ndarray, k: int, percentiles: Sequence[float],
                        *, bins: int = 4096) -> dict[str, np.ndarray]:
    """Exact per-label percentiles (linear interpolation as ``np.percentile``), no sort of all
    voxels and no loop over labels.

    The percentile q of a group of n sorted values x_0..x_{n-1} is
    x_lo + (x_hi - x_lo) (pos - lo), pos = q/100 (n-1), lo = floor(pos), hi = min(lo+1, n-1).
    The needed order statistics are located with a (label, value-bin) histogram (one
    ``bincount``; the bin is a monotone function of the value, so ranks are preserved), and
    only the voxels of the bins that hold them are sorted.
    """
    res = {f"p{q:g}": np.full(k, np.nan) for q in percentiles}
    if v.size == 0:
        return res
    vmin = float(v.min())
    span = float(v.max()) - vmin
    scale = bins / span if span > 0 else 0.0
    qb = ((v - vmin) * scale).astype(np.intp)
    np.minimum(qb, bins - 1, out=qb)
    key = lk * bins + qb
    hist = np.bincount(key, minlength=k * bins).reshape(k, bins)
    cnt = hist.sum(axis=1)
    cum = np.cumsum(hist, axis=1)
    has = cnt > 0
    labs = np.flatnonzero(has)
    n = cnt[labs]
    pos = np.stack([(q / 100.0) * (n - 1) for q in percentiles])        # (Q, L)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    ranks = np.concatenate([lo, hi])                                    # (2Q, L)
    # bin holding each rank: searchsorted in each label's cumulative counts, done for all
    # labels at once by offsetting every row of ``cum`` by (row * total + row)
    big = int(cnt.sum()) + 1
    off = np.arange(k, dtype=np.int64)[:, None] * big
    flatcum = (cum + off).ravel()
    b = np.searchsorted(flatcum, ranks + off[labs, 0], side="right") - labs * bins
    within = ranks - (cum[labs, b] - hist[labs, b])
    tkey = labs * bins + b
    table = np.zeros(k * bins, dtype=bool)
    table[tkey.ravel()] = True
    cand = np.flatnonzero(table[key])
    ck, cv = key[cand], v[cand]
    o = np.lexsort((cv, ck))
    cks, cvs = ck[o], cv[o]
    vals = cvs[np.searchsorted(cks, tkey) + within]
    nq = len(percentiles)
    vlo, vhi = vals[:nq], vals[nq:]
    frac = pos - lo
    for i, q in enumerate(percentiles):
        r = np.full(k, np.nan)
        r[labs] = vlo[i] + (vhi[i] - vlo[i]) * frac[i]
        res[f"p{q:g}"] = r
    return res


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
                           ) -> dict[str, np.ndarray]:
    """All per-label metrics as arrays indexed by label (0..max regions.py index).

    Images must be on the label map's grid (T2w space). ``brain_mask`` (optional) restricts
    intensity/ADC statistics to the brain (volumes always count every labelled voxel).
    ``tensor`` maps ``fa``/``md``/``ad``/``rd`` to tensor maps (mean, median, 10th percentile).
    ``<c>_p25_norm``/``<c>_p75_norm``: the region's 25th/75th intensity percentile over the
    reference tissue's median (sensitive to a partly abnormal region).
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
    everything = LabelIndex(lab, n)
    counts = np.bincount(everything.lab, minlength=n + 1)
    out: dict[str, np.ndarray] = {"volume_mm3": counts * float(voxel_volume_mm3)}
    index = everything if brain_mask is None else everything.subset(brain_mask)
    nan = np.full(n + 1, np.nan)
    is_ref = np.zeros(n + 1, dtype=bool)
    is_ref[[i for i in _reference_labels(reference) if 0 < i <= n]] = True
    for c, img in (("t1w", t1w), ("t2w", t2w)):
        if img is None:
            for m in ("median", "norm", "p25_norm", "p75_norm"):
                out[f"{c}_{m}"] = nan.copy()
            continue
        lk, v = index.gather(img)
        st = grouped_percentiles(lk, v, n + 1, (25, 50, 75))
        out[f"{c}_median"] = st["p50"]
        ref_vals = v[is_ref[lk]]
        ref = float(np.median(ref_vals)) if ref_vals.size else np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            for q, m in ((50, "norm"), (25, "p25_norm"), (75, "p75_norm")):
                out[f"{c}_{m}"] = st[f"p{q}"] / ref if ref else nan.copy()
    if adc is None:
        for m in ("adc_mean", "adc_median", "adc_p10"):
            out[m] = nan.copy()
        for t in adc_thresholds:
            out[f"adc_frac_below_{t:g}"] = nan.copy()
    else:
        st = label_stats(index, adc, n, percentiles=(50, 10), thresholds=adc_thresholds)
        out["adc_mean"], out["adc_median"], out["adc_p10"] = st["mean"], st["p50"], st["p10"]
        for t in adc_thresholds:
            out[f"adc_frac_below_{t:g}"] = st[f"below_{t:g}"]
    for m in TENSOR_MAPS:
        if m not in tensor:
            for stat in TENSOR_STATS:
                out[f"{m}_{stat}"] = nan.copy()
            continue
        st = label_stats(index, tensor[m], n, percentiles=(50, 10))
        out[f"{m}_mean"], out[f"{m}_median"], out[f"{m}_p10"] = st["mean"], st["p50"], st["p10"]
    return out


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
                    reference: str | Sequence[int] = "cerebellum") -> dict[str, Any]:
    """BIDS-style sidecar for the metrics TSV: one entry per column, ``Levels`` for metrics."""
    metric_levels = _metric_dictionary(adc_thresholds, reference)
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
                  reference: str | Sequence[int] = "cerebellum") -> tuple[Path, Path]:
    """Write the long table as TSV (``n/a`` for missing) and its JSON data dictionary."""
    tsv = Path(tsv)
    tsv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(tsv, sep="\t", index=False, na_rep="n/a", float_format="%.6g")
    sidecar = tsv.with_suffix(".json")
    sidecar.write_text(json.dumps(data_dictionary(adc_thresholds, reference), indent=2) + "\n",
                       encoding="utf-8")
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


def group_table(tables: Iterable[pd.DataFrame | str | os.PathLike[str]], *,
                wide: bool = False) -> pd.DataFrame:
    """Metrics across subjects: the long tables stacked (default) or one row per subject with
    a column ``<region>[_<hemisphere>]__<metric>`` (``wide=True``)."""
    frames = [t if isinstance(t, pd.DataFrame) else read_metrics(t) for t in tables]
    if not frames:
        return pd.DataFrame(columns=list(COLUMNS))
    long = pd.concat(frames, ignore_index=True)[list(COLUMNS)]
    if not wide:
        return long
    hemi = long["hemisphere"].where(long["hemisphere"] != "midline", "")
    col = long["region"] + np.where(hemi != "", "_" + hemi, "") + "__" + long["metric"]
    w = long.assign(column=col).pivot(index="subject", columns="column", values="value")
    return w.reset_index()
