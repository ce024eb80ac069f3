"""DICOM tree -> de-identified DICOM copies -> dcm2niix (through nipype) -> BIDS raw layout.

Layout (``out_dir``)::

    dataset_description.json
    deidentification.json                      the method (profile, table, private tags kept)
    sub-<pseudonym>/sub-<pseudonym>_sessions.tsv       session_id, age_days
    sub-<pseudonym>/ses-<label>/sub-..._ses-..._scans.tsv  filename, classification
    sub-<pseudonym>/ses-<label>/anat/sub-<p>_ses-<s>[_run-<n>]_T1w.nii.gz (+ .json)
                                     .../..._T2w.nii.gz, ..._acq-swi_T2starw.nii.gz
    sub-<pseudonym>/ses-<label>/dwi/sub-<p>_ses-<s>[_run-<n>]_dwi.nii.gz + .bval .bvec .json
                                    .../..._desc-scanner_ADC.nii.gz   scanner-computed ADC
                                    .../..._desc-logfit_ADC.nii.gz  fitted here (no scanner ADC)

Sessions: the label a sessions table gives the study (``sessions=``, see
``weeke_pipeline.ingest.sessions``), else ``01``, ``02``... per participant in study date order
(the headers are read in memory before de-identification and never written). Series classified
``localizer`` or ``other`` are not converted (listed in the result). Both ADC maps are in
10^-6 mm^2/s (sidecar ``Units``). One failing series never stops the others: its error names
the source file and the problem, with identifying header values scrubbed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from weeke_pipeline import atomic
from weeke_pipeline.ingest import deidentify as deid
from weeke_pipeline.ingest import sessions as ses_table
from weeke_pipeline.ingest.discover import Series, Skipped, discover, group_series
from weeke_pipeline.ingest.series_table import SeriesRow, read_overrides, series_row
from weeke_pipeline.ingest.validate import SeriesCheckError, check_series, series_label
from weeke_pipeline.workers import pool_size, worker_pool

log = logging.getLogger(__name__)

CONVERTED = ("t1w", "t2w", "dwi", "adc", "swi")
#: classification -> (BIDS datatype folder, suffix with any fixed entities)
BIDS_NAMES = {
    "t1w": ("anat", "T1w"),
    "t2w": ("anat", "T2w"),
    "swi": ("anat", "acq-swi_T2starw"),
    "dwi": ("dwi", "dwi"),
    "adc": ("dwi", "desc-scanner_ADC"),
}
ADC_UNITS = "10^-6 mm^2/s"
#: sidecar keys never written, whatever dcm2niix puts there
_SIDECAR_DENY = {
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientWeight", "PatientSize",
    "AccessionNumber", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
    "DeviceSerialNumber", "StationName", "StudyID", "StudyDescription", "SeriesDescription",
    "ProtocolName", "ProcedureStepDescription", "ImageComments", "ReferringPhysicianName",
    "AcquisitionDateTime", "AcquisitionDate", "AcquisitionTime", "StudyInstanceUID",
    "SeriesInstanceUID", "BidsGuess", "PatientAge", "ContentTime", "StudyTime", "SeriesTime",
}


@dataclass
class SeriesResult:
    """What happened to one source series (no identifying values)."""

    source: str
    classification: str
    status: str  # converted | skipped | failed
    message: str = ""
    participant: str = ""
    session: str = ""
    outputs: list[str] = field(default_factory=list)


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
def ensure_dcm2niix_on_path() -> str:
    """Put the folder of the PyPI dcm2niix binary on PATH (nipype finds it only there)."""
    exe = shutil.which("dcm2niix")
    if exe:
        return exe
    import dcm2niix

    folder = str(Path(dcm2niix.bin).parent)
    os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")
    return dcm2niix.bin


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


def run_dcm2niix(source_dir: Path, out_dir: Path) -> list[Path]:
    """Convert one de-identified series folder with nipype's Dcm2niix; return the NIfTI files."""
    ensure_dcm2niix_on_path()
    from nipype.interfaces.dcm2nii import Dcm2niix

    out_dir.mkdir(parents=True, exist_ok=True)
    conv = Dcm2niix(source_dir=str(source_dir), output_dir=str(out_dir), out_filename="conv",
                    compress="y", bids_format=True, anon_bids=True)
    conv.run(cwd=str(out_dir))
    niis = sorted(out_dir.glob("conv*.nii.gz"))
    if not niis:
        raise RuntimeError("dcm2niix wrote no image")
    return niis


