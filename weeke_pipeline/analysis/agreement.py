"""Inter-rater agreement of Weeke reads: per item, per subscore and total (issue 6).

Pure functions over pandas DataFrames; the database feeds them through the reads-long table
(column conventions in :mod:`weeke_pipeline.analysis.reads` and ``docs/tables.md``).

Per item (ordinal item score 0..max, compared between read 1 and read 2 of each case):

- quadratic-weighted Cohen's kappa, ``scikit-learn``'s ``cohen_kappa_score(weights="quadratic",
  labels=0..max)``: kappa_w = 1 - sum(v_kl O_kl) / sum(v_kl E_kl), v_kl = (k - l)^2,
  O = observed joint proportions, E = outer product of the marginals (Cohen 1968). Undefined
  (reported NA with a reason) when sum(v E) = 0, i.e. both readers gave every case one and the
  same rating (typically "all zero").
- its 95% CI: nonparametric bootstrap over cases (``n_boot`` resamples, fixed seed), percentile
  interval; resamples in which kappa is undefined are dropped and counted.
- percent agreement: share of cases with identical item scores.
- Gwet's AC2 with quadratic weights w_kl = 1 - (k - l)^2 / (max - min)^2 (Gwet 2014, Handbook of
  Inter-Rater Reliability, 4th ed., ch. 3-4): AC2 = (pa - pe) / (1 - pe), with
  pa = mean over cases rated by >= 2 raters of sum_k r_ik (r*_ik - 1) / (r_i (r_i - 1)),
  r*_ik = sum_l w_kl r_il, and pe = T_w / (q (q - 1)) * sum_k pi_k (1 - pi_k),
  pi_k = mean_i r_ik / r_i, T_w = sum of all weights, q = number of categories.
  Written here (a dozen numpy lines) rather than taken from the ``irrCAC`` PyPI package: that
  package describes itself as a work in progress, has one maintainer and pins its own pandas
  range; our implementation is checked in the tests against the worked examples of Gwet's book
  as published with irrCAC (raw4raters: AC2 = 0.914; 3x3 abstractors table: AC2 = 0.940).

Subscores and total (complete reads only):

- ICC(2,1) (two-way random, absolute agreement, single rater) and ICC(3,1) (two-way mixed,
  consistency) with their F-based 95% CIs, from ``pingouin.intraclass_corr`` (McGraw & Wong
  1996; Shrout & Fleiss 1979); ICC(1,1) beside them because each case's two readers are drawn
  from a pool (raters = read slot 1 and 2).
- Bland-Altman (Bland & Altman 1986, 1999): d = read 1 - read 2; bias = mean(d) with
  t-based 95% CI; limits of agreement bias +/- 1.96 SD(d), each with the approximate 95% CI
  LoA +/- t_{n-1} * SD(d) * sqrt(1/n + 1.96^2 / (2 (n - 1))); plot (``statsmodels``
  ``mean_diff_plot``) saved as PNG and SVG.
"""

from __future__ import annotations

import html
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from weeke_pipeline.constants import DEFAULT_SEED

DEFAULT_N_BOOT = 2000
Z95 = 1.959963984540054


# --------------------------------------------------------------------------- weights
def quadratic_weights(categories: Sequence[float]) -> np.ndarray:
    """Gwet's quadratic agreement weights w_kl = 1 - (c_k - c_l)^2 / (max c - min c)^2."""
    c = np.asarray(categories, dtype=float)
    span = c.max() - c.min()
    if span == 0:
        return np.ones((c.size, c.size))
    return 1.0 - (c[:, None] - c[None, :]) ** 2 / span**2


# --------------------------------------------------------------------------- kappa
def weighted_kappa(a: Sequence[int], b: Sequence[int], labels: Sequence[int]
                   ) -> tuple[float, str | None]:
    """Quadratic-weighted Cohen's kappa (scikit-learn) and, when undefined, the reason."""
    from sklearn.metrics import cohen_kappa_score

    a, b = np.asarray(a), np.asarray(b)
    if a.size == 0:
        return math.nan, "no case with both ratings"
    reason = _kappa_undefined_reason(a, b)
    if reason:
        return math.nan, reason
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = float(cohen_kappa_score(a, b, labels=list(labels), weights="quadratic"))
    return k, None if math.isfinite(k) else "kappa undefined (no expected disagreement)"


