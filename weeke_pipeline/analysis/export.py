"""Writing an analyst table with its data dictionary; the coordinator's subject column; the
analyst output folder (``prepare_out``, ``manifest.json``); ``weeke export``'s tables
(``build_export``, ``write_export``)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
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


# --------------------------------------------------------------------------- output folders
MANIFEST = "manifest.json"


def prepare_out(out: Path, kind: str) -> None:
    """Make ``out`` ready: new or empty, or an earlier output of the same command (whose listed
    files are removed first, so no stale table, e.g. one with subject ids, is left behind)."""
    from weeke_pipeline.errors import UsageError

    manifest = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        try:
            old = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            old = None
        if not isinstance(old, dict) or old.get("kind") != kind:
            raise UsageError(f"{out}: folder is not empty and holds no earlier `weeke {kind}` "
                             "output: choose a new or empty folder")
        for name in old.get("files", []):
            f = out / Path(name).name
            if f.is_file():
                f.unlink()
        manifest.unlink()
    out.mkdir(parents=True, exist_ok=True)


def sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(out: Path, kind: str, files: list[Path], **info: Any) -> Path:
    """``manifest.json``: what was written (file names, SHA-256) and how."""
    from datetime import UTC, datetime

    from weeke_pipeline import __version__

    doc = {"kind": kind, "created": datetime.now(UTC).isoformat(timespec="seconds"),
           "weeke_pipeline_version": __version__, **info,
           "files": sorted(p.name for p in files),
           "sha256": {p.name: sha256(p) for p in sorted(files)}}
    path = out / MANIFEST
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- weeke export
def form_of_reads(records: Sequence[Mapping[str, Any]], *, need: str) -> Any:
    """The scoring form of the reads (the default form when there are none); reads of several
    form versions are a ``ValueError`` ending with ``need`` (why one version is needed)."""
    from weeke_pipeline.constants import DEFAULT_FORM
    from weeke_pipeline.scoring import load_form

    versions = sorted({(r["form_id"], r["form_version"]) for r in records})
    if len(versions) > 1:
        raise ValueError(f"reads use {len(versions)} form versions {versions}: {need}")
    return load_form(*versions[0]) if versions else load_form(DEFAULT_FORM, None)


@dataclass
class Export:
    """The tables of one export: ``tables`` as (name, table, dictionary, extra sidecar keys),
    then the REDCap import and its data dictionary."""

    form: Any
    tables: list[tuple[str, pd.DataFrame, Mapping[str, Any], Mapping[str, Any] | None]]
    redcap: pd.DataFrame
    redcap_dd: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    with_subject_ids: bool = False


def build_export(records: Sequence[Mapping[str, Any]], form: Any,
                 subjects: Mapping[str, str], case_keys: Mapping[tuple[str, str], str], *,
                 metrics: Path | None = None, with_subject_ids: bool = False) -> Export:
    """Reads long and wide, consensus, REDCap import (and with ``metrics``, the pipeline's
    region metrics and QC) keyed by reading code; with ``with_subject_ids`` a subject and a
    session column after it. ``subjects``: code -> subject; ``case_keys``: (subject, session)
    -> code. A ``ValueError`` is the user's (tables that cannot be built)."""
    # the modules, not the ``tables`` namespace (which imports this module)
    from weeke_pipeline.analysis import consensus as cs
    from weeke_pipeline.analysis import derivative_tables as dt
    from weeke_pipeline.analysis import dictionaries as dd
    from weeke_pipeline.analysis import reads as rd
    from weeke_pipeline.analysis import redcap as rc

    long = rd.reads_long_from_records(records)
    wide = rd.reads_wide(long, form)
    cons = cs.consensus(long, form, codes=subjects)
    out_tables: list[tuple[str, pd.DataFrame, Mapping[str, Any], Mapping[str, Any] | None]] = [
        ("reads_long", long, dd.reads_long_dictionary(form), None),
        ("reads_wide", wide, dd.reads_wide_dictionary(form), None),
        ("consensus", cons, dd.reads_wide_dictionary(form, consensus_table=True), None)]
    warnings: list[str] = []
    if metrics is not None:
        der = dt.load(metrics, case_keys)
        warnings += der.warnings
        extra = {k: v for k, v in der.metrics_dictionary.items()
                 if k not in der.metrics.columns}
        out_tables += [("metrics", der.metrics, der.metrics_dictionary, extra),
                       ("qc", der.qc, der.qc_dictionary, None)]
    redcap = rc.redcap_records(cons, form)
    redcap_dd = rc.redcap_data_dictionary(form)
    if with_subject_ids:
        sessions = {c: ses for (_, ses), c in case_keys.items()}  # code -> session
        out_tables = [(n, insert_subjects(t, subjects, sessions),
                       dd.with_subject_entry(d, session=True), e)
                      for n, t, d, e in out_tables]
        redcap.insert(1, "subject", redcap["reading_code"].map(subjects))
        row = {c: "" for c in redcap_dd.columns}
        row.update({"Variable / Field Name": "subject", "Form Name": redcap_dd.iloc[0, 1],
                    "Field Type": "text", "Field Label": "Subject identifier",
                    "Identifier?": "y"})
        redcap_dd = pd.concat([redcap_dd.iloc[:1], pd.DataFrame([row]),
                               redcap_dd.iloc[1:]], ignore_index=True)
    problems = rc.validate_redcap(redcap, redcap_dd)
    if problems:  # a bug, not a user error: the engine's values must fit the dictionary
        raise RuntimeError("REDCap export does not validate: " + "; ".join(problems))
    return Export(form, out_tables, redcap, redcap_dd, warnings, with_subject_ids)


def write_export(export: Export, out: Path, fmt: str, *,
                 on_finish: Callable[[bool, dict[str, int]], None] | None = None
                 ) -> dict[str, int]:
    """Write ``export`` to ``out`` (made ready by :func:`prepare_out`): the tables in ``fmt``
    with sidecars, the REDCap files as CSV, then ``manifest.json`` (written last, so a folder
    without one is incomplete). ``on_finish(complete, rows)`` runs after the tables, also when
    writing failed (the audit record). Returns rows per table."""
    prepare_out(out, "export")
    files: list[Path] = []
    rows: dict[str, int] = {}
    try:
        for name, table, dictionary, extra in export.tables:
            p = write_table(table, out / f"{name}.{fmt}", dictionary, fmt, extra=extra)
            files += [p, p.with_suffix(".json")]
            rows[name] = len(table)
        for name, table in (("redcap_import", export.redcap),
                            ("redcap_data_dictionary", export.redcap_dd)):
            p = out / f"{name}.csv"
            neutralise_formulas(table).to_csv(p, index=False)
            files.append(p)
            rows[name] = len(table)
    finally:
        if on_finish is not None:
            on_finish(len(rows) == len(export.tables) + 2, rows)
    write_manifest(out, "export", files, with_subject_ids=export.with_subject_ids, format=fmt,
                   form={"id": export.form.id, "version": export.form.version},
                   rows=rows, warnings=export.warnings)
    return rows
