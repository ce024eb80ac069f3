"""Multi-atlas label fusion and the agreement between atlases, on the subject's T2w grid.

Layer: pure numpy (+ numba kernels), no nipype, no antspyx. Inputs are the label maps of
``n`` atlases, each registered to the subject and resampled onto its T2w grid, and (for joint
label fusion) each atlas's T2w template resampled the same way.

Where every atlas gives the same label (most of the brain) that label is kept: fusion runs only
on the voxels where the atlases disagree, cropped to their bounding box. That is what makes it
cheap: on a 1 mm subject typically 10-25 % of the labelled voxels, instead of the whole grid.

- :func:`majority_vote`: the label most atlases give; a tie goes to the label of the earliest
  atlas in the list among the tied ones (list atlases in order of preference).
- :func:`joint_label_fusion`: Wang et al., "Multi-atlas segmentation with joint label fusion",
  IEEE TPAMI 35(3) 2013 (the method of ANTs' ``antsJointFusion``). At a target voxel x, each
  atlas i contributes the label at its best-matching position x + o_i in a search cube of
  radius ``search_radius`` (best = highest Pearson correlation of the (2r+1)^3 patches,
  r = ``patch_radius``). With d_i = |T^(x) - A^_i(x + o_i)| the absolute difference of the
  intensity-normalised patches (zero mean, unit SD), the pairwise dependency matrix is
  M_ij = (d_i . d_j / P)^beta + alpha [i = j], P = (2r+1)^3, and the atlas weights are
  w = M^-1 1 / (1^T M^-1 1): atlases that make the same errors share their weight instead of
  out-voting the others. The fused label maximises sum_i w_i [L_i(x + o_i) = l].
  Written here with numba rather than calling antspyx's ``joint_label_fusion`` because that one
  fuses every voxel of its mask and writes one posterior image per label (826 s for 5 whole-brain
  atlases at 0.86 mm on this machine); restricted to the disagreement voxels and with the local
  patch means/SDs of each atlas precomputed (box filters), the correlation search costs one dot
  product per offset. ``benchmarks/bench_label_fusion.py`` measures both and the accuracy
  against majority voting.

Agreement (a per-region label confidence, :func:`region_agreement`):
- voxel agreement a(x) = (1/n) #{i : L_i(x) = F(x)}, F the fused labels; region ``agreement``
  = mean of a(x) over the region's voxels in F; in [1/n, 1], 1 = all atlases agree everywhere;
- ``pairwise_dice`` = mean over the n(n-1)/2 atlas pairs of Dice(L_i = k, L_j = k).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:  # numba is a project dependency (metrics kernels); keep a clear message if it breaks
    from numba import njit
except ImportError:  # pragma: no cover
    njit = None

METHODS = ("jlf", "majority")
#: JLF parameters measured on real templates (benchmarks/bench_label_fusion.py, docs)
DEFAULT_PATCH_RADIUS = 2
DEFAULT_SEARCH_RADIUS = 2
DEFAULT_BETA = 2.0
DEFAULT_ALPHA = 0.1


# --------------------------------------------------------------------------- helpers
def stack_labels(labels: Sequence[np.ndarray]) -> np.ndarray:
    """Stack ``n`` label maps of one grid into an (n, *shape) int32 array (ValueError if the
    shapes differ)."""
    if len(labels) == 0:
        raise ValueError("label fusion needs at least one label map")
    shape = np.shape(labels[0])
    for i, lab in enumerate(labels):
        if np.shape(lab) != shape:
            raise ValueError(f"label map {i + 1} has shape {np.shape(lab)}, not {shape}:"
                             " every atlas must be resampled onto the subject grid")
    return np.stack([np.asarray(lab) for lab in labels]).astype(np.int32, copy=False)


def disagreement(stack: np.ndarray) -> np.ndarray:
    """Boolean map of the voxels where not every atlas gives the same label."""
    return (stack != stack[:1]).any(axis=0)


def _box(mask: np.ndarray, pad: int) -> tuple[slice, ...]:
    """Bounding box of ``mask`` grown by ``pad`` voxels (clipped to the grid)."""
    out = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        out.append(slice(max(0, hit[0] - pad), min(mask.shape[axis], hit[-1] + pad + 1)))
    return tuple(out)


# --------------------------------------------------------------------------- kernels
def _compile(fn: Any, **kw: Any) -> Any:
    if njit is None:  # pragma: no cover
        raise ImportError("label fusion needs numba (pip install numba)")
    return njit(cache=True, nogil=True, **kw)(fn)


def _mode_rows_py(votes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row of ``votes`` (m, n): the label with the largest summed weight; ties go to the
    label that appears first in the row."""
    m, n = votes.shape
    out = np.empty(m, dtype=np.int32)
    for r in range(m):
        best_lab = votes[r, 0]
        best = -1.0
        for i in range(n):
            lab = votes[r, i]
            seen = False
            for j in range(i):
                if votes[r, j] == lab:
                    seen = True
                    break
            if seen:
                continue
            s = 0.0
            for j in range(i, n):
                if votes[r, j] == lab:
                    s += weights[j]
            if s > best + 1e-12:
                best, best_lab = s, lab
        out[r] = best_lab
    return out


