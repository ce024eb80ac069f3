"""Automated quantitative injury index: region metrics -> per region/hemisphere abnormality ->
suggested Weeke items and subscores (issue 6, part 4). ``docs/injury_index.md``.

FOR ANALYSTS AND QC ONLY. The index must never be shown to a reader before their read of the case
is signed: it would unblind or bias them.

Input: the long region-metrics table of the pipeline (``weeke_pipeline.imaging.metrics``; columns
``subject, region, hemisphere, metric, value``; ``label`` and the ``left_right`` asymmetry rows
are ignored). Metrics used when present (:data:`INDEX_METRICS`): ``t2w_norm``, ``t1w_norm``
(region median / cerebellar median), ``adc_median``, ``adc_p10`` (10^-6 mm^2/s), ``fa_mean``.

Per subject, region r, hemisphere h, metric m, with y = ln(value):

- against a normative reference (normal subjects' tables, or the atlas template):
  ``z_ref = (y - mu[r,h,m]) / sd[r,m]``;
- against the contralateral side (lateralised regions):
  ``z_contra = ((y_h - y_other) - mu_asym[r,m]) / sd_asym[r,m]``;
- per metric, the signed deviation ``d = y - mu`` (a log ratio: 0.1 ~ 10% brighter/higher).

A region side is *abnormal* on metric m when |z_ref| >= ``z_threshold`` and |d| >= ``min_effect``
(both conditions: z alone over-calls with a tight reference, effect alone with a noisy one);
a contralateral deviation of the same sign with |z_contra| >= ``z_threshold`` lowers the needed
|z_ref| to ``z_threshold / 2`` (unilateral injuries). ``abnormality`` = max over metrics of
|z_ref| among the abnormal ones (0 when none). Its *extent* is 2 ("extensive") when
|d| >= ``extensive_effect`` on some metric: a region median moves by about the full lesion
contrast only when the lesion covers half of the region or more; otherwise 1 ("focal").

Roll-up to items (region -> item via ``atlas/regions.py``): per item and side, extent = max over
its regions for the deep grey matter/PLIC/brainstem/cerebellum items; for ``wm_white_matter`` and
``wm_cortex`` (lobes) extent = 1 when one lobe is abnormal and 2 when more; laterality = number
of abnormal sides. The score engine then gives item scores, subscores and total.
Items the region metrics cannot see (haemorrhage, PWML, IVH, SDH, CSVT, corpus callosum DR) are
left out (``missing``), so subscores come out flagged incomplete, never silently 0.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from weeke_pipeline.atlas.regions import REGIONS
from weeke_pipeline.constants import DEFAULT_FORM

INDEX_METRICS = ("t2w_norm", "t1w_norm", "adc_median", "adc_p10", "fa_mean",
                 "t1w_p25_norm", "t1w_p75_norm", "t2w_p25_norm", "t2w_p75_norm")
#: metrics whose shift marks an extensive (>= 50%) lesion: region medians and means
EXTENT_METRICS = ("t2w_norm", "t1w_norm", "adc_median", "fa_mean")
LOBE_ITEMS = ("wm_white_matter", "wm_cortex")
#: items the index suggests (the others need lesion-level evidence region medians do not carry)
SUGGESTED_ITEMS = ("gm_thalamus", "gm_basal_ganglia", "gm_plic", "gm_brainstem",
                   "gm_perirolandic", "gm_hippocampus", "wm_cortex", "wm_white_matter",
                   "wm_optic_radiation", "cb_cerebellum")
_ITEM_OF = {r.region: r.weeke_item for r in REGIONS}
MYELINATED_REGIONS = ("plic", "brainstem")


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds (documented in docs/injury_index.md).

    z_threshold: |z| needed against the normative reference (and against the other side);
    min_effect: |ln ratio| a region median must move to count (0.08 ~ 8%);
    extensive_effect: |ln ratio| of a region median that marks an extensive (>= 50%) lesion
    (0.15 ~ 16%); extensive_effect_myelinated: the same for myelinated tracts (PLIC,
    brainstem), where loss of myelination changes T1w/T2w by far more (0.30 ~ 35%), and
    min_effect_myelinated likewise (0.16): thin tracts have noisy percentiles (partial volume);
    sd_floor: smallest SD used (log units), so a handful of normals cannot give a tiny SD.
    """

    z_threshold: float = 3.0
    min_effect: float = 0.08
    extensive_effect: float = 0.15
    extensive_effect_myelinated: float = 0.30
    min_effect_myelinated: float = 0.16
    sd_floor: float = 0.03
    atlas_sd: float = 0.05