def clean_sidecar(path: Path, extra: dict[str, object]) -> None:
    data = json.loads(path.read_text()) if path.exists() else {}
    data = {k: v for k, v in data.items() if k not in _SIDECAR_DENY}
    data.update(extra)
    atomic.write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _move_set(nii: Path, dest_stem: Path) -> list[Path]:
    """Move conv*.nii.gz and its .json/.bval/.bvec siblings to ``dest_stem`` + extension
    (the image last, so a ``*.nii.gz`` in the raw data always has its sidecars)."""
    dest_stem.parent.mkdir(parents=True, exist_ok=True)
    stem = nii.name[: -len(".nii.gz")]
    moved = []
    for ext in (".json", ".bval", ".bvec", ".nii.gz"):
        src = nii.with_name(stem + ext)
        if src.exists():
            dst = dest_stem.with_name(dest_stem.name + ext)
            atomic.move_file(src, dst)
            moved.append(dst)
    return moved


# --------------------------------------------------------------------------- the steps
def inspect_dicom(dicom_dir: str | Path, series_table: str | Path | None = None
                  ) -> tuple[list[Series], list[SeriesRow], list[Skipped]]:
    """Discover, group and classify; apply an edited series table's classifications."""
    images, skipped = discover(dicom_dir)
    series = group_series(images)
    rows = [series_row(s) for s in series]
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
            p = pseudo(pid) if pseudo else None
        except deid.DeidentificationError:
            p = None
        if s.study_uid not in studies:
            studies[s.study_uid] = ses_table.Study(
                uid=s.study_uid, group=f"sub-{p}" if p else f"id:{pid}", patient_id=pid,
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
) -> IngestResult:
    """The whole ingest: classify, de-identify into ``work_dir``, convert into ``out_dir``.

    ``sessions``: a sessions table naming the ``ses-`` label of each study
    (``weeke_pipeline.ingest.sessions``; a participants table with a ``session`` column works
    too); unlisted studies keep the study date order. Works without nipype workflows (nipype's
    Dcm2niix interface is called directly). The series are de-identified and converted by
    ``workers`` processes (default: the usable CPUs); the outputs do not depend on it.
    ``background`` runs in a thread of this process while they do (it only waits for them
    then), and has finished when this returns."""
    out_dir = Path(out_dir)
    work_dir = Path(work_dir) if work_dir else out_dir.parent / (out_dir.name + "_work")
    uid_key, how = resolve_key(key, participants)
    pseudo = (deid.Pseudonymizer.from_table(participants, key=uid_key if key or
                                             os.environ.get("WEEKE_PROJECT_KEY") else None)
              if participants else deid.Pseudonymizer(key=uid_key))
    table = load_session_table(sessions, participants)  # bad table: stop before any work
    series, rows, skipped = inspect_dicom(dicom_dir, series_table)
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
    for s, r in zip(series, rows, strict=True):
        src = scrub(series_label(s))
        if r.classification not in CONVERTED:
            results.append(SeriesResult(src, r.classification, "skipped",
                                        f"{r.classification} series not converted"))
            continue
        try:
            p = pseudo(str(s.first.get("PatientID", "")))
        except deid.DeidentificationError as exc:
            results.append(SeriesResult(src, r.classification, "failed", f"{src}: {exc}"))
            continue
        try:
            checked = check_series(s)
        except SeriesCheckError as exc:
            msg = scrub(str(exc))
            log.error("sub-%s: %s; series not converted", p, msg)
            results.append(SeriesResult(src, r.classification, "failed", msg, participant=p))
            continue
        for warning in checked.warnings:
            log.warning("sub-%s: %s", p, scrub(warning))
        s.instances = checked.instances
        pseudonyms[s.series_uid] = p
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
            run=f"run-{runs[k]}_" if counts[k] > 1 else "", age_days=deid.age_in_days(s.first)))
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


