"""Per-subject quality control: numbers, a pass/warn/fail flag with reasons, PNG figures and an
HTML report that is written even when the subject failed (it then shows the error).

Numbers (:func:`qc_numbers`):
- ``brain_volume_ml`` = voxels in the brain mask x voxel volume / 1000.
- ``label_coverage`` = fraction of the vocabulary's regions (regions.py) with at least one
  voxel in the subject's label map; ``mask_coverage`` = fraction of brain-mask voxels labelled.
- ``snr_background`` = 0.655 mean(brain) / SD(air) (Kaufman et al. 1989, Rayleigh-corrected
  magnitude noise), air = the eight corner blocks of the field of view (1/8 of each axis);
  NaN when the air is exactly zero (skull-stripped or masked export).
  ``snr_wm`` = mean / SD of the T2w in the white-matter labels (a lower bound: anatomy adds to
  the SD). The flag uses ``snr_background`` when finite, else ``snr_wm``.
- registration similarity before/after (from :mod:`weeke_pipeline.imaging.registration`:
  ``nmi``, ``mattes_mi``, ``correlation``), to atlas and per within-subject image.
- ``adc_finite_fraction``: fraction of brain voxels with a finite, positive ADC.

The flag: ``fail`` if any FAIL rule holds, else ``warn`` if any WARN rule holds, else ``pass``
(:data:`THRESHOLDS`, each rule listed in the report with its value).
"""

from __future__ import annotations

import html
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from weeke_pipeline.atlas.regions import REGIONS, indices_for

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
}

_FIG_DPI = 90


