"""QC figures for the tensor fit: direction-encoded FA colour map and the fit residual (PNG).

Colour convention (Pajevic & Pierpaoli 1999): RGB = |e1 (RAS world)| x FA, so red is
left-right, green anterior-posterior and blue superior-inferior, brightness the anisotropy.
FA is scaled by ``fa_max`` (default 0.7) before colouring so neonatal white matter (FA 0.2-0.5)
stays visible. Slices are shown in neurological orientation (subject's right on the right),
after reorienting the grid to RAS with nibabel; the optional label map (same grid) is drawn as
white contour lines (one per label).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from weeke_pipeline.imaging.dti import bvec_frame_to_world


def _to_ras(arr: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient ``arr`` (3D or 3D + channels) to RAS voxel order; return it and the zooms."""
    from nibabel.orientations import apply_orientation, io_orientation

    ornt = io_orientation(affine)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    out = apply_orientation(arr, ornt)
    return out, zooms[ornt[:, 0].astype(int)]


def _centre(mask: np.ndarray) -> tuple[int, int, int]:
    idx = np.argwhere(mask)
    if len(idx) == 0:
        return tuple(int(n // 2) for n in mask.shape[:3])  # type: ignore[return-value]
    return tuple(int(np.rint(c)) for c in idx.mean(axis=0))  # type: ignore[return-value]


def _planes(vol: np.ndarray, c: tuple[int, int, int]) -> list[np.ndarray]:
    """Axial, coronal, sagittal slices through ``c`` (RAS order), transposed for ``imshow``."""
    ax = np.swapaxes(vol[:, :, c[2]], 0, 1)
    co = np.swapaxes(vol[:, c[1], :], 0, 1)
    sa = np.swapaxes(vol[c[0], :, :], 0, 1)
    return [ax, co, sa]


def _aspects(z: np.ndarray) -> list[float]:
    return [z[1] / z[0], z[2] / z[0], z[2] / z[1]]


def _new_figure(title: str, ncols: int = 3):
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
    c = _centre(mask_ras > 0)
    lab_planes = None
    if labels is not None:
        lab_ras, _ = _to_ras(np.asarray(labels).astype(np.int32), affine)
        lab_planes = _planes(lab_ras, c)
    fig, axes, plt = _new_figure(title)
    for i, (a, img, asp) in enumerate(zip(axes, _planes(rgb_ras, c), _aspects(zooms),
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
    return _save(fig, plt, out_png)


def residual_figure(residual: np.ndarray, mask: np.ndarray, affine: np.ndarray,
                    out_png: Path | str, *, title: str = "tensor fit residual (RMS / S0)",
                    vmax: float | None = None) -> Path:
    """Write the three-plane map of the fit residual with a colour bar (``vmax``: 99th pct)."""
    res_ras, zooms = _to_ras(np.where(mask, residual, 0.0), affine)
    mask_ras, _ = _to_ras(mask.astype(np.uint8), affine)
    c = _centre(mask_ras > 0)
    if vmax is None:
        vals = residual[mask]
        vmax = float(np.percentile(vals, 99)) if vals.size else 1.0
    fig, axes, plt = _new_figure(title)
    im = None
    for i, (a, img, asp) in enumerate(zip(axes, _planes(res_ras, c), _aspects(zooms),
                                          strict=True)):
        im = a.imshow(img, origin="lower", aspect=asp, cmap="inferno", vmin=0.0,
                      vmax=max(vmax, 1e-6), interpolation="nearest")
        a.set_title(("axial", "coronal", "sagittal")[i], color="white", fontsize=9)
    cb = fig.colorbar(im, ax=list(axes), shrink=0.7, pad=0.02)
    cb.ax.yaxis.set_tick_params(color="white", labelcolor="white")
    return _save(fig, plt, out_png)


def _save(fig, plt, out_png: Path | str) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, facecolor="black", metadata={"Software": None})
    plt.close(fig)
    return out