@dataclass
class ConvertJob:
    """One series to de-identify and convert (no identifying value: ``src`` is scrubbed)."""

    sources: list  # discover.Source items, in instance order
    src: str
    sid: str  # keyed hash of the Series Instance UID: the work folder name
    classification: str
    evidence: str
    participant: str
    session: str
    run: str  # "run-<n>_" or ""
    age_days: int | None


#: DICOM files per de-identification task (a DWI series of ~700 files makes ~11 tasks)
CHUNK_FILES = 64


def convert_series(jobs: list[ConvertJob], out_dir: Path, work_dir: Path, key: bytes,
                   scrub: Callable[[str], str], workers: int | None = None, *,
                   background: Callable[[], None] | None = None) -> list[SeriesResult]:
    """De-identify and convert every job; results in job order.

    The files of each series are de-identified in parts of :data:`CHUNK_FILES` by a pool of
    ``workers`` processes, and a series is converted (dcm2niix, BIDS names) by the pool as soon
    as its last part is written, while the parts of the next series are being de-identified.
    At most ``workers + 1`` tasks are queued, so a ready conversion never waits behind the
    whole study's de-identification. One failing series never stops the others; a full disk
    stops the ingest. ``background`` (optional) runs in a thread from the first submission (a
    forked pool has started all its processes by then, so no later fork copies a lock the
    thread holds) to the end."""
    results: list[SeriesResult | None] = [None] * len(jobs)
    todo: deque[tuple[int, int]] = deque()
    left = {}
    # largest series first: its conversion then overlaps the de-identification of the others
    for i in sorted(range(len(jobs)), key=lambda i: -len(jobs[i].sources)):
        job = jobs[i]
        for d in (work_dir / "deid" / job.sid, work_dir / "dcm2niix" / job.sid):
            if d.exists():
                shutil.rmtree(d)
        starts = range(0, len(job.sources), CHUNK_FILES)
        todo.extend((i, start) for start in starts)
        left[i] = len(starts)
    ready: deque[int] = deque()
    running: dict[Future, tuple[str, int]] = {}

    def fill(pool: Executor, limit: int) -> None:
        """Queue conversions that are ready, then parts to de-identify, up to ``limit``."""
        while len(running) < limit and (ready or todo):
            if ready:
                i = ready.popleft()
                running[pool.submit(_convert_deidentified, jobs[i], out_dir, work_dir)] = (
                    "convert", i)
                continue
            i, start = todo.popleft()
            if results[i] is not None:  # an earlier part of this series failed
                continue
            job = jobs[i]
            running[pool.submit(
                _deidentify_part, job.sources[start:start + CHUNK_FILES],
                work_dir / "deid" / job.sid, pseudonym=job.participant, key=key,
                age_days=job.age_days, start=start + 1)] = ("deid", i)

    thread = None
    with worker_pool(workers) as pool:
        limit = pool_size(pool) + 1
        fill(pool, limit)
        if background is not None:
            thread = threading.Thread(target=background, name="weeke-ingest-background",
                                      daemon=True)
            thread.start()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=lambda f: running[f][1]):  # job order: stable logs
                kind, i = running.pop(f)
                exc = f.exception()
                if exc is not None:
                    if isinstance(exc, atomic.DiskFullError):
                        raise exc
                    if atomic.is_disk_full(exc):
                        raise atomic.write_error(exc, getattr(exc, "filename", None)
                                                 or work_dir) from exc
                    if results[i] is None:
                        job = jobs[i]
                        what = (str(exc) if isinstance(exc, RuntimeError)
                                else f"{type(exc).__name__}: {exc}")
                        results[i] = SeriesResult(
                            job.src, job.classification, "failed", scrub(f"{job.src}: {what}"),
                            participant=job.participant, session=job.session)
                        log.error("%s", results[i].message)
                elif kind == "deid":
                    left[i] -= 1
                    if left[i] == 0 and results[i] is None:
                        ready.append(i)
                else:
                    res, notes = f.result()
                    res.message = scrub(res.message)
                    results[i] = res
                    for level, message in notes:  # logged here: the worker's records would
                        log.log(level, "%s", scrub(message))  # bypass this process' handlers
            fill(pool, limit)
    if thread is not None:
        thread.join()
    return [r for r in results if r is not None]