# --------------------------------------------------------------------------- reference
def _prepare(metrics: pd.DataFrame) -> pd.DataFrame:
    need = {"subject", "region", "hemisphere", "metric", "value"}
    missing = need - set(metrics.columns)
    if missing:
        raise ValueError(f"region metrics table lacks columns {sorted(missing)} (expected the "
                         "long table of weeke_pipeline.imaging.metrics)")
    df = metrics[metrics["metric"].isin(INDEX_METRICS)
                 & metrics["hemisphere"].isin(["left", "right", "midline"])]
    df = df[["subject", "region", "hemisphere", "metric", "value"]].copy()
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    df = df[np.isfinite(df["value"]) & (df["value"] > 0)]
    df["y"] = np.log(df["value"].to_numpy(dtype=float))
    return df


INTENSITY_METRICS = ("t2w_norm", "t1w_norm", "t1w_p25_norm", "t1w_p75_norm", "t2w_p25_norm",
                     "t2w_p75_norm")
_CSF_REGIONS = {r.region for r in REGIONS if r.tissue == "csf"}


def _recentre(df: pd.DataFrame, mu: pd.Series) -> pd.Series:
    """Per subject, metric and side: the median of (y - mu) over the non-CSF regions of that
    side, for T1w/T2w intensities only (ADC is quantitative). Removes a smooth bias field or a
    global gain left after the cerebellar normalisation; injuries touch a minority of regions,
    so the median ignores them. Midline regions take the mean of the two sides.
    """
    dev = df["y"] - mu
    use = df["metric"].isin(INTENSITY_METRICS) & ~df["region"].isin(_CSF_REGIONS) & \
        (df["hemisphere"] != "midline")
    med = dev[use].groupby([df.loc[use, "subject"], df.loc[use, "metric"],
                            df.loc[use, "hemisphere"]]).median()
    key = pd.MultiIndex.from_arrays([df["subject"], df["metric"], df["hemisphere"]])
    off = pd.Series(med.reindex(key).to_numpy(), index=df.index)
    mid = df["hemisphere"] == "midline"
    if mid.any():
        both = med.groupby(level=[0, 1]).mean()
        k2 = pd.MultiIndex.from_arrays([df.loc[mid, "subject"], df.loc[mid, "metric"]])
        off[mid] = both.reindex(k2).to_numpy()
    return off.where(df["metric"].isin(INTENSITY_METRICS), 0.0).fillna(0.0)


def _asym(df: pd.DataFrame) -> pd.DataFrame:
    """ln(left) - ln(right) per subject, region, metric."""
    lat = df[df["hemisphere"] != "midline"]
    p = lat.pivot_table(index=["subject", "region", "metric"], columns="hemisphere",
                        values="y", aggfunc="first")
    if not {"left", "right"} <= set(p.columns):
        return pd.DataFrame(columns=["subject", "region", "metric", "asym"])
    return (p["left"] - p["right"]).rename("asym").dropna().reset_index()


def build_reference(normals: pd.DataFrame, thresholds: Thresholds = Thresholds()
                    ) -> pd.DataFrame:
    """Normative reference from normal subjects' long metric tables.

    Returns one row per (region, hemisphere, metric): ``mu`` (mean ln value), ``sd`` (SD of ln
    value pooled over both sides of the region, floored at ``sd_floor``), ``mu_asym``,
    ``sd_asym`` (of ln L - ln R, floored), ``n`` (normal subjects).
    """
    df = _prepare(normals)
    if df.empty:
        raise ValueError("the normal subjects' table holds none of the index metrics "
                         f"{INDEX_METRICS}")
    keys = ["region", "hemisphere", "metric"]
    mu0 = df.groupby(keys)["y"].transform("mean")
    df["y"] = df["y"] - _recentre(df, mu0)
    mu = df.groupby(keys)["y"].agg(mu="mean", n="count")
    # pooled SD over sides: deviations from each side's own mean
    dev = df["y"] - df.groupby(["region", "hemisphere", "metric"])["y"].transform("mean")
    sd = dev.groupby([df["region"], df["metric"]]).agg(
        lambda x: float(np.sqrt((x**2).sum() / max(len(x) - 1, 1))))
    sd = sd.rename("sd").reset_index()
    ref = mu.reset_index().merge(sd, on=["region", "metric"], how="left")
    a = _asym(df)
    asym = a.groupby(["region", "metric"])["asym"].agg(
        mu_asym="mean", sd_asym=lambda x: float(x.std(ddof=1)) if len(x) > 1 else math.nan)
    ref = ref.merge(asym.reset_index(), on=["region", "metric"], how="left")
    ref["sd"] = ref["sd"].fillna(thresholds.atlas_sd).clip(lower=thresholds.sd_floor)
    ref["sd_asym"] = ref["sd_asym"].fillna(thresholds.atlas_sd * math.sqrt(2)).clip(
        lower=thresholds.sd_floor)
    ref["mu_asym"] = ref["mu_asym"].fillna(0.0)
    ref["source"] = "normals"
    return ref


