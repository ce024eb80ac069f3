"""Accuracy of multi-atlas segmentation on real neonatal contrast (leave-one-out style).

The only real neonatal labels available here are the Draw-EM 9-class tissue map of the Serag
et al. 40-week T2 template (``../shared/data/atlases/serag2012_neonatal``). From it this script
makes ``--copies`` deformed copies (random affine: rotation <= 6 deg, scale 0.9-1.1, shift
<= 4 mm; plus a smooth random displacement at two scales, up to ~5 mm and ~2 mm; a smooth
intensity bias, a random gamma and Rician-like noise), each with its labels carried along
(nearest neighbour), written as atlas bundles. For each fold one copy, resampled onto a 1 mm
grid, is the subject and the next ``--atlases`` copies are the atlases. Each atlas is
registered to the subject (``weeke_pipeline.imaging.registration.atlas_to_subject``, preset
``--preset``) and its labels and T2w come back onto the subject grid; then Dice against the
subject's true labels of: each atlas alone (mean over atlases), majority voting and joint label
fusion (this package's, restricted to the disagreement voxels), optionally antspyx's
``joint_label_fusion`` restricted the same way (``--ants-jlf``).

Labels: CSF 1, cortical grey matter 2, white matter 3 (with Draw-EM's high/low-intensity WM
classes), and split at the midline: ventricles 51/52, cerebellum + brainstem 61/62, deep grey
matter 71/72 (left/right). Caveat: the copies share one anatomy and contrast (a deformed copy
differs from another by a smooth deformation only), so this measures how fusion repairs
registration error, not anatomical variability between real infants.

    python benchmarks/eval_multiatlas_real.py [--data DIR] [--folds 2] [--atlases 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

SERAG = Path(__file__).resolve().parents[2] / "shared" / "data" / "atlases" / "serag2012_neonatal"
NAMES = {1: "csf", 2: "cortex", 3: "white_matter", 51: "ventricle_L", 52: "ventricle_R",
         61: "cerebellum_brainstem_L", 62: "cerebellum_brainstem_R", 71: "deep_gm_L",
         72: "deep_gm_R"}
SMALL = (51, 52, 61, 62, 71, 72)


def _serag() -> Path:
    env = os.environ.get("WEEKE_SHARED_DATA")
    base = Path(env) / "atlases" / "serag2012_neonatal" if env else SERAG
    if not (base / "tissues-40.nii.gz").is_file():
        sys.exit(f"skipped: real templates not found at {base} (needs ../shared/data)")
    return base


def base_labels(tissue: np.ndarray) -> np.ndarray:
    """Draw-EM 9 classes -> the evaluation labels above (midline = middle of the x axis)."""
    t = tissue.astype(np.int32)
    out = np.zeros_like(t)
    out[t == 1] = 1
    out[t == 2] = 2
    out[np.isin(t, (3, 8, 9))] = 3
    left = np.zeros(t.shape, dtype=bool)
    left[: t.shape[0] // 2] = True  # RAS check below flips if needed
    for cls in (5, 6, 7):
        out[(t == cls) & left] = cls * 10 + 1
        out[(t == cls) & ~left] = cls * 10 + 2
    return out


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma_vox: float,
                  amp_vox: float) -> np.ndarray:
    from scipy import ndimage

    f = np.stack([ndimage.gaussian_filter(rng.standard_normal(shape), sigma_vox)
                  for _ in range(3)])
    return f * (amp_vox / max(np.abs(f).max(), 1e-9))


def deformed_copy(t2: np.ndarray, lab: np.ndarray, mask: np.ndarray, affine: np.ndarray,
                  seed: int, out_shape: tuple[int, ...] | None = None,
                  out_affine: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """One random deformed copy (image, labels, mask) on ``out_affine``'s grid."""
    from scipy import ndimage
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    vox = float(abs(np.linalg.det(affine[:3, :3])) ** (1 / 3))
    out_shape = out_shape or t2.shape
    out_affine = affine if out_affine is None else out_affine
    rot = Rotation.from_euler("xyz", rng.uniform(-6, 6, 3), degrees=True).as_matrix()
    scale = np.diag(rng.uniform(0.9, 1.1, 3))
    lin = rot @ scale
    shift = rng.uniform(-4, 4, 3)
    # output voxel -> world -> (inverse random affine about the brain centre) -> input voxel
    centre_vox = np.array(ndimage.center_of_mass(mask > 0))
    centre = affine[:3, :3] @ centre_vox + affine[:3, 3]
    idx = np.indices(out_shape, dtype=np.float64).reshape(3, -1)
    world = out_affine[:3, :3] @ idx + out_affine[:3, 3:4]
    src_world = np.linalg.solve(lin, world - centre[:, None] - shift[:, None]) + centre[:, None]
    inv = np.linalg.inv(affine)
    src = inv[:3, :3] @ src_world + inv[:3, 3:4]
    disp = (_smooth_field(rng, out_shape, 10.0 / vox, 5.0 / vox)
            + _smooth_field(rng, out_shape, 4.0 / vox, 2.0 / vox))
    src = src.reshape(3, *out_shape) + disp
    img = ndimage.map_coordinates(t2.astype(np.float64), src, order=1, mode="constant")
    labs = ndimage.map_coordinates(lab, src, order=0, mode="constant").astype(np.int16)
    msk = ndimage.map_coordinates(mask.astype(np.float32), src, order=1) >= 0.5
    # intensity: smooth multiplicative bias (+-10 %), gamma 0.9-1.1, noise 2 % of the max
    bias = 1 + _smooth_field(rng, out_shape, 30.0 / vox, 0.1)[0]
    top = np.percentile(img[msk], 99) if msk.any() else 1.0
    img = np.clip(img / top, 0, None) ** rng.uniform(0.9, 1.1) * top * bias
    noise = 0.02 * top
    img = np.hypot(img + rng.normal(0, noise, img.shape), rng.normal(0, noise, img.shape))
    return img.astype(np.float32), labs, msk.astype(np.uint8)


