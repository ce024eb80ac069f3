"""Unblinding: the allocation table joined to the consensus, per-arm summaries with a bootstrap
interval of the median difference, and plots; ``weeke unblind``'s join (:func:`unblind`) and
output folder (:func:`write_unblinding`)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from weeke_pipeline.analysis.reads import _check_columns
from weeke_pipeline.constants import DEFAULT_SEED


# --------------------------------------------------------------------------- unblinding
def join_allocation(consensus_df: pd.DataFrame, allocation: pd.DataFrame, *,
                    key: str = "reading_code", subjects: pd.DataFrame | None = None
                    ) -> pd.DataFrame:
    """Join the arm onto the consensus table.

    ``allocation`` has columns ``arm`` and either ``reading_code`` or ``subject``; with
    ``subject``, ``subjects`` (columns reading_code, subject) maps them. Every case must get an
    arm: an unmatched case is an error naming how many are missing (no silent drop).
    """
    _check_columns(allocation, ["arm"], "allocation table")
    alloc = allocation.copy()
    if "reading_code" not in alloc.columns:
        if "subject" not in alloc.columns or subjects is None:
            raise ValueError("allocation needs a reading_code column, or a subject column plus "
                             "the reading_code-subject map")
        alloc = alloc.merge(subjects[["reading_code", "subject"]], on="subject", how="inner")
    if alloc[key].duplicated().any():
        raise ValueError("allocation lists a case twice")
    out = consensus_df.merge(alloc[[key, "arm"]], on=key, how="left")
    missing = int(out["arm"].isna().sum())
    if missing:
        raise ValueError(f"{missing} case(s) of the consensus table have no arm in the "
                         "allocation")
    return out


def read_allocation(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The allocation file: TSV (CSV when the name ends .csv) with ``arm`` and ``reading_code``
    or ``subject`` (``participant_id`` accepted; a ``sub-`` prefix is dropped). Values are
    strings; an empty arm or key, or a key listed twice, is an error naming the line."""
    p = Path(path)
    try:
        df = pd.read_csv(p, sep="," if p.suffix.lower() == ".csv" else "\t", dtype=str,
                         keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{p}: cannot read the allocation table: {exc}") from None
    df.columns = [c.strip() for c in df.columns]
    if "participant_id" in df.columns and "subject" not in df.columns:
        df = df.rename(columns={"participant_id": "subject"})
    key = "reading_code" if "reading_code" in df.columns else "subject"
    if "arm" not in df.columns or key not in df.columns:
        raise ValueError(f"{p}: needs an 'arm' column and a 'reading_code' or 'subject' column "
                         f"(found {list(df.columns)})")
    df = df[[key, "arm"]].apply(lambda c: c.str.strip())
    if key == "subject":
        df["subject"] = df["subject"].str.removeprefix("sub-")
    for col in (key, "arm"):
        empty = df.index[df[col] == ""]
        if len(empty):
            raise ValueError(f"{p} line {int(empty[0]) + 2}: empty {col}")
    dup = df.index[df[key].duplicated()]
    if len(dup):
        raise ValueError(f"{p} line {int(dup[0]) + 2}: {key} listed twice")
    return df


def _describe(x: np.ndarray) -> dict[str, float]:
    if x.size == 0:
        return {k: math.nan for k in ("median", "q1", "q3", "iqr", "mean", "sd")}
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "iqr": float(q3 - q1),
            "mean": float(x.mean()), "sd": float(x.std(ddof=1)) if x.size > 1 else math.nan}


def median_difference_ci(x: np.ndarray, y: np.ndarray, *, n_boot: int = 5000,
                         seed: int = DEFAULT_SEED) -> tuple[float, float, float]:
    """median(y) - median(x) with a percentile bootstrap 95% CI (resampling within each arm)."""
    rng = np.random.default_rng(seed)
    bx = np.median(x[rng.integers(0, x.size, (n_boot, x.size))], axis=1)
    by = np.median(y[rng.integers(0, y.size, (n_boot, y.size))], axis=1)
    lo, hi = np.percentile(by - bx, [2.5, 97.5])
    return float(np.median(y) - np.median(x)), float(lo), float(hi)