def reference_from_atlas(atlas_metrics: pd.DataFrame, thresholds: Thresholds = Thresholds()
                         ) -> pd.DataFrame:
    """Normative reference from the atlas template's own region metrics (one 'subject').

    The template gives the expected value (``mu``); its spread is unknown, so ``sd`` is the
    documented default ``atlas_sd`` (ln units, ~5%) and the asymmetry SD ``atlas_sd * sqrt(2)``.
    Prefer :func:`build_reference` with normal subjects scanned on the study's scanners.
    """
    df = _prepare(atlas_metrics)
    ref = df.groupby(["region", "hemisphere", "metric"])["y"].agg(mu="mean", n="count")
    ref = ref.reset_index()
    ref["sd"] = thresholds.atlas_sd
    a = _asym(df).groupby(["region", "metric"])["asym"].mean().rename("mu_asym")
    ref = ref.merge(a.reset_index(), on=["region", "metric"], how="left")
    ref["mu_asym"] = ref["mu_asym"].fillna(0.0)
    ref["sd_asym"] = thresholds.atlas_sd * math.sqrt(2)
    ref["source"] = "atlas"
    return ref


# --------------------------------------------------------------------------- z-scores
def region_zscores(metrics: pd.DataFrame, reference: pd.DataFrame,
                   thresholds: Thresholds = Thresholds()) -> pd.DataFrame:
    """Per subject, region, hemisphere, metric: d, z_ref, z_contra and the abnormal flag.

    Vectorised: one merge with the reference and one with the contralateral rows.
    """
    df = _prepare(metrics)
    ref = reference[["region", "hemisphere", "metric", "mu", "sd", "mu_asym", "sd_asym"]]
    z = df.merge(ref, on=["region", "hemisphere", "metric"], how="inner")
    z["offset"] = _recentre(z, z["mu"])
    z["y"] = z["y"] - z["offset"]
    z["d"] = z["y"] - z["mu"]
    z["z_ref"] = z["d"] / z["sd"]
    other = z.loc[z["hemisphere"] != "midline", ["subject", "region", "hemisphere", "metric",
                                                  "y"]].copy()
    other["hemisphere"] = other["hemisphere"].map({"left": "right", "right": "left"})
    z = z.merge(other.rename(columns={"y": "y_other"}), how="left",
                on=["subject", "region", "hemisphere", "metric"])
    sign = np.where(z["hemisphere"] == "left", 1.0, -1.0)
    # (y_h - y_other) - expected (h - other) asymmetry; mu_asym is left - right
    z["z_contra"] = ((z["y"] - z["y_other"]) - sign * z["mu_asym"]) / z["sd_asym"]
    t = thresholds
    same_sign = np.sign(z["z_contra"].fillna(0)) == np.sign(z["z_ref"])
    contra = same_sign & (z["z_contra"].abs() >= t.z_threshold)
    need = np.where(contra, t.z_threshold / 2, t.z_threshold)
    myel = z["region"].isin(MYELINATED_REGIONS)
    min_eff = np.where(myel, t.min_effect_myelinated, t.min_effect)
    z["abnormal"] = (z["z_ref"].abs() >= need) & (z["d"].abs() >= min_eff)
    ext_thr = np.where(myel, t.extensive_effect_myelinated,
                       t.extensive_effect)
    z["extensive"] = z["abnormal"] & z["metric"].isin(EXTENT_METRICS) & \
        (z["d"].abs() >= ext_thr)
    return z.drop(columns=["y", "y_other", "mu", "sd", "mu_asym", "sd_asym", "offset"])


