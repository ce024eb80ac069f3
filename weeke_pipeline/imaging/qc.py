"""Per-subject quality control: numbers, a pass/warn/fail flag with reasons, and
:func:`run_subject_qc`, which adds the figures (:mod:`.qc_figures`) and the HTML report
(:mod:`.qc_report`, written even when the subject failed: it then shows the error).

Numbers (:func:`qc_numbers`):
- ``brain_volume_ml`` = voxels in the brain mask x voxel volume / 1000.
- ``label_coverage`` = fraction of the vocabulary's regions (regions.py) with at least one
  voxel in the subject's label map; ``mask_coverage`` = fraction of brain-mask voxels labelled.
- ``snr_background`` = 0.655 mean(brain) / SD(air) (Kaufman et al. 1989, Rayleigh-corrected
  magnitude noise), air = the eight corner blocks of the field of view (1/8 of each axis);
  NaN when the air is exactly zero (skull-stripped or masked export).
  ``snr_wm`` = mean / SD of the T2w in the white-matter labels (a lower bound: anatomy adds to
  the SD). Flagged only without the real-brain numbers below (older records).
- the checks that tell a good registration from a bad one on real brains
  (:mod:`.qc_anatomy`: T2w order and eta^2 of the tissue labels, laterality, warp Jacobian,
  brain volume for the postmenstrual age, coverage of the atlas's own regions, a field of
  view cut through the brain, noise only from air), calibrated on real neonatal templates.
- registration similarity before/after (from :mod:`weeke_pipeline.imaging.registration`:
  ``nmi``, ``mattes_mi``, ``correlation``), to atlas and per within-subject image.
- ``adc_finite_fraction``: fraction of brain voxels with a finite, positive ADC.

The flag: ``fail`` if any FAIL rule holds, else ``warn`` if any WARN rule holds, else ``pass``
(:data:`THRESHOLDS`, each rule listed in the report with its value).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from weeke_pipeline.atlas.regions import REGIONS, indices_for
from weeke_pipeline.imaging import qc_anatomy as qa
from weeke_pipeline.imaging import qc_figures, qc_report
from weeke_pipeline.nifti import load_canonical as _load

#: documented thresholds of the flag (units in the key names)
THRESHOLDS: dict[str, float] = {
    "brain_volume_ml_warn_low": 250.0,     # term-equivalent neonates: ~350-600 mL
    "brain_volume_ml_warn_high": 800.0,
    "brain_volume_ml_fail_low": 100.0,
    "brain_volume_ml_fail_high": 1500.0,
    "label_coverage_warn": 1.0,            # every region present
    "label_coverage_fail": 0.9,
    "mask_coverage_warn": 0.9,
    "mask_coverage_fail": 0.7,
    "atlas_correlation_warn": 0.6,         # T2w vs atlas T2w within the atlas brain mask
    "atlas_correlation_fail": 0.3,
    "snr_warn": 10.0,
    "snr_fail": 3.0,
    "adc_finite_fraction_warn": 0.95,
    "nmi_drop_warn": 0.01,                 # NMI (1..2) lower after registration by more
    **qa.THRESHOLDS,                       # checks that work on real brains (qc_anatomy)
}

_FIG_DPI = 90


# --------------------------------------------------------------------------- numbers
def snr_background(image: np.ndarray, brain: np.ndarray) -> float:
    """0.655 mean(brain) / SD(air in the 8 corner blocks); NaN when the air is constant."""
    s = [max(1, n // 8) for n in image.shape]
    corners = np.concatenate([
        image[sx, sy, sz].ravel()
        for sx in (slice(0, s[0]), slice(-s[0], None))
        for sy in (slice(0, s[1]), slice(-s[1], None))
        for sz in (slice(0, s[2]), slice(-s[2], None))
    ]).astype(float)
    sd = corners.std()
    if not brain.any() or sd == 0 or not np.isfinite(sd):
        return float("nan")
    return float(0.655 * image[brain].mean() / sd)


def qc_numbers(t2w: Any, labels: Any, brain_mask: Any, *, t1w: Any | None = None,
               adc: Any | None = None, registration: Mapping[str, Any] | None = None,
               atlas_labels: Any | None = None, pma_weeks: float | None = None
               ) -> dict[str, Any]:
    """QC numbers of one subject (images in T2w space). ``registration`` may hold
    ``to_atlas`` and ``within_subject`` dicts with ``similarity_before``/``similarity_after``
    (as :class:`weeke_pipeline.imaging.registration.RegistrationResult.to_dict`); its
    ``to_atlas`` SyN warp gives the Jacobian numbers. ``atlas_labels`` (the atlas dseg, or a
    list of them for several atlases) gives the coverage relative to the atlas's regions,
    ``pma_weeks`` (postmenstrual age at scan) the expected brain volume
    (:mod:`weeke_pipeline.imaging.qc_anatomy`)."""
    img, zooms = _load(t2w, "T2w")
    lab, _ = _load(labels, "label map")
    mask, _ = _load(brain_mask, "brain mask")
    for name, arr in (("label map", lab), ("brain mask", mask)):
        if arr.shape != img.shape:
            raise ValueError(f"{name} grid {arr.shape} differs from the T2w {img.shape}")
    brain = mask > 0
    lab = np.rint(lab).astype(np.int64)
    vox_ml = float(np.prod(zooms)) / 1000.0
    present = np.bincount(lab[lab > 0].ravel(), minlength=max(r.index for r in REGIONS) + 1)
    expected = [r.index for r in REGIONS]
    wm = np.isin(lab, indices_for(tissue="wm")) & brain
    wm_vals = img[wm].astype(float)
    out: dict[str, Any] = {
        "brain_volume_ml": float(brain.sum() * vox_ml),
        "label_coverage": float(np.mean(present[expected] > 0)),
        "missing_regions": [r.name for r in REGIONS if present[r.index] == 0],
        "mask_coverage": float((lab[brain] > 0).mean()) if brain.any() else 0.0,
        "snr_background": snr_background(img.astype(float), brain),
        "snr_wm": (float(wm_vals.mean() / wm_vals.std())
                   if wm_vals.size > 1 and wm_vals.std() > 0 else float("nan")),
        "has_t1w": t1w is not None,
        "has_adc": adc is not None,
    }
    warp = None
    to_atlas = (registration or {}).get("to_atlas") or {}
    for p in to_atlas.get("forward_transforms", []):
        if str(p).endswith("Warp.nii.gz") and Path(p).is_file():
            warp = p
    regions = None
    if atlas_labels is not None:
        many = atlas_labels if isinstance(atlas_labels, list | tuple) else [atlas_labels]
        regions = sorted({i for a in many for i in qa.regions_of(_load(a, "atlas labels")[0])})
    out.update(qa.anatomy_numbers(img, lab, brain, zooms, warp=warp, atlas_regions=regions,
                                  pma_weeks=pma_weeks))
    if adc is not None:
        a, _ = _load(adc, "ADC")
        if a.shape != img.shape:
            raise ValueError(f"ADC grid {a.shape} differs from the T2w {img.shape}")
        vals = a[brain].astype(float)
        out["adc_finite_fraction"] = (float(np.mean(np.isfinite(vals) & (vals > 0)))
                                      if vals.size else 0.0)
        good = vals[np.isfinite(vals) & (vals > 0)]
        out["adc_brain_median"] = float(np.median(good)) if good.size else float("nan")
    if registration:
        out["registration"] = {
            name: {"similarity_before": dict(r.get("similarity_before", {})),
                   "similarity_after": dict(r.get("similarity_after", {})),
                   "seconds": r.get("seconds")}
            for name, r in registration.items() if r
        }
    return out


def qc_flag(numbers: Mapping[str, Any], thresholds: Mapping[str, float] = THRESHOLDS
            ) -> tuple[str, list[str]]:
    """(``pass``|``warn``|``fail``, reasons) from :func:`qc_numbers` (see :data:`THRESHOLDS`)."""
    t = {**THRESHOLDS, **thresholds}
    fails: list[str] = []
    warns: list[str] = []
    v = numbers.get("brain_volume_ml", float("nan"))
    if "brain_volume_expected_ml" in numbers:
        pass  # the range for the postmenstrual age (qc_anatomy.anatomy_rules) replaces it
    elif not (t["brain_volume_ml_fail_low"] <= v <= t["brain_volume_ml_fail_high"]):
        fails.append(f"brain volume {v:.0f} mL outside [{t['brain_volume_ml_fail_low']:.0f},"
                     f" {t['brain_volume_ml_fail_high']:.0f}]")
    elif not (t["brain_volume_ml_warn_low"] <= v <= t["brain_volume_ml_warn_high"]):
        warns.append(f"brain volume {v:.0f} mL outside [{t['brain_volume_ml_warn_low']:.0f},"
                     f" {t['brain_volume_ml_warn_high']:.0f}]")
    relative = np.isfinite(numbers.get("label_coverage_atlas", float("nan")))
    for key in ("label_coverage", "mask_coverage"):
        c = numbers.get(key, 0.0)
        if key == "label_coverage" and relative:
            # judged against the regions the atlas has (qc_anatomy); the ones it lacks are
            # a property of the atlas, said once
            lacks = [m for m in numbers.get("missing_regions", [])
                     if m not in numbers.get("missing_atlas_regions", [])]
            if lacks:
                warns.append(f"the atlas has no label for {len(lacks)} regions (their metrics"
                             f" are empty): {', '.join(lacks[:6])}"
                             + (" ..." if len(lacks) > 6 else ""))
        elif c < t[f"{key}_fail"]:
            fails.append(f"{key.replace('_', ' ')} {c:.2f} < {t[f'{key}_fail']:.2f}")
        elif c < t[f"{key}_warn"]:
            extra = ""
            if key == "label_coverage" and numbers.get("missing_regions"):
                extra = f" (missing: {', '.join(numbers['missing_regions'][:6])})"
            warns.append(f"{key.replace('_', ' ')} {c:.2f} < {t[f'{key}_warn']:.2f}{extra}")
    snr = numbers.get("snr_background", float("nan"))
    which = "background"
    if not np.isfinite(snr):
        snr, which = numbers.get("snr_wm", float("nan")), "white-matter"
    if "air_note" in numbers:
        pass  # noise from air only where there is air (qc_anatomy.air_noise); mean/SD in
        # white matter measures anatomy, not noise: reported, not flagged
    elif np.isfinite(snr):
        if snr < t["snr_fail"]:
            fails.append(f"SNR ({which}) {snr:.1f} < {t['snr_fail']:.0f}")
        elif snr < t["snr_warn"]:
            warns.append(f"SNR ({which}) {snr:.1f} < {t['snr_warn']:.0f}")
    reg = numbers.get("registration", {})
    atlas = reg.get("to_atlas")
    if atlas:
        before, after = atlas["similarity_before"], atlas["similarity_after"]
        c = after.get("correlation", float("nan"))
        if "tissue_eta2" in numbers:
            # across different anatomy the correlation stays low on good real runs
            # (0.37-0.56): the label checks of qc_anatomy judge the registration instead
            if not c >= t["atlas_correlation_fail"]:
                warns.append(f"T2w-atlas correlation after registration {c:.2f}"
                             f" < {t['atlas_correlation_fail']:.2f}")
        elif not c >= t["atlas_correlation_fail"]:
            fails.append(f"T2w-atlas correlation after registration {c:.2f}"
                         f" < {t['atlas_correlation_fail']:.2f}")
        elif c < t["atlas_correlation_warn"]:
            warns.append(f"T2w-atlas correlation after registration {c:.2f}"
                         f" < {t['atlas_correlation_warn']:.2f}")
        if after.get("nmi", 0) < before.get("nmi", 0) - t["nmi_drop_warn"]:
            warns.append("atlas registration lowered the normalised mutual information")
    for name, r in reg.items():
        if name == "to_atlas" or not r:
            continue
        # an image already aligned in scanner coordinates can only move by noise: tolerate it
        drop = r["similarity_before"].get("nmi", 0) - r["similarity_after"].get("nmi", 0)
        if drop > t["nmi_drop_warn"]:
            warns.append(f"{name} alignment lowered the normalised mutual information by"
                         f" {drop:.3f}")
    a_fails, a_warns = qa.anatomy_rules(numbers, t)
    fails += a_fails
    warns += a_warns
    if not numbers.get("has_t1w", True):
        warns.append("no T1w: T1w metrics empty")
    if not numbers.get("has_adc", True):
        warns.append("no ADC/DWI: ADC metrics empty")
    elif "adc_finite_fraction" in numbers and \
            numbers["adc_finite_fraction"] < t["adc_finite_fraction_warn"]:
        warns.append(f"ADC finite and positive in only {numbers['adc_finite_fraction']:.0%}"
                     " of the brain")
    status = "fail" if fails else "warn" if warns else "pass"
    return status, fails + warns


# --------------------------------------------------------------------------- report
@dataclass
class QCResult:
    subject: str
    status: str
    reasons: list[str]
    numbers: dict[str, Any]
    figures: dict[str, str]
    report: str
    json: str
    error: str | None = None
    figure_errors: dict[str, str] = field(default_factory=dict)


def confidence_numbers(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The QC view of a label-confidence JSON (multi-atlas agreement)."""
    regions = doc.get("regions", {})
    return {"method": doc.get("method"), "n_atlases": doc.get("n_atlases"),
            "brain_agreement": doc.get("brain_agreement"),
            "disagreement_fraction": doc.get("disagreement_fraction"),
            "regions": {r.get("name", k): {"name": r.get("name", k),
                                           "agreement": r.get("agreement"),
                                           "pairwise_dice": r.get("pairwise_dice")}
                        for k, r in regions.items()}}


