"""Writing an analyst table with its data dictionary; the coordinator's subject column."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

#: a cell a spreadsheet would run as a formula (OWASP "CSV injection"): = + - @ first, or a
#: tab / carriage return first (some spreadsheets skip these and read what follows)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell that starts like a formula prefixed with ``'`` (so a
    spreadsheet shows ``=HYPERLINK(...)`` as text, OWASP's advice); numbers written as text
    (``-1.5``) are left alone. Only text columns are touched; the caller's frame is not."""
    out = df
    for col in df.columns:
        if not (df[col].dtype == object or pd.api.types.is_string_dtype(df[col].dtype)):
            continue
        values = df[col]
        bad = values.map(lambda v: isinstance(v, str) and v.startswith(_FORMULA_START)
                         and not _NUMBER.match(v))
        if bad.any():
            if out is df:
                out = df.copy()
            out.loc[bad, col] = "'" + values[bad]
    return out


def write_table(df: pd.DataFrame, path: str | os.PathLike[str], dictionary: Mapping[str, Any],
                fmt: str | None = None, *, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``df`` (tsv, csv or parquet, from the suffix or ``fmt``) and its JSON sidecar.

    NA is written ``n/a`` in TSV (BIDS) and empty in CSV. Every column must be in the
    dictionary (a column without a description is an error, not a silent gap). ``extra``:
    further top-level sidecar keys (not columns), e.g. the metrics' reference tissue.
    """
    p = Path(path)
    fmt = fmt or p.suffix.lstrip(".")
    undocumented = [c for c in df.columns if c not in dictionary]
    if undocumented:
        raise ValueError(f"{p.name}: column(s) {undocumented} missing from the data dictionary")
    p.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "tsv":  # text cells formula-safe (neutralise_formulas); Parquet as it is
        neutralise_formulas(df).to_csv(p, sep="\t", index=False, na_rep="n/a")
    elif fmt == "csv":
        neutralise_formulas(df).to_csv(p, index=False, na_rep="")
    elif fmt == "parquet":
        df.to_parquet(p, index=False)
    else:
        raise ValueError(f"unknown table format {fmt!r} (tsv, csv or parquet)")
    side = {c: dictionary[c] for c in df.columns}
    side.update({k: v for k, v in (extra or {}).items() if k not in side})
    p.with_suffix(".json").write_text(json.dumps(side, indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    return p


def insert_subjects(df: pd.DataFrame, subject_of: Mapping[str, str],
                    session_of: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Copy of ``df`` with a ``subject`` column right after ``reading_code``, and a
    ``session`` column after it from ``session_of`` (a case is one subject and session) unless
    ``df`` has one already (the pipeline's metrics and QC tables)."""
    out = df.copy()
    at = int(out.columns.get_loc("reading_code")) + 1
    codes = out["reading_code"].astype(str)
    out.insert(at, "subject", pd.array(codes.map(subject_of), dtype="string"))
    if session_of is not None and "session" not in out.columns:
        out.insert(at + 1, "session", pd.array(codes.map(session_of), dtype="string"))
    return out