def region_index(z: pd.DataFrame) -> pd.DataFrame:
    """Roll metrics up to one row per subject, region, hemisphere: abnormality, extent (0-2),
    the metric that drives it, and its z-scores."""
    z = z.copy()
    z["score"] = np.where(z["abnormal"], z["z_ref"].abs(), 0.0)
    z["ext"] = np.where(z["extensive"], 2, np.where(z["abnormal"], 1, 0))
    keys = ["subject", "region", "hemisphere"]
    best = z.sort_values("score", ascending=False, kind="stable").drop_duplicates(keys)
    ext = z.groupby(keys)["ext"].max().rename("extent")
    out = best.set_index(keys)[["metric", "score", "z_ref", "z_contra", "d"]].join(ext)
    out = out.rename(columns={"metric": "driving_metric", "score": "abnormality"})
    out.loc[out["abnormality"] == 0, "driving_metric"] = ""
    return out.reset_index()


# --------------------------------------------------------------------------- items
def suggested_items(regions: pd.DataFrame) -> dict[str, dict[str, dict[str, Any]]]:
    """Per subject, the score-engine item payload the index suggests (SUGGESTED_ITEMS only)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for subj, g in regions.groupby("subject", sort=True):
        per: dict[str, dict[str, int]] = {}
        lobes: dict[tuple[str, str], int] = {}
        for r in g.itertuples(index=False):
            item = _ITEM_OF.get(r.region, "")
            if item not in SUGGESTED_ITEMS or r.extent <= 0:
                continue
            side = r.hemisphere
            if item in LOBE_ITEMS:
                lobes[(item, side)] = lobes.get((item, side), 0) + 1
            else:
                cur = per.setdefault(item, {})
                cur[side] = max(cur.get(side, 0), int(r.extent))
        for (item, side), n in lobes.items():
            per.setdefault(item, {})[side] = 2 if n > 1 else 1
        items: dict[str, dict[str, Any]] = {}
        for item in SUGGESTED_ITEMS:
            sides = {s: e for s, e in per.get(item, {}).items() if e > 0}
            if not sides:
                items[item] = {"extent": 0}
            else:
                items[item] = {"extent": max(sides.values()),
                               "laterality": 2 if len(sides) > 1 or "midline" in sides else 1}
        out[str(subj)] = items
    return out


def injury_index(metrics: pd.DataFrame, reference: pd.DataFrame, *,
                 thresholds: Thresholds = Thresholds(), form_id: str = DEFAULT_FORM
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Region table (z-scores, abnormality, extent) and suggested scores per subject.

    The second table has one row per subject: ``subject``, ``<item>_ext``, ``<item>_lat``,
    ``<item>_score`` for the suggested items, subscores (flagged incomplete: the index leaves
    lesion-level items missing), ``total``, and ``thresholds`` (JSON of the values used).
    """
    import json

    from weeke_pipeline.scoring import load_form, score_items

    regions = region_index(region_zscores(metrics, reference, thresholds))
    form = load_form(form_id)
    rows = []
    for subj, items in suggested_items(regions).items():
        res = score_items(form, {"items": items})
        row: dict[str, Any] = {"subject": subj}
        for it in SUGGESTED_ITEMS:
            s = res.items[it]
            row[f"{it}_ext"], row[f"{it}_lat"], row[f"{it}_score"] = s.extent, s.laterality, \
                s.score
        for sub in form.subscores:
            row[sub.id] = res.subscores[sub.id]
            row[f"{sub.id}_complete"] = res.subscores_complete[sub.id]
        row["total"] = res.total
        row["thresholds"] = json.dumps(asdict(thresholds), sort_keys=True)
        rows.append(row)
    return regions, pd.DataFrame(rows)


# --------------------------------------------------------------------------- truth metrics
def _convert(series_dir: Path, work: Path) -> Any:
    import dcm2niix
    import nibabel as nib

    work.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([dcm2niix.bin, "-z", "n", "-b", "n", "-f", "img", "-o", str(work),
                           str(series_dir)], capture_output=True, text=True, check=False)
    found = sorted(work.glob("img*.nii"))
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"{series_dir}: dcm2niix could not convert the series "
                           f"({proc.stdout[-300:]})")
    img = nib.load(found[0])
    return nib.Nifti1Image(np.asanyarray(img.dataobj).astype(np.float32), img.affine)


