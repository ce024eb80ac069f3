"""The sessions table: which ``ses-`` label a study gets (site-internal TSV, like the
participants table).

Columns (tab-separated, header on the first line):

* the participant: ``patient_id`` (aliases ``dicom_patient_id``, ``source_id``; the DICOM
  Patient ID) or ``participant_id`` (the pseudonym, ``sub-`` optional); when a row has both,
  the Patient ID is used. A ``pseudonym`` column makes ``participant_id`` a Patient ID alias, as
  in the participants table;
* one study key: ``study_instance_uid``, ``accession_number`` or ``study_date`` (YYYYMMDD); when
  several are present, each row uses the first non-empty one in that order;
* ``session``: a BIDS label (letters and digits, ``ses-`` prefix dropped), e.g. ``1month``.

The table is matched against the ORIGINAL headers in memory, before de-identification; only the
label reaches the outputs. Errors name the file and the line, never the identifying value.
Studies the table does not list keep the study date order (``01``, ``02``... by their position
among the participant's studies), skipping any label the table gives that participant, so a
fallback label never merges with a listed session. Two different studies of one participant that
end up with the same label fail (their series are not converted); other subjects go on.

Read by :mod:`weeke_pipeline.bids.tables`, as the participants table is (the same column names
and aliases).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from weeke_pipeline.bids import names
from weeke_pipeline.bids import tables as bids_tables
from weeke_pipeline.bids.tables import (
    PARTICIPANT_COLUMN,
    PATIENT_ID_COLUMNS,
    PSEUDONYM_COLUMN,
    SESSION_COLUMN,
    TableError,
    header,
)

log = logging.getLogger(__name__)

#: study key column -> how the value is read from the original header
KEY_COLUMNS: dict[str, Callable[[Dataset], str]] = {
    "study_instance_uid": lambda ds: str(ds.get("StudyInstanceUID", "") or "").strip(),
    "accession_number": lambda ds: str(ds.get("AccessionNumber", "") or "").strip(),
    "study_date": lambda ds: str(ds.get("StudyDate", "") or "").strip()[:8],
}


class SessionTableError(ValueError):
    """A sessions table that cannot be used (the message names the file and the line)."""


@dataclass(frozen=True)
class Row:
    line: int
    label: str


@dataclass
class SessionTable:
    """The rows of a sessions table, keyed (who, key column, key value) -> Row, where ``who``
    is ``("patient", Patient ID)`` or ``("participant", pseudonym)``."""

    path: Path
    rows: dict[tuple[tuple[str, str], str, str], Row] = field(default_factory=dict)

    def lookup(self, ds: Dataset, patient_id: str, pseudonym: str | None) -> list[Row]:
        """Every row naming the study of header ``ds`` (usually one)."""
        whos = [("patient", patient_id)] + ([("participant", pseudonym)] if pseudonym else [])
        found = []
        for col, read in KEY_COLUMNS.items():
            value = read(ds)
            if not value:
                continue
            for who in whos:
                row = self.rows.get((who, col, _norm(col, value)))
                if row is not None and row not in found:
                    found.append(row)
        return found

    def labels_for(self, patient_id: str, pseudonym: str | None) -> set[str]:
        """Every label the table gives this participant (for fallback labels to avoid)."""
        whos = {("patient", patient_id)} | ({("participant", pseudonym)} if pseudonym else set())
        return {r.label for (who, _, _), r in self.rows.items() if who in whos}


def _norm(col: str, value: str) -> str:
    return value.replace("-", "") if col == "study_date" else value


def has_session_column(path: str | Path) -> bool:
    """True when a (participants) table has a ``session`` column."""
    return SESSION_COLUMN in header(path)


def read_table(path: str | Path, *, participants_table: bool = False) -> SessionTable:
    """Read and check a sessions table (or a participants table with a ``session`` column,
    where rows with an empty ``session`` are left to the date order)."""
    path = Path(path)
    kind = "participants table" if participants_table else "sessions table"
    try:
        table_ = bids_tables.read_table(path, what=kind)
    except TableError as exc:
        raise SessionTableError(str(exc)) from None
    cols, raw = table_.columns, [row for _, row in table_.rows]
    part, pat = table_.pseudonym_column, table_.patient_column
    keys = [c for c in KEY_COLUMNS if c in cols]
    accepted = ", ".join(KEY_COLUMNS)
    if not keys:
        known = {*PATIENT_ID_COLUMNS, PARTICIPANT_COLUMN, PSEUDONYM_COLUMN, SESSION_COLUMN}
        unknown = [c for c in cols if c not in known]
        raise SessionTableError(
            f"{path}: line 1: the {kind} needs a study key column, one of {accepted}"
            + (f" (unknown column(s): {', '.join(unknown)})" if unknown else ""))
    missing = [name for name, ok in (("session", "session" in cols),
                                     ("patient_id or participant_id",
                                      pat is not None or part in cols)) if not ok]
    if missing:
        raise SessionTableError(f"{path}: line 1: the {kind} needs a {' and a '.join(missing)} "
                                "column")
    table = SessionTable(path)
    for n, row in enumerate(raw, start=2):
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # blank line
        if participants_table and not (row.get("session") or "").strip():
            continue  # a participant without a session label: date order
        label = names.session_label(row.get("session") or "")
        if label is None:
            raise SessionTableError(f"{path}: line {n}: empty or invalid session label (letters "
                                    "and digits only, e.g. 1month)")
        pid = (row.get(pat) or "").strip() if pat else ""
        if pid:
            who = ("patient", pid)
        else:
            pseudo = names.label(row.get(part) or "") if part in cols else ""
            if not pseudo:
                raise SessionTableError(f"{path}: line {n}: no patient_id or participant_id")
            who = ("participant", pseudo)
        col = next((c for c in keys if (row.get(c) or "").strip()), None)
        if col is None:
            raise SessionTableError(f"{path}: line {n}: no study key ({accepted})")
        value = _norm(col, (row.get(col) or "").strip())
        if col == "study_date" and not _is_date(value):
            raise SessionTableError(f"{path}: line {n}: study_date is not a date (YYYYMMDD)")
        k = (who, col, value)
        if k in table.rows and table.rows[k].label != label:
            raise SessionTableError(
                f"{path}: line {n}: the same study as line {table.rows[k].line} with a different"
                " session label")
        table.rows.setdefault(k, Row(n, label))
    return table


def _is_date(text: str) -> bool:
    try:
        dt.datetime.strptime(text, "%Y%m%d")
    except ValueError:
        return False
    return len(text) == 8


@dataclass
class Study:
    """One study of one participant as the assignment sees it (original values in memory)."""

    uid: str
    group: str  # the participant: pseudonym, or Patient ID where no pseudonym is known
    patient_id: str
    pseudonym: str | None
    first: Dataset  # a header of the study
    order: tuple[str, str]  # (StudyDate, StudyTime)


@dataclass
class Assignment:
    labels: dict[str, str] = field(default_factory=dict)  # study uid -> label
    failures: dict[str, str] = field(default_factory=dict)  # study uid -> message
    fallback: set[str] = field(default_factory=set)  # study uids labelled by date order


def assign(studies: Iterable[Study], table: SessionTable | None) -> Assignment:
    """Session labels per study: the table's, else the study date order (never colliding)."""
    per: dict[str, list[Study]] = {}
    for s in studies:
        per.setdefault(s.group, []).append(s)
    out = Assignment()
    for group in per.values():
        ordered = sorted(group, key=lambda s: (s.order, s.uid))
        listed: dict[str, list[Row]] = {}
        if table is not None:
            for s in ordered:
                rows = table.lookup(s.first, s.patient_id, s.pseudonym)
                if len({r.label for r in rows}) > 1:
                    lines = ", ".join(str(r.line) for r in rows)
                    out.failures[s.uid] = (f"sessions table {table.path}: lines {lines} give "
                                           "different sessions for one study; not converted")
                elif rows:
                    listed[s.uid] = rows
        avoid = set()
        if table is not None and ordered:
            avoid = table.labels_for(ordered[0].patient_id, ordered[0].pseudonym)
            for s in ordered[1:]:
                avoid |= table.labels_for(s.patient_id, s.pseudonym)
        by_label: dict[str, list[Study]] = {}
        for s in ordered:
            if s.uid in listed:
                by_label.setdefault(listed[s.uid][0].label, []).append(s)
        for label, same in by_label.items():
            if len(same) > 1:
                lines = sorted({r.line for s in same for r in listed[s.uid]})
                where = (f"line {lines[0]} gives" if len(lines) == 1 else
                         f"lines {', '.join(map(str, lines))} give")
                for s in same:
                    out.failures[s.uid] = (
                        f"sessions table {table.path if table else ''}: {where} "
                        f"{len(same)} different studies the session ses-{label} (they would be "
                        "merged); not converted")
            elif same[0].uid not in out.failures:
                out.labels[same[0].uid] = label
        used = set(avoid)
        for pos, s in enumerate(ordered, start=1):
            if s.uid in listed or s.uid in out.failures:
                continue
            n = pos
            while f"{n:02d}" in used:
                n += 1
            out.labels[s.uid] = f"{n:02d}"
            used.add(f"{n:02d}")
            if table is not None:
                out.fallback.add(s.uid)
    return out