def _deidentify_part(sources: list, out_dir: Path, **kwargs: object) -> int:
    """:func:`deid.write_deidentified` in a worker; any error comes back as an ``OSError``
    (disk full, permissions) or a ``RuntimeError`` naming its type (an exception of another
    library may not survive the trip between processes)."""
    try:
        return len(deid.write_deidentified(sources, out_dir, **kwargs))  # type: ignore[arg-type]
    except (OSError, atomic.DiskFullError):
        raise
    except Exception as exc:
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from None


def _convert_deidentified(job: ConvertJob, out_dir: Path, work_dir: Path
                          ) -> tuple[SeriesResult, list[tuple[int, str]]]:
    """dcm2niix on one de-identified series, then BIDS names and cleaned sidecars.

    Returns the result and the log lines for the caller to emit (unscrubbed: the caller
    scrubs). Errors other than a full disk become a failed result."""
    src, p, ses = job.src, job.participant, job.session
    res = SeriesResult(src, job.classification, "failed", participant=p, session=ses)
    notes: list[tuple[int, str]] = []
    try:
        niis = run_dcm2niix(work_dir / "deid" / job.sid, work_dir / "dcm2niix" / job.sid)
        datatype, suffix = BIDS_NAMES[job.classification]
        base = out_dir / f"sub-{p}" / f"ses-{ses}" / datatype
        prefix = f"sub-{p}_ses-{ses}_{job.run}"
        extra = {"DeidentificationMethod": deid.DEIDENTIFICATION_METHOD,
                 "WeekeClassification": job.classification,
                 "WeekeClassificationEvidence": job.evidence}
        main = niis[0]
        for nii in niis:
            tag = nii.name[len("conv"): -len(".nii.gz")].strip("_")
            if tag == "ADC" and job.classification == "dwi":  # Philips: ADC inside the DWI
                stem, cls = base / f"{prefix}desc-scanner_ADC", "adc"
            elif nii is main:
                stem, cls = base / f"{prefix}{suffix}", job.classification
            else:
                acq = "".join(ch for ch in tag if ch.isalnum())
                stem, cls = base / f"{prefix}acq-{acq}_{suffix}", job.classification
            meta = dict(extra, WeekeClassification=cls)
            if cls == "adc":
                meta["Units"] = ADC_UNITS
            clean_sidecar(nii.with_name(nii.name[: -len(".nii.gz")] + ".json"), meta)
            moved = _move_set(nii, stem)
            res.outputs.extend(str(m.relative_to(out_dir)) for m in moved)
        res.status = "converted"
        if job.classification == "dwi" and not _has_bvalues(out_dir, res.outputs):
            # kept in the raw data for reading, but no ADC fit and no tensor fit: dcm2niix
            # writes all-zero b-values when the headers have none, so those files go
            for o in [o for o in res.outputs if o.endswith((".bval", ".bvec"))]:
                (out_dir / o).unlink()
                res.outputs.remove(o)
            res.message = (f"{src}: DWI without b-values (no diffusion b-value in the headers);"
                           " converted but not used for ADC or DTI")
            notes.append((logging.WARNING, res.message))
        notes.append((logging.INFO, f"{src}: {job.classification} -> {res.outputs[0]}"))
    except atomic.DiskFullError:
        raise  # nothing more can be written: the run stops with this error
    except Exception as exc:  # one series must not stop the others
        if atomic.is_disk_full(exc):
            raise atomic.write_error(exc, getattr(exc, "filename", None) or work_dir) from exc
        res.message = f"{src}: {type(exc).__name__}: {exc}"
        notes.append((logging.ERROR, res.message))
    return res, notes