def make_data(data: Path, copies: int) -> list[Path]:
    """Atlas-bundle-like folders copy-<k>/ (T2w, brain_mask, dseg) and subject-<k>/ (1 mm)."""
    import nibabel as nib

    from weeke_pipeline.nifti import save_nifti

    src = _serag()
    t2i = nib.load(src / "template-40.nii.gz")
    t2 = t2i.get_fdata()
    aff = t2i.affine
    lab = base_labels(np.asarray(nib.load(src / "tissues-40.nii.gz").dataobj))
    if aff[0, 0] < 0:  # x increases to the left: swap the left/right codes
        for cls in (5, 6, 7):
            lab = np.where(lab == cls * 10 + 1, -1, lab)
            lab = np.where(lab == cls * 10 + 2, cls * 10 + 1, lab)
            lab = np.where(lab == -1, cls * 10 + 2, lab)
    mask = np.asarray(nib.load(src / "mask-40.nii.gz").dataobj) > 0
    mask |= lab > 0
    # subject grid: 1 mm, covering the template's field of view
    ext = np.array(t2.shape) * np.abs(np.diag(aff)[:3])
    sub_shape = tuple(int(np.ceil(e)) for e in ext)
    sub_aff = np.diag([np.sign(aff[0, 0]), np.sign(aff[1, 1]), np.sign(aff[2, 2]), 1.0])
    sub_aff[:3, 3] = aff[:3, 3]
    folders = []
    for k in range(copies):
        d = data / f"copy-{k}"
        if not (d / "dseg.nii.gz").is_file():
            img, labs, msk = deformed_copy(t2, lab, mask, aff, seed=1000 + k)
            save_nifti(img, aff, d / "T2w.nii.gz")
            save_nifti(labs, aff, d / "dseg.nii.gz")
            save_nifti(msk, aff, d / "brain_mask.nii.gz")
            simg, slab, _ = deformed_copy(t2, lab, mask, aff, seed=1000 + k,
                                          out_shape=sub_shape, out_affine=sub_aff)
            # the subject is not skull-stripped in real life: keep the template's whole field
            save_nifti(simg, sub_aff, d / "subject_T2w.nii.gz")
            save_nifti(slab, sub_aff, d / "subject_truth.nii.gz")
        folders.append(d)
    return folders


def register_atlas(subject: Path, atlas: Path, out: Path, preset: str) -> dict:
    """atlas -> subject: labels, T2w and brain mask on the subject grid (cached in ``out``)."""
    from weeke_pipeline.imaging import registration as reg

    done = out / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    out.mkdir(parents=True, exist_ok=True)
    res = reg.atlas_to_subject(str(subject), str(atlas / "T2w.nii.gz"),
                               str(atlas / "brain_mask.nii.gz"), str(out / "r_"),
                               atlas_labels=str(atlas / "dseg.nii.gz"), preset=preset,
                               n4_correct=False)
    r = res.registration
    reg.apply_transforms(str(atlas / "T2w.nii.gz"), str(subject), r.inverse_transforms,
                         r.inverse_invert, out=str(out / "atlas_T2w.nii.gz"))
    doc = {"labels": res.labels, "t2w": str(out / "atlas_T2w.nii.gz"),
           "mask": res.brain_mask, "seconds": r.seconds}
    done.write_text(json.dumps(doc))
    return doc


def dice_table(pred: np.ndarray, truth: np.ndarray) -> dict[int, float]:
    from weeke_pipeline.imaging.registration import dice

    return dice(pred, truth, list(NAMES))


