"""Benchmark: region metrics for all labels in one vectorised pass vs a per-label loop.

Both compute every metric the pipeline writes (volume; T1w/T2w median, 25th/75th percentile
and their ratio to the cerebellum's median; ADC mean, median, 10th percentile and fractions
below 800 and 1000; FA/MD/AD/RD mean, median, 10th percentile) within a brain mask, on the same
synthetic subject (1 mm grid, 128x160x128, labels numbered as regions.py), measured in this run;
the results are checked to agree. The loop is the obvious implementation: one boolean mask per
label and numpy reductions (one ``np.percentile`` call per label and image).
Goals (issue 3): at least 20x faster than the loop, and under 1 s.

    python benchmarks/bench_metrics.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from weeke_pipeline.atlas.regions import BY_INDEX, indices_for
from weeke_pipeline.imaging.metrics import (
    DEFAULT_ADC_THRESHOLDS,
    TENSOR_MAPS,
    compute_region_metrics,
    metric_names,
)

GOAL_RATIO = 20.0
GOAL_SECONDS = 1.0
IMAGES = ("t1w", "t2w", "adc", *TENSOR_MAPS)


def synthetic_subject(shape: tuple[int, int, int] = (128, 160, 128), seed: int = 0
                      ) -> dict[str, np.ndarray]:
    """Blocky label map (labels 1..39 inside an ellipsoid brain), a brain mask and random
    float32 images (as read from the pipeline's NIfTI files)."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    # ellipsoid of semi-axes 45, 60, 40 mm: ~450 mL, a term neonate's brain
    brain = (zz * 64 / 45) ** 2 + (yy * 80 / 60) ** 2 + (xx * 64 / 40) ** 2 < 1
    coarse = rng.integers(1, max(BY_INDEX) + 1, size=(8, 10, 8))
    labels = np.kron(coarse, np.ones((16, 16, 16), dtype=int))[: shape[0], : shape[1], : shape[2]]
    labels = np.where(brain, labels, 0).astype(np.int16)
    mean_sd = {"t1w": (500, 60), "t2w": (800, 90), "adc": (1200, 250), "fa": (0.25, 0.1),
               "md": (1200, 200), "ad": (1500, 250), "rd": (1000, 200)}
    out = {"labels": labels, "brain_mask": (zz * 64 / 44) ** 2 + (yy * 80 / 59) ** 2
           + (xx * 64 / 39) ** 2 < 1}
    for name in IMAGES:
        m, sd = mean_sd[name]
        out[name] = rng.normal(m, sd, shape).astype(np.float32)
    return out


def per_label_loop(s: dict[str, np.ndarray], thresholds=DEFAULT_ADC_THRESHOLDS
                   ) -> dict[str, np.ndarray]:
    """Baseline: one boolean mask per label, numpy reductions per label (same metrics; images
    absent from ``s`` give NaN, as in the vectorised pass)."""
    n = max(BY_INDEX)
    out = {m: np.full(n + 1, np.nan) for m in metric_names(thresholds)}
    labels = s["labels"]
    brain = s.get("brain_mask", np.ones(labels.shape, dtype=bool))
    ref_mask = np.isin(labels, indices_for(tissue="cerebellum")) & brain
    ref = {c: np.median(s[c][ref_mask]) for c in ("t1w", "t2w")}
    for k in range(1, n + 1):
        lab = labels == k
        out["volume_mm3"][k] = lab.sum()
        m = lab & brain
        if not m.any():
            continue
        for c in ("t1w", "t2w"):
            p25, p50, p75 = np.percentile(s[c][m], [25, 50, 75])
            out[f"{c}_median"][k] = p50
            out[f"{c}_norm"][k], out[f"{c}_p25_norm"][k], out[f"{c}_p75_norm"][k] = (
                p50 / ref[c], p25 / ref[c], p75 / ref[c])
        a = s["adc"][m]
        out["adc_mean"][k] = a.mean(dtype=np.float64)
        out["adc_median"][k], out["adc_p10"][k] = np.percentile(a, [50, 10])
        for t in thresholds:
            out[f"adc_frac_below_{t:g}"][k] = (a < t).mean()
        for t in (t for t in TENSOR_MAPS if t in s):
            x = s[t][m]
            out[f"{t}_mean"][k] = x.mean(dtype=np.float64)
            out[f"{t}_median"][k], out[f"{t}_p10"][k] = np.percentile(x, [50, 10])
    return out


def compare(s: dict[str, np.ndarray], title: str, repeats: int) -> float:
    """Time both on subject ``s`` (interleaved, best of ``repeats``); returns the 1-thread
    ratio."""
    tensor = {t: s[t] for t in TENSOR_MAPS if t in s}

    def vec(threads: int | None) -> dict[str, np.ndarray]:
        return compute_region_metrics(
            s["labels"], voxel_volume_mm3=1.0, t1w=s["t1w"], t2w=s["t2w"], adc=s["adc"],
            brain_mask=s.get("brain_mask"), tensor=tensor, threads=threads)

    runs = {"vectorised, 1 thread": lambda: vec(1), "vectorised, 2 threads": lambda: vec(2),
            "per-label loop": lambda: per_label_loop(s)}
    times = dict.fromkeys(runs, float("inf"))
    results = {name: fn() for name, fn in runs.items()}  # warm-up
    for _ in range(repeats):  # interleaved: a load change affects all alike
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name] = min(times[name], time.perf_counter() - t0)
    want = results["per-label loop"]
    for name in ("vectorised, 1 thread", "vectorised, 2 threads"):
        for m, ref in want.items():
            # float32 images: np.percentile rounds its result to float32, the vectorised
            # pass interpolates in float64
            np.testing.assert_allclose(results[name][m][1:], ref[1:], rtol=1e-6, atol=0,
                                       equal_nan=True, err_msg=m)
    print(f"\n{title}; results agree")
    loop = times["per-label loop"]
    for name, t in times.items():
        extra = "" if name == "per-label loop" else f"   {loop / t:5.1f}x faster than the loop"
        print(f"{name:>22}: {t * 1000:8.1f} ms (best of {repeats}){extra}")
    one, best = times["vectorised, 1 thread"], min(times["vectorised, 1 thread"],
                                                    times["vectorised, 2 threads"])
    print(f"goal >= {GOAL_RATIO:.0f}x: {'ok' if loop / one >= GOAL_RATIO else 'MISSED'} "
          f"({loop / one:.1f}x on one thread, {loop / best:.1f}x best); "
          f"goal < {GOAL_SECONDS:.0f} s: {'ok' if best < GOAL_SECONDS else 'MISSED'}")
    return loop / one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    s = synthetic_subject()
    n = int((s["labels"] > 0).sum())
    print(f"grid {s['labels'].shape}, {n} labelled voxels, {len(BY_INDEX)} labels; load average"
          f" {os.getloadavg()[0]:.1f}")
    compare(s, f"pipeline set: brain mask, {len(IMAGES)} images ({', '.join(IMAGES)})",
            args.repeats)
    small = {k: s[k] for k in ("labels", "t1w", "t2w", "adc")}
    compare(small, "T1w, T2w, ADC, no mask (the earlier benchmark's set)", args.repeats)


if __name__ == "__main__":
    main()
