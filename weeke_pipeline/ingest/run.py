"""The ingest, start to end: discover and classify the DICOM files, check each series, choose
the pseudonym and session of each study, then de-identify and convert every series
(:mod:`.scheduler`, :mod:`.convert`), fit missing ADC maps and write the BIDS records.

Sessions: the label a sessions table gives the study (``sessions=``, see :mod:`.sessions`), else
``01``, ``02``... per participant in study date order (the headers are read in memory before
de-identification and never written). Series classified ``localizer`` or ``other`` are not
converted (listed in the result). One failing series never stops the others: its error names
the source file and the problem, with identifying header values scrubbed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from weeke_pipeline import atomic
from weeke_pipeline.bids import names
from weeke_pipeline.ingest import deidentify as deid
from weeke_pipeline.ingest import sessions as ses_table
from weeke_pipeline.ingest.convert import (
    CONVERTED,
    ConvertJob,
    SeriesResult,
    add_computed_adc,
)
from weeke_pipeline.ingest.discover import Series, Skipped, discover, group_series, quiet_pydicom
from weeke_pipeline.ingest.identity import birth_date_conflicts, patient_key
from weeke_pipeline.ingest.scheduler import convert_series
from weeke_pipeline.ingest.series_table import SeriesRow, read_overrides, safe_series_row
from weeke_pipeline.ingest.validate import SeriesCheckError, check_series, series_label

log = logging.getLogger(__name__)


class NoDicomError(ValueError):
    """The input folder holds no DICOM image."""


@dataclass
class IngestResult:
    out_dir: str
    series: list[SeriesResult]
    skipped_files: list[Skipped]
    table: list[SeriesRow]

    @property
    def ok(self) -> bool:
        return all(s.status != "failed" for s in self.series)


# --------------------------------------------------------------------------- helpers
def resolve_key(key: bytes | str | None, participants: str | Path | None) -> tuple[bytes, str]:
    """The project key for HMAC pseudonyms and UIDs, and how the pseudonym is chosen."""
    if key is None and os.environ.get("WEEKE_PROJECT_KEY"):
        key = os.environ["WEEKE_PROJECT_KEY"]
    if isinstance(key, str):
        key = key.encode()
    if key:
        how = ("participants table, else HMAC-SHA256(project key, PatientID)"
               if participants else "HMAC-SHA256(project key, PatientID)")
        return key, how
    if participants is None:
        raise deid.DeidentificationError(
            "give a participants table or a project key (--key-file / WEEKE_PROJECT_KEY) to "
            "make pseudonyms")
    # no key: UIDs are hashed with a key derived from the (site-internal) participants table
    return hashlib.sha256(Path(participants).read_bytes()).digest(), "participants table"


def _study_order_key(series: Series) -> tuple[str, str]:
    ds = series.first
    return (str(ds.get("StudyDate", "")), str(ds.get("StudyTime", "")))


def load_session_table(sessions: str | Path | None, participants: str | Path | None
                       ) -> ses_table.SessionTable | None:
    """The sessions table: ``sessions``, else a participants table with a ``session`` column."""
    if sessions:
        if participants and ses_table.has_session_column(participants):
            log.warning("participants table %s: its session column is ignored (the sessions "
                        "table %s is used)", participants, sessions)
        return ses_table.read_table(sessions)
    if participants and ses_table.has_session_column(participants):
        return ses_table.read_table(participants, participants_table=True)
    return None


def _sessions(series: list[Series], pseudonyms: dict[str, str],
              table: ses_table.SessionTable | None = None) -> ses_table.Assignment:
    """study_uid -> session label: the sessions table's, else 01, 02, ... per participant by
    study date (``weeke_pipeline.ingest.sessions.assign``)."""
    studies: dict[str, ses_table.Study] = {}
    for s in series:
        p = pseudonyms.get(s.series_uid)
        if p and s.study_uid not in studies:
            studies[s.study_uid] = ses_table.Study(
                uid=s.study_uid, group=p, patient_id=str(s.first.get("PatientID", "")).strip(),
                pseudonym=p, first=s.first, order=_study_order_key(s))
    return ses_table.assign(studies.values(), table)


# --------------------------------------------------------------------------- the steps
def inspect_dicom(dicom_dir: str | Path, series_table: str | Path | None = None, *,
                  max_file_mb: float | None = None
                  ) -> tuple[list[Series], list[SeriesRow], list[Skipped]]:
    """Discover, group and classify; apply an edited series table's classifications.
    A series whose headers cannot be classified gets ``problem`` set (refused)."""
    images, skipped = discover(dicom_dir, max_file_mb=max_file_mb)
    series = group_series(images)
    with quiet_pydicom():
        rows = [safe_series_row(s) for s in series]
    if series_table is not None:
        overrides = read_overrides(series_table)
        for r in rows:
            if r.series_uid in overrides and overrides[r.series_uid] != r.classification:
                r.evidence = f"series table override (classifier said {r.classification})"
                r.classification = overrides[r.series_uid]
    return series, rows, skipped


def preview_sessions(series: list[Series], rows: list[SeriesRow], sessions: str | Path | None,
                     participants: str | Path | None = None) -> None:
    """Fill ``rows[i].session`` with the label ingest would give (``weeke inspect``): the
    sessions table's, else the date order (``(failed: ...)`` for a clash). Rows keyed by
    ``participant_id`` need the participants table (pseudonyms from the key are not made here).
    """
    table = load_session_table(sessions, participants)
    pseudo = deid.Pseudonymizer.from_table(participants) if participants else None
    studies: dict[str, ses_table.Study] = {}
    for s in series:
        pid = str(s.first.get("PatientID", "")).strip()
        try:
            key = patient_key(s.first)
        except ValueError:
            key = pid
        try:
            p = pseudo(key) if pseudo else None
        except deid.DeidentificationError:
            p = None
        if s.study_uid not in studies:
            studies[s.study_uid] = ses_table.Study(
                uid=s.study_uid, group=f"sub-{p}" if p else f"id:{key}", patient_id=pid,
                pseudonym=p, first=s.first, order=_study_order_key(s))
    assigned = ses_table.assign(studies.values(), table)
    for s, r in zip(series, rows, strict=True):
        if s.study_uid in assigned.failures:
            r.session = "(failed: label clash)"
        else:
            r.session = assigned.labels.get(s.study_uid, "")
            if s.study_uid in assigned.fallback:
                r.session += " (date order)"


def ingest_and_convert(
    dicom_dir: str | Path,
    out_dir: str | Path,
    *,
    participants: str | Path | None = None,
    series_table: str | Path | None = None,
    sessions: str | Path | None = None,
    key: bytes | str | None = None,
    work_dir: str | Path | None = None,
    compute_adc: bool = True,
    workers: int | None = None,
    background: Callable[[], None] | None = None,
    max_file_mb: float | None = None,
) -> IngestResult:
    """The whole ingest: classify, de-identify into ``work_dir``, convert into ``out_dir``.

    ``sessions``: a sessions table naming the ``ses-`` label of each study
    (``weeke_pipeline.ingest.sessions``; a participants table with a ``session`` column works
    too); unlisted studies keep the study date order. Works without nipype workflows (nipype's
    Dcm2niix interface is called directly). The series are de-identified and converted by
    ``workers`` processes (default: the usable CPUs); the outputs do not depend on it.
    ``background`` runs in a thread of this process while they do (it only waits for them
    then), and has finished when this returns. ``max_file_mb``: the per-object size limit
    (``weeke_pipeline.ingest.guards.max_bytes``)."""
    out_dir = Path(out_dir)
    work_dir = Path(work_dir) if work_dir else out_dir.parent / (out_dir.name + "_work")
    uid_key, how = resolve_key(key, participants)
    pseudo = (deid.Pseudonymizer.from_table(participants, key=uid_key if key or
                                             os.environ.get("WEEKE_PROJECT_KEY") else None)
              if participants else deid.Pseudonymizer(key=uid_key))
    table = load_session_table(sessions, participants)  # bad table: stop before any work
    series, rows, skipped = inspect_dicom(dicom_dir, series_table, max_file_mb=max_file_mb)
    if not series:
        raise NoDicomError(
            f"no DICOM image found in {dicom_dir}" + (
                f" ({len(skipped)} file(s) looked at, none a DICOM image; `weeke inspect` "
                "lists them)" if skipped else " (the folder is empty)"))
    # identities of every header, to scrub from messages (paths can hold them too)
    scrub = deid.scrubber(sorted({v for s in series for v in deid.identifying_values(s.first)}))
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[SeriesResult] = []
    pseudonyms: dict[str, str] = {}
    by_id: dict[int, str] = {}
    volumes: dict[int, int | None] = {}
    for s, r in zip(series, rows, strict=True):
        src = scrub(series_label(s))
        if s.problem:  # identity conflict or unclassifiable header: refused, named
            msg = f"{src}: {scrub(s.problem)}"
            log.error("%s", msg)
            results.append(SeriesResult(src, r.classification, "failed", msg))
            continue
        if r.classification not in CONVERTED:
            results.append(SeriesResult(src, r.classification, "skipped",
                                        f"{r.classification} series not converted"))
            continue
        try:
            p = pseudo(patient_key(s.first))
        except ValueError as exc:  # DeidentificationError too
            msg = f"{src}: {exc}"
            log.error("%s", msg)
            results.append(SeriesResult(src, r.classification, "failed", msg))
            continue
        try:
            checked = check_series(s)
        except Exception as exc:  # SeriesCheckError, or a header no check foresaw
            msg = scrub(str(exc) if isinstance(exc, SeriesCheckError) else
                        f"{series_label(s)}: series checks failed ({type(exc).__name__}); "
                        "not converted")
            log.error("sub-%s: %s; series not converted", p, msg)
            results.append(SeriesResult(src, r.classification, "failed", msg, participant=p))
            continue
        for warning in checked.warnings:
            log.warning("sub-%s: %s", p, scrub(warning))
        s.instances = checked.instances
        by_id[id(s)] = p
        volumes[id(s)] = checked.volumes
    conflicts = birth_date_conflicts(series, by_id)
    for s, r in zip(series, rows, strict=True):
        conflict = conflicts.get(id(s))
        if conflict:
            msg = f"{scrub(series_label(s))}: {conflict}"
            log.error("sub-%s: %s", by_id.pop(id(s)), msg)
            results.append(SeriesResult(scrub(series_label(s)), r.classification, "failed",
                                        msg))
    pseudonyms.update({s.series_uid: by_id[id(s)] for s in series if id(s) in by_id})
    assigned = _sessions(series, pseudonyms, table)
    for s, r in zip(series, rows, strict=True):
        if s.study_uid in assigned.failures and s.series_uid in pseudonyms:
            p = pseudonyms.pop(s.series_uid)
            msg = f"{scrub(series_label(s))}: {assigned.failures[s.study_uid]}"
            log.error("sub-%s: %s", p, msg)
            results.append(SeriesResult(scrub(series_label(s)), r.classification, "failed", msg,
                                        participant=p))
    sessions = assigned.labels
    for p, label in sorted({(pseudonyms[s.series_uid], sessions[s.study_uid]) for s in series
                            if s.series_uid in pseudonyms and s.study_uid in assigned.fallback}):
        log.warning("sub-%s: a study is not in the sessions table %s: session ses-%s by study "
                    "date order", p, table.path if table else "", label)
    for s, r in zip(series, rows, strict=True):
        if s.series_uid in pseudonyms:
            r.session = sessions[s.study_uid]
    runs: dict[tuple[str, str, str], int] = {}
    counts: dict[tuple[str, str, str], int] = {}
    for s, r in zip(series, rows, strict=True):
        if s.series_uid in pseudonyms:
            k = (pseudonyms[s.series_uid], sessions[s.study_uid], r.classification)
            counts[k] = counts.get(k, 0) + 1
    jobs: list[ConvertJob] = []
    # a session with an ADC series of its own: an ADC dcm2niix splits off a DWI (Philips) gets
    # acq-dwi, so the two never overwrite each other (which one won depended on timing)
    with_adc = {(pseudonyms[s.series_uid], sessions[s.study_uid]) for s, r in
                zip(series, rows, strict=True) if s.series_uid in pseudonyms
                and r.classification == "adc"}
    for s, r in zip(series, rows, strict=True):
        if s.series_uid not in pseudonyms:
            continue
        p, ses = pseudonyms[s.series_uid], sessions[s.study_uid]
        k = (p, ses, r.classification)
        runs[k] = runs.get(k, 0) + 1
        jobs.append(ConvertJob(
            sources=[i.source for i in s.instances], src=scrub(series_label(s)),
            sid=deid.keyed_uid(s.series_uid, uid_key).rsplit(".", 1)[-1][:16],
            classification=r.classification, evidence=r.evidence, participant=p, session=ses,
            run=str(runs[k]) if counts[k] > 1 else "", age_days=deid.age_in_days(s.first),
            volumes=volumes.get(id(s)),
            embedded_adc_acq="dwi" if (p, ses) in with_adc else ""))
    ages: dict[tuple[str, str], int | None] = {}
    for job, res in zip(jobs, convert_series(jobs, out_dir, work_dir, uid_key, scrub, workers,
                                                  background=background),
                        strict=True):
        results.append(res)
        if res.status == "converted":
            ages.setdefault((job.participant, job.session), job.age_days)
    if compute_adc:
        results.extend(add_computed_adc(out_dir, results))
    _write_records(out_dir, results, ages, how)
    return IngestResult(str(out_dir), results, skipped, rows)


def _write_records(out_dir: Path, results: list[SeriesResult],
                   ages: dict[tuple[str, str], int | None], how: str) -> None:
    desc = out_dir / "dataset_description.json"
    if not desc.exists():
        atomic.write_text(desc, json.dumps({
            "Name": "weeke-pipeline de-identified raw data", "BIDSVersion": "1.9.0",
            "DatasetType": "raw",
            "GeneratedBy": [{"Name": "weeke-pipeline", "Description": "dcm2niix via nipype"}],
        }, indent=2) + "\n")
    atomic.write_text(out_dir / "deidentification.json",
                      json.dumps(deid.record(how), indent=2) + "\n")
    by_session: dict[tuple[str, str], list[SeriesResult]] = {}
    for r in results:
        if r.status == "converted":
            by_session.setdefault((r.participant, r.session), []).append(r)
    participants: dict[str, list[str]] = {}
    for (p, ses), items in sorted(by_session.items()):
        participants.setdefault(p, []).append(ses)
        lines = ["filename\tclassification"]
        for r in items:
            for o in r.outputs:
                if o.endswith(".nii.gz"):
                    rel = Path(o).relative_to(names.folder({"sub": p, "ses": ses}))
                    lines.append(f"{rel}\t{r.classification}")
        atomic.write_text(out_dir / names.build({"sub": p, "ses": ses, "suffix": "scans",
                                                 "extension": ".tsv"}),
                          "\n".join(lines) + "\n")
    for p, sessions in participants.items():
        rows = ["session_id\tage_days"]
        # study order: age at scan (the dates are gone), then the label
        for ses in sorted(sessions, key=lambda s: (ages.get((p, s)) is None,
                                                   ages.get((p, s)) or 0, s)):
            age = ages.get((p, ses))
            rows.append(f"ses-{ses}\t{'n/a' if age is None else age}")
        atomic.write_text(out_dir / names.build({"sub": p, "suffix": "sessions",
                                                 "extension": ".tsv"}),
                          "\n".join(rows) + "\n")


def result_json(result: IngestResult) -> str:
    """The per-series outcome as JSON (no identifying values, no source UIDs)."""
    return json.dumps({"out_dir": result.out_dir,
                       "series": [asdict(s) for s in result.series],
                       "skipped_files": [asdict(s) for s in result.skipped_files]}, indent=2)
