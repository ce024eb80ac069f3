"""``weeke synth``: synthetic neonatal subjects (DICOM + ground truth)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "generate synthetic 1-month neonatal subjects (DICOM series + ground truth)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--subjects", type=int, default=1, help="number of subjects (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    p.add_argument("--pattern", default="normal,bgt,watershed,mixed",
                   help="injury pattern(s), comma-separated and cycled over subjects: "
                        "normal, bgt, watershed, mixed (default: all four in turn)")
    p.add_argument("--directions", type=int, default=12,
                   help="diffusion directions at b=1000 (default 12)")
    p.add_argument("--resolution", type=float, default=None, metavar="MM",
                   help="isotropic T1w/T2w voxel size in mm (DWI: twice that) over the same "
                        "field of view; default: the clinical grids (1.2x1.2x2 mm, DWI "
                        "2.5x2.5x3 mm)")
    p.add_argument("--no-compress", action="store_true",
                   help="write uncompressed DICOM (default: RLE Lossless)")


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.errors import UsageError
    from weeke_pipeline.synth import study as synth

    patterns = [p.strip() for p in args.pattern.split(",") if p.strip()]
    bad = [p for p in patterns if p not in synth.PATTERNS]
    if bad or not patterns:
        raise UsageError(f"unknown pattern {bad[0] if bad else '(none)'!r}; "
                         f"choose from {', '.join(synth.PATTERNS)}")
    if args.subjects < 1:
        raise UsageError("--subjects must be at least 1")
    if args.directions < 3:
        raise UsageError("--directions must be at least 3")
    if args.resolution is not None and not 0.3 <= args.resolution <= 5:
        raise UsageError("--resolution must be between 0.3 and 5 mm")
    dirs = synth.generate_study(args.out, n_subjects=args.subjects, seed=args.seed,
                                patterns=patterns, compress=not args.no_compress,
                                n_directions=args.directions, resolution_mm=args.resolution)
    for d in dirs:
        print(d)
    print(f"participants table: {args.out / 'participants.tsv'}")
    return 0