def unblinding_summary(arm_joined: pd.DataFrame, form: Any, *, arms: Sequence[str] | None = None,
                       n_boot: int = 5000, seed: int = DEFAULT_SEED
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Summary by arm and two-arm comparison of the total and each subscore.

    Uses cases with a resolved consensus and a complete score. Returns (by_arm, comparison):
    ``by_arm``: arm, score, n, median, q1, q3, iqr, mean, sd, plus rows for the proportions
    ``gm_ge3`` (grey-matter subscore >= 3) and ``total_ge10`` (total >= 10) with ``proportion``;
    ``comparison`` (two arms only): score, arm_a, arm_b, mannwhitney_u, p_value (two-sided,
    scipy), median_diff (arm_b - arm_a) with bootstrap 95% CI.
    """
    from scipy.stats import mannwhitneyu

    df = arm_joined[arm_joined["consensus_source"] != "unresolved"]
    arms = list(arms) if arms is not None else sorted(df["arm"].astype(str).unique())
    scores = [(s.id, f"{s.id}_complete") for s in form.subscores] + [("total", "complete")]
    gm = form.subscores[0].id if "grey_matter" not in {s.id for s in form.subscores} \
        else "grey_matter"
    rows, comp = [], []
    for name, flag in scores:
        ok = df[df[flag].astype(bool)]
        per = {a: ok.loc[ok["arm"].astype(str) == a, name].astype(float).to_numpy()
               for a in arms}
        for a in arms:
            rows.append({"arm": a, "score": name, "n": per[a].size, **_describe(per[a]),
                         "proportion": math.nan})
        if len(arms) == 2 and all(per[a].size > 0 for a in arms):
            x, y = per[arms[0]], per[arms[1]]
            u = mannwhitneyu(x, y, alternative="two-sided")
            d, lo, hi = median_difference_ci(x, y, n_boot=n_boot, seed=seed)
            comp.append({"score": name, "arm_a": arms[0], "arm_b": arms[1], "n_a": x.size,
                         "n_b": y.size, "mannwhitney_u": float(u.statistic),
                         "p_value": float(u.pvalue), "median_diff": d, "median_diff_ci_low": lo,
                         "median_diff_ci_high": hi})
    for label, name, flag, thr in (("gm_ge3", gm, f"{gm}_complete", 3),
                                   ("total_ge10", "total", "complete", 10)):
        ok = df[df[flag].astype(bool)]
        for a in arms:
            x = ok.loc[ok["arm"].astype(str) == a, name].astype(float).to_numpy()
            rows.append({"arm": a, "score": label, "n": x.size,
                         **{k: math.nan for k in ("median", "q1", "q3", "iqr", "mean", "sd")},
                         "proportion": float(np.mean(x >= thr)) if x.size else math.nan})
    return pd.DataFrame(rows), pd.DataFrame(comp)


def unblinding_plots(arm_joined: pd.DataFrame, form: Any, out_dir: str | Path) -> list[Path]:
    """Box plots with the individual cases (strip) of total and each subscore by arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = arm_joined[arm_joined["consensus_source"] != "unresolved"]
    arms = sorted(df["arm"].astype(str).unique())
    scores = [(s.id, s.label, f"{s.id}_complete") for s in form.subscores] + [
        ("total", "Total", "complete")]
    fig, axes = plt.subplots(1, len(scores), figsize=(3.2 * len(scores), 3.8))
    rng = np.random.default_rng(0)  # jitter only
    for ax, (name, label, flag) in zip(np.atleast_1d(axes), scores, strict=True):
        ok = df[df[flag].astype(bool)]
        data = [ok.loc[ok["arm"].astype(str) == a, name].astype(float).to_numpy() for a in arms]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(arms) + 1), arms)
        for i, x in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, x.size), x, s=14, alpha=0.7)
        ax.set_title(label, fontsize=9)
    fig.tight_layout()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "scores_by_arm.png", out / "scores_by_arm.svg"]
    for p in paths:
        fig.savefig(p, dpi=120)
    plt.close(fig)
    return paths


