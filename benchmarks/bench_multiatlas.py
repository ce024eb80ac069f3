"""Benchmark: multi-atlas segmentation, 5 atlases, one 1 mm subject (``weeke run``).

Goals (issue 12, Performance), measured in this one run:
- the whole run with 5 atlases (DICOM -> labels fused from 5 atlases, metrics, QC) under
  5 minutes wall on 2 cores (MultiProc, n_procs 2, preset ``fast``);
- label fusion itself (the ``fusion`` node's joint label fusion) no longer than one atlas
  registration (the mean ``antsRegistration`` time of the same run).
Also printed: the same run with one atlas (baseline, same machine, same minute), the 5-atlas /
1-atlas wall ratio, and majority voting's time on the same propagated labels.

Atlases: five phantom variants (:func:`weeke_pipeline.atlas.variants.phantom_variant`, the
phantom atlas under small random affines; the timing does not depend on whose labels they
are). Subject: ``weeke synth --resolution 1`` (as ``bench_pipeline.py``).

    python benchmarks/bench_multiatlas.py [--data DIR] [--nprocs 2] [--atlases 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import make_subject

GOAL_WALL_S = 300.0
GOAL_FUSION_RATIO = 1.0


def _run(data: Path, out: Path, atlases: list[str], nprocs: int, preset: str) -> float:
    from weeke_pipeline.config import RunConfig
    from weeke_pipeline.workflows.pipeline import run_pipeline

    if out.exists():
        shutil.rmtree(out)
    cfg = RunConfig(input_dir=str(data), output_dir=str(out),
                    participants=str(data / "participants.tsv"), preset=preset,
                    plugin="MultiProc", plugin_args={"n_procs": nprocs})
    if len(atlases) > 1:
        cfg.atlases = atlases
    elif atlases:
        cfg.atlas = atlases[0]
    t0 = time.perf_counter()
    summary = run_pipeline(cfg)
    wall = time.perf_counter() - t0
    if not summary.ok:
        raise SystemExit(f"pipeline failed: {summary.errors} {summary.ingest_failures}")
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "weeke-bench-1mm")
    ap.add_argument("--nprocs", type=int, default=2)
    ap.add_argument("--atlases", type=int, default=5)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--keep", type=Path, help="keep the outputs here")
    args = ap.parse_args()
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", str(args.nprocs))
    from weeke_pipeline.atlas.variants import phantom_variant

    data = make_subject(args.data)
    root = args.keep or Path(tempfile.mkdtemp(prefix="weeke-bench-multi-"))
    atl_dir = root / "atlases"
    atlases = [str(phantom_variant(atl_dir / f"v{k}", f"phantom-variant-{k}", 100 + k).path)
               for k in range(args.atlases)]
    load0 = os.getloadavg()[0]
    wall1 = _run(data, root / "one", atlases[:1], args.nprocs, args.preset)
    wall_n = _run(data, root / "multi", atlases, args.nprocs, args.preset)
    deriv = root / "multi" / "derivatives" / "weeke"
    atlas_regs = [float(json.loads(js.read_text())["seconds"])
                  for js in sorted(deriv.rglob("xfm/*_to_atlas-*_registration.json"))]
    conf = json.loads(next(deriv.rglob("*_desc-atlas_labelconfidence.json")).read_text())
    fusion_s = float(conf["seconds"])
    reg_mean = sum(atlas_regs) / max(len(atlas_regs), 1)

    # majority voting on the same propagated labels (the fusion node's inputs)
    import nibabel as nib
    import numpy as np

    from weeke_pipeline.imaging import label_fusion as lf

    labs = sorted((root / "multi" / "work").rglob("atlas_reg_*/from-T2w_to-atlas_desc-atlas_dseg"
                                                  ".nii.gz"))
    stack = lf.stack_labels([np.asanyarray(nib.load(p).dataobj) for p in labs])
    t0 = time.perf_counter()
    lf.majority_vote(stack)
    major_s = time.perf_counter() - t0
    print(f"\n1 mm synthetic subject, {args.atlases} atlases, preset {args.preset}, MultiProc "
          f"n_procs={args.nprocs}, load average before {load0:.1f} (shared machine: noisy)")
    print(f"disagreement voxels: {conf['disagreement_voxels']} "
          f"({conf['disagreement_fraction']:.1%} of the labelled voxels)")
    print("atlas registrations (antsRegistration): "
          + ", ".join(f"{v:.1f}" for v in atlas_regs) + " s")
    rows = [
        ("wall, 1 atlas (baseline)", f"{wall1:.1f} s", "", True),
        (f"wall, {args.atlases} atlases", f"{wall_n:.1f} s", f"< {GOAL_WALL_S:.0f} s",
         wall_n < GOAL_WALL_S),
        (f"wall {args.atlases} atlases / 1 atlas", f"{wall_n / wall1:.2f}x", "", True),
        ("joint label fusion", f"{fusion_s:.1f} s", "", True),
        ("fusion / one registration", f"{fusion_s / reg_mean:.2f}x",
         f"<= {GOAL_FUSION_RATIO:g}x", fusion_s / reg_mean <= GOAL_FUSION_RATIO),
        ("majority voting / one registration", f"{major_s / reg_mean:.3f}x", "", True),
    ]
    print()
    for what, value, goal, ok in rows:
        print(f"{what:<38}{value:>10}  {goal:<9} {'' if not goal else ('ok' if ok else 'MISSED')}")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(ok for *_, ok in rows) else 2


if __name__ == "__main__":
    sys.exit(main())
