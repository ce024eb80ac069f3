"""The consensus of a case: the signed adjudication, else the independent reads when they agree
(:func:`weeke_pipeline.scoring.compare.same_items`, the reading app's rule), else unresolved."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from weeke_pipeline.analysis.reads import (
    READ_ID_COLUMNS,
    _form,
    _typed_wide,
    _wide_row,
    long_to_records,
    wide_columns,
)
from weeke_pipeline.scoring.compare import same_items


# --------------------------------------------------------------------------- consensus
def consensus(long: pd.DataFrame, form: Any = None, *,
              codes: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per case: the signed adjudication if any, else the signed independent reads when
    they agree on every item (extent, laterality, assessability), else ``unresolved`` (NA).

    Columns: ``reading_code``, ``consensus_source``, ``n_reads`` (signed independent reads), then
    the wide-table item/subscore/total columns of the chosen read. ``codes``: every case to list
    (cases without any read come out ``unresolved`` with ``n_reads`` 0); default the cases of
    ``long``.
    """
    signed = long[long["status"] == "signed"]
    recs = long_to_records(signed)
    cache: dict[tuple[str, str], Any] = {}
    cons_cols: set[str] = set()
    by_case: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by_case.setdefault(str(r["reading_code"]), []).append(r)
    all_codes = sorted(set(long["reading_code"].astype(str)) | set(map(str, codes or ())))
    rows = []
    for code in all_codes:
        rs = by_case.get(code, [])
        reads = [r for r in rs if r["kind"] == "read"]
        adj = [r for r in rs if r["kind"] == "adjudication"]
        chosen, source = None, "unresolved"
        if adj:
            chosen, source = adj[0], "adjudicated"
        elif len(reads) >= 2 and all(same_items(reads[0]["items"], r["items"])
                                     for r in reads[1:]):
            chosen, source = reads[0], "agreed"
        f = form
        base = chosen or (rs[0] if rs else None)
        if f is None and base is not None:
            f = _form(base["form_id"], base["form_version"], cache)
        if f is not None:
            cons_cols = set(_consensus_columns(f))
        row: dict[str, Any] = {"reading_code": code, "consensus_source": source,
                               "n_reads": len(reads)}
        if chosen is not None:
            w = _wide_row(chosen, f)
            row.update({k: v for k, v in w.items() if k in cons_cols})
            row["form_id"], row["form_version"] = chosen["form_id"], chosen["form_version"]
        elif base is not None:
            row["form_id"], row["form_version"] = base["form_id"], base["form_version"]
        rows.append(row)
    if form is None:
        forms = {(r.get("form_id"), r.get("form_version")) for r in rows if r.get("form_id")}
        if len(forms) > 1:
            raise ValueError(f"cases use {len(forms)} form versions; split the table")
        form = _form(*next(iter(forms)), cache) if forms else None
    cols = ["reading_code", "consensus_source", "n_reads", "form_id", "form_version"]
    if form is not None:
        cols += _consensus_columns(form)
    out = pd.DataFrame(rows).reindex(columns=cols)
    return _typed_wide(out, form) if form is not None else out


def _consensus_columns(form: Any) -> list[str]:
    """The wide item/subscore/total columns a consensus row carries (not the reading time of
    whichever read was chosen: reading time belongs to reads, in the long and wide tables)."""
    return [c for c in wide_columns(form)[len(READ_ID_COLUMNS):] if not c.endswith("_seconds")]