# --------------------------------------------------------------------------- weeke unblind
class AllocationError(ValueError):
    """The allocation does not fit the cases (e.g. a case without an arm)."""


@dataclass
class Unblinding:
    """The consensus of the signed reads joined to the arms."""

    joined: pd.DataFrame  #: consensus wide + ``arm``, one row per case
    subjects: pd.DataFrame  #: reading_code, subject of every case
    unmatched: int  #: allocation rows that match no case (left out)

    @property
    def cases_per_arm(self) -> dict[str, int]:
        return {str(k): int(v)
                for k, v in self.joined["arm"].value_counts().sort_index().items()}

    @property
    def unresolved(self) -> int:
        """Cases without a resolved consensus (left out of the summary)."""
        return int((self.joined["consensus_source"] == "unresolved").sum())

    @property
    def repeated_subjects(self) -> int:
        """Subjects with cases of several sessions (each case counts as one infant)."""
        return int((self.subjects["subject"].value_counts() > 1).sum())


def unblind(signed_records: Sequence[Mapping[str, Any]], case_subjects: Sequence[tuple[str, str]],
            allocation: pd.DataFrame, form: Any) -> Unblinding:
    """Consensus of ``signed_records`` over every case (``case_subjects``: (reading code,
    subject) pairs) joined to ``allocation`` (:func:`read_allocation`) by reading code, or by
    subject when it has no reading_code column. A case without an arm: :class:`AllocationError`."""
    from weeke_pipeline.analysis.consensus import consensus
    from weeke_pipeline.analysis.reads import reads_long_from_records

    codes = [c for c, _ in case_subjects]
    cons = consensus(reads_long_from_records(signed_records), form, codes=codes)
    subjects = pd.DataFrame(list(case_subjects), columns=["reading_code", "subject"])
    key = "reading_code" if "reading_code" in allocation.columns else "subject"
    unmatched = int((~allocation[key].isin(set(subjects[key]))).sum())
    try:
        joined = join_allocation(cons, allocation,
                                 subjects=subjects if key == "subject" else None)
    except ValueError as exc:
        raise AllocationError(str(exc)) from None
    return Unblinding(joined, subjects, unmatched)


def write_unblinding(u: Unblinding, form: Any, out: Path, fmt: str = "tsv", *,
                     n_boot: int = 5000, seed: int = DEFAULT_SEED) -> list[Path]:
    """Summarise ``u`` by arm (:func:`unblinding_summary`) and write to ``out`` (made ready by
    :func:`~weeke_pipeline.analysis.export.prepare_out`): consensus_by_arm, summary_by_arm,
    comparison (``fmt`` + sidecars) and the plots. Returns the files written."""
    from weeke_pipeline.analysis.dictionaries import (
        reads_wide_dictionary,
        unblinding_comparison_dictionary,
        unblinding_summary_dictionary,
    )
    from weeke_pipeline.analysis.export import prepare_out, write_table

    by_arm, comparison = unblinding_summary(u.joined, form, n_boot=n_boot, seed=seed)
    prepare_out(out, "unblind")
    files: list[Path] = []
    cons_dict = reads_wide_dictionary(form, consensus_table=True)
    cons_dict["arm"] = {"Description": "Treatment arm (allocation file)", "Format": "string"}
    for name, table, dictionary in (
            ("consensus_by_arm", u.joined, cons_dict),
            ("summary_by_arm", by_arm, unblinding_summary_dictionary()),
            ("comparison", comparison, unblinding_comparison_dictionary())):
        p = write_table(table, out / f"{name}.{fmt}", dictionary, fmt)
        files += [p, p.with_suffix(".json")]
    files += unblinding_plots(u.joined, form, out)
    return files