# --------------------------------------------------------------------------- loading
def _load(x: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Array in closest-canonical (RAS) orientation and the voxel sizes."""
    import nibabel as nib

    try:
        img = x if hasattr(x, "dataobj") else nib.load(os.fspath(x))
        img = nib.as_closest_canonical(img)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{x}: cannot read {what}: {exc}") from None
    arr = np.asanyarray(img.dataobj)
    if arr.ndim == 4 and arr.shape[3] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise ValueError(f"{x}: {what} must be 3D (got shape {arr.shape})")
    return arr, np.asarray(img.header.get_zooms()[:3], float)


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
               adc: Any | None = None, registration: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    """QC numbers of one subject (images in T2w space). ``registration`` may hold
    ``to_atlas`` and ``within_subject`` dicts with ``similarity_before``/``similarity_after``
    (as :class:`weeke_pipeline.imaging.registration.RegistrationResult.to_dict`)."""
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
    if not (t["brain_volume_ml_fail_low"] <= v <= t["brain_volume_ml_fail_high"]):
        fails.append(f"brain volume {v:.0f} mL outside [{t['brain_volume_ml_fail_low']:.0f},"
                     f" {t['brain_volume_ml_fail_high']:.0f}]")
    elif not (t["brain_volume_ml_warn_low"] <= v <= t["brain_volume_ml_warn_high"]):
        warns.append(f"brain volume {v:.0f} mL outside [{t['brain_volume_ml_warn_low']:.0f},"
                     f" {t['brain_volume_ml_warn_high']:.0f}]")
    for key in ("label_coverage", "mask_coverage"):
        c = numbers.get(key, 0.0)
        if c < t[f"{key}_fail"]:
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
    if np.isfinite(snr):
        if snr < t["snr_fail"]:
            fails.append(f"SNR ({which}) {snr:.1f} < {t['snr_fail']:.0f}")
        elif snr < t["snr_warn"]:
            warns.append(f"SNR ({which}) {snr:.1f} < {t['snr_warn']:.0f}")
    reg = numbers.get("registration", {})
    atlas = reg.get("to_atlas")
    if atlas:
        before, after = atlas["similarity_before"], atlas["similarity_after"]
        c = after.get("correlation", float("nan"))
        if not c >= t["atlas_correlation_fail"]:
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


# --------------------------------------------------------------------------- figures
def _planes(shape: Sequence[int], center: Sequence[int] | None = None) -> list[tuple[str, Any]]:
    c = [s // 2 for s in shape] if center is None else list(center)
    return [("sagittal", (c[0], slice(None), slice(None))),
            ("coronal", (slice(None), c[1], slice(None))),
            ("axial", (slice(None), slice(None), c[2]))]


def _center(mask: np.ndarray) -> list[int]:
    idx = np.argwhere(mask)
    return [int(v) for v in idx.mean(0)] if idx.size else [s // 2 for s in mask.shape]


def _window(img: np.ndarray, sel: np.ndarray | None = None) -> tuple[float, float]:
    vals = img[sel] if sel is not None and sel.any() else img[np.isfinite(img)]
    vals = vals[np.isfinite(vals)]
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(vals, [1, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1)


def _figure(ncols: int, nrows: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.4 * nrows), squeeze=False)
    fig.patch.set_facecolor("black")
    for ax in axes.ravel():
        ax.axis("off")
    return plt, fig, axes


def _show(ax: Any, sl: np.ndarray, aspect: float, **kw: Any) -> None:
    ax.imshow(np.rot90(sl), aspect=aspect, interpolation="nearest", **kw)


def _aspect(zooms: np.ndarray, plane: str) -> float:
    ax = {"sagittal": (1, 2), "coronal": (0, 2), "axial": (0, 1)}[plane]
    return float(zooms[ax[1]] / zooms[ax[0]])


def plot_outline(t2w: Any, labels: Any, out_png: str | os.PathLike[str]) -> Path:
    """Atlas label boundaries (skimage ``find_boundaries``) over the T2w, three planes."""
    from skimage.segmentation import find_boundaries

    img, zooms = _load(t2w, "T2w")
    lab, _ = _load(labels, "label map")
    lab = np.rint(lab).astype(np.int32)
    c = _center(lab > 0)
    vmin, vmax = _window(img, lab > 0)
    plt, fig, axes = _figure(3)
    for ax, (plane, sl) in zip(axes[0], _planes(img.shape, c), strict=True):
        _show(ax, img[sl], _aspect(zooms, plane), cmap="gray", vmin=vmin, vmax=vmax)
        edge = find_boundaries(lab[sl], mode="inner")
        _show(ax, np.ma.masked_where(~edge, edge.astype(float)), _aspect(zooms, plane),
              cmap="autumn", vmin=0, vmax=1, alpha=0.9)
        ax.set_title(f"{plane}: atlas outline on T2w", color="w", fontsize=8)
    return _save(plt, fig, out_png)


def plot_overlay(t2w: Any, labels: Any, out_png: str | os.PathLike[str]) -> Path:
    """Labels as a semi-transparent colour overlay on the T2w, three planes."""
    img, zooms = _load(t2w, "T2w")
    lab, _ = _load(labels, "label map")
    lab = np.rint(lab).astype(np.int32)
    c = _center(lab > 0)
    vmin, vmax = _window(img, lab > 0)
    plt, fig, axes = _figure(3)
    for ax, (plane, sl) in zip(axes[0], _planes(img.shape, c), strict=True):
        _show(ax, img[sl], _aspect(zooms, plane), cmap="gray", vmin=vmin, vmax=vmax)
        ls = lab[sl]
        _show(ax, np.ma.masked_where(ls == 0, ls), _aspect(zooms, plane), cmap="tab20",
              vmin=1, vmax=max(r.index for r in REGIONS), alpha=0.45)
        ax.set_title(f"{plane}: labels", color="w", fontsize=8)
    return _save(plt, fig, out_png)


def plot_alignment(t2w: Any, images: Mapping[str, Any], out_png: str | os.PathLike[str], *,
                   brain_mask: Any | None = None) -> Path:
    """T2w edges (Canny on the T2w slice) over each other image (T1w, ADC) in T2w space: a row
    per image, three planes. Misalignment shows as edges off the anatomy."""
    from skimage.feature import canny

    ref, zooms = _load(t2w, "T2w")
    mask = _load(brain_mask, "brain mask")[0] > 0 if brain_mask is not None else ref > 0
    c = _center(mask)
    rows = [(name, _load(x, name)[0]) for name, x in images.items() if x is not None]
    plt, fig, axes = _figure(3, max(1, len(rows)))
    rvmin, rvmax = _window(ref, mask)
    for r, (name, arr) in enumerate(rows):
        if arr.shape != ref.shape:
            raise ValueError(f"{name} grid {arr.shape} differs from the T2w {ref.shape}")
        vmin, vmax = _window(arr, mask)
        for ax, (plane, sl) in zip(axes[r], _planes(ref.shape, c), strict=True):
            _show(ax, arr[sl], _aspect(zooms, plane), cmap="gray", vmin=vmin, vmax=vmax)
            scaled = np.clip((ref[sl] - rvmin) / (rvmax - rvmin), 0, 1)
            edge = canny(scaled, sigma=1.5)
            _show(ax, np.ma.masked_where(~edge, edge.astype(float)), _aspect(zooms, plane),
                  cmap="cool", vmin=0, vmax=1, alpha=0.8)
            ax.set_title(f"{plane}: T2w edges on {name}", color="w", fontsize=8)
    return _save(plt, fig, out_png)


def plot_adc_histogram(adc: Any, brain_mask: Any, out_png: str | os.PathLike[str], *,
                       thresholds: Sequence[float] = (800.0, 1000.0)) -> Path:
    """ADC in three planes and its histogram within the brain (10^-6 mm^2/s)."""
    a, zooms = _load(adc, "ADC")
    mask = _load(brain_mask, "brain mask")[0] > 0
    c = _center(mask)
    plt, fig, axes = _figure(4)
    for ax, (plane, sl) in zip(axes[0][:3], _planes(a.shape, c), strict=True):
        _show(ax, a[sl], _aspect(zooms, plane), cmap="gray", vmin=0, vmax=3000)
        ax.set_title(f"{plane}: ADC", color="w", fontsize=8)
    ax = axes[0][3]
    ax.axis("on")
    vals = a[mask]
    vals = vals[np.isfinite(vals)]
    ax.hist(vals, bins=100, range=(0, 3500), color="0.8")
    for t in thresholds:
        ax.axvline(t, color="tab:red", lw=1)
    ax.set_xlabel("ADC (10$^{-6}$ mm$^2$/s)", color="w", fontsize=8)
    ax.tick_params(colors="w", labelsize=7)
    ax.set_title("brain ADC histogram", color="w", fontsize=8)
    return _save(plt, fig, out_png, tight=True)


def _save(plt: Any, fig: Any, out_png: str | os.PathLike[str], *, tight: bool = False) -> Path:
    """Write the figure. Image panels (no axes) get fixed margins with room for one title
    line per row; ``tight`` (panels with tick labels) asks matplotlib to lay it out, which
    draws the figure once more (~0.2 s a figure)."""
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    else:
        height = fig.get_figheight()
        nrows = fig.axes[0].get_gridspec().nrows if fig.axes else 1
        title = 0.25 / height  # a fontsize-8 title line (inches -> figure fraction)
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - title,
                            wspace=0.03, hspace=title * nrows / (1 - title * nrows))
    fig.savefig(out, dpi=_FIG_DPI, facecolor=fig.get_facecolor())
    plt.close(fig)
    return out


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


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if not np.isfinite(v) else f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(map(str, v)) or "none"
    return str(v)


def write_report(out_html: str | os.PathLike[str], subject: str, *, status: str,
                 reasons: Sequence[str], numbers: Mapping[str, Any],
                 figures: Mapping[str, str], error: str | None = None,
                 thresholds: Mapping[str, float] = THRESHOLDS,
                 notices: Sequence[str] = ()) -> Path:
    """One self-contained HTML page (figures linked relative to the page). Text is escaped."""
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    e = html.escape
    colour = {"pass": "#1b7f3b", "warn": "#b26b00", "fail": "#b00020"}.get(status, "#555")
    rows = []
    for k, v in numbers.items():
        if k == "registration":
            for name, r in v.items():
                for when in ("similarity_before", "similarity_after"):
                    for m, x in r.get(when, {}).items():
                        rows.append((f"{name} {m} ({when.split('_')[1]})", _fmt(x)))
        elif k == "label_confidence" and isinstance(v, Mapping):
            rows.append((f"label fusion ({v.get('method')}, {v.get('n_atlases')} atlases): "
                         "brain agreement", _fmt(v.get("brain_agreement"))))
            for name, r in v.get("regions", {}).items():
                rows.append((f"atlas agreement {name} (fraction agreeing / pairwise Dice)",
                             f"{_fmt(r.get('agreement'))} / {_fmt(r.get('pairwise_dice'))}"))
        else:
            rows.append((k, _fmt(v)))
    table = "\n".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    figs = "\n".join(
        f'<figure><img src="{e(os.path.relpath(p, out.parent))}" alt="{e(name)}">'
        f"<figcaption>{e(name)}</figcaption></figure>" for name, p in figures.items())
    err = f"<h2>Error</h2><pre>{e(error)}</pre>" if error else ""
    banner = "".join(f'<p class="notice">{e(n)}</p>' for n in notices)
    reason_list = "".join(f"<li>{e(r)}</li>" for r in reasons) or "<li>all checks passed</li>"
    thr = "".join(f"<tr><th>{e(k)}</th><td>{v:g}</td></tr>" for k, v in thresholds.items())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>QC {e(subject)}</title>
<style>body{{font-family:sans-serif;margin:1.5em;max-width:1100px}}
.flag{{display:inline-block;padding:.2em .8em;color:#fff;background:{colour};border-radius:4px;
font-weight:bold}} table{{border-collapse:collapse}} th,td{{border:1px solid #ccc;
padding:.2em .6em;text-align:left;font-size:.9em}} figure{{margin:1em 0}}
img{{max-width:100%;background:#000}} pre{{background:#fee;padding:1em;white-space:pre-wrap}}
.notice{{background:#b00020;color:#fff;padding:.8em;font-weight:bold}}
</style></head><body>
<h1>QC report: {e(subject)}</h1>
{banner}
<p>Status: <span class="flag">{e(status.upper())}</span></p>
<ul>{reason_list}</ul>
{err}
<h2>Figures</h2>
{figs or "<p>No figures (see error).</p>"}
<h2>Numbers</h2>
<table>{table}</table>
<h2>Thresholds</h2>
<details><summary>flag rules (weeke_pipeline.imaging.qc.THRESHOLDS)</summary><table>{thr}</table>
</details>
</body></html>
"""
    out.write_text(page, encoding="utf-8")
    return out


def run_subject_qc(subject: str, out_dir: str | os.PathLike[str], *, t2w: Any | None = None,
                   labels: Any | None = None, brain_mask: Any | None = None,
                   t1w: Any | None = None, adc: Any | None = None,
                   registration: Mapping[str, Any] | None = None,
                   error: str | None = None,
                   extra_figures: Mapping[str, Any] | None = None,
                   notices: Sequence[str] = (),
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
    or a failure here gives status ``fail`` and a report showing the error. Files:
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
                                     registration=registration)
                if label_confidence:
                    numbers["label_confidence"] = _confidence_numbers(label_confidence)
                status, reasons = qc_flag(numbers)
            except Exception as exc:  # a broken subject still gets a report
                error = f"{type(exc).__name__}: {exc}"
    if t2w is not None and labels is not None:
        jobs: list[tuple[str, Any]] = [
            ("outline", lambda p: plot_outline(t2w, labels, p)),
            ("labels", lambda p: plot_overlay(t2w, labels, p)),
        ]
        others = {"T1w": t1w, "ADC": adc}
        if any(v is not None for v in others.values()):
            jobs.append(("alignment", lambda p: plot_alignment(t2w, others, p,
                                                               brain_mask=brain_mask)))
        if adc is not None and brain_mask is not None:
            jobs.append(("adc", lambda p: plot_adc_histogram(adc, brain_mask, p)))
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
    page = write_report(out / f"{subject}_qc.html", subject, status=status, reasons=reasons,
                        numbers=numbers, figures=figures, error=error, notices=notices)
    return QCResult(subject, status, reasons, numbers, figures, str(page), str(js), error,
                    fig_errors)


def _confidence_numbers(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The QC view of a label-confidence JSON (multi-atlas agreement)."""
    regions = doc.get("regions", {})
    return {"method": doc.get("method"), "n_atlases": doc.get("n_atlases"),
            "brain_agreement": doc.get("brain_agreement"),
            "disagreement_fraction": doc.get("disagreement_fraction"),
            "regions": {r.get("name", k): {"name": r.get("name", k),
                                           "agreement": r.get("agreement"),
                                           "pairwise_dice": r.get("pairwise_dice")}
                        for k, r in regions.items()}}


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_group_index(results: Sequence[QCResult | Mapping[str, Any]],
                      out_html: str | os.PathLike[str]) -> Path:
    """A group page: one row per subject with its status, reasons and a link to its report."""
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    e = html.escape
    rows = []
    for r in results:
        d = r if isinstance(r, Mapping) else r.__dict__
        link = os.path.relpath(d["report"], out.parent)
        rows.append(f'<tr><td><a href="{e(link)}">{e(d["subject"])}</a></td>'
                    f'<td class="{e(d["status"])}">{e(d["status"])}</td>'
                    f"<td>{e('; '.join(d['reasons']))}</td></tr>")
    out.write_text(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>QC index</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:.2em .6em}"
        "table{border-collapse:collapse}.pass{color:#1b7f3b}.warn{color:#b26b00}"
        ".fail{color:#b00020;font-weight:bold}</style></head><body><h1>QC index</h1>"
        "<table><tr><th>subject</th><th>status</th><th>reasons</th></tr>"
        + "".join(rows) + "</table></body></html>\n", encoding="utf-8")
    return out