def _kappa_undefined_reason(a: np.ndarray, b: np.ndarray) -> str | None:
    """Kappa is 0/0 when both raters use one and the same category for every case."""
    ua, ub = np.unique(a), np.unique(b)
    if ua.size == 1 and ub.size == 1 and ua[0] == ub[0]:
        if ua[0] == 0:
            return "all ratings 0 in both reads (no variation): kappa undefined"
        return f"all ratings {ua[0]} in both reads (no variation): kappa undefined"
    return None


def _confusion_stack(a_idx: np.ndarray, b_idx: np.ndarray, q: int,
                     samples: np.ndarray) -> np.ndarray:
    """Joint counts (n_boot, q, q) of the resampled cases, in one bincount."""
    n_boot = samples.shape[0]
    codes = a_idx[samples] * q + b_idx[samples] + (np.arange(n_boot)[:, None] * q * q)
    return np.bincount(codes.ravel(), minlength=n_boot * q * q).reshape(n_boot, q, q)


def kappa_from_tables(tables: np.ndarray) -> np.ndarray:
    """Quadratic-weighted kappa of joint count tables (..., q, q); NaN where undefined.

    kappa_w = 1 - sum(v O) / sum(v E), v_kl = (k - l)^2 (Cohen 1968). Vectorised over resamples;
    the tests check it equals scikit-learn on the observed data.
    """
    t = np.asarray(tables, dtype=float)
    q = t.shape[-1]
    n = t.sum(axis=(-2, -1), keepdims=True)
    o = t / n
    e = o.sum(axis=-1, keepdims=True) * o.sum(axis=-2, keepdims=True)
    v = (np.arange(q)[:, None] - np.arange(q)[None, :]) ** 2
    num = (v * o).sum(axis=(-2, -1))
    den = (v * e).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 1.0 - num / den, np.nan)


