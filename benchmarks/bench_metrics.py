"""Benchmark: region metrics for all labels in one vectorised pass vs a per-label loop.

Prints the time of each and their ratio, both measured in this run on the same synthetic
subject (1 mm grid, 128x160x128, labels numbered as regions.py, T1w/T2w/ADC).
Run: python benchmarks/bench_metrics.py [--repeats N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from weeke_pipeline.atlas.regions import BY_INDEX
from weeke_pipeline.metrics import DEFAULT_ADC_THRESHOLDS, compute_region_metrics


def synthetic_subject(shape: tuple[int, int, int] = (128, 160, 128), seed: int = 0
                      ) -> dict[str, np.ndarray]:
    """Blocky label map (labels 1..39 inside an ellipsoid brain) and three random images."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    # ellipsoid of semi-axes 45, 60, 40 mm: ~450 mL, a term neonate's brain
    brain = (zz * 64 / 45) ** 2 + (yy * 80 / 60) ** 2 + (xx * 64 / 40) ** 2 < 1
    coarse = rng.integers(1, max(BY_INDEX) + 1, size=(8, 10, 8))
    labels = np.kron(coarse, np.ones((16, 16, 16), dtype=int))[: shape[0], : shape[1], : shape[2]]
    labels = np.where(brain, labels, 0).astype(np.int16)
    return {
        "labels": labels,
        "t1w": rng.normal(500, 60, shape).astype(np.float32),
        "t2w": rng.normal(800, 90, shape).astype(np.float32),
        "adc": rng.normal(1200, 250, shape).astype(np.float32),
    }


def per_label_loop(labels: np.ndarray, t1w: np.ndarray, t2w: np.ndarray, adc: np.ndarray,
                   thresholds=DEFAULT_ADC_THRESHOLDS) -> dict[int, dict[str, float]]:
    """Baseline: one boolean mask per label, numpy reductions per label."""
    out: dict[int, dict[str, float]] = {}
    for k in BY_INDEX:
        m = labels == k
        a = adc[m]
        out[k] = {
            "volume": float(m.sum()),
            "t1w_median": float(np.median(t1w[m])),
            "t2w_median": float(np.median(t2w[m])),
            "adc_mean": float(a.mean()),
            "adc_median": float(np.median(a)),
            "adc_p10": float(np.percentile(a, 10)),
            **{f"below_{t:g}": float((a < t).mean()) for t in thresholds},
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    s = synthetic_subject()
    def vec() -> object:
        return compute_region_metrics(s["labels"], voxel_volume_mm3=1.0, t1w=s["t1w"],
                                      t2w=s["t2w"], adc=s["adc"])

    def loop() -> object:
        return per_label_loop(s["labels"], s["t1w"], s["t2w"], s["adc"])

    times = {}
    for name, fn in (("vectorised", vec), ("per-label loop", loop)):
        fn()  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        times[name] = best
    n = int((s["labels"] > 0).sum())
    print(f"grid {s['labels'].shape}, {n} labelled voxels, {len(BY_INDEX)} labels,"
          " images T1w+T2w+ADC")
    for name, t in times.items():
        print(f"{name:>15}: {t * 1000:8.1f} ms (best of {args.repeats})")
    print(f"speed ratio (loop / vectorised): {times['per-label loop'] / times['vectorised']:.1f}x")


if __name__ == "__main__":
    main()
