"""Registration presets on real neonatal contrast: ``fast`` vs ``precise`` (accuracy and time).

Real images only (``../shared/data/atlases``; ``WEEKE_SHARED_DATA`` elsewhere). The atlas is
the Serag et al. 2012 40-week T2w template with its brain mask and Draw-EM tissue map,
registered with :func:`weeke_pipeline.registration.atlas_to_subject` (as the pipeline does) to:

- ``serag36``: the 36-week template (real anatomy 4 weeks younger; no tissue map exists at 36
  weeks, so the score is the Dice of the warped atlas brain mask with the 36-week brain
  (template > 0) and the T2w correlation inside it);
- ``deformed40-s11``/``-s12``: the 40-week template through a known affine + smooth warp
  (:func:`weeke_pipeline.synth.random_geometry`, warp x 1.5): real contrast with known truth,
  scored by the mean tissue Dice of the warped tissue map against the deformed one (CSF,
  cortex, white matter, ventricles, cerebellum + brainstem, deep grey);
- ``unc``: the UNC/BCP neonatal T2w template (another population, another scanner), scored
  by the brain-mask Dice.

Both presets run interleaved in one process (the machine is shared: compare the ratios, not
the absolute seconds).

    python benchmarks/bench_presets_real.py [--mm 1.0] [--subjects serag36,deformed40-s11,unc]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate_qc_real import SERAG, SHARED, UNC, _down, deform

CLASSES = (1, 2, 3, 5, 6, 7)  # Draw-EM: CSF, cortex, WM, ventricles, cerebellum+brainstem, deep GM


def main(argv: list[str] | None = None) -> int:
    import ants

    from weeke_pipeline.imaging import registration as R

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mm", type=float, default=1.0, help="isotropic voxel size (0 = native)")
    ap.add_argument("--subjects", default="serag36,deformed40-s11,deformed40-s12,unc")
    ap.add_argument("--presets", default="fast,precise")
    a = ap.parse_args(argv)
    if not (SHARED / SERAG).is_dir():
        print(f"real templates not found under {SHARED} (set WEEKE_SHARED_DATA)")
        return 1
    d = SHARED / SERAG
    t40 = _down(ants.image_read(str(d / "template-40.nii.gz")), a.mm)
    mask = _down(ants.image_read(str(d / "mask-40.nii.gz")), a.mm, labels=True)
    tissues = _down(ants.image_read(str(d / "tissues-40.nii.gz")), a.mm, labels=True)
    subjects: dict[str, tuple[object, object | None]] = {}
    for s in a.subjects.split(","):
        if s == "serag36":
            subjects[s] = (_down(ants.image_read(str(d / "template-36.nii.gz")), a.mm), None)
        elif s.startswith("deformed40-s"):
            seed = int(s.rsplit("s", 1)[1])
            subjects[s] = (deform(t40, seed, 1), deform(tissues, seed, 0))
        elif s == "unc":
            subjects[s] = (_down(ants.image_read(str(SHARED / UNC)), a.mm), None)
    out = Path(tempfile.mkdtemp(prefix="weeke-presets-"))
    rows = []
    for name, (img, truth) in subjects.items():
        for preset in a.presets.split(","):
            t0 = time.perf_counter()
            res = R.atlas_to_subject(img, t40, mask, out / f"{name}_{preset}_",
                                     atlas_labels=tissues, preset=preset)
            sec = time.perf_counter() - t0
            got = ants.image_read(res.labels).numpy().astype(int)
            brain = ants.image_read(res.brain_mask).numpy().astype(int)
            ref_brain = (img.numpy() > 0).astype(int)
            row = {"subject": name, "preset": preset, "seconds": sec,
                   "reg_seconds": res.registration.seconds,
                   "mask_dice": R.dice(ref_brain, brain, [1])[1],
                   "corr": res.registration.similarity_after.get("correlation", float("nan"))}
            if truth is not None:
                tru = np.rint(truth.numpy()).astype(int)
                per = R.dice(tru, got, list(CLASSES))
                row["tissue_dice"] = float(np.mean(list(per.values())))
                row["per_class"] = per
            rows.append(row)
            print(f"{name:16s} {preset:8s} {sec:6.1f} s  mask Dice {row['mask_dice']:.3f}"
                  f"  tissue Dice {row.get('tissue_dice', float('nan')):.3f}"
                  f"  corr {row['corr']:.3f}", flush=True)
    print(f"\n| subject ({a.mm:g} mm) | preset | seconds | brain-mask Dice | mean tissue Dice"
          " | T2w correlation |\n|---|---|---|---|---|---|")
    for r in rows:
        td = f"{r['tissue_dice']:.3f}" if "tissue_dice" in r else "n/a"
        print(f"| {r['subject']} | {r['preset']} | {r['seconds']:.0f} | {r['mask_dice']:.3f}"
              f" | {td} | {r['corr']:.3f} |")
    by = {(r["subject"], r["preset"]): r for r in rows}
    print("\nprecise / fast, same run:")
    for name in subjects:
        f, p = by.get((name, "fast")), by.get((name, "precise"))
        if f and p:
            print(f"  {name}: time x{p['seconds'] / f['seconds']:.1f}, mask Dice"
                  f" {p['mask_dice'] - f['mask_dice']:+.3f}"
                  + (f", tissue Dice {p['tissue_dice'] - f['tissue_dice']:+.3f}"
                     if "tissue_dice" in f else ""))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "2")
    sys.exit(main())