def ac2_from_tables(tables: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Gwet's AC2 of two-rater joint count tables (..., q, q) (Gwet 2014, 2-rater form).

    pa = sum w_kl p_kl; pi_k = (p_k. + p_.k) / 2; pe = T_w / (q (q - 1)) sum pi_k (1 - pi_k).
    """
    t = np.asarray(tables, dtype=float)
    q = t.shape[-1]
    p = t / t.sum(axis=(-2, -1), keepdims=True)
    pa = (weights * p).sum(axis=(-2, -1))
    pi = (p.sum(axis=-1) + p.sum(axis=-2)) / 2.0
    pe = weights.sum() / (q * (q - 1)) * (pi * (1.0 - pi)).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pe < 1, (pa - pe) / (1.0 - pe), np.nan)


def gwet_ac2(ratings: Any, categories: Sequence[float], weights: str | np.ndarray = "quadratic"
             ) -> dict[str, float]:
    """Gwet's AC1/AC2 for raw ratings (cases x raters, NaN = not rated), any number of raters.

    ``weights``: "quadratic", "identity" (= AC1) or a q x q matrix. Returns pa, pe, ac2.
    Formulas: see the module docstring (Gwet 2014; irrCAC ``gwet.ac1.raw``).
    """
    x = np.asarray(ratings, dtype=float)
    if x.ndim != 2:
        raise ValueError("ratings must be a 2-D array: cases x raters")
    cats = np.asarray(categories, dtype=float)
    q = cats.size
    if q < 2:
        raise ValueError("AC2 needs at least 2 categories")
    if isinstance(weights, str):
        if weights == "quadratic":
            w = quadratic_weights(cats)
        elif weights in ("identity", "unweighted"):
            w = np.eye(q)
        else:
            raise ValueError(f"unknown weights {weights!r} (quadratic, identity or a matrix)")
    else:
        w = np.asarray(weights, dtype=float)
    unknown = set(np.unique(x[np.isfinite(x)])) - set(cats)
    if unknown:
        raise ValueError(f"ratings {sorted(unknown)} are not among the categories {list(cats)}")
    r_ik = (x[:, :, None] == cats[None, None, :]).sum(axis=1).astype(float)  # (n, q)
    r_i = r_ik.sum(axis=1)
    keep = r_i > 0
    r_ik, r_i = r_ik[keep], r_i[keep]
    if r_ik.shape[0] == 0:
        return {"pa": math.nan, "pe": math.nan, "ac2": math.nan}
    star = r_ik @ w.T
    two = r_i >= 2
    if not two.any():
        return {"pa": math.nan, "pe": math.nan, "ac2": math.nan}
    pa = float(np.mean((r_ik[two] * (star[two] - 1)).sum(axis=1) / (r_i[two] * (r_i[two] - 1))))
    pi = (r_ik / r_i[:, None]).mean(axis=0)
    pe = float(w.sum() / (q * (q - 1)) * (pi * (1 - pi)).sum())
    ac2 = (pa - pe) / (1 - pe) if pe < 1 else math.nan
    return {"pa": pa, "pe": pe, "ac2": float(ac2)}


# --------------------------------------------------------------------------- per item
def _percentile_ci(values: np.ndarray) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if v.size < 10:
        return math.nan, math.nan
    lo, hi = np.percentile(v, [2.5, 97.5])
    return float(lo), float(hi)


def item_agreement(a: Sequence[int], b: Sequence[int], max_score: int, *,
                   n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Agreement of two reads on one item (scores 0..max_score), one dict of figures."""
    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    labels = list(range(int(max_score) + 1))
    n = a.size
    kappa, reason = weighted_kappa(a, b, labels)
    out: dict[str, Any] = {"n_cases": n, "kappa_w": kappa, "kappa_ci_low": math.nan,
                           "kappa_ci_high": math.nan, "kappa_na_reason": reason or "",
                           "n_boot_undefined": 0,
                           "percent_agreement": float(np.mean(a == b) * 100) if n else math.nan,
                           "ac2": math.nan, "ac2_ci_low": math.nan, "ac2_ci_high": math.nan}
    if n == 0:
        return out
    w = quadratic_weights(labels)
    table = np.zeros((len(labels), len(labels)))
    np.add.at(table, (a, b), 1)
    out["ac2"] = float(ac2_from_tables(table, w))
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, n, size=(n_boot, n))
    tables = _confusion_stack(a, b, len(labels), samples)
    ac2_boot = ac2_from_tables(tables, w)
    out["ac2_ci_low"], out["ac2_ci_high"] = _percentile_ci(ac2_boot)
    if reason is None:
        kb = kappa_from_tables(tables)
        out["n_boot_undefined"] = int(np.sum(~np.isfinite(kb)))
        out["kappa_ci_low"], out["kappa_ci_high"] = _percentile_ci(kb)
    return out


# --------------------------------------------------------------------------- scores
def icc_confidence(x: np.ndarray, alpha: float = 0.05) -> dict[str, float]:
    """ICC(1,1), ICC(2,1) (= ICC(A,1)), ICC(3,1) (= ICC(C,1)) and their F-based CIs from a
    complete targets x raters matrix (McGraw & Wong 1996, Shrout & Fleiss 1979).

    Mean squares of the two-way ANOVA: MSR (targets), MSC (raters), MSE (residual), MSW
    (within targets). ICC1 = (MSR - MSW) / (MSR + (k-1) MSW); ICC2 = (MSR - MSE) / (MSR +
    (k-1) MSE + k (MSC - MSE) / n); ICC3 = (MSR - MSE) / (MSR + (k-1) MSE). CIs: exact F for
    ICC1 and ICC3; Satterthwaite-type df for ICC2. Written out because pingouin rounds its CI
    to 2 decimals; the tests check these ICCs equal pingouin's and the CIs round to its CIs.
    """
    from scipy.stats import f

    n, k = x.shape
    gm = x.mean()
    ssr = k * ((x.mean(axis=1) - gm) ** 2).sum()
    ssc = n * ((x.mean(axis=0) - gm) ** 2).sum()
    sst = ((x - gm) ** 2).sum()
    sse = sst - ssr - ssc
    msr, msc = ssr / (n - 1), ssc / (k - 1)
    mse = sse / ((n - 1) * (k - 1))
    msw = (sst - ssr) / (n * (k - 1))
    q = 1 - alpha / 2
    out: dict[str, float] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        icc1 = (msr - msw) / (msr + (k - 1) * msw)
        f1 = msr / msw
        fl, fu = f1 / f.ppf(q, n - 1, n * (k - 1)), f1 * f.ppf(q, n * (k - 1), n - 1)
        out.update(icc1=icc1, icc1_ci_low=(fl - 1) / (fl + k - 1),
                   icc1_ci_high=(fu - 1) / (fu + k - 1))
        icc3 = (msr - mse) / (msr + (k - 1) * mse)
        f3 = msr / mse
        df2 = (n - 1) * (k - 1)
        fl, fu = f3 / f.ppf(q, n - 1, df2), f3 * f.ppf(q, df2, n - 1)
        out.update(icc3=icc3, icc3_ci_low=(fl - 1) / (fl + k - 1),
                   icc3_ci_high=(fu - 1) / (fu + k - 1))
        icc2 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
        a = k * icc2 / (n * (1 - icc2))
        b = 1 + k * icc2 * (n - 1) / (n * (1 - icc2))
        v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / df2)
        fl, fu = f.ppf(q, n - 1, v), f.ppf(q, v, n - 1)
        lo = n * (msr - fl * mse) / (fl * (k * msc + (k * n - k - n) * mse) + n * msr)
        hi = n * (fu * msr - mse) / (k * msc + (k * n - k - n) * mse + n * fu * msr)
        out.update(icc2=icc2, icc2_ci_low=lo, icc2_ci_high=hi)
    return {key: float(val) for key, val in out.items()}


