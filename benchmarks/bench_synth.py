"""Benchmark: `weeke synth` for one subject (goal: under 10 s on 2 cores).

Prints the wall time of one subject (phantom built once per process, as in `weeke synth`), the
ratio to the 10 s goal, and the ratio of the RLE encoder in use (pylibjpeg-rle) against
pydicom's native RLE encoder measured in the same run on the same slices.

    python benchmarks/bench_synth.py [--subjects N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from weeke_pipeline.atlas.phantom import build_phantom
from weeke_pipeline.synth import study as synth

GOAL_S = 10.0


def _rle_time(frames: np.ndarray, plugin: str) -> float:
    t = time.perf_counter()
    for frame in frames:
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.Rows, ds.Columns = frame.shape
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 15, 0, 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.compress(RLELossless, frame, encoding_plugin=plugin, generate_instance_uid=False)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=2)
    n = ap.parse_args().subjects
    t0 = time.perf_counter()
    build_phantom()
    t_phantom = time.perf_counter() - t0
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            t = time.perf_counter()
            synth.generate_subject(Path(tmp), f"{i + 1:02d}", seed=1, number=i + 1,
                                   pattern="mixed")
            times.append(time.perf_counter() - t)
    per = float(np.median(times))
    print(f"phantom build (once per process): {t_phantom:.2f} s")
    print(f"one subject (median of {n}, 12 directions): {per:.2f} s; "
          f"first subject incl. phantom: {t_phantom + times[0]:.2f} s")
    print(f"ratio to the {GOAL_S:.0f} s goal: {(t_phantom + times[0]) / GOAL_S:.2f} "
          f"({'met' if t_phantom + times[0] < GOAL_S else 'NOT met'})")
    frames = np.random.default_rng(0).integers(0, 2000, size=(60, 118, 100)).astype(np.uint16)
    frames[:, :30] = 0
    fast, slow = _rle_time(frames, "pylibjpeg"), _rle_time(frames, "pydicom")
    print(f"RLE encode of 60 slices: pylibjpeg-rle {fast * 1e3:.0f} ms vs pydicom native "
          f"{slow * 1e3:.0f} ms: speed-up x{slow / fast:.1f}")


if __name__ == "__main__":
    main()
