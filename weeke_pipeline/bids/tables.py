"""The site's participants and sessions tables (tab-separated, header on the first line): one
reader and one list of column names for the ingest (pseudonyms, session labels), the BIDS
``participants.tsv`` the pipeline writes and the reading importer (ages at scan).

Linkage columns (site-internal, never copied to the outputs):

* the DICOM Patient ID: ``patient_id``, or its aliases ``dicom_patient_id``, ``source_id``;
* the study pseudonym: ``participant_id`` (``sub-`` optional); a ``pseudonym`` column takes that
  role instead, and ``participant_id`` then counts as a Patient ID alias.

Read with the stdlib ``csv`` module: the tables are a few columns of text, no table library is
needed (and the reading server stays free of pandas for this).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

#: the DICOM Patient ID column and its aliases, in order of preference
PATIENT_ID_COLUMNS = ("patient_id", "dicom_patient_id", "source_id")
PARTICIPANT_COLUMN = "participant_id"
PSEUDONYM_COLUMN = "pseudonym"
SESSION_COLUMN = "session"
#: age and sex columns copied from the site's participants table to the BIDS participants.tsv
AGE_COLUMNS = ("sex", "gestational_age_at_birth_weeks", "gestational_age_at_birth_days",
               "day_of_life_at_scan", "pma_at_scan_weeks", "pma_at_scan_days")


class TableError(ValueError):
    """A table that cannot be read (the message names the file)."""


@dataclass
class Table:
    """A TSV table: stripped column names and the rows as read (values not stripped), with
    their line numbers (header = line 1)."""

    path: Path
    columns: list[str]
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)

    @property
    def pseudonym_column(self) -> str:
        """The column holding the pseudonym: ``pseudonym`` when present, else ``participant_id``
        (which may be absent: check ``in columns``)."""
        return PSEUDONYM_COLUMN if PSEUDONYM_COLUMN in self.columns else PARTICIPANT_COLUMN

    @property
    def patient_column(self) -> str | None:
        """The column holding the DICOM Patient ID (``participant_id`` when a ``pseudonym``
        column exists), or None."""
        dst = self.pseudonym_column
        return next((c for c in (*PATIENT_ID_COLUMNS, PARTICIPANT_COLUMN)
                     if c in self.columns and c != dst), None)

    def by_participant(self) -> dict[str, dict[str, str]]:
        """participant label (``sub-`` dropped) -> row, for tables keyed by ``participant_id``."""
        return {participant(row.get(PARTICIPANT_COLUMN) or ""): row for _, row in self.rows}


def participant(value: str) -> str:
    """The participant label of a ``participant_id`` value: stripped, ``sub-`` dropped."""
    return value.strip().removeprefix("sub-")


def read_table(path: str | Path, *, what: str = "table") -> Table:
    """Read a TSV table; unreadable files (missing, not UTF-8) raise :class:`TableError`
    naming the file and ``what`` it is."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter="\t")
            cols = [c.strip() for c in reader.fieldnames or []]
            reader.fieldnames = cols
            rows = list(enumerate(reader, start=2))
    except (OSError, UnicodeDecodeError) as exc:
        raise TableError(f"{path}: cannot read the {what} ({type(exc).__name__})") from None
    return Table(path, cols, rows)


def header(path: str | Path) -> list[str]:
    """The stripped column names of a TSV table (its first line)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [h.strip() for h in next(csv.reader(fh, delimiter="\t"), [])]