def ants_jlf(target: Path, regs: list[dict], stack: np.ndarray, r: int, rs: int) -> np.ndarray:
    import ants

    from weeke_pipeline.imaging.label_fusion import disagreement

    t = ants.image_read(str(target))
    dis = disagreement(stack)
    mask = t.new_image_like(dis.astype("float32"))
    imgs = [ants.image_read(g["t2w"]) for g in regs]
    labs = [ants.image_read(g["labels"]) for g in regs]
    res = ants.joint_label_fusion(t, mask, imgs, beta=2, rad=[r] * 3, label_list=labs,
                                  rho=0.1, r_search=rs)
    fused = stack[0].copy()
    seg = res["segmentation"].numpy().astype(np.int32)
    fused[dis] = seg[dis]
    return fused


def main() -> int:
    import nibabel as nib

    from weeke_pipeline.imaging import label_fusion as lf

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/tmp/weeke-multiatlas-real"))
    ap.add_argument("--copies", type=int, default=7)
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--atlases", type=int, default=5)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--radii", default="1:2,2:3,1:1",
                    help="JLF patch:search radii to compare, comma separated")
    ap.add_argument("--ants-jlf", action="store_true", help="also antspyx joint_label_fusion")
    ap.add_argument("--json", type=Path, help="write the numbers here")
    a = ap.parse_args()
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "2")
    copies = make_data(a.data, max(a.copies, a.atlases + 1))
    radii = [tuple(int(v) for v in s.split(":")) for s in a.radii.split(",") if s]
    rows: dict[str, list[dict[int, float]]] = {}
    times: dict[str, list[float]] = {}
    for fold in range(a.folds):
        subj = copies[fold]
        atl = [copies[(fold + 1 + i) % len(copies)] for i in range(a.atlases)]
        target = subj / "subject_T2w.nii.gz"
        truth = np.asarray(nib.load(subj / "subject_truth.nii.gz").dataobj).astype(np.int32)
        regs = [register_atlas(target, at, a.data / f"reg-{a.preset}" / f"{subj.name}-{at.name}",
                               a.preset) for at in atl]
        times.setdefault("registration", []).extend(g["seconds"] for g in regs)
        stack = lf.stack_labels([np.asarray(nib.load(g["labels"]).dataobj) for g in regs])
        for i in range(a.atlases):
            rows.setdefault("single atlas", []).append(dice_table(stack[i], truth))
        t0 = time.perf_counter()
        mv = lf.majority_vote(stack)
        times.setdefault("majority", []).append(time.perf_counter() - t0)
        rows.setdefault("majority", []).append(dice_table(mv, truth))
        tgt = np.asarray(nib.load(target).dataobj).astype(np.float32)
        imgs = [np.asarray(nib.load(g["t2w"]).dataobj).astype(np.float32) for g in regs]
        lf.joint_label_fusion(tgt[:8, :8, :8], [i[:8, :8, :8] for i in imgs],
                              stack[:, :8, :8, :8])  # compile outside the timing
        for r, rs in radii:
            key = f"jlf r={r} search={rs}"
            t0 = time.perf_counter()
            fj = lf.joint_label_fusion(tgt, imgs, stack, patch_radius=r, search_radius=rs)
            times.setdefault(key, []).append(time.perf_counter() - t0)
            rows.setdefault(key, []).append(dice_table(fj, truth))
        if a.ants_jlf:
            key = "antspyx jlf r=1 search=2 (disagreement mask)"
            t0 = time.perf_counter()
            fa = ants_jlf(target, regs, stack, 1, 2)
            times.setdefault(key, []).append(time.perf_counter() - t0)
            rows.setdefault(key, []).append(dice_table(fa, truth))
        print(f"fold {fold}: disagreement voxels {int(lf.disagreement(stack).sum())} of "
              f"{int((stack > 0).any(axis=0).sum())} labelled", flush=True)
    reg_s = float(np.mean(times["registration"]))
    print(f"\npreset {a.preset}; mean registration {reg_s:.1f} s; {a.folds} folds x "
          f"{a.atlases} atlases (noisy timings: shared machine)\n")
    hdr = f"{'method':<44}" + "".join(f"{NAMES[k][:12]:>13}" for k in NAMES) + \
        f"{'mean small':>12}{'mean all':>10}{'s':>8}{'s/reg':>7}"
    print(hdr)
    out = {}
    for key, ds in rows.items():
        mean = {k: float(np.nanmean([d[k] for d in ds])) for k in NAMES}
        small = float(np.mean([mean[k] for k in SMALL]))
        allm = float(np.mean(list(mean.values())))
        sec = float(np.mean(times[key])) if key in times else float("nan")
        print(f"{key:<44}" + "".join(f"{mean[k]:>13.3f}" for k in NAMES)
              + f"{small:>12.3f}{allm:>10.3f}{sec:>8.2f}{sec / reg_s:>7.3f}")
        out[key] = {"dice": {NAMES[k]: v for k, v in mean.items()}, "mean_small": small,
                    "mean_all": allm, "seconds": sec, "seconds_per_registration": sec / reg_s}
    if a.json:
        a.json.write_text(json.dumps({"preset": a.preset, "registration_s": reg_s,
                                      "methods": out}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
