"""The series table: one row per series, written by ``weeke inspect`` and editable.

Columns: path, series_uid, study_uid, session, series_number, n_files, n_frames, modality,
manufacturer, classification, evidence, bvals, dims, voxel_size, te, tr, ti, description
(``session``: the ``ses-`` label when ``weeke inspect --sessions`` is given). Only
``classification`` is read back: an edited table overrides the classifier for the series whose
``series_uid`` it lists (t1w, t2w, dwi, adc, swi, localizer, other; ``other``/``localizer``
series are not converted).

This table describes the *source* data before de-identification (folders, original UIDs and
series descriptions, for the technician); it is a site-internal working file and is never
copied into the de-identified outputs.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

from weeke_pipeline.ingest.classify import (
    CLASSES,
    classify_series,
    extract_features,
    unique_bvalues,
)
from weeke_pipeline.ingest.discover import Series

COLUMNS = ("path", "series_uid", "study_uid", "session", "series_number", "n_files", "n_frames",
           "modality", "manufacturer", "classification", "evidence", "bvals", "dims", "voxel_size",
           "te", "tr", "ti", "description")


@dataclass
class SeriesRow:
    path: str
    series_uid: str
    study_uid: str
    series_number: str
    n_files: int
    n_frames: int
    modality: str
    manufacturer: str
    classification: str
    evidence: str
    bvals: str
    dims: str
    voxel_size: str
    te: str
    tr: str
    ti: str
    description: str
    session: str = ""  # the ses- label (filled when a sessions table is given, and at ingest)


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:g}"


def series_row(series: Series) -> SeriesRow:
    c, f = classify_series(series)
    slices = f.n_frames if f.n_frames > f.n_files else f.n_files
    return SeriesRow(
        path=series.path, series_uid=series.series_uid, study_uid=series.study_uid,
        series_number=str(series.first.get("SeriesNumber", "")), n_files=f.n_files,
        n_frames=f.n_frames, modality=f.modality, manufacturer=f.manufacturer,
        classification=c.label, evidence=c.evidence,
        bvals=";".join(f"{b:g}" for b in unique_bvalues(f.bvalues)),
        dims=f"{f.columns}x{f.rows}x{slices}",
        voxel_size="x".join(f"{v:g}" for v in f.voxel_size) if f.voxel_size else "",
        te=_num(f.te), tr=_num(f.tr), ti=_num(f.ti),
        description=" ".join(f.description.split()))


def safe_series_row(series: Series) -> SeriesRow:
    """:func:`series_row`, or, when a header defeats the classifier, a row classified ``other``
    with ``series.problem`` naming the first file that fails (the series is refused)."""
    try:
        return series_row(series)
    except Exception as exc:
        culprit = series.instances[0]
        for inst in series.instances:
            try:
                extract_features([inst.header])
            except Exception:
                culprit = inst
                break
        series.problem = (f"{culprit.source.label}: header cannot be classified "
                          f"({type(exc).__name__}); not converted")
        return SeriesRow(path=series.path, series_uid=series.series_uid,
                         study_uid=series.study_uid, series_number="",
                         n_files=len(series.instances), n_frames=0, modality="",
                         manufacturer="", classification="other",
                         evidence="unreadable header (refused)", bvals="", dims="",
                         voxel_size="", te="", tr="", ti="", description="")


def write_table(rows: list[SeriesRow], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: str(v).replace("\t", " ") for k, v in asdict(r).items()})
    return path


def format_table(rows: list[SeriesRow]) -> str:
    """A compact text table for the terminal."""
    cols: tuple[str, ...] = ("classification", "n_files", "n_frames", "bvals", "dims",
                             "evidence", "path")
    if any(r.session for r in rows):
        cols = ("session", *cols)
    data = [[str(getattr(r, c)) for c in cols] for r in rows]
    widths = [min(max(len(c), *(len(d[i]) for d in data)) if data else len(c), 60)
              for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v[:60].ljust(w) for v, w in zip(d, widths, strict=True)) for d in data]
    return "\n".join(lines)


def read_overrides(path: str | Path) -> dict[str, str]:
    """series_uid -> classification from an (edited) series table; errors name file and line."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if not reader.fieldnames or not {"series_uid", "classification"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: a series table needs series_uid and classification columns")
        out = {}
        for n, row in enumerate(reader, start=2):
            label = (row.get("classification") or "").strip().lower()
            if label not in CLASSES:
                raise ValueError(
                    f"{path}: line {n}: classification '{label}' is not one of "
                    + ", ".join(CLASSES))
            out[(row.get("series_uid") or "").strip()] = label
    return out