def icc_table(scores: pd.DataFrame, *, target: str = "reading_code", rater: str = "read_number",
              rating: str = "value") -> dict[str, float]:
    """ICC(1,1), ICC(2,1), ICC(3,1) with 95% CIs from a long table of ratings.

    Point estimates from ``pingouin.intraclass_corr`` (types ICC(1,1), ICC(A,1), ICC(C,1));
    CIs from :func:`icc_confidence` (same formulas as pingouin, not rounded). Targets rated by
    every rater only.
    """
    import pingouin as pg

    out = {f"{k}{s}": math.nan for k in ("icc1", "icc2", "icc3") for s in ("", "_ci_low",
                                                                         "_ci_high")}
    wide = scores.pivot_table(index=target, columns=rater, values=rating, aggfunc="first")
    wide = wide.dropna()
    if len(wide) < 3 or wide.shape[1] < 2 or np.nanstd(wide.to_numpy()) == 0:
        return out
    long = wide.reset_index().melt(id_vars=target, var_name=rater, value_name=rating)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = pg.intraclass_corr(data=long, targets=target, raters=rater,
                                 ratings=rating).set_index("Type")
    ci = icc_confidence(wide.to_numpy(dtype=float))
    for key, typ in (("icc1", "ICC(1,1)"), ("icc2", "ICC(A,1)"), ("icc3", "ICC(C,1)")):
        out[key] = float(res.loc[typ, "ICC"])
        out[f"{key}_ci_low"], out[f"{key}_ci_high"] = ci[f"{key}_ci_low"], ci[f"{key}_ci_high"]
    return out


def bland_altman(x1: Sequence[float], x2: Sequence[float]) -> dict[str, float]:
    """Bias and 95% limits of agreement of x1 - x2, with their 95% CIs (Bland & Altman 1999)."""
    from scipy import stats

    d = np.asarray(x1, dtype=float) - np.asarray(x2, dtype=float)
    n = d.size
    out = {"n": n, "bias": math.nan, "sd_diff": math.nan, "bias_ci_low": math.nan,
           "bias_ci_high": math.nan, "loa_low": math.nan, "loa_high": math.nan,
           "loa_low_ci_low": math.nan, "loa_low_ci_high": math.nan,
           "loa_high_ci_low": math.nan, "loa_high_ci_high": math.nan}
    if n < 2:
        return out
    bias, sd = float(d.mean()), float(d.std(ddof=1))
    t = float(stats.t.ppf(0.975, n - 1))
    se_bias = sd / math.sqrt(n)
    se_loa = sd * math.sqrt(1.0 / n + Z95**2 / (2.0 * (n - 1)))
    lo, hi = bias - Z95 * sd, bias + Z95 * sd
    out.update(bias=bias, sd_diff=sd, bias_ci_low=bias - t * se_bias,
               bias_ci_high=bias + t * se_bias, loa_low=lo, loa_high=hi,
               loa_low_ci_low=lo - t * se_loa, loa_low_ci_high=lo + t * se_loa,
               loa_high_ci_low=hi - t * se_loa, loa_high_ci_high=hi + t * se_loa)
    return out