def run_subject_qc(subject: str, out_dir: str | os.PathLike[str], *, t2w: Any | None = None,
                   labels: Any | None = None, brain_mask: Any | None = None,
                   t1w: Any | None = None, adc: Any | None = None,
                   registration: Mapping[str, Any] | None = None,
                   error: str | None = None,
                   extra_figures: Mapping[str, Any] | None = None,
                   notices: Sequence[str] = (),
                   atlas_labels: Any | None = None,
                   pma_weeks: float | None = None,
                   label_confidence: Mapping[str, Any] | None = None) -> QCResult:
    """Numbers, flag, figures, JSON and HTML for one subject, in ``out_dir``.

    ``notices`` (e.g. phantom atlas labels on a real brain, :mod:`weeke_pipeline.atlas.honesty`)
    come first in the reasons, show as a banner in the report and make the status ``fail``.
    ``label_confidence`` (multi-atlas runs: the fusion's JSON, see
    :func:`weeke_pipeline.imaging.label_fusion.fuse_files`) is recorded as ``numbers
    ["label_confidence"]``: method, number of atlases, brain agreement and per region the
    agreement between the atlases (mean fraction agreeing with the fused label, mean pairwise
    Dice).

    Never raises for a bad subject: an upstream ``error`` (e.g. the pipeline's exception text)
    or a failure here gives status ``fail`` and a report showing the error. ``atlas_labels``,
    ``pma_weeks``: see :func:`qc_numbers`. Files:
    ``<subject>_qc.json``, ``<subject>_qc.html``, ``figures/<subject>_desc-<name>_qc.png``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figdir = out / "figures"
    numbers: dict[str, Any] = {}
    figures: dict[str, str] = {}
    fig_errors: dict[str, str] = {}
    reasons: list[str] = []
    status = "fail"
    if error is None:
        if t2w is None or labels is None or brain_mask is None:
            error = "QC needs the T2w, the T2w-space labels and the brain mask"
        else:
            try:
                numbers = qc_numbers(t2w, labels, brain_mask, t1w=t1w, adc=adc,
                                     registration=registration, atlas_labels=atlas_labels,
                                     pma_weeks=pma_weeks)
                if label_confidence:
                    numbers["label_confidence"] = confidence_numbers(label_confidence)
                status, reasons = qc_flag(numbers)
            except Exception as exc:  # a broken subject still gets a report
                error = f"{type(exc).__name__}: {exc}"
    if t2w is not None and labels is not None:
        jobs: list[tuple[str, Any]] = [
            ("outline", lambda p: qc_figures.plot_outline(t2w, labels, p)),
            ("labels", lambda p: qc_figures.plot_overlay(t2w, labels, p)),
        ]
        others = {"T1w": t1w, "ADC": adc}
        if any(v is not None for v in others.values()):
            jobs.append(("alignment", lambda p: qc_figures.plot_alignment(t2w, others, p,
                                                               brain_mask=brain_mask)))
        if adc is not None and brain_mask is not None:
            jobs.append(("adc", lambda p: qc_figures.plot_adc_histogram(adc, brain_mask, p)))
        for name, job in jobs:
            png = figdir / f"{subject}_desc-{name}_qc.png"
            try:
                figures[name] = str(job(png))
            except Exception as exc:
                fig_errors[name] = f"{type(exc).__name__}: {exc}"
    for name, src in (extra_figures or {}).items():
        # figures made by other steps (e.g. the FA colour map of the tensor fit)
        png = figdir / f"{subject}_desc-{name}_qc.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, png)
        figures[name] = str(png)
    if t2w is not None and labels is not None:
        if fig_errors and status == "pass":
            status = "warn"
        reasons += [f"figure {k} failed: {v}" for k, v in fig_errors.items()]
    if error:
        status = "fail"
        reasons = [f"error: {error.splitlines()[0] if error.strip() else 'unknown'}", *reasons]
    if notices:
        status = "fail"
        reasons = [*notices, *reasons]
    js = out / f"{subject}_qc.json"
    payload = {"subject": subject, "status": status, "reasons": reasons, "error": error,
               "notices": list(notices),
               "numbers": numbers, "thresholds": THRESHOLDS,
               "figures": {k: os.path.relpath(v, out) for k, v in figures.items()}}
    js.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n", encoding="utf-8")
    page = qc_report.write_report(out / f"{subject}_qc.html", subject, status=status,
                                  reasons=reasons, numbers=numbers, figures=figures,
                                  error=error, notices=notices, thresholds=THRESHOLDS)
    return QCResult(subject, status, reasons, numbers, figures, str(page), str(js), error,
                    fig_errors)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