def _jlf_py(target: np.ndarray, atl: np.ndarray, amean: np.ndarray, astd: np.ndarray,
            lab: np.ndarray, coords: np.ndarray, r: int, rs: int, beta: float, alpha: float,
            out: np.ndarray) -> None:
    """JLF at ``coords`` (m, 3) of the padded crop (see module docstring); writes ``out``."""
    n = atl.shape[0]
    w = 2 * r + 1
    p = w * w * w
    for v in range(coords.shape[0]):
        x, y, z = coords[v, 0], coords[v, 1], coords[v, 2]
        tp = np.empty(p)
        k = 0
        for dx in range(-r, r + 1):
            for dy in range(-r, r + 1):
                for dz in range(-r, r + 1):
                    tp[k] = target[x + dx, y + dy, z + dz]
                    k += 1
        mu = tp.mean()
        sd = np.sqrt(max((tp * tp).mean() - mu * mu, 0.0))
        if sd < 1e-6:
            sd = 1e-6
        for k in range(p):
            tp[k] = (tp[k] - mu) / sd
        diff = np.empty((n, p))
        votes = np.empty(n, dtype=np.int32)
        for i in range(n):
            best = -np.inf
            bx, by, bz = x, y, z
            for ox in range(-rs, rs + 1):
                for oy in range(-rs, rs + 1):
                    for oz in range(-rs, rs + 1):
                        cx, cy, cz = x + ox, y + oy, z + oz
                        s = 0.0
                        k = 0
                        for dx in range(-r, r + 1):
                            for dy in range(-r, r + 1):
                                for dz in range(-r, r + 1):
                                    s += tp[k] * atl[i, cx + dx, cy + dy, cz + dz]
                                    k += 1
                        # Pearson correlation: sum(t^ a) / (P sd_a), as sum(t^) = 0
                        c = s / (p * max(astd[i, cx, cy, cz], 1e-6))
                        if c > best:
                            best, bx, by, bz = c, cx, cy, cz
            am, asd = amean[i, bx, by, bz], max(astd[i, bx, by, bz], 1e-6)
            k = 0
            for dx in range(-r, r + 1):
                for dy in range(-r, r + 1):
                    for dz in range(-r, r + 1):
                        diff[i, k] = abs(tp[k] - (atl[i, bx + dx, by + dy, bz + dz] - am) / asd)
                        k += 1
            votes[i] = lab[i, bx, by, bz]
        mat = np.empty((n, n))
        for i in range(n):
            for j in range(i, n):
                s = 0.0
                for k in range(p):
                    s += diff[i, k] * diff[j, k]
                val = (s / p) ** beta
                mat[i, j] = val
                mat[j, i] = val
            mat[i, i] += alpha
        wts = np.linalg.solve(mat, np.ones(n))
        tot = wts.sum()
        wts = np.ones(n) if not abs(tot) > 1e-12 else wts / tot
        best_lab = votes[0]
        best_s = -np.inf
        for i in range(n):
            seen = False
            for j in range(i):
                if votes[j] == votes[i]:
                    seen = True
                    break
            if seen:
                continue
            s = 0.0
            for j in range(i, n):
                if votes[j] == votes[i]:
                    s += wts[j]
            if s > best_s + 1e-12:
                best_s, best_lab = s, votes[i]
        out[v] = best_lab