def bland_altman_plot(x1: Sequence[float], x2: Sequence[float], title: str,
                      out_stem: Path) -> list[Path]:
    """Mean-difference plot (statsmodels) with the CIs of bias and LoA; PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from statsmodels.graphics.agreement import mean_diff_plot

    a, b = np.asarray(x1, float), np.asarray(x2, float)
    stats_ = bland_altman(a, b)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    if a.size >= 2 and np.std(a - b) > 0:
        mean_diff_plot(a, b, ax=ax, scatter_kwds={"alpha": 0.6, "s": 18})
        for key in ("bias", "loa_low", "loa_high"):
            ax.axhspan(stats_[f"{key}_ci_low"], stats_[f"{key}_ci_high"], color="tab:gray",
                       alpha=0.15, lw=0)
    else:  # all differences equal: mean_diff_plot cannot draw limits; show the points
        ax.scatter((a + b) / 2, a - b, s=18)
        ax.axhline(stats_["bias"] if a.size else 0, color="k")
        ax.set_xlabel("Means")
        ax.set_ylabel("Difference")
    ax.set_title(title)
    fig.tight_layout()
    paths = [out_stem.with_suffix(".png"), out_stem.with_suffix(".svg")]
    for p in paths:
        fig.savefig(p, dpi=120)
    plt.close(fig)
    return paths


# --------------------------------------------------------------------------- from reads
def paired_reads(reads_long: pd.DataFrame, *, signed_only: bool = True) -> pd.DataFrame:
    """Rows of the first two independent reads (``kind == "read"``, read_number 1 and 2)."""
    df = reads_long[reads_long["kind"] == "read"]
    if signed_only:
        df = df[df["status"] == "signed"]
    return df[df["read_number"].isin([1, 2])]


def item_agreement_table(reads_long: pd.DataFrame, form: Any = None, *,
                         n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED) -> pd.DataFrame:
    """One row per form item: kappa_w (CI), percent agreement, AC2 (CI), and case counts.

    Cases enter an item's figures when both reads scored it (assessable); cases where either
    read marked it not assessable or left it missing are counted in ``n_excluded``.
    """
    from weeke_pipeline.scoring import load_form

    df = paired_reads(reads_long)
    if form is None:
        form = load_form(_single(df, "form_id"), _single(df, "form_version"))
    piv = df.pivot_table(index=["reading_code", "item"], columns="read_number",
                         values="item_score", aggfunc="first")
    rows = []
    for it in form.items:
        sub = piv.xs(it.id, level="item") if it.id in piv.index.get_level_values("item") \
            else pd.DataFrame(columns=[1, 2])
        n_cases = len(sub)
        if 1 not in sub.columns or 2 not in sub.columns:
            both = sub.iloc[0:0]
        else:
            both = sub[[1, 2]].dropna()
        res = item_agreement(both[1].astype(int).to_numpy() if len(both) else [],
                             both[2].astype(int).to_numpy() if len(both) else [],
                             it.max_score, n_boot=n_boot, seed=seed)
        rows.append({"item": it.id, "subscore": it.subscore, "max_score": it.max_score,
                     **res, "n_excluded": n_cases - len(both)})
    return pd.DataFrame(rows)


def _single(df: pd.DataFrame, col: str) -> str:
    vals = df[col].dropna().unique()
    if len(vals) != 1:
        raise ValueError(f"reads table holds {len(vals)} values of {col!r} ({list(vals)[:5]});"
                         " compute agreement for one form version at a time")
    return str(vals[0])


def score_agreement_table(reads_long: pd.DataFrame, form: Any = None) -> tuple[pd.DataFrame,
                                                                               pd.DataFrame]:
    """ICCs and Bland-Altman figures per subscore and total (complete reads only).

    Returns (figures, pairs): ``pairs`` has reading_code, score, read1, read2.
    """
    from weeke_pipeline.analysis.reads import reads_wide

    df = paired_reads(reads_long)
    wide = reads_wide(df, form=form)
    if form is None:
        from weeke_pipeline.scoring import load_form

        form = load_form(_single(df, "form_id"), _single(df, "form_version"))
    scores = [(s.id, f"{s.id}", f"{s.id}_complete") for s in form.subscores]
    scores.append(("total", "total", "complete"))
    rows, pairs = [], []
    for name, col, flag in scores:
        ok = wide[wide[flag].astype(bool)]
        p = ok.pivot_table(index="reading_code", columns="read_number", values=col,
                           aggfunc="first")
        p = p.dropna() if {1, 2} <= set(p.columns) else pd.DataFrame(columns=[1, 2])
        long = p.reset_index().melt(id_vars="reading_code", var_name="read_number",
                                    value_name="value") if len(p) else pd.DataFrame(
            columns=["reading_code", "read_number", "value"])
        rows.append({"score": name, "n_cases": len(p), **icc_table(long),
                     **{k: v for k, v in bland_altman(p.get(1, []), p.get(2, [])).items()
                        if k != "n"}})
        for code, r in p.iterrows():
            pairs.append({"reading_code": code, "score": name, "read1": r[1], "read2": r[2]})
    return pd.DataFrame(rows), pd.DataFrame(pairs, columns=["reading_code", "score", "read1",
                                                           "read2"])


def index_vs_consensus(consensus_wide: pd.DataFrame, suggested_wide: pd.DataFrame,
                       form: Any, *, n_boot: int = 500, seed: int = DEFAULT_SEED
                       ) -> pd.DataFrame:
    """Agreement of the automated injury index's suggested item scores with the consensus.

    Both tables are wide, one row per reading_code, item scores in ``<item>_score`` columns.
    """
    m = consensus_wide.merge(suggested_wide, on="reading_code", suffixes=("_cons", "_idx"))
    rows = []
    for it in form.items:
        c1, c2 = f"{it.id}_score_cons", f"{it.id}_score_idx"
        if c1 not in m or c2 not in m:
            continue
        both = m[[c1, c2]].dropna()
        res = item_agreement(both[c1].astype(int), both[c2].astype(int), it.max_score,
                             n_boot=n_boot, seed=seed)
        rows.append({"item": it.id, **res})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- report
def _fmt(x: Any, nd: int = 3) -> str:
    if isinstance(x, float | np.floating):
        return "NA" if not math.isfinite(x) else f"{x:.{nd}f}"
    return html.escape(str(x))


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def reading_time_table(reads_long_df: pd.DataFrame) -> pd.DataFrame:
    """Per reader (pseudonym) over their signed, timed reads: number of reads, median and
    interquartile range of the reading time and of the active time, in seconds."""
    cols = ["reader", "n_reads", "reading_s_median", "reading_s_q1", "reading_s_q3",
            "active_s_median", "active_s_q1", "active_s_q3"]
    if "active_seconds" not in reads_long_df:
        return pd.DataFrame(columns=cols)
    reads = (reads_long_df[reads_long_df["status"] == "signed"]
             .drop_duplicates(["reading_code", "kind", "read_number", "reader"]))
    reads = reads[reads["active_seconds"].notna()]
    rows = []
    for reader, g in reads.groupby("reader", sort=True):
        wall = g["reading_seconds"].dropna().astype(float)
        act = g["active_seconds"].astype(float)
        q = [float(x) if len(wall) else float("nan") for x in wall.quantile([0.5, 0.25, 0.75])]
        rows.append([str(reader), len(g), *q, *(float(x) for x in act.quantile([0.5, 0.25,
                                                                                  0.75]))])
    return pd.DataFrame(rows, columns=cols)


def reading_time_dictionary() -> dict[str, Any]:
    """Data dictionary of ``reading_time.tsv``."""
    from weeke_pipeline.analysis.dictionaries import _col

    d = {"reader": _col("Reader pseudonym", "string"),
         "n_reads": _col("Signed reads with a recorded reading time", "integer", minimum=0)}
    for key, what in (("reading", "reading time (first opening to signature, wall time)"),
                      ("active", "active reading time (idle gaps left out)")):
        for stat, label in (("median", "median"), ("q1", "first quartile"),
                            ("q3", "third quartile")):
            d[f"{key}_s_{stat}"] = _col(f"{label.capitalize()} of the {what}", "number",
                                        units="s", minimum=0)
    return d


def write_agreement_report(reads_long_df: pd.DataFrame, out_dir: str | Path, *, form: Any = None,
                           n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED,
                           index_agreement: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write item and score agreement tables (TSV + JSON sidecars), Bland-Altman plots and an
    HTML report into ``out_dir``; returns the written paths by name.

    ``index_agreement`` (optional): output of :func:`index_vs_consensus`, shown in its own
    section (analysts only; never shown to readers).
    """
    from weeke_pipeline.analysis import tables as tb

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = paired_reads(reads_long_df)
    n_pairs = int(df.groupby("reading_code")["read_number"].nunique().eq(2).sum()) \
        if len(df) else 0
    if n_pairs == 0:
        raise ValueError("no case has signed reads 1 and 2 in the reads table: nothing to "
                         "compare")
    if form is None:
        from weeke_pipeline.scoring import load_form

        form = load_form(_single(df, "form_id"), _single(df, "form_version"))
    items = item_agreement_table(reads_long_df, form, n_boot=n_boot, seed=seed)
    scores, pairs = score_agreement_table(reads_long_df, form)
    paths: dict[str, Path] = {}
    paths["items"] = tb.write_table(items, out / "agreement_items.tsv",
                                    tb.agreement_items_dictionary())
    paths["scores"] = tb.write_table(scores, out / "agreement_scores.tsv",
                                     tb.agreement_scores_dictionary())
    figs = []
    for name in scores["score"]:
        p = pairs[pairs["score"] == name]
        stem = out / f"bland_altman_{name}"
        png, svg = bland_altman_plot(p["read1"], p["read2"], f"{name}: read 1 - read 2", stem)
        paths[f"ba_{name}_png"], paths[f"ba_{name}_svg"] = png, svg
        figs.append((name, png.name))
    n_cases = df["reading_code"].nunique()
    undefined = items[items["kappa_na_reason"] != ""]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Reader agreement</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}"
        "th{background:#eee}</style></head><body>",
        f"<h1>Reader agreement: {html.escape(form.id)} {html.escape(form.version)}</h1>",
        f"<p>{n_cases} cases with a signed read; {n_pairs} with signed reads 1 and 2. "
        f"Bootstrap: {n_boot} resamples of cases, seed {seed}, percentile 95% CIs.</p>",
        "<h2>Items</h2><p>kappa_w: quadratic-weighted Cohen's kappa (scikit-learn); AC2: "
        "Gwet's AC2, quadratic weights; percent agreement: identical item scores. Items are "
        "ordinal and mostly 0, so kappa can be low (or undefined) despite high agreement; read "
        "AC2 and percent agreement beside it.</p>",
        _html_table(items),
    ]
    if len(undefined):
        parts.append("<p>Kappa reported NA: " + "; ".join(
            f"{html.escape(r.item)}: {html.escape(r.kappa_na_reason)}"
            for r in undefined.itertuples()) + ".</p>")
    parts += ["<h2>Subscores and total</h2><p>ICC(2,1): two-way random, absolute agreement; "
              "ICC(3,1): two-way mixed, consistency; ICC(1,1): one-way random (readers vary "
              "between cases). Bland-Altman: read 1 - read 2, limits bias &plusmn; 1.96 SD, CIs "
              "after Bland &amp; Altman 1999. Published: total-score ICC 0.96 (Szakmar 2021), "
              "kappa 0.9 (Machie 2021).</p>", _html_table(scores)]
    for name, png in figs:
        parts.append(f"<h3>{html.escape(name)}</h3><img src='{html.escape(png)}' "
                     f"alt='Bland-Altman plot of {html.escape(name)}' width='480'>")
    times = reading_time_table(reads_long_df)
    if len(times):
        paths["reading_time"] = tb.write_table(times, out / "reading_time.tsv",
                                               reading_time_dictionary())
        parts += ["<h2>Reading time per reader</h2><p>Signed reads. Reading time: first opening "
                  "to signature (wall time). Active time: gaps longer than the hanging "
                  "protocol's idle threshold left out (docs/reading.md).</p>",
                  _html_table(times)]
    if index_agreement is not None and len(index_agreement):
        parts += ["<h2>Automated injury index vs consensus (analysts and QC only)</h2>",
                  _html_table(index_agreement)]
    parts.append("</body></html>")
    paths["html"] = out / "agreement_report.html"
    paths["html"].write_text("\n".join(parts), encoding="utf-8")
    return paths


