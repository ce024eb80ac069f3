"""Analyst tables that need no database: reads long <-> wide, consensus, data dictionaries,
REDCap export, unblinding summary (issue 6). Conventions: ``docs/tables.md``.

**reads long** (:data:`READS_LONG_COLUMNS`), one row per read x form item:

=================  ==========================================================================
reading_code       case pseudonym (string)
reader             reader pseudonym (string; never a name)
read_number        1, 2, ... order of the independent reads of the case (adjudication: 0)
kind               ``read`` (independent read) or ``adjudication``
form_id            scoring form id, e.g. ``weeke-consensus-2025``
form_version       form version, e.g. ``1.0.0``
status             ``signed`` or ``draft``
signed_at          ISO 8601 time of signature, or NA
opened_at          ISO 8601 time the reader first opened the case, or NA
reading_seconds    signed_at - opened_at in seconds (wall time, breaks included), or NA
active_seconds     active reading time in seconds (idle gaps over the threshold left out)
item               form item id
item_state         ``scored``, ``not_assessable`` or ``missing``
extent             0..n (nullable integer)
laterality         0 (none), 1 (unilateral), 2 (bilateral); NA on non-lateralised/unscored
item_score         extent + laterality (nullable integer), as the score engine computes it
assessable         True / False / NA (missing)
reason             why not assessable, else NA
item_seconds       active seconds spent on this item, or NA (read made before timing existed)
=================  ==========================================================================

**reads wide**: one row per read: the identifying columns above (without item columns), then per
item ``<item>_ext``, ``<item>_lat``, ``<item>_score``, ``<item>_assess``, ``<item>_reason``,
``<item>_seconds``; per
subscore ``<sub>`` and ``<sub>_complete``; ``total``, ``complete``. Scores come from the score
engine (:func:`weeke_pipeline.scoring.score_items`), never re-added by hand.

**consensus**: one row per case, the wide columns of the chosen read plus ``consensus_source``
(``adjudicated``, ``agreed`` or ``unresolved``) and ``n_reads``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

READ_ID_COLUMNS = ("reading_code", "reader", "read_number", "kind", "form_id", "form_version",
                   "status", "signed_at", "opened_at", "reading_seconds", "active_seconds")
ITEM_COLUMNS = ("item", "item_state", "extent", "laterality", "item_score", "assessable",
                "reason", "item_seconds")
READS_LONG_COLUMNS = READ_ID_COLUMNS + ITEM_COLUMNS
ITEM_SUFFIXES = ("ext", "lat", "score", "assess", "reason", "seconds")
#: columns of the reading time (float seconds)
TIME_COLUMNS = ("reading_seconds", "active_seconds")
DEFAULT_SEED = 20240601


def _form(form_id: str, version: str, cache: dict[tuple[str, str], Any]) -> Any:
    from weeke_pipeline.scoring import load_form

    key = (str(form_id), str(version))
    if key not in cache:
        cache[key] = load_form(*key)
    return cache[key]


# --------------------------------------------------------------------------- long
def reads_long_from_records(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Reads long table from read records (as the reading app stores them).

    Each record: the :data:`READ_ID_COLUMNS` keys plus ``items`` (the score engine payload's
    item dict). Every record is scored with the engine (a bad item set raises ScoringError);
    every form item gets a row, ``missing`` ones included.
    """
    from weeke_pipeline.scoring import score_items

    cache: dict[tuple[str, str], Any] = {}
    rows: list[dict[str, Any]] = []
    for rec in records:
        form = _form(rec["form_id"], rec["form_version"], cache)
        res = score_items(form, {"items": dict(rec.get("items") or {})})
        ident = {c: rec.get(c) for c in READ_ID_COLUMNS}
        for it in form.items:
            s = res.items.get(it.id)
            sec = _item_seconds(rec, it.id)
            if s is None:
                rows.append({**ident, "item": it.id, "item_state": "missing", "extent": None,
                             "laterality": None, "item_score": None, "assessable": None,
                             "reason": None, "item_seconds": sec})
            elif not s.assessable:
                rows.append({**ident, "item": it.id, "item_state": "not_assessable",
                             "extent": None, "laterality": None, "item_score": None,
                             "assessable": False, "reason": s.reason, "item_seconds": sec})
            else:
                rows.append({**ident, "item": it.id, "item_state": "scored", "extent": s.extent,
                             "laterality": s.laterality, "item_score": s.score,
                             "assessable": True, "reason": None, "item_seconds": sec})
    return _typed_long(pd.DataFrame(rows, columns=list(READS_LONG_COLUMNS)))