_KERNELS: dict[str, Any] = {}


def _threads() -> int:
    env = os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    from weeke_pipeline.workers import usable_cpus

    return usable_cpus()


def _kernel(name: str) -> Any:
    if name not in _KERNELS:
        if name == "mode":
            _KERNELS[name] = _compile(_mode_rows_py)
        else:
            # serial kernel, run on chunks in threads (nogil): numba's parallel=True compiles
            # 3x slower (26 s vs 9 s on this machine), paid by every fresh installation
            _KERNELS[name] = _compile(_jlf_py)
    return _KERNELS[name]


# --------------------------------------------------------------------------- fusion
def majority_vote(labels: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Fused labels by majority voting (plurality; ties to the earliest atlas's label).

    Only the disagreement voxels are voted; elsewhere the common label is copied.
    """
    stack = labels if isinstance(labels, np.ndarray) and labels.ndim >= 2 and \
        labels.dtype == np.int32 else stack_labels(list(labels))
    fused = stack[0].copy()
    dis = disagreement(stack)
    if dis.any():
        votes = np.ascontiguousarray(stack[:, dis].T)
        fused[dis] = _kernel("mode")(votes, np.ones(stack.shape[0]))
    return fused


def joint_label_fusion(target: np.ndarray, atlas_images: Sequence[np.ndarray],
                       labels: Sequence[np.ndarray] | np.ndarray, *,
                       patch_radius: int = DEFAULT_PATCH_RADIUS,
                       search_radius: int = DEFAULT_SEARCH_RADIUS,
                       beta: float = DEFAULT_BETA, alpha: float = DEFAULT_ALPHA,
                       threads: int | None = None) -> np.ndarray:
    """Fused labels by joint label fusion (Wang et al. 2013) on the disagreement voxels.

    ``target``: subject T2w; ``atlas_images``: each atlas's T2w on the subject grid;
    ``labels``: each atlas's labels on the subject grid. Voxels where all atlases agree keep
    that label. Deterministic (no random sampling; float64 arithmetic; each voxel is
    computed alone, so the thread count does not change the result). ``threads``: default
    the usable CPUs (ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS when set, as for registration).
    """
    from scipy import ndimage

    stack = labels if isinstance(labels, np.ndarray) and labels.ndim >= 2 and \
        labels.dtype == np.int32 else stack_labels(list(labels))
    n = stack.shape[0]
    if len(atlas_images) != n:
        raise ValueError(f"{len(atlas_images)} atlas images for {n} label maps")
    target = np.asarray(target)
    for i, img in enumerate(atlas_images):
        if np.shape(img) != target.shape:
            raise ValueError(f"atlas image {i + 1} has shape {np.shape(img)}, not the target's"
                             f" {target.shape}")
    if stack.shape[1:] != target.shape:
        raise ValueError(f"label maps have shape {stack.shape[1:]}, target {target.shape}")
    if patch_radius < 0 or search_radius < 0:
        raise ValueError("patch and search radius must be >= 0")
    fused = stack[0].copy()
    dis = disagreement(stack)
    if not dis.any():
        return fused
    if n == 1:
        return fused
    pad = patch_radius + search_radius
    box = _box(dis, 0)
    # crop to the disagreement voxels' box plus the reach of patch + search (edge-padded)
    lo = [s.start for s in box]
    hi = [s.stop for s in box]
    widths = [(max(0, pad - lo[a]), max(0, hi[a] + pad - target.shape[a]))
              for a in range(3)]
    ext = tuple(slice(max(0, lo[a] - pad), min(target.shape[a], hi[a] + pad)) for a in range(3))

    def crop(a: np.ndarray) -> np.ndarray:
        return np.pad(np.asarray(a)[ext], widths, mode="edge")

    tgt = crop(target).astype(np.float64)
    atl = np.stack([crop(a).astype(np.float64) for a in atlas_images])
    lab = np.stack([crop(stack[i]) for i in range(n)]).astype(np.int32)
    size = 2 * patch_radius + 1
    amean = np.stack([ndimage.uniform_filter(a, size, mode="nearest") for a in atl])
    asq = np.stack([ndimage.uniform_filter(a * a, size, mode="nearest") for a in atl])
    astd = np.sqrt(np.maximum(asq - amean * amean, 0.0))
    del asq
    idx = np.argwhere(dis[box])  # in box coordinates
    coords = (idx + pad).astype(np.int64)  # crop coordinates (box starts at pad)
    out = np.empty(coords.shape[0], dtype=np.int32)
    kernel = _kernel("jlf")
    args = (int(patch_radius), int(search_radius), float(beta), float(alpha))
    chunks = np.array_split(np.arange(coords.shape[0]), max(1, min(threads or _threads(),
                                                                  coords.shape[0] // 256 or 1)))
    if len(chunks) == 1:
        kernel(tgt, atl, amean, astd, lab, coords, *args, out)
    else:  # the kernel releases the GIL: threads share the arrays without copies
        from concurrent.futures import ThreadPoolExecutor

        def run(idx: np.ndarray) -> None:
            part = np.empty(idx.size, dtype=np.int32)
            kernel(tgt, atl, amean, astd, lab, np.ascontiguousarray(coords[idx]), *args, part)
            out[idx] = part

        with ThreadPoolExecutor(len(chunks)) as pool:
            list(pool.map(run, chunks))
    sub = fused[box]
    sub[dis[box]] = out
    fused[box] = sub
    return fused


# --------------------------------------------------------------------------- agreement
def voxel_agreement(stack: np.ndarray, fused: np.ndarray) -> np.ndarray:
    """a(x) = fraction of atlases whose label equals the fused label (float32)."""
    return (stack == fused[None]).mean(axis=0, dtype=np.float64).astype(np.float32)


def region_agreement(stack: np.ndarray, fused: np.ndarray,
                     labels: Sequence[int] | None = None) -> dict[int, dict[str, float]]:
    """Per label k of ``fused``: ``agreement`` (mean voxel agreement over F = k) and
    ``pairwise_dice`` (mean Dice of L_i = k vs L_j = k over atlas pairs; NaN with one atlas
    or when every atlas lacks k)."""
    n = stack.shape[0]
    sel = (stack != 0).any(axis=0) | (fused != 0)
    st = stack[:, sel].astype(np.int64)
    fu = fused[sel].astype(np.int64)
    k = int(max(st.max(initial=0), fu.max(initial=0))) + 1
    if labels is None:
        labels = [int(v) for v in np.unique(np.concatenate([np.unique(st), np.unique(fu)]))
                  if v != 0]
    agree = (st == fu[None]).mean(axis=0)
    count = np.bincount(fu, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        region_agree = np.bincount(fu, weights=agree, minlength=k) / count
    sizes = [np.bincount(st[i], minlength=k) for i in range(n)]
    dsum = np.zeros(k)
    dcnt = np.zeros(k)
    for i in range(n):
        for j in range(i + 1, n):
            same = st[i] == st[j]
            inter = np.bincount(st[i][same], minlength=k)
            denom = sizes[i] + sizes[j]
            ok = denom > 0
            dsum[ok] += 2.0 * inter[ok] / denom[ok]
            dcnt[ok] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        pdice = np.where(dcnt > 0, dsum / np.maximum(dcnt, 1), np.nan)
    out: dict[int, dict[str, float]] = {}
    for lab in labels:
        lab = int(lab)
        out[lab] = {"agreement": float(region_agree[lab]) if lab < k and count[lab] else
                    float("nan"),
                    "pairwise_dice": float(pdice[lab]) if lab < k else float("nan")}
    return out


# --------------------------------------------------------------------------- files
@dataclass
class FusionResult:
    """What :func:`fuse_files` wrote and measured."""

    labels: str
    brain_mask: str
    agreement_map: str
    confidence: str
    seconds: float
    disagreement_voxels: int
    summary: dict[str, Any] = field(default_factory=dict)


def fuse_files(t2w: str | os.PathLike[str], atlas_labels: Sequence[str | os.PathLike[str]],
               out_dir: str | os.PathLike[str], *,
               atlas_images: Sequence[str | os.PathLike[str]] | None = None,
               brain_masks: Sequence[str | os.PathLike[str]] | None = None,
               method: str = "jlf", atlas_names: Sequence[str] | None = None,
               region_names: Mapping[int, str] | None = None,
               patch_radius: int = DEFAULT_PATCH_RADIUS,
               search_radius: int = DEFAULT_SEARCH_RADIUS,
               beta: float = DEFAULT_BETA, alpha: float = DEFAULT_ALPHA) -> FusionResult:
    """Fuse atlas label maps on the subject grid and write the results into ``out_dir``.

    Files: ``desc-fused_dseg.nii.gz`` (labels, the first atlas's integer type),
    ``desc-brain_mask.nii.gz`` (voxels inside at least half of the atlases' brain masks),
    ``desc-agreement_probseg.nii.gz`` (voxel agreement a(x), 0 outside the brain) and
    ``label_confidence.json`` (method, atlases, per-region agreement and pairwise Dice).
    """
    import time

    import nibabel as nib

    from weeke_pipeline.nifti import save_nifti

    if method not in METHODS:
        raise ValueError(f"label fusion method {method!r} not one of {', '.join(METHODS)}")
    if not atlas_labels:
        raise ValueError("label fusion needs at least one atlas label map")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_img = nib.load(os.fspath(t2w))
    grid = t_img.affine

    def load(path: str | os.PathLike[str], what: str) -> np.ndarray:
        try:
            img = nib.load(os.fspath(path))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read {what}: {exc}") from None
        arr = np.asanyarray(img.dataobj)
        if arr.shape[:3] != t_img.shape[:3] or not np.allclose(img.affine, grid, atol=1e-3):
            raise ValueError(f"{path}: {what} is not on the subject T2w grid")
        return arr.reshape(arr.shape[:3])

    t0 = time.perf_counter()
    lab_arrays = [load(p, "atlas labels") for p in atlas_labels]
    dtype = lab_arrays[0].dtype
    stack = stack_labels(lab_arrays)
    del lab_arrays
    n = stack.shape[0]
    dis = int(disagreement(stack).sum()) if n > 1 else 0
    if method == "jlf" and n > 1:
        if not atlas_images or len(atlas_images) != n:
            raise ValueError("joint label fusion needs each atlas's T2w on the subject grid")
        target = np.asanyarray(t_img.dataobj).reshape(t_img.shape[:3]).astype(np.float32)
        images = [load(p, "atlas T2w").astype(np.float32) for p in atlas_images]
        fused = joint_label_fusion(target, images, stack, patch_radius=patch_radius,
                                   search_radius=search_radius, beta=beta, alpha=alpha)
        del images
    else:
        fused = majority_vote(stack)
    seconds = time.perf_counter() - t0
    labels_path = out / "desc-fused_dseg.nii.gz"
    save_nifti(fused.astype(dtype), grid, labels_path, descrip=f"weeke {method} fusion")
    if brain_masks:
        masks = np.stack([load(p, "atlas brain mask") > 0 for p in brain_masks])
        brain = masks.mean(axis=0) >= 0.5
    else:
        brain = fused > 0
    mask_path = out / "desc-brain_mask.nii.gz"
    save_nifti(brain.astype(np.uint8), grid, mask_path, descrip="brain mask, atlas majority")
    agree = voxel_agreement(stack, fused)
    agree[~(brain | (fused > 0))] = 0.0
    agree_path = out / "desc-agreement_probseg.nii.gz"
    save_nifti(agree, grid, agree_path, descrip="fraction of atlases agreeing")
    regions = region_agreement(stack, fused)
    vox = float(abs(np.linalg.det(grid[:3, :3])))
    counts = np.bincount(fused.ravel().astype(np.int64))
    labelled = fused > 0
    summary = {
        "method": method, "n_atlases": n,
        "atlases": list(atlas_names) if atlas_names else [Path(p).name for p in atlas_labels],
        "parameters": ({"patch_radius": patch_radius, "search_radius": search_radius,
                        "beta": beta, "alpha": alpha} if method == "jlf" else {}),
        "brain_agreement": float(agree[labelled].mean()) if labelled.any() else float("nan"),
        "disagreement_fraction": (float(dis / max(int(labelled.sum()), 1))),
        "disagreement_voxels": dis,
        "seconds": round(seconds, 3),
        "regions": {str(k): {"name": (region_names or {}).get(k, str(k)),
                             "agreement": v["agreement"], "pairwise_dice": v["pairwise_dice"],
                             "volume_mm3": float(counts[k] * vox) if k < counts.size else 0.0}
                    for k, v in sorted(regions.items())},
    }
    conf_path = out / "label_confidence.json"
    conf_path.write_text(json.dumps(summary, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    return FusionResult(str(labels_path), str(mask_path), str(agree_path), str(conf_path),
                        seconds, dis, summary)


# --------------------------------------------------------------------------- metrics rows
#: metrics-table names of the per-region agreement (a label confidence), multi-atlas runs only
CONFIDENCE_METRICS = {"agreement": "label_agreement", "pairwise_dice": "label_pairwise_dice"}


def confidence_dictionary(doc: Mapping[str, Any] | None = None) -> dict[str, dict[str, str]]:
    """Data-dictionary entries of the agreement metrics (metrics JSON sidecar)."""
    n = (doc or {}).get("n_atlases", "n")
    method = (doc or {}).get("method", "")
    return {
        "label_agreement": {
            "LongName": "Multi-atlas label agreement", "Units": "fraction",
            "Description": f"Mean, over the region's voxels in the fused labels ({method} of"
                           f" {n} atlases), of the fraction of atlases whose own propagated"
                           " label is the fused label; in [1/n, 1], 1 = every atlas agrees."
                           " A label confidence: low values mean the atlases disagree here."},
        "label_pairwise_dice": {
            "LongName": "Multi-atlas pairwise Dice", "Units": "dimensionless",
            "Description": "Mean Dice 2|A_i & A_j|/(|A_i|+|A_j|) of the region between every"
                           f" pair of the {n} individually propagated atlases."},
    }


def append_confidence_rows(table: Any, doc: Mapping[str, Any]) -> Any:
    """The metrics table plus ``label_agreement``/``label_pairwise_dice`` rows for every region
    of the table that the label-confidence JSON ``doc`` has (same long-table columns)."""
    import pandas as pd

    regions = doc.get("regions", {})
    base = table[table["metric"] == "volume_mm3"][["subject", "region", "hemisphere", "label"]]
    rows = []
    for rec in base.itertuples(index=False):
        conf = regions.get(str(rec.label))
        for key, metric in CONFIDENCE_METRICS.items():
            value = float("nan") if conf is None or conf.get(key) is None else \
                float(conf[key])
            rows.append({"subject": rec.subject, "region": rec.region,
                         "hemisphere": rec.hemisphere, "label": rec.label, "metric": metric,
                         "value": value})
    if not rows:
        return table
    return pd.concat([table, pd.DataFrame(rows, columns=list(table.columns))],
                     ignore_index=True)
