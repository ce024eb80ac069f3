"""QC figures, one module, one convention: each function takes images (paths, nibabel images or
arrays with their affine) and ``out_png``, writes a PNG (matplotlib, Agg backend, 90 dpi, black
background) and returns its path. Used by :func:`weeke_pipeline.imaging.qc.run_subject_qc` and
the tensor-fit interface.

Anatomy figures (:func:`plot_outline`, :func:`plot_overlay`, :func:`plot_alignment`,
:func:`plot_adc_histogram`): three planes through the brain's centre, voxel order as stored.

Tensor-fit figures (:func:`fa_colour_figure`, :func:`residual_figure`):
Colour convention (Pajevic & Pierpaoli 1999): RGB = |e1 (RAS world)| x FA, so red is
left-right, green anterior-posterior and blue superior-inferior, brightness the anisotropy.
FA is scaled by ``fa_max`` (default 0.7) before colouring so neonatal white matter (FA 0.2-0.5)
stays visible. Slices are shown in neurological orientation (subject's right on the right),
after reorienting the grid to RAS with nibabel; the optional label map (same grid) is drawn as
white contour lines (one per label).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from weeke_pipeline.atlas.regions import REGIONS
from weeke_pipeline.imaging.dti import bvec_frame_to_world
from weeke_pipeline.nifti import load_canonical as _load

_FIG_DPI = 90


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


def _t2w_with_labels(t2w: Any, labels: Any) -> tuple[np.ndarray, Any, np.ndarray, Any,
                                                     tuple[float, float]]:
    """T2w, its zooms, the integer label map, the labels' centre and the T2w window inside them."""
    img, zooms = _load(t2w, "T2w")
    lab, _ = _load(labels, "label map")
    lab = np.rint(lab).astype(np.int32)
    return img, zooms, lab, _center(lab > 0), _window(img, lab > 0)


def plot_outline(t2w: Any, labels: Any, out_png: str | os.PathLike[str]) -> Path:
    """Atlas label boundaries (skimage ``find_boundaries``) over the T2w, three planes."""
    from skimage.segmentation import find_boundaries

    img, zooms, lab, c, (vmin, vmax) = _t2w_with_labels(t2w, labels)
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
    img, zooms, lab, c, (vmin, vmax) = _t2w_with_labels(t2w, labels)
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


# --------------------------------------------------------------------------- tensor fit
def _to_ras(arr: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient ``arr`` (3D or 3D + channels) to RAS voxel order; return it and the zooms."""
    from nibabel.orientations import apply_orientation, io_orientation

    ornt = io_orientation(affine)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    out = apply_orientation(arr, ornt)
    return out, zooms[ornt[:, 0].astype(int)]


def _ras_centre(mask: np.ndarray) -> tuple[int, int, int]:
    idx = np.argwhere(mask)
    if len(idx) == 0:
        return tuple(int(n // 2) for n in mask.shape[:3])  # type: ignore[return-value]
    return tuple(int(np.rint(c)) for c in idx.mean(axis=0))  # type: ignore[return-value]


def _ras_planes(vol: np.ndarray, c: tuple[int, int, int]) -> list[np.ndarray]:
    """Axial, coronal, sagittal slices through ``c`` (RAS order), transposed for ``imshow``."""
    ax = np.swapaxes(vol[:, :, c[2]], 0, 1)
    co = np.swapaxes(vol[:, c[1], :], 0, 1)
    sa = np.swapaxes(vol[c[0], :, :], 0, 1)
    return [ax, co, sa]


def _ras_aspects(z: np.ndarray) -> list[float]:
    return [z[1] / z[0], z[2] / z[0], z[2] / z[1]]


def _ras_figure(title: str, ncols: int = 3):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(4.0 * ncols, 4.4), facecolor="black")
    fig.suptitle(title, color="white", fontsize=11)
    for a in axes:
        a.set_axis_off()
    return fig, axes, plt


def fa_colour_figure(fa: np.ndarray, evec: np.ndarray, mask: np.ndarray, affine: np.ndarray,
                     out_png: Path | str, *, labels: np.ndarray | None = None,
                     title: str = "FA, direction-encoded (red L-R, green A-P, blue S-I)",
                     fa_max: float = 0.7) -> Path:
    """Write the three-plane direction-encoded FA map (``evec`` in the bvec frame)."""
    world = np.abs(bvec_frame_to_world(evec, affine))
    rgb = world * np.clip(fa / fa_max, 0.0, 1.0)[..., None] * mask[..., None]
    rgb_ras, zooms = _to_ras(np.clip(rgb, 0.0, 1.0), affine)
    mask_ras, _ = _to_ras(mask.astype(np.uint8), affine)
    c = _ras_centre(mask_ras > 0)
    lab_planes = None
    if labels is not None:
        lab_ras, _ = _to_ras(np.asarray(labels).astype(np.int32), affine)
        lab_planes = _ras_planes(lab_ras, c)
    fig, axes, plt = _ras_figure(title)
    for i, (a, img, asp) in enumerate(zip(axes, _ras_planes(rgb_ras, c), _ras_aspects(zooms),
                                          strict=True)):
        a.imshow(img, origin="lower", aspect=asp, interpolation="nearest")
        if lab_planes is not None:  # one contour line per label, between voxels
            for value in np.unique(lab_planes[i][lab_planes[i] > 0]):
                a.contour(lab_planes[i] == value, levels=[0.5], colors="white",
                          linewidths=0.4, alpha=0.6)
        a.set_title(("axial", "coronal", "sagittal")[i], color="white", fontsize=9)
        if i < 2:
            a.text(0.02, 0.02, "L", color="white", transform=a.transAxes)
            a.text(0.95, 0.02, "R", color="white", transform=a.transAxes)
    return _ras_save(fig, plt, out_png)


def residual_figure(residual: np.ndarray, mask: np.ndarray, affine: np.ndarray,
                    out_png: Path | str, *, title: str = "tensor fit residual (RMS / S0)",
                    vmax: float | None = None) -> Path:
    """Write the three-plane map of the fit residual with a colour bar (``vmax``: 99th pct)."""
    res_ras, zooms = _to_ras(np.where(mask, residual, 0.0), affine)
    mask_ras, _ = _to_ras(mask.astype(np.uint8), affine)
    c = _ras_centre(mask_ras > 0)
    if vmax is None:
        vals = residual[mask]
        vmax = float(np.percentile(vals, 99)) if vals.size else 1.0
    fig, axes, plt = _ras_figure(title)
    im = None
    for i, (a, img, asp) in enumerate(zip(axes, _ras_planes(res_ras, c), _ras_aspects(zooms),
                                          strict=True)):
        im = a.imshow(img, origin="lower", aspect=asp, cmap="inferno", vmin=0.0,
                      vmax=max(vmax, 1e-6), interpolation="nearest")
        a.set_title(("axial", "coronal", "sagittal")[i], color="white", fontsize=9)
    cb = fig.colorbar(im, ax=list(axes), shrink=0.7, pad=0.02)
    cb.ax.yaxis.set_tick_params(color="white", labelcolor="white")
    return _ras_save(fig, plt, out_png)


def _ras_save(fig, plt, out_png: Path | str) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, facecolor="black", metadata={"Software": None})
    plt.close(fig)
    return out
