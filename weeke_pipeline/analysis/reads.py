"""Reads long <-> wide and back, typed as the tables document them (columns: :mod:`.tables`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

READ_ID_COLUMNS = ("reading_code", "reader", "read_number", "kind", "form_id", "form_version",
                   "status", "signed_at", "opened_at", "reading_seconds", "active_seconds")


ITEM_COLUMNS = ("item", "item_state", "extent", "laterality", "item_score", "assessable",
                "reason", "item_seconds")


READS_LONG_COLUMNS = READ_ID_COLUMNS + ITEM_COLUMNS


ITEM_SUFFIXES = ("ext", "lat", "score", "assess", "reason", "seconds")


#: columns of the reading time (float seconds)
TIME_COLUMNS = ("reading_seconds", "active_seconds")


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
