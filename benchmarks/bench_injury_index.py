"""Benchmark of the automated injury index on synthetic subjects with planted injuries.

    python benchmarks/bench_injury_index.py [--work DIR] [--subjects 12] [--normals 4] [--seed 11]

Generates (or reuses, in --work) a study of subjects cycling the patterns normal, bgt,
watershed, mixed, plus separate normal subjects for the normative reference; computes region
metrics from each truth folder (injury_index.truth_region_metrics); runs the index; prints per
item sensitivity/specificity against the truth Weeke items, the agreement of the suggested
grey-matter subscore with the truth, and the runtime of the vectorised index vs a per-region
loop in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from weeke_pipeline.analysis import injury_index as ii
from weeke_pipeline.synth.study import generate_study

# the baseline: the plain per-region loop the tests check the vectorised index against
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "analysis"))
from test_injury_index import region_index_loop

TARGET_ITEMS = ("gm_thalamus", "gm_basal_ganglia", "gm_plic", "wm_white_matter")


def _study(root: Path, n: int, seed: int, patterns: list[str]) -> list[Path]:
    subs = sorted(root.glob("sub-*"))
    if len(subs) >= n:
        return subs[:n]
    return generate_study(root, n_subjects=n, seed=seed, patterns=patterns)


def _metrics(subs: list[Path], cache: Path) -> pd.DataFrame:
    if cache.exists():
        return pd.read_csv(cache, sep="\t")
    df = pd.concat([ii.truth_region_metrics(s) for s in subs], ignore_index=True)
    df.to_csv(cache, sep="\t", index=False)
    return df


def sens_spec(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float, int, int]:
    """Sensitivity P(pred | truth) and specificity P(not pred | not truth), with counts."""
    pos, neg = truth.sum(), (~truth).sum()
    se = float((pred & truth).sum() / pos) if pos else float("nan")
    sp = float((~pred & ~truth).sum() / neg) if neg else float("nan")
    return se, sp, int(pos), int(neg)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/weeke_bench_injury_index"))
    ap.add_argument("--subjects", type=int, default=12)
    ap.add_argument("--normals", type=int, default=4)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    t0 = time.perf_counter()
    study = _study(args.work / "study", args.subjects, args.seed,
                   ["normal", "bgt", "watershed", "mixed"])
    normals = _study(args.work / "normals", args.normals, args.seed + 1, ["normal"])
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    m_study = _metrics(study, args.work / "study_metrics.tsv")
    m_norm = _metrics(normals, args.work / "normals_metrics.tsv")
    t_met = time.perf_counter() - t0

    ref = ii.build_reference(m_norm)
    t0 = time.perf_counter()
    _, suggested = ii.injury_index(m_study, ref)
    t_index = time.perf_counter() - t0
    # runtime: the region stage on a batch of 20 copies of the study (240 subjects)
    big = pd.concat([m_study.assign(subject=m_study["subject"] + f"-{i:02d}")
                     for i in range(20)], ignore_index=True)
    t0 = time.perf_counter()
    vec = ii.region_index(ii.region_zscores(big, ref))
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop = region_index_loop(big, ref)
    t_loop = time.perf_counter() - t0
    merged = vec.merge(loop, on=["subject", "region", "hemisphere"], suffixes=("", "_loop"))
    same = bool(len(merged) == len(vec) and (merged["extent"] == merged["extent_loop"]).all())

    truth = {s.name: ii.truth_items(s) for s in study}
    rows = []
    for item in ii.SUGGESTED_ITEMS:
        t_ext = np.array([truth[s][item]["extent"] for s in suggested["subject"]])
        p_ext = suggested[f"{item}_ext"].to_numpy(dtype=int)
        se_any, sp_any, npos, nneg = sens_spec(t_ext > 0, p_ext > 0)
        ext = t_ext == 2
        se_ext = float((p_ext[ext] > 0).mean()) if ext.any() else float("nan")
        exact_ext = float((p_ext[ext] == 2).mean()) if ext.any() else float("nan")
        rows.append({"item": item, "n_pos": npos, "n_extensive": int(ext.sum()), "n_neg": nneg,
                     "sens_any": se_any, "spec": sp_any, "sens_extensive": se_ext,
                     "extensive_called_2": exact_ext,
                     "extent_exact": float((p_ext == t_ext).mean())})
    table = pd.DataFrame(rows)

    gm_items = [i for i in ii.SUGGESTED_ITEMS if i.startswith("gm_")]
    from weeke_pipeline.scoring import load_form, score_items

    form = load_form("weeke-consensus-2025")
    t_gm = np.array([score_items(form, {"items": {k: truth[s][k] for k in gm_items}})
                     .subscores["grey_matter"] for s in suggested["subject"]])
    p_gm = suggested["grey_matter"].to_numpy(dtype=int)
    from weeke_pipeline.analysis.agreement import icc_confidence, weighted_kappa

    icc = icc_confidence(np.stack([t_gm, p_gm], axis=1).astype(float))
    kappa, _ = weighted_kappa(t_gm, p_gm, list(range(24)))
    ge3 = float(((t_gm >= 3) == (p_gm >= 3)).mean())

    pd.set_option("display.width", 160)
    print(f"subjects: {len(study)} study ({args.work / 'study'}), {len(normals)} normals; "
          f"generation {t_gen:.1f} s, truth metrics {t_met:.1f} s")
    print("\nPer item (truth = synthetic truth Weeke items; positive = extent > 0):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    tgt = table[table["item"].isin(TARGET_ITEMS)]
    print("\nTarget (extensive deep GM, PLIC, WM): sensitivity "
          f"{np.nanmin(tgt['sens_extensive']):.2f}-{np.nanmax(tgt['sens_extensive']):.2f} "
          f"(aim >= 0.8), specificity {tgt['spec'].min():.2f}-{tgt['spec'].max():.2f} "
          "(aim >= 0.9)")
    print(f"\nGrey-matter subscore, suggested vs truth (n={len(t_gm)}): ICC(2,1) "
          f"{icc['icc2']:.3f} [{icc['icc2_ci_low']:.3f}, {icc['icc2_ci_high']:.3f}], "
          f"quadratic kappa {kappa:.3f}, mean |diff| {np.mean(np.abs(t_gm - p_gm)):.2f}, "
          f"same side of >= 3: {ge3:.2f}")
    print("  truth    :", t_gm.tolist())
    print("  suggested:", p_gm.tolist())
    print(f"\nRuntime: full index (z-scores, roll-up, score engine) for {len(study)} subjects "
          f"{t_index * 1e3:.0f} ms. Region stage on {big['subject'].nunique()} subjects: "
          f"vectorised {t_vec * 1e3:.0f} ms, per-region loop {t_loop * 1e3:.0f} ms, "
          f"ratio {t_loop / t_vec:.1f}x (identical extents: {same})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
