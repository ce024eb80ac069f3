"""Benchmark: tensor fit plus maps for one synthetic subject (goal: under 10 s on 2 cores).

Generates one subject (``weeke synth``, seed 1, mixed injuries), converts its DWI with dcm2niix,
then times :func:`weeke_pipeline.imaging.dti.run_dti` (mask, fit, maps, gradient check) on the
native DWI
grid (2.5 x 2.5 x 3 mm) and on the same data resampled to 2 mm isotropic (the voxel count of a
2 mm neonatal protocol). Baselines measured in the same run: dipy OLS (the fastest fit) and
dipy's per-voxel loop (``TensorModel.fit`` one voxel at a time, on a sample of voxels, scaled).
Prints ratios, and the accuracy per region against the truth on the DWI grid.

    python benchmarks/bench_dti.py [--denoise]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from weeke_pipeline.atlas.regions import BY_INDEX
from weeke_pipeline.imaging import dti
from weeke_pipeline.synth import study as synth

GOAL_S = 10.0


def _time(fn, repeat: int = 2) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def _to_2mm(d: dti.DWI) -> dti.DWI:
    z = d.zooms / 2.0
    data = np.stack([ndimage.zoom(d.data[..., i], z, order=1) for i in range(d.data.shape[3])],
                    axis=-1)
    aff = d.affine.copy()
    aff[:3, :3] = d.affine[:3, :3] / z
    return dti.DWI(data.astype(np.float32), aff, d.bvals, d.bvecs, d.name)


def _per_voxel_loop(d: dti.DWI, mask: np.ndarray, n: int = 2000) -> float:
    """Seconds for dipy's fit called once per voxel, on ``n`` voxels, scaled to the mask."""
    from dipy.reconst.dti import TensorModel

    model = TensorModel(dti.gradient_table(d.bvals, d.bvecs), fit_method="WLS")
    vox = d.data[mask][:: max(1, int(mask.sum()) // n)][:n]
    t = time.perf_counter()
    for v in vox:
        model.fit(np.maximum(v, 1e-3))
    return (time.perf_counter() - t) * mask.sum() / len(vox)


def _accuracy(res: dti.DTIResult, truth: Path, sub: str, table: bool = True) -> None:
    import nibabel as nib

    dseg = np.asarray(nib.load(truth / f"{sub}_space-dwi_dseg.nii.gz").dataobj).astype(int)
    tfa = np.asarray(nib.load(truth / f"{sub}_space-dwi_desc-true_FA.nii.gz").dataobj)
    tmd = np.asarray(nib.load(truth / f"{sub}_space-dwi_desc-true_MD.nii.gz").dataobj, float)
    t2 = nib.load(truth / f"{sub}_dseg.nii.gz")
    ml = np.bincount(np.asarray(t2.dataobj).astype(int).ravel(), minlength=256) * float(
        np.prod(t2.header.get_zooms())) / 1000
    worst_fa = worst_md = (0.0, "")
    if table:
        print(f"  {'region':28s} {'mL':>6s} {'FA fit/true':>13s} {'err':>6s} {'MD fit/true':>11s} "
              f"{'err':>6s}")
    for lab in sorted(BY_INDEX):
        sel = (dseg == lab) & res.mask
        if ml[lab] <= 1.0 or not sel.any():
            continue
        f, g = res.maps.fa[sel].mean(), tfa[sel].mean()
        m, h = res.maps.md[sel].mean(), tmd[sel].mean()
        ef, em = 100 * (f / g - 1), 100 * (m / h - 1)
        r = BY_INDEX[lab]
        if r.tissue != "csf" and abs(ef) > abs(worst_fa[0]):
            worst_fa = (ef, r.name)
        if abs(em) > abs(worst_md[0]):
            worst_md = (em, r.name)
        if table:
            print(f"  {r.name:28s} {ml[lab]:6.1f} {f:6.3f}/{g:5.3f} {ef:+6.1f} {m:5.0f}/{h:5.0f} "
                  f"{em:+6.1f}")
    print(f"  worst FA (tissue): {worst_fa[0]:+.1f}% ({worst_fa[1]}); "
          f"worst MD: {worst_md[0]:+.1f}% ({worst_md[1]})")


def _dropout(d: dti.DWI, mask: np.ndarray) -> None:
    """Robustness: signal dropout (through-plane motion) in 3 slices of 2 volumes."""
    bad = d.data.copy()
    hit = [(3, 15), (3, 16), (8, 20)]
    for v, z in hit:
        bad[:, :, z, v] *= 0.4
    sl = np.zeros_like(mask)
    sl[:, :, [z for _, z in hit]] = True
    sl &= mask
    ref = dti.fit_tensor(d.data, d.bvals, d.bvecs, mask, "WLS").fa
    for method in ("WLS", "RWLS"):
        fa = dti.fit_tensor(bad, d.bvals, d.bvecs, mask, method).fa
        print(f"  dropout in 3 slices x 2 volumes, {method}: mean |FA error| in those slices "
              f"{np.abs(fa[sl] - ref[sl]).mean():.3f}")


def main() -> None:
    import dcm2niix

    ap = argparse.ArgumentParser()
    ap.add_argument("--denoise", action="store_true", help="also time and score MPPCA")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synth.generate_subject(root, "01", seed=1, number=1, pattern="mixed")
        series = next((root / "sub-01" / "dicom").glob("*_DWI_*DIR_B1000"))
        subprocess.run([dcm2niix.bin, "-z", "n", "-b", "n", "-f", "dwi", "-o", tmp, str(series)],
                       capture_output=True, check=True)
        d = dti.load_dwi(root / "dwi.nii")
        for label, dwi in (("native 2.5x2.5x3 mm", d), ("2 mm isotropic", _to_2mm(d))):
            mask = dti.brain_mask(dwi.data, dwi.bvals)
            print(f"\n{label}: grid {dwi.data.shape}, {int(mask.sum())} brain voxels")
            t_ols, _ = _time(lambda dwi=dwi, mask=mask: dti.fit_tensor(
                dwi.data, dwi.bvals, dwi.bvecs, mask, "OLS"))
            t_wls, _ = _time(lambda dwi=dwi, mask=mask: dti.fit_tensor(
                dwi.data, dwi.bvals, dwi.bvecs, mask, "WLS"))
            t_rwls, _ = _time(lambda dwi=dwi, mask=mask: dti.fit_tensor(
                dwi.data, dwi.bvals, dwi.bvecs, mask, "RWLS"), repeat=1)
            t_all, res = _time(lambda dwi=dwi: dti.run_dti(dwi))
            t_loop = _per_voxel_loop(dwi, mask)
            print(f"  fit OLS {t_ols:.2f} s | WLS {t_wls:.2f} s (x{t_wls / t_ols:.1f} OLS) | "
                  f"RWLS {t_rwls:.2f} s (x{t_rwls / t_ols:.1f} OLS)")
            print(f"  per-voxel loop (WLS, extrapolated) {t_loop:.1f} s: vectorised WLS is "
                  f"x{t_loop / t_wls:.0f} faster")
            print(f"  whole step (mask + WLS + maps + 24-variant gradient check): {t_all:.2f} s; "
                  f"ratio to the {GOAL_S:.0f} s goal {t_all / GOAL_S:.2f} "
                  f"({'met' if t_all < GOAL_S else 'NOT met'})")
            if args.denoise:
                t_den, res_d = _time(lambda dwi=dwi: dti.run_dti(dwi, denoising="mppca"), 1)
                print(f"  with MPPCA denoising: {t_den:.2f} s (x{t_den / t_all:.1f})")
            if dwi is d:
                truth = root / "sub-01" / "truth"
                print("  accuracy, default (WLS, no denoising):")
                _accuracy(res, truth, "sub-01")
                print("  accuracy, RWLS:")
                _accuracy(dti.run_dti(dwi, fit_method="RWLS", check_gradients=False), truth,
                          "sub-01", table=False)
                if args.denoise:
                    print("  accuracy, WLS + MPPCA:")
                    _accuracy(res_d, truth, "sub-01", table=False)
                _dropout(dwi, mask)


if __name__ == "__main__":
    main()