def _item_seconds(rec: Mapping[str, Any], item: str) -> float | None:
    """Active seconds on ``item``: 0 when the read was timed but the item never had the
    reader's attention, None when the read has no timing (made before it was recorded)."""
    per_item = rec.get("item_seconds")
    if per_item is None:
        return None
    return float(per_item.get(item, 0.0))


def _typed_long(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in ("read_number", "extent", "laterality", "item_score"):
        df[c] = pd.array(df[c], dtype="Int64")
    for c in (*TIME_COLUMNS, "item_seconds"):
        df[c] = pd.array(pd.to_numeric(df[c], errors="coerce"), dtype="Float64")
    df["assessable"] = pd.array(df["assessable"], dtype="boolean")
    for c in ("reading_code", "reader", "kind", "form_id", "form_version", "status", "item",
              "item_state"):
        df[c] = df[c].astype("string")
    return df


def _check_columns(df: pd.DataFrame, needed: Sequence[str], what: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; see docs/tables.md")


def long_to_records(long: pd.DataFrame) -> list[dict[str, Any]]:
    """Inverse of :func:`reads_long_from_records`: one record (with engine payload) per read,
    in the order of (reading_code, kind, read_number, reader), missing values last.

    One pass over plain Python lists (a pandas groupby with a row iterator per read was 20x
    slower on 1,000 cases x 3 reads).
    """
    _check_columns(long, READS_LONG_COLUMNS, "reads long table")
    cols = {c: [_py(v) for v in long[c].tolist()] for c in READS_LONG_COLUMNS}
    keys = ("reading_code", "kind", "read_number", "reader")
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, k in enumerate(zip(*(cols[c] for c in keys), strict=True)):
        groups.setdefault(k, []).append(i)

    def order(k: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(x for v in k for x in (v is None, "" if v is None else v))

    out = []
    state, item, reason = cols["item_state"], cols["item"], cols["reason"]
    extent, lat, secs = cols["extent"], cols["laterality"], cols["item_seconds"]
    for k in sorted(groups, key=order):
        rows = groups[k]
        rec = {c: cols[c][rows[0]] for c in READ_ID_COLUMNS}
        timed = {item[i]: float(secs[i]) for i in rows if secs[i] is not None}
        rec["item_seconds"] = timed or None
        items: dict[str, Any] = {}
        for i in rows:
            if state[i] == "missing":
                continue
            if state[i] == "not_assessable":
                items[item[i]] = {"assessable": False, "reason": str(reason[i])}
                continue
            entry: dict[str, Any] = {"extent": int(extent[i])}
            if lat[i] is not None and int(extent[i]) > 0:
                entry["laterality"] = int(lat[i])
            items[item[i]] = entry
        rec["items"] = items
        out.append(rec)
    return out


def _py(v: Any) -> Any:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return v.item() if hasattr(v, "item") else v


# --------------------------------------------------------------------------- wide
def wide_columns(form: Any) -> list[str]:
    """Column order of the wide table for ``form``."""
    cols = list(READ_ID_COLUMNS)
    for it in form.items:
        cols += [f"{it.id}_{s}" for s in ITEM_SUFFIXES]
    for sub in form.subscores:
        cols += [sub.id, f"{sub.id}_complete"]
    return [*cols, "total", "complete"]


def _wide_row(rec: Mapping[str, Any], form: Any) -> dict[str, Any]:
    from weeke_pipeline.scoring import score_items

    res = score_items(form, {"items": dict(rec["items"])})
    row: dict[str, Any] = {c: rec.get(c) for c in READ_ID_COLUMNS}
    for it in form.items:
        s = res.items.get(it.id)
        row[f"{it.id}_ext"] = s.extent if s else None
        row[f"{it.id}_lat"] = s.laterality if s else None
        row[f"{it.id}_score"] = s.score if s else None
        row[f"{it.id}_assess"] = s.assessable if s else None
        row[f"{it.id}_reason"] = s.reason if s else None
        row[f"{it.id}_seconds"] = _item_seconds(rec, it.id)
    for sub in form.subscores:
        row[sub.id] = res.subscores[sub.id]
        row[f"{sub.id}_complete"] = res.subscores_complete[sub.id]
    row["total"], row["complete"] = res.total, res.complete
    return row


def reads_wide(long: pd.DataFrame, form: Any = None) -> pd.DataFrame:
    """One row per read: item extent/laterality/score, subscores, total, completeness flags.

    Subscores and total are computed by the score engine from the long rows. All reads must use
    one form version (pass ``form`` or let it be loaded from the table).
    """
    cache: dict[tuple[str, str], Any] = {}
    recs = long_to_records(long)
    if not recs:
        return pd.DataFrame(columns=wide_columns(form) if form else list(READ_ID_COLUMNS))
    versions = {(r["form_id"], r["form_version"]) for r in recs}
    if form is None:
        if len(versions) != 1:
            raise ValueError(f"reads use {len(versions)} form versions {sorted(versions)}; "
                             "make one wide table per form version")
        form = _form(*next(iter(versions)), cache)
    rows = [_wide_row(r, form) for r in recs]
    return _typed_wide(pd.DataFrame(rows, columns=wide_columns(form)), form)


def _typed_wide(df: pd.DataFrame, form: Any) -> pd.DataFrame:
    df = df.copy()
    ints = ["read_number", "total"] + [s.id for s in form.subscores]
    for it in form.items:
        ints += [f"{it.id}_ext", f"{it.id}_lat", f"{it.id}_score"]
    for c in ints:
        if c in df:
            df[c] = pd.array(df[c], dtype="Int64")
    bools = ["complete"] + [f"{s.id}_complete" for s in form.subscores] + [
        f"{it.id}_assess" for it in form.items]
    for c in bools:
        if c in df:
            df[c] = pd.array(df[c], dtype="boolean")
    for c in [*TIME_COLUMNS, *(f"{it.id}_seconds" for it in form.items)]:
        if c in df:
            df[c] = pd.array(pd.to_numeric(df[c], errors="coerce"), dtype="Float64")
    return df


def wide_to_long(wide: pd.DataFrame, form: Any) -> pd.DataFrame:
    """Inverse of :func:`reads_wide` (scores recomputed by the engine)."""
    _check_columns(wide, wide_columns(form)[: len(READ_ID_COLUMNS)], "reads wide table")
    recs = []
    for r in wide.to_dict("records"):
        items: dict[str, Any] = {}
        timed = {it.id: float(r[f"{it.id}_seconds"]) for it in form.items
                 if _py(r.get(f"{it.id}_seconds")) is not None}
        for it in form.items:
            assess = r.get(f"{it.id}_assess")
            if assess is None or pd.isna(assess):
                continue
            if not bool(assess):
                items[it.id] = {"assessable": False, "reason": str(r[f"{it.id}_reason"])}
                continue
            e = int(r[f"{it.id}_ext"])
            entry: dict[str, Any] = {"extent": e}
            lat = r.get(f"{it.id}_lat")
            if it.lateralised and e > 0:
                entry["laterality"] = int(lat)
            items[it.id] = entry
        recs.append({**{c: _py(r.get(c)) for c in READ_ID_COLUMNS}, "items": items,
                     "item_seconds": timed or None})
    return reads_long_from_records(recs)


# --------------------------------------------------------------------------- consensus
def _comparable(items: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {k: (v.get("assessable", True), v.get("extent"), v.get("laterality"))
            for k, v in items.items()}


def _same_items(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """The reading app's rule (``services.differing_items``): reads agree when every item has
    the same assessability, extent and laterality. The free-text reason of a not-assessable
    item is not compared (the app never sends such a case to adjudication)."""
    return _comparable(a) == _comparable(b)


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
        elif len(reads) >= 2 and all(_same_items(reads[0]["items"], r["items"])
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


# --------------------------------------------------------------------------- dictionaries
def _col(desc: str, fmt: str, *, levels: Mapping[str, str] | None = None,
         units: str | None = None, minimum: float | None = None,
         maximum: float | None = None, long_name: str | None = None) -> dict[str, Any]:
    """One BIDS tabular sidecar entry (Description, Format, Levels, Units, Minimum, Maximum)."""
    d: dict[str, Any] = {}
    if long_name:
        d["LongName"] = long_name
    d["Description"] = desc
    d["Format"] = fmt
    if levels:
        d["Levels"] = dict(levels)
    if units:
        d["Units"] = units
    if minimum is not None:
        d["Minimum"] = minimum
    if maximum is not None:
        d["Maximum"] = maximum
    return d


def _id_dictionary() -> dict[str, Any]:
    return {
        "reading_code": _col("Case pseudonym (random reading code); no subject identifier",
                             "string"),
        "reader": _col("Reader pseudonym", "string"),
        "read_number": _col("Order of the independent read of the case (1, 2, ...); 0 for the "
                            "adjudication", "integer", minimum=0),
        "kind": _col("Kind of read", "string", levels={"read": "independent blinded read",
                                                       "adjudication": "adjudicator's read"}),
        "form_id": _col("Scoring form id (scoring_forms/)", "string"),
        "form_version": _col("Scoring form version the read was made with", "string"),
        "status": _col("Read status", "string", levels={"signed": "signed by the reader",
                                                        "draft": "not yet signed"}),
        "signed_at": _col("Time of signature (ISO 8601, UTC); n/a when not signed", "string"),
        "opened_at": _col("Time the reader first opened the case (ISO 8601, UTC); n/a for "
                          "reads made before reading time was recorded", "string"),
        "reading_seconds": _col("Reading time: signed_at - opened_at (wall time, breaks "
                                "included); n/a until signed", "number", units="s", minimum=0),
        "active_seconds": _col("Active reading time: time between consecutive reader actions, "
                               "gaps longer than the hanging protocol's idle threshold (60 s by "
                               "default) left out", "number", units="s", minimum=0),
    }


def reads_long_dictionary(form: Any) -> dict[str, Any]:
    """JSON data dictionary (BIDS sidecar style) of the reads long table."""
    d = _id_dictionary()
    d.update({
        "item": _col("Form item id", "string",
                     levels={it.id: it.label for it in form.items}),
        "item_state": _col("Whether the item was scored", "string", levels={
            "scored": "scored", "not_assessable": "marked not assessable with a reason",
            "missing": "not yet scored"}),
        "extent": _col("Extent/severity code of the item (see the form's extents)",
                       "integer", minimum=0),
        "laterality": _col("Laterality of a lateralised item", "integer",
                           levels={"0": "not applicable (extent 0)", "1": "unilateral",
                                   "2": "bilateral"}),
        "item_score": _col("Item score = extent + laterality (lateralised) or extent",
                           "integer", units="points", minimum=0),
        "assessable": _col("Item could be assessed (n/a when missing)", "boolean"),
        "reason": _col("Reason the item is not assessable", "string"),
        "item_seconds": _col("Active seconds the reader spent on this item (0: never on it; "
                             "n/a: read made before reading time was recorded)", "number",
                             units="s", minimum=0),
    })
    return d


def reads_wide_dictionary(form: Any, *, consensus_table: bool = False) -> dict[str, Any]:
    """JSON data dictionary of the wide (or consensus) table for ``form``."""
    d = _id_dictionary()
    if consensus_table:
        d = {k: d[k] for k in ("reading_code", "form_id", "form_version")}
        d["consensus_source"] = _col("Where the consensus comes from", "string", levels={
            "adjudicated": "the signed adjudication", "agreed": "the signed independent reads "
            "agreed on every item", "unresolved": "reads disagree and no adjudication yet"})
        d["n_reads"] = _col("Number of signed independent reads", "integer", minimum=0)
    for it in form.items:
        ext = {str(e.value): e.label for e in it.extents}
        d[f"{it.id}_ext"] = _col(f"{it.label}: extent", "integer", levels=ext,
                                 minimum=0, maximum=max(e.value for e in it.extents))
        if it.lateralised:
            d[f"{it.id}_lat"] = _col(f"{it.label}: laterality", "integer", levels={
                "0": "not applicable (extent 0)", "1": "unilateral", "2": "bilateral"})
        else:
            d[f"{it.id}_lat"] = _col(f"{it.label}: laterality (not lateralised: always n/a)",
                                     "integer")
        d[f"{it.id}_score"] = _col(f"{it.label}: item score", "integer", units="points",
                                   minimum=0, maximum=it.max_score)
        d[f"{it.id}_assess"] = _col(f"{it.label}: assessable (n/a = missing)", "boolean")
        d[f"{it.id}_reason"] = _col(f"{it.label}: reason not assessable", "string")
        if not consensus_table:
            d[f"{it.id}_seconds"] = _col(f"{it.label}: active seconds spent on the item",
                                         "number", units="s", minimum=0)
    for sub in form.subscores:
        d[sub.id] = _col(f"{sub.label} subscore: sum of its scored items", "integer",
                         units="points", minimum=0, maximum=sub.max)
        d[f"{sub.id}_complete"] = _col(f"{sub.label} subscore complete (every item scored)",
                                       "boolean")
    d["total"] = _col("Total score: sum of the subscores", "integer", units="points",
                      minimum=0, maximum=form.total_max)
    d["complete"] = _col("Every item scored (no missing or not-assessable item)", "boolean")
    return d


def agreement_items_dictionary() -> dict[str, Any]:
    """Data dictionary of ``agreement_items.tsv``."""
    return {
        "item": _col("Form item id", "string"),
        "subscore": _col("Subscore of the item", "string"),
        "max_score": _col("Highest item score", "integer", units="points"),
        "n_cases": _col("Cases with both reads scoring the item", "integer"),
        "kappa_w": _col("Quadratic-weighted Cohen's kappa (n/a when undefined)", "number",
                        minimum=-1, maximum=1),
        "kappa_ci_low": _col("Bootstrap 95% CI of kappa_w, lower (percentile)", "number"),
        "kappa_ci_high": _col("Bootstrap 95% CI of kappa_w, upper (percentile)", "number"),
        "kappa_na_reason": _col("Why kappa is undefined (empty when defined)", "string"),
        "n_boot_undefined": _col("Bootstrap resamples with kappa undefined (dropped)",
                                 "integer"),
        "percent_agreement": _col("Cases with identical item scores", "number", units="%",
                                  minimum=0, maximum=100),
        "ac2": _col("Gwet's AC2, quadratic weights", "number", maximum=1),
        "ac2_ci_low": _col("Bootstrap 95% CI of AC2, lower", "number"),
        "ac2_ci_high": _col("Bootstrap 95% CI of AC2, upper", "number"),
        "n_excluded": _col("Cases where a read left the item missing or not assessable",
                           "integer"),
    }


def agreement_scores_dictionary() -> dict[str, Any]:
    """Data dictionary of ``agreement_scores.tsv``."""
    d: dict[str, Any] = {
        "score": _col("Subscore id or 'total'", "string"),
        "n_cases": _col("Cases with complete reads 1 and 2", "integer"),
    }
    for k, name in (("icc1", "ICC(1,1) one-way random"),
                    ("icc2", "ICC(2,1) two-way random, absolute agreement"),
                    ("icc3", "ICC(3,1) two-way mixed, consistency")):
        d[k] = _col(name + " (pingouin)", "number", maximum=1)
        d[f"{k}_ci_low"] = _col(f"{name}: 95% CI lower (F distribution)", "number")
        d[f"{k}_ci_high"] = _col(f"{name}: 95% CI upper", "number")
    d["bias"] = _col("Bland-Altman bias: mean of read 1 - read 2", "number", units="points")
    d["sd_diff"] = _col("SD of read 1 - read 2", "number", units="points")
    for k, desc in (("bias_ci_low", "bias 95% CI lower (t)"),
                    ("bias_ci_high", "bias 95% CI upper (t)"),
                    ("loa_low", "lower limit of agreement: bias - 1.96 SD"),
                    ("loa_high", "upper limit of agreement: bias + 1.96 SD"),
                    ("loa_low_ci_low", "lower LoA 95% CI lower (Bland & Altman 1999)"),
                    ("loa_low_ci_high", "lower LoA 95% CI upper"),
                    ("loa_high_ci_low", "upper LoA 95% CI lower"),
                    ("loa_high_ci_high", "upper LoA 95% CI upper")):
        d[k] = _col(desc, "number", units="points")
    return d


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
    if fmt == "tsv":
        df.to_csv(p, sep="\t", index=False, na_rep="n/a")
    elif fmt == "csv":
        df.to_csv(p, index=False, na_rep="")
    elif fmt == "parquet":
        df.to_parquet(p, index=False)
    else:
        raise ValueError(f"unknown table format {fmt!r} (tsv, csv or parquet)")
    side = {c: dictionary[c] for c in df.columns}
    side.update({k: v for k, v in (extra or {}).items() if k not in side})
    p.with_suffix(".json").write_text(json.dumps(side, indent=2, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    return p


SUBJECT_ENTRY = _col("Subject identifier (study pseudonym of the pipeline; coordinator "
                     "exports with --with-subject-ids only)", "string")


def insert_subjects(df: pd.DataFrame, subject_of: Mapping[str, str]) -> pd.DataFrame:
    """Copy of ``df`` with a ``subject`` column right after ``reading_code``."""
    out = df.copy()
    out.insert(int(out.columns.get_loc("reading_code")) + 1, "subject",
               pd.array(out["reading_code"].astype(str).map(subject_of), dtype="string"))
    return out


def with_subject_entry(dictionary: Mapping[str, Any]) -> dict[str, Any]:
    """``dictionary`` with the ``subject`` entry after ``reading_code``."""
    out: dict[str, Any] = {}
    for k, v in dictionary.items():
        out[k] = v
        if k == "reading_code":
            out["subject"] = SUBJECT_ENTRY
    return out


# --------------------------------------------------------------------------- REDCap
REDCAP_DD_COLUMNS = (
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note",
    "Text Validation Type OR Show Slider Number", "Text Validation Min", "Text Validation Max",
    "Identifier?", "Branching Logic (Show field only if...)", "Required Field?",
    "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name", "Matrix Ranking?",
    "Field Annotation",
)


def redcap_instrument_name(form: Any) -> str:
    """REDCap instrument name: lower case, letters, digits and underscores."""
    return "".join(ch if ch.isalnum() else "_" for ch in form.id.lower())


def _choices(levels: Mapping[int, str]) -> str:
    return " | ".join(f"{k}, {v.replace('|', '/')}" for k, v in levels.items())


def redcap_data_dictionary(form: Any) -> pd.DataFrame:
    """REDCap data dictionary (import CSV) of the consensus/wide table of ``form``.

    Record id: ``reading_code``. Extents and laterality are radio fields with raw codes;
    assessability is yes/no; scores are integer text fields (validated min/max, @READONLY:
    computed by the weeke score engine, not by REDCap).
    """
    inst = redcap_instrument_name(form)
    rows: list[dict[str, str]] = []

    def add(name: str, ftype: str, label: str, *, choices: str = "", note: str = "",
            valid: str = "", vmin: Any = "", vmax: Any = "", branch: str = "",
            section: str = "", annotation: str = "") -> None:
        rows.append({"Variable / Field Name": name, "Form Name": inst, "Section Header": section,
                     "Field Type": ftype, "Field Label": label,
                     "Choices, Calculations, OR Slider Labels": choices, "Field Note": note,
                     "Text Validation Type OR Show Slider Number": valid,
                     "Text Validation Min": str(vmin), "Text Validation Max": str(vmax),
                     "Branching Logic (Show field only if...)": branch,
                     "Field Annotation": annotation})

    add("reading_code", "text", "Reading code (case pseudonym)")
    add("consensus_source", "radio", "Consensus from",
        choices="1, adjudicated | 2, agreed | 3, unresolved")
    add("form_version", "text", f"{form.id} version")
    sub_of = {s.id: s for s in form.subscores}
    last_sub = None
    for it in form.items:
        section = sub_of[it.subscore].label if it.subscore != last_sub else ""
        last_sub = it.subscore
        add(f"{it.id}_assess", "yesno", f"{it.label}: assessable", section=section)
        add(f"{it.id}_reason", "text", f"{it.label}: reason not assessable",
            branch=f"[{it.id}_assess] = '0'")
        add(f"{it.id}_ext", "radio", f"{it.label}: extent",
            choices=_choices({e.value: e.label for e in it.extents}),
            branch=f"[{it.id}_assess] = '1'")
        if it.lateralised:
            add(f"{it.id}_lat", "radio", f"{it.label}: laterality",
                choices="0, not applicable | 1, unilateral | 2, bilateral",
                branch=f"[{it.id}_assess] = '1'")
        add(f"{it.id}_score", "text", f"{it.label}: item score", valid="integer", vmin=0,
            vmax=it.max_score, annotation="@READONLY", note="extent + laterality (engine)")
    for sub in form.subscores:
        add(sub.id, "text", f"{sub.label} subscore", valid="integer", vmin=0, vmax=sub.max,
            annotation="@READONLY", section="Scores" if sub is form.subscores[0] else "")
        add(f"{sub.id}_complete", "yesno", f"{sub.label} subscore complete")
    add("total", "text", "Total score", valid="integer", vmin=0, vmax=form.total_max,
        annotation="@READONLY")
    add("complete", "yesno", "All items scored")
    return pd.DataFrame(rows).reindex(columns=list(REDCAP_DD_COLUMNS)).astype(object).fillna("")


_SOURCE_CODE = {"adjudicated": "1", "agreed": "2", "unresolved": "3"}


def redcap_records(consensus_df: pd.DataFrame, form: Any) -> pd.DataFrame:
    """Consensus table as REDCap import rows: raw codes, yes/no as 1/0, NA as empty."""
    dd = redcap_data_dictionary(form)
    out = pd.DataFrame(index=consensus_df.index)
    for name, ftype in zip(dd["Variable / Field Name"], dd["Field Type"], strict=True):
        col = consensus_df[name] if name in consensus_df else pd.Series(pd.NA,
                                                                       index=consensus_df.index)
        if name == "consensus_source":
            out[name] = col.map(lambda v: _SOURCE_CODE.get(str(v), ""))
        elif ftype == "yesno":
            out[name] = col.map(lambda v: "" if pd.isna(v) else ("1" if bool(v) else "0"))
        else:
            out[name] = col.map(lambda v: "" if v is None or (not isinstance(v, str)
                                                               and pd.isna(v)) else str(v))
    return out.reset_index(drop=True)


def validate_redcap(records: pd.DataFrame, dictionary: pd.DataFrame) -> list[str]:
    """Problems of a REDCap import against its data dictionary (empty list = valid).

    Checks what REDCap's importer checks for these field types: known fields, radio codes
    among the choices, yes/no in {0, 1}, integer validation and min/max.
    """
    problems: list[str] = []
    dd = dictionary.set_index("Variable / Field Name")
    unknown = [c for c in records.columns if c not in dd.index]
    if unknown:
        problems.append(f"fields not in the dictionary: {unknown}")
    if records.columns[0] != dictionary["Variable / Field Name"].iloc[0]:
        problems.append("the first column must be the record id field")
    for name in records.columns:
        if name not in dd.index:
            continue
        spec = dd.loc[name]
        vals = records[name].astype(str)
        vals = vals[vals != ""]
        if spec["Field Type"] == "radio":
            codes = {c.split(",", 1)[0].strip()
                     for c in spec["Choices, Calculations, OR Slider Labels"].split("|")}
            bad = sorted(set(vals) - codes)
        elif spec["Field Type"] == "yesno":
            bad = sorted(set(vals) - {"0", "1"})
        elif spec["Text Validation Type OR Show Slider Number"] == "integer":
            lo, hi = float(spec["Text Validation Min"]), float(spec["Text Validation Max"])
            bad = sorted(v for v in set(vals)
                         if not v.lstrip("-").isdigit() or not lo <= int(v) <= hi)
        else:
            bad = []
        if bad:
            problems.append(f"{name}: values {bad[:5]} not allowed")
    return problems


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


def unblinding_summary_dictionary() -> dict[str, Any]:
    """Data dictionary of the by-arm summary of :func:`unblinding_summary`."""
    d = {"arm": _col("Treatment arm (from the allocation file)", "string"),
         "score": _col("Subscore id, 'total', or a proportion row: gm_ge3 (grey-matter "
                       "subscore >= 3), total_ge10 (total >= 10)", "string"),
         "n": _col("Cases with a resolved, complete consensus score", "integer")}
    for k, desc in (("median", "median"), ("q1", "25th percentile"), ("q3", "75th percentile"),
                    ("iqr", "interquartile range q3 - q1"), ("mean", "mean"),
                    ("sd", "standard deviation (n - 1)")):
        d[k] = _col(f"{desc.capitalize()} of the score (n/a on proportion rows)", "number",
                    units="points")
    d["proportion"] = _col("Proportion of cases at or above the cut-off (proportion rows)",
                           "number", minimum=0, maximum=1)
    return d


def unblinding_comparison_dictionary() -> dict[str, Any]:
    """Data dictionary of the two-arm comparison of :func:`unblinding_summary`."""
    return {
        "score": _col("Subscore id or 'total'", "string"),
        "arm_a": _col("First arm (sorted)", "string"),
        "arm_b": _col("Second arm", "string"),
        "n_a": _col("Cases in arm_a", "integer"), "n_b": _col("Cases in arm_b", "integer"),
        "mannwhitney_u": _col("Mann-Whitney U of arm_a (scipy, two-sided)", "number"),
        "p_value": _col("Two-sided p value of the Mann-Whitney test", "number", minimum=0,
                        maximum=1),
        "median_diff": _col("median(arm_b) - median(arm_a)", "number", units="points"),
        "median_diff_ci_low": _col("Percentile bootstrap 95% CI, lower", "number",
                                   units="points"),
        "median_diff_ci_high": _col("Percentile bootstrap 95% CI, upper", "number",
                                    units="points"),
    }


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