def _has_bvalues(out_dir: Path, outputs: list[str]) -> bool:
    """True when a DWI's .bval file exists and has a diffusion-weighted volume (b > 50)."""
    for o in outputs:
        if o.endswith(".bval"):
            try:
                values = [float(v) for v in (out_dir / o).read_text().split()]
            except (OSError, ValueError):
                return False
            return any(v > 50.0 for v in values)
    return False


def add_computed_adc(out_dir: Path, results: list[SeriesResult]) -> list[SeriesResult]:
    """Fit an ADC map for every converted DWI of a session that has no scanner ADC."""
    import nibabel as nib
    import numpy as np

    from weeke_pipeline.ingest.adc import fit_adc

    have_adc = {(r.participant, r.session) for r in results if r.status == "converted"
                and any(o.endswith("_ADC.nii.gz") for o in r.outputs)}
    new = []
    for r in results:
        if r.status != "converted" or r.classification != "dwi":
            continue
        if (r.participant, r.session) in have_adc:
            continue
        for o in r.outputs:
            if not o.endswith("_dwi.nii.gz") or o.replace(".nii.gz", ".bval") not in r.outputs:
                continue  # a DWI without b-values (warned about at conversion)
            dwi_path = out_dir / o
            out = SeriesResult(r.source, "adc", "failed", participant=r.participant,
                               session=r.session)
            try:
                img = nib.load(dwi_path)
                bvals = np.loadtxt(str(dwi_path).replace(".nii.gz", ".bval"), ndmin=1)
                adc = fit_adc(np.asarray(img.dataobj, dtype=np.float32), bvals)
                stem = o.replace("_dwi.nii.gz", "_desc-logfit_ADC")
                hdr = img.header.copy()
                hdr.set_data_dtype(np.float32)
                hdr.set_slope_inter(1, 0)
                atomic.write_text(out_dir / f"{stem}.json", json.dumps({
                    "Units": ADC_UNITS, "Sources": [o], "WeekeClassification": "adc",
                    "Description": "log-linear least-squares ADC over b-value shells (trace), "
                                   "Otsu mask on b=0 (weeke_pipeline.ingest.adc.fit_adc)",
                    "DeidentificationMethod": deid.DEIDENTIFICATION_METHOD,
                }, indent=2, sort_keys=True) + "\n")
                adc_img = nib.Nifti1Image(adc, img.affine, hdr)
                atomic.write_with(out_dir / f"{stem}.nii.gz",
                                  lambda tmp, im=adc_img: nib.save(im, tmp))
                out.status, out.outputs = "converted", [f"{stem}.nii.gz", f"{stem}.json"]
            except atomic.DiskFullError:
                raise
            except Exception as exc:
                out.message = f"{r.source}: ADC not computed: {type(exc).__name__}: {exc}"
                out.status = "skipped"
                log.warning("%s", out.message)
            new.append(out)
    return new


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
                    rel = Path(o).relative_to(f"sub-{p}/ses-{ses}")
                    lines.append(f"{rel}\t{r.classification}")
        atomic.write_text(out_dir / f"sub-{p}" / f"ses-{ses}" / f"sub-{p}_ses-{ses}_scans.tsv",
                          "\n".join(lines) + "\n")
    for p, sessions in participants.items():
        rows = ["session_id\tage_days"]
        # study order: age at scan (the dates are gone), then the label
        for ses in sorted(sessions, key=lambda s: (ages.get((p, s)) is None,
                                                   ages.get((p, s)) or 0, s)):
            age = ages.get((p, ses))
            rows.append(f"ses-{ses}\t{'n/a' if age is None else age}")
        atomic.write_text(out_dir / f"sub-{p}" / f"sub-{p}_sessions.tsv",
                          "\n".join(rows) + "\n")


def result_json(result: IngestResult) -> str:
    """The per-series outcome as JSON (no identifying values, no source UIDs)."""
    return json.dumps({"out_dir": result.out_dir,
                       "series": [asdict(s) for s in result.series],
                       "skipped_files": [asdict(s) for s in result.skipped_files]}, indent=2)