def _series(dicom_dir: Path, suffix: str) -> Path:
    hits = sorted(p for p in dicom_dir.iterdir() if p.is_dir() and p.name.endswith(suffix))
    if not hits:
        raise FileNotFoundError(f"{dicom_dir}: no series folder ending in {suffix!r}")
    return hits[0]


def label_medians(labels: np.ndarray, values: np.ndarray, percentiles: Iterable[float],
                  n_labels: int) -> dict[float, np.ndarray]:
    """Per-label percentiles (one lexsort; np.percentile's linear interpolation)."""
    lab = labels.ravel()
    val = values.ravel().astype(float)
    sel = (lab > 0) & (lab <= n_labels) & np.isfinite(val)
    lab, val = lab[sel].astype(np.intp), val[sel]
    order = np.lexsort((val, lab))
    lab, val = lab[order], val[order]
    count = np.bincount(lab, minlength=n_labels + 1)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    out = {}
    for q in percentiles:
        pos = q / 100.0 * (count - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
        frac = pos - lo
        with np.errstate(invalid="ignore"):
            a = val[np.clip(start + lo, 0, len(val) - 1)]
            b = val[np.clip(start + hi, 0, len(val) - 1)]
            res = a + (b - a) * frac
        out[q] = np.where(count > 0, res, np.nan)
    return out


def truth_region_metrics(subject_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Region metrics of a synthetic subject from its truth folder (tests and benchmark only).

    T2w and the true label map from ``truth/``; T1w and the scanner ADC converted from the
    subject's DICOM with dcm2niix and resampled (trilinear, nibabel.processing) to the T2w
    grid. Output: the long table layout of ``weeke_pipeline.imaging.metrics`` (subject, region,
    hemisphere, label, metric, value) with t1w_norm, t2w_norm (median / cerebellar median),
    adc_median, adc_p10. The pipeline's own metrics replace this in production.
    """
    import nibabel as nib
    from nibabel.processing import resample_from_to

    sub = Path(subject_dir)
    name = sub.name
    truth = sub / "truth"
    t2_img = nib.load(truth / f"{name}_T2w.nii.gz")
    lab = np.rint(np.asanyarray(nib.load(truth / f"{name}_dseg.nii.gz").dataobj)).astype(int)
    t2 = np.asanyarray(t2_img.dataobj).astype(float)
    with tempfile.TemporaryDirectory() as tmp:
        t1_img = _convert(_series(sub / "dicom", "T1_IR_GRE_AX"), Path(tmp) / "t1")
        adc_img = _convert(_series(sub / "dicom", "_ADC"), Path(tmp) / "adc")
    t1 = np.asanyarray(resample_from_to(t1_img, t2_img, order=1).dataobj).astype(float)
    adc = np.asanyarray(resample_from_to(adc_img, t2_img, order=1).dataobj).astype(float)
    n = max(r.index for r in REGIONS)
    cb = np.isin(lab, [r.index for r in REGIONS if r.tissue == "cerebellum"])
    vals: dict[str, np.ndarray] = {}
    for key, img in (("t1w", t1), ("t2w", t2)):
        pc = label_medians(lab, img, [50, 25, 75], n)
        ref = float(np.median(img[cb]))
        vals[f"{key}_norm"] = pc[50] / ref
        vals[f"{key}_p25_norm"], vals[f"{key}_p75_norm"] = pc[25] / ref, pc[75] / ref
    adc_p = label_medians(lab, np.where(adc > 0, adc, np.nan), [50, 10], n)
    vals["adc_median"], vals["adc_p10"] = adc_p[50], adc_p[10]
    rows = [{"subject": name, "region": r.region, "hemisphere": r.hemisphere, "label": r.index,
             "metric": m, "value": float(v[r.index])} for r in REGIONS for m, v in vals.items()]
    return pd.DataFrame(rows)


def truth_items(subject_dir: str | os.PathLike[str]) -> Mapping[str, Any]:
    """The truth Weeke items of a synthetic subject (``truth/sub-XX_truth.json``)."""
    import json

    sub = Path(subject_dir)
    doc = json.loads((sub / "truth" / f"{sub.name}_truth.json").read_text())
    return doc["weeke"]["items"]


# --------------------------------------------------------------------------- references, I/O
def atlas_reference(atlas_dir: str | os.PathLike[str] | None = None,
                    thresholds: Thresholds = Thresholds()) -> pd.DataFrame:
    """:func:`reference_from_atlas` of an atlas bundle's own templates (default: the shipped
    atlas): region metrics of its T1w/T2w/ADC over its label map (FA left out: the bundle
    stores it scaled)."""
    from weeke_pipeline.atlas.bundle import load_atlas
    from weeke_pipeline.imaging.metrics import region_metrics
    from weeke_pipeline.resources import default_atlas_dir

    atlas = load_atlas(atlas_dir or default_atlas_dir())
    imgs = {k: atlas.image(k) if atlas.has(k) else None for k in ("T1w", "T2w", "ADC")}
    mask = atlas.image("brain_mask") if atlas.has("brain_mask") else None
    table = region_metrics("atlas", atlas.image("dseg"), t1w=imgs["T1w"], t2w=imgs["T2w"],
                           adc=imgs["ADC"], brain_mask=mask)
    return reference_from_atlas(table, thresholds)


def load_reference(spec: str | os.PathLike[str] | None, *, atlas_dir: Any = None,
                   thresholds: Thresholds = Thresholds()) -> pd.DataFrame:
    """The normative reference: ``None``/``"atlas"`` -> :func:`atlas_reference`; a TSV with a
    ``mu`` column -> a saved reference; any other TSV -> normal subjects' long metrics table
    (:func:`build_reference`)."""
    if spec is None or str(spec) == "atlas":
        return atlas_reference(atlas_dir, thresholds)
    p = Path(spec)
    try:
        df = pd.read_csv(p, sep="\t", na_values=["n/a"], keep_default_na=False,
                         dtype={"subject": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{p}: cannot read the injury-index reference: {exc}") from None
    if "mu" in df.columns:
        need = {"region", "hemisphere", "metric", "mu", "sd", "mu_asym", "sd_asym"}
        if need - set(df.columns):
            raise ValueError(f"{p}: reference table lacks columns {sorted(need - set(df.columns))}")
        return df
    try:
        return build_reference(df, thresholds)
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from None


def regions_dictionary() -> dict[str, Any]:
    """Data dictionary (BIDS sidecar style) of the region table of :func:`injury_index`."""
    def col(desc: str, fmt: str) -> dict[str, str]:
        return {"Description": desc, "Format": fmt}

    return {
        "reading_code": col("Case pseudonym (random reading code)", "string"),
        "region": col("Region (weeke_pipeline.atlas.regions)", "string"),
        "hemisphere": col("left, right or midline", "string"),
        "driving_metric": col("Metric with the largest |z_ref| among the abnormal ones "
                              "(empty when none)", "string"),
        "abnormality": col("max |z_ref| over abnormal metrics (0 = normal)", "number"),
        "z_ref": col("z against the normative reference: (ln value - mu) / sd", "number"),
        "z_contra": col("z of the left-right difference against the expected asymmetry",
                        "number"),
        "d": col("ln(value) - mu (log ratio; 0.1 ~ 10% higher)", "number"),
        "extent": col("Suggested extent: 0 normal, 1 focal, 2 extensive", "integer"),
    }


def suggested_dictionary(form: Any) -> dict[str, Any]:
    """Data dictionary of the suggested-scores table of :func:`injury_index`."""
    from weeke_pipeline.analysis.dictionaries import reads_wide_dictionary

    wide = reads_wide_dictionary(form)
    d: dict[str, Any] = {"reading_code": wide["reading_code"]}
    for it in SUGGESTED_ITEMS:
        for suf in ("ext", "lat", "score"):
            d[f"{it}_{suf}"] = dict(wide[f"{it}_{suf}"])
            d[f"{it}_{suf}"]["Description"] = "Suggested by the injury index: " + \
                d[f"{it}_{suf}"]["Description"]
    for sub in form.subscores:
        d[sub.id] = wide[sub.id]
        d[f"{sub.id}_complete"] = {"Description": "False: the index leaves lesion-level items "
                                   "of this subscore missing", "Format": "boolean"}
    d["total"] = {"Description": "Sum of the suggested item scores (incomplete: see the "
                  "subscore flags)", "Format": "integer", "Units": "points"}
    d["thresholds"] = {"Description": "Decision thresholds used (JSON of Thresholds)",
                       "Format": "string"}
    return d