# --------------------------------------------------------------------------- weeke agreement
def cases_with_two_reads(reads_long_df: pd.DataFrame) -> int:
    """How many cases have two signed independent reads (the pairs agreement compares)."""
    pairs = paired_reads(reads_long_df)
    if pairs.empty:
        return 0
    return int(pairs.groupby("reading_code")["read_number"].nunique().eq(2).sum())


def injury_index_agreement(metrics_dir: Path, reads_long_df: pd.DataFrame,
                           case_keys: Any, *, reference: Any = "atlas", atlas_dir: Any = None,
                           n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED
                           ) -> tuple[dict[str, Any], list[str]]:
    """Injury index of each case with one pipeline session (``metrics_dir``: a `weeke run`
    output; ``case_keys``: (subject, session) -> reading code), and its agreement with the
    resolved consensus (:func:`index_vs_consensus`). Written to the analyst's folder only,
    never to the reading database. Returns the tables (``agreement``, ``suggested``,
    ``regions``, their dictionaries, ``form``) and warnings; a case with several sessions is
    left out with a warning. Bad metrics or reference: ``errors.UsageError``."""
    from weeke_pipeline.analysis import derivative_tables as dt
    from weeke_pipeline.analysis import injury_index as ii
    from weeke_pipeline.analysis.consensus import consensus
    from weeke_pipeline.constants import DEFAULT_FORM
    from weeke_pipeline.errors import UsageError
    from weeke_pipeline.scoring import load_form

    try:
        der = dt.load(metrics_dir, case_keys)
        ref = ii.load_reference(reference, atlas_dir=atlas_dir)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    warns = list(der.warnings)
    m = der.metrics
    sessions = m.groupby("reading_code")["session"].nunique()
    multi = sorted(sessions[sessions > 1].index)
    if multi:
        warns.append(f"{len(multi)} case(s) have several pipeline sessions (the case does "
                     "not say which was read): left out of the injury index: "
                     + ", ".join(multi))
    m = m[~m["reading_code"].isin(multi)].rename(columns={"reading_code": "subject"})
    if m.empty:
        raise UsageError(f"{metrics_dir}: no region metrics of any case for the injury index")
    cons = consensus(reads_long_df)
    versions = cons[["form_id", "form_version"]].dropna().drop_duplicates()
    form = load_form(*versions.iloc[0]) if len(versions) else load_form(DEFAULT_FORM, None)
    regions, suggested = ii.injury_index(m, ref, form_id=form.id)
    regions = regions.rename(columns={"subject": "reading_code"})
    suggested = suggested.rename(columns={"subject": "reading_code"})
    resolved = cons[cons["consensus_source"] != "unresolved"]
    agreement = index_vs_consensus(resolved, suggested, form, n_boot=n_boot,
                                   seed=seed) if len(resolved) else pd.DataFrame()
    return ({"agreement": agreement, "suggested": suggested, "regions": regions, "form": form,
             "suggested_dict": ii.suggested_dictionary(form),
             "regions_dict": ii.regions_dictionary()}, warns)


def write_injury_index_tables(index: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write :func:`injury_index_agreement`'s tables (TSV + sidecar) to ``out_dir``."""
    from weeke_pipeline.analysis.dictionaries import agreement_items_dictionary
    from weeke_pipeline.analysis.export import write_table

    files: list[Path] = []
    for name, table, dictionary in (
            ("injury_index_agreement", index["agreement"], agreement_items_dictionary()),
            ("injury_index_suggested", index["suggested"], index["suggested_dict"]),
            ("injury_index_regions", index["regions"], index["regions_dict"])):
        p = write_table(table, Path(out_dir) / f"{name}.tsv", dictionary)
        files += [p, p.with_suffix(".json")]
    return files
