"""The batch pipeline: DICOM folder -> de-identified BIDS raw -> per-subject Nipype workflows.

1. Ingest (study level, since grouping by patient needs every header): discover, classify,
   de-identify (PS3.15) and convert with dcm2niix into ``<out>/rawdata`` (BIDS raw).
2. One Nipype workflow per subject/session (:func:`init_subject_wf`), all in one graph run by a
   Nipype execution plugin (MultiProc on one machine, SLURM/SGE/PBS on a cluster). The work
   directory ``<out>/work`` caches every node with content hashes, so a re-run resumes.
   A failing subject does not stop the others (Nipype runs every branch it can).
3. Afterwards: a QC report for every subject, including the failed ones (showing the error),
   the group metrics table, the group QC page, ``participants.tsv`` with ages from the run's
   participants table (never from DICOM PatientAge) and a run summary.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from weeke_pipeline import __version__
from weeke_pipeline.atlas.bundle import AtlasError, load_atlas
from weeke_pipeline.atlas.honesty import is_phantom_atlas, phantom_notice, run_notice
from weeke_pipeline.bids import names
from weeke_pipeline.bids.tables import AGE_COLUMNS, read_table
from weeke_pipeline.config import ConfigError, RunConfig
from weeke_pipeline.resources import default_atlas_dir, find_atlas

log = logging.getLogger("weeke.pipeline")

DERIVATIVES = "derivatives/weeke"


@dataclass
class SubjectInputs:
    """One session's converted images (BIDS raw paths)."""

    subject: str
    session: str
    t2w: str
    t1w: str | None = None
    dwi: str | None = None
    bval: str | None = None
    bvec: str | None = None
    adc: str | None = None


@dataclass
class RunSummary:
    """What a run produced and what failed (no identifying values)."""

    output_dir: str
    subjects: dict[str, str] = field(default_factory=dict)  # sub_ses -> pass/warn/fail
    errors: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # sub_ses -> QC warnings, skip reason
    ingest_failures: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)  # damaged DICOM files, unread zips
    notice: str = ""  # run-wide, e.g. the phantom atlas on real data (atlas/honesty.py)
    group_metrics: str = ""
    qc_index: str = ""

    @property
    def ok(self) -> bool:
        """The exit-code contract of ``weeke run`` (0 when True, else 1): every subject/session
        ``pass`` or ``warn``, no series refused, no damaged DICOM file skipped (non-DICOM files
        and non-image objects such as presentation states do not count)."""
        return (not self.errors and not self.ingest_failures and not self.skipped_files
                and all(v in ("pass", "warn") for v in self.subjects.values()))


def project_key(cfg: RunConfig, out: Path) -> bytes:
    """The project key for keyed-hash pseudonyms and UIDs: the configured key file, else
    ``WEEKE_PROJECT_KEY``, else a random key created once and kept (mode 600) in the output."""
    if cfg.key_file:
        path = Path(cfg.key_file)
        if not path.is_file():
            raise ConfigError(f"key_file {path} does not exist")
        return path.read_bytes().strip()
    if os.environ.get("WEEKE_PROJECT_KEY"):
        return os.environ["WEEKE_PROJECT_KEY"].encode()
    path = out / ".weeke_project_key"
    if not path.exists():
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_bytes().strip()


def ingest_workers(cfg: RunConfig) -> int:
    """Processes for the ingest (it runs before the workflows, in this process): MultiProc's
    ``n_procs`` (default: the usable CPUs), 1 with the Linear plugin, and at most 2 with a
    cluster plugin (the ingest then runs on the submit host, often a shared login node)."""
    from weeke_pipeline.workers import usable_cpus

    if cfg.plugin == "MultiProc":
        return max(1, int(cfg.plugin_args.get("n_procs") or usable_cpus()))
    if cfg.plugin == "Linear":
        return 1
    return min(2, usable_cpus())


def find_sessions(rawdata: Path) -> list[SubjectInputs]:
    """Every ``sub-*/ses-*`` with a T2w in the BIDS raw folder (first run of each kind)."""
    found = []
    for sub, ses, ses_dir in names.session_folders(rawdata):
        files = [p for d in ("anat", "dwi") for p in (ses_dir / d).glob("*.nii.gz")]

        def first(datatype: str, suffix: str, files: list[Path] = files, **entities: str
                  ) -> str | None:
            hits = names.select(files, datatype=datatype, suffix=suffix, **entities)
            return str(hits[0]) if hits else None

        t2w = first("anat", "T2w")
        if t2w is None:
            log.warning("sub-%s ses-%s: no T2w; the imaging workflow needs one (skipped)", sub,
                        ses)
            continue
        dwi = first("dwi", "dwi")
        bval = dwi.replace(".nii.gz", ".bval") if dwi else None
        bvec = dwi.replace(".nii.gz", ".bvec") if dwi else None
        has_grad = bool(bval and bvec and Path(bval).is_file() and Path(bvec).is_file())
        if dwi and not has_grad:
            log.warning("sub-%s ses-%s: DWI without bval/bvec is not used", sub, ses)
        found.append(SubjectInputs(
            subject=sub, session=ses, t2w=t2w, t1w=first("anat", "T1w"),
            dwi=dwi if has_grad else None, bval=bval if has_grad else None,
            bvec=bvec if has_grad else None,
            adc=first("dwi", "ADC", desc="scanner") or first("dwi", "ADC", desc="logfit")))
    return found


def _pma_weeks(cfg: RunConfig, sessions: list[SubjectInputs]) -> dict[str, float]:
    """Postmenstrual age at scan (weeks) per subject from the run's participants table
    (``pma_at_scan_weeks`` + ``pma_at_scan_days`` / 7), for subjects with one session only
    (the table has one age per participant); QC uses it for the expected brain volume."""
    if not cfg.participants:
        return {}
    n_sessions: dict[str, int] = {}
    for s in sessions:
        n_sessions[s.subject] = n_sessions.get(s.subject, 0) + 1
    out: dict[str, float] = {}
    rows = read_table(cfg.participants, what="participants table").by_participant()
    for label, row in rows.items():
        try:
            weeks = float(row.get("pma_at_scan_weeks") or "nan")
            days = float(row.get("pma_at_scan_days") or 0)
        except ValueError:
            continue
        if n_sessions.get(label) == 1 and weeks == weeks:
            out[label] = weeks + days / 7.0
    return out


def _write_participants(cfg: RunConfig, rawdata: Path, subjects: list[str]) -> None:
    """BIDS participants.tsv: participant_id plus ages from the run's participants table
    (the linkage column ``patient_id`` is never copied)."""
    rows: dict[str, dict[str, str]] = {}
    if cfg.participants:
        rows = read_table(cfg.participants, what="participants table").by_participant()
    cols = ["participant_id"] + [c for c in AGE_COLUMNS if any(c in r for r in rows.values())]
    lines = ["\t".join(cols)]
    for sub in sorted(set(subjects)):
        row = rows.get(sub, {})
        lines.append("\t".join([f"sub-{sub}"] + [row.get(c, "n/a") or "n/a" for c in cols[1:]]))
    (rawdata / "participants.tsv").write_text("\n".join(lines) + "\n")
    deriv = rawdata.parent / DERIVATIVES
    deriv.mkdir(parents=True, exist_ok=True)
    (deriv / "participants.tsv").write_text("\n".join(lines) + "\n")


def _dataset_description(deriv: Path, atlas_name: str) -> None:
    deriv.mkdir(parents=True, exist_ok=True)
    (deriv / "dataset_description.json").write_text(json.dumps({
        "Name": "weeke-pipeline derivatives", "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "weeke-pipeline", "Version": __version__,
                         "Description": f"atlas registration ({atlas_name}), region metrics, QC"}],
        "SourceDatasets": [{"URL": "bids::rawdata"}],
    }, indent=2) + "\n")


def run_preset(cfg: RunConfig) -> Any:
    """The registration preset of the run, with the run's seed (``[registration] seed``);
    an unknown name or unreadable file is a :class:`ConfigError`."""
    import dataclasses

    from weeke_pipeline.imaging.registration import load_preset

    try:
        preset = load_preset(cfg.preset)
    except ValueError as exc:
        raise ConfigError(f"[registration] preset: {exc}") from None
    return dataclasses.replace(preset, random_seed=cfg.seed)


def _provenance(cfg: RunConfig, *, atlas: Any = None, preset: Any = None,
                atlases: list[Any] | None = None) -> dict[str, Any]:
    if not atlases and atlas is None and "dhcp-auto" in cfg.atlases:
        return {"atlas": "dhcp-auto", "atlas_version": "per subject",
                "atlases": "dhcp-auto (per subject: see each subject's configuration)",
                "label_fusion": cfg.label_fusion,
                "registration_preset": (preset or run_preset(cfg)).to_dict(),
                "form": cfg.form}
    if atlases:
        atlas = atlases[0]
    elif atlas is None and cfg.atlases:
        atlases = [load_atlas(find_atlas(a)) for a in cfg.atlases]
        atlas = atlases[0]
    atlas = atlas or load_atlas(cfg.atlas or default_atlas_dir())
    preset = preset or run_preset(cfg)
    doc = {"atlas": atlas.name, "atlas_version": atlas.version,
           "registration_preset": preset.to_dict(), "form": cfg.form}
    if atlases and len(atlases) > 1:
        doc["atlases"] = [{"name": a.name, "version": a.version, "path": str(a.path)}
                          for a in atlases]
        doc["label_fusion"] = cfg.label_fusion
    return doc


def session_atlases(cfg: RunConfig, session: SubjectInputs) -> list[Any]:
    """The atlas bundles of one session (``dhcp-auto`` resolved from its age at scan)."""
    from weeke_pipeline.atlas.selection import check_same_labels, resolve_atlases

    wanted = cfg.atlas_list or [str(default_atlas_dir())]
    bundles = resolve_atlases(wanted, subject=session.subject,
                              participants=cfg.participants or None)
    check_same_labels(bundles)
    return bundles


def build_workflow(cfg: RunConfig, sessions: list[SubjectInputs], *, deriv: Path,
                   work: Path, atlases: dict[str, list[Any]] | None = None) -> Any:
    """The Nipype graph with one sub-workflow per session.

    ``atlases``: session key (``sub-X_ses-Y``) -> its atlas bundles (default: resolved from
    ``cfg`` with :func:`session_atlases`); two or more = multi-atlas segmentation.
    """
    from nipype.pipeline import engine as pe

    from weeke_pipeline.workflows.multiatlas import AtlasFiles
    from weeke_pipeline.workflows.subject import init_subject_wf

    preset = run_preset(cfg)
    wf = pe.Workflow(name="weeke_wf", base_dir=str(work))
    wf.config["execution"] = {
        "hash_method": "content", "crashfile_format": "txt", "stop_on_first_crash": "false",
        "remove_unnecessary_outputs": "false", "crashdump_dir": str(work / "crash"),
        "poll_sleep_duration": "0.5",  # 0.1 s costs more: the scheduler loop's CPU slowed
                                       # the atlas registration by ~25 % on 2 cores
    }
    wf.config["monitoring"] = {"enabled": "false"}
    pma = _pma_weeks(cfg, sessions)
    for s in sessions:
        key = names.name({"sub": s.subject, "ses": s.session})
        bundles = (atlases or {}).get(key) or session_atlases(cfg, s)
        atlas = bundles[0]
        provenance = _provenance(cfg, preset=preset, atlases=bundles)
        files = [AtlasFiles(b.name, str(b.image("T2w")), str(b.image("brain_mask")),
                            str(b.image("dseg"))) for b in bundles]
        sub_wf = init_subject_wf(
            subject=s.subject, session=s.session, atlas_t2w=str(atlas.image("T2w")),
            atlas_brain_mask=str(atlas.image("brain_mask")), atlas_labels=str(atlas.image("dseg")),
            derivatives_dir=str(deriv), run_config=cfg.to_toml(provenance),
            has_t1w=s.t1w is not None, has_dwi=s.dwi is not None, has_adc=s.adc is not None,
            preset=cfg.preset, seed=cfg.seed, adc_thresholds=tuple(cfg.adc_thresholds),
            reference_tissue=cfg.reference_tissue, dti=cfg.dti,
            atlas_label_table=str(atlas.path / "labels.tsv"),
            atlases=files if len(files) > 1 else None, label_fusion=cfg.label_fusion,
            atlas_notice=phantom_notice(atlas.meta, s.t2w), pma_weeks=pma.get(s.subject),
            name=f"sub_{s.subject}_ses_{s.session}_wf")
        for key in ("t2w", "t1w", "dwi", "bval", "bvec", "adc"):
            value = getattr(s, key)
            if value is not None:
                setattr(sub_wf.get_node("inputnode").inputs, key, value)
        wf.add_nodes([sub_wf])
    return wf


#: modules the nodes import (seconds each); loaded in the parent before MultiProc forks its
#: workers, so that no worker pays for them on the critical path
HEAVY_MODULES = ("ants", "dipy.reconst.dti", "matplotlib.pyplot", "skimage.metrics",
                 "skimage.segmentation", "pandas")


def _preload(modules: tuple[str, ...] = HEAVY_MODULES) -> None:
    import contextlib
    import importlib

    os.environ.setdefault("MPLBACKEND", "Agg")
    for name in modules:
        with contextlib.suppress(ImportError):  # a node reports it with its own error
            importlib.import_module(name)
    with contextlib.suppress(ImportError):  # the metrics' compiled passes, for every worker
        from weeke_pipeline.imaging.metrics_kernels import warm_up

        warm_up()


def _quiet_nipype(*, verbose: bool) -> None:
    """Nipype logs every node at INFO; keep that for ``-v`` only."""
    from nipype import config as ncfg
    from nipype import logging as nlog

    level = "INFO" if verbose else "WARNING"
    for key in ("workflow_level", "interface_level", "utils_level"):
        ncfg.set("logging", key, level)
    nlog.update_logging(ncfg)


def _crash_messages(work: Path) -> dict[str, str]:
    """First line of the error of each crashed subject (from Nipype's crash files)."""
    out: dict[str, str] = {}
    for crash in sorted((work / "crash").glob("crash-*.txt")):
        text = crash.read_text(errors="replace")
        node = ""
        for line in text.splitlines():
            if line.startswith("Node:"):
                node = line.split(":", 1)[1].strip()
                break
        key = next((part for part in node.split(".") if part.startswith("sub_")), "")
        lines = [ln for ln in text.splitlines() if ln.strip()]
        last = next((ln for ln in reversed(lines) if "Error" in ln or "Exception" in ln),
                    lines[-1] if lines else "unknown error")
        if key and key not in out:
            out[key] = f"node {node.split('.')[-1]}: {last.strip()}"
    return out


def status_table(summary: RunSummary) -> str:
    """The end-of-run table: one line per subject/session with its QC status or error."""
    lines = [summary.notice, ""] if summary.notice else []
    lines += [f"{'subject/session':<24} {'status':<6} detail", "-" * 72]
    for key, status in sorted(summary.subjects.items()):
        detail = summary.errors.get(key) or summary.notes.get(key, "")
        lines.append(f"{key:<24} {status:<6} {detail[:200]}")
    for msg in summary.ingest_failures:
        lines.append(f"{'(ingest)':<24} {'fail':<6} {msg[:200]}")
    for msg in summary.skipped_files:
        lines.append(f"{'(ingest)':<24} {'skip':<6} {msg[:200]}")
    if not summary.subjects and not summary.ingest_failures:
        lines.append("(no subject with a T2w found)")
    return "\n".join(lines)


def run_pipeline(cfg: RunConfig, *, progress: bool = False) -> RunSummary:
    """Run the whole batch job described by ``cfg``; returns the summary (also written as
    ``<out>/derivatives/weeke/run_summary.json``). The plugin and its arguments, the
    configuration and the preset are checked first, and the output and work folders are locked
    for the run (one run per folder)."""
    from weeke_pipeline.execution import RunLock, validate_plugin

    validate_plugin(cfg.plugin, cfg.plugin_args)
    if not cfg.input_dir or not Path(cfg.input_dir).exists():
        raise ConfigError(f"input folder {cfg.input_dir or '(none)'} does not exist")
    cfg.validate()
    run_preset(cfg)  # an unknown preset is a usage error before any work
    out = Path(cfg.output_dir).resolve()
    work = Path(cfg.work_dir).resolve() if cfg.work_dir else out / "work"
    check_writable(out, "output folder")
    check_writable(work, "work folder")
    with RunLock([out, work]):
        return _run_pipeline(cfg, progress=progress)


def _run_pipeline(cfg: RunConfig, *, progress: bool = False) -> RunSummary:
    from weeke_pipeline.ingest.convert import ensure_dcm2niix_on_path
    from weeke_pipeline.ingest.run import NoDicomError, ingest_and_convert
    from weeke_pipeline.ingest.sessions import SessionTableError

    out = Path(cfg.output_dir).resolve()
    rawdata, deriv = out / "rawdata", out / DERIVATIVES
    work = Path(cfg.work_dir).resolve() if cfg.work_dir else out / "work"
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "2")
    ensure_dcm2niix_on_path()
    _quiet_nipype(verbose=log.isEnabledFor(logging.INFO))
    summary = RunSummary(output_dir=str(out))

    log.info("ingest: de-identifying and converting %s", cfg.input_dir)
    # the heavy imports of the workflow nodes (~2.5 s) load in a thread while the ingest's
    # worker processes convert (this process then only waits), instead of after the ingest
    preload = _preload if cfg.plugin in ("MultiProc", "LegacyMultiProc") else None
    try:
        ingest = ingest_and_convert(cfg.input_dir, rawdata,
                                    participants=cfg.participants or None,
                                    series_table=cfg.series_table or None,
                                    sessions=cfg.sessions or None,
                                    key=project_key(cfg, out), work_dir=work / "deid",
                                    workers=ingest_workers(cfg), background=preload,
                                    max_file_mb=cfg.max_file_mb or None)
    except (NoDicomError, SessionTableError) as exc:
        raise ConfigError(str(exc)) from None
    summary.ingest_failures = [f"sub-{s.participant}: {s.message}" if s.participant else s.message
                               for s in ingest.series if s.status == "failed"]
    summary.skipped_files = [f"{f.source}: {f.reason}" for f in ingest.skipped_files
                             if f.damaged]
    sessions = find_sessions(rawdata)
    wanted = {s.removeprefix("sub-") for s in cfg.subjects}
    if cfg.subjects:
        sessions = [s for s in sessions if s.subject in wanted]
    have = {(s.subject, s.session) for s in sessions}
    for sub, ses, _ in names.session_folders(rawdata):  # sessions without a T2w: skipped
        if (sub, ses) not in have and (not wanted or sub in wanted):
            summary.subjects[f"sub-{sub}_ses-{ses}"] = "skip"
            summary.notes[f"sub-{sub}_ses-{ses}"] = "no usable T2w: no atlas labels or metrics"
    _write_participants(cfg, rawdata, [s.subject for s in sessions])
    if "dhcp-auto" in cfg.atlas_list:
        from weeke_pipeline.atlas.selection import AtlasSelectionError, participant_pma

        try:  # a missing column stops the run here; a missing participant fails only them
            participant_pma(cfg.participants or None, "")
        except AtlasSelectionError as exc:
            if "not in the participants table" not in str(exc):
                raise ConfigError(str(exc)) from None
        _dataset_description(deriv, "dhcp-auto")
    else:
        used = [load_atlas(find_atlas(a)).name for a in cfg.atlas_list] or \
            [load_atlas(default_atlas_dir()).name]
        _dataset_description(deriv, " + ".join(used))
    if not sessions:
        log.warning("no session with a T2w was found under %s", rawdata)
        _write_summary(summary, deriv)
        return summary

    return process_sessions(cfg, sessions, summary=summary, progress=progress)


def process_sessions(cfg: RunConfig, sessions: list[SubjectInputs], *,
                     summary: RunSummary | None = None, progress: bool = False) -> RunSummary:
    """Stage 2 and 3: the per-subject workflows under the configured plugin, then QC for every
    subject (failed ones included), the group metrics table and the QC index."""
    from weeke_pipeline.execution import RunLock, execute
    from weeke_pipeline.imaging import metrics, qc, qc_report

    out = Path(cfg.output_dir).resolve()
    deriv = out / DERIVATIVES
    work = Path(cfg.work_dir).resolve() if cfg.work_dir else out / "work"
    summary = summary or RunSummary(output_dir=str(out))
    _quiet_nipype(verbose=log.isEnabledFor(logging.INFO))
    atlases: dict[str, list[Any]] = {}
    results, tables = [], []
    runnable = []
    for s in sessions:  # an atlas that cannot be resolved fails that subject only
        session = {"sub": s.subject, "ses": s.session}
        stem = names.name(session)
        try:
            atlases[stem] = session_atlases(cfg, s)
            runnable.append(s)
        except AtlasError as exc:
            summary.errors[stem] = f"atlas: {exc}"
            summary.subjects[stem] = "fail"
            base = deriv / names.folder(session)
            results.append(qc.run_subject_qc(stem, base / "qc", t2w=s.t2w,
                                             error=f"atlas: {exc}"))
    sessions = runnable
    phantom = next((b[0].meta for b in atlases.values() if is_phantom_atlas(b[0].meta)), None)
    summary.notice = run_notice(phantom, [s.t2w for s in sessions]) if phantom else ""
    if summary.notice:  # said now (a run takes minutes), in full in the status table at the end
        log.warning("phantom atlas on real (not synthetic) data: these labels are not anatomy; "
                    "see the NOTE at the end")
    wf = build_workflow(cfg, sessions, deriv=deriv, work=work, atlases=atlases)
    if cfg.plugin in ("MultiProc", "LegacyMultiProc"):
        _preload()  # once here, before the workers fork, instead of once in every worker
    log.info("running %d session(s) with the %s plugin", len(sessions), cfg.plugin)
    (deriv / "run_config.toml").write_text(cfg.to_toml(_provenance(cfg)))
    for stale in (work / "crash").glob("crash-*"):  # a re-run reports only its own crashes
        stale.unlink()
    with RunLock([out, work]):  # (a no-op under run_pipeline's lock)
        if sessions:  # none left when every subject's atlases failed to resolve
            execute(wf, cfg.plugin, dict(cfg.plugin_args), work=work, progress=progress)
    crashes = _crash_messages(work)

    for s in sessions:
        key = f"sub_{s.subject}_ses_{s.session}_wf"
        session = {"sub": s.subject, "ses": s.session}
        base = deriv / names.folder(session)
        stem = names.name(session)  # the session's key in the summary: sub-<p>_ses-<s>
        qc_json = deriv / names.build({**session, "datatype": "qc", "suffix": "qc",
                                       "extension": ".json"})
        if key in crashes or not qc_json.is_file():
            error = crashes.get(key, "the workflow did not finish (see the work folder)")
            summary.errors[stem] = error
            res = qc.run_subject_qc(stem, base / "qc", t2w=s.t2w, error=error)
            results.append(res)
            summary.subjects[stem] = "fail"
            continue
        doc = json.loads(qc_json.read_text())
        summary.subjects[stem] = doc["status"]
        summary.notes[stem] = "; ".join(doc["reasons"])
        results.append({"subject": stem, "status": doc["status"], "reasons": doc["reasons"],
                        "report": str(qc_json.with_suffix(".html"))})
        tsv = deriv / names.build({**session, "suffix": "metrics", "extension": ".tsv"})
        if tsv.is_file():
            tables.append((s.session, tsv))
    summary.qc_index = str(qc_report.write_group_index(results, deriv / "qc_index.html"))
    if tables:  # one long table; the session column keeps several sessions of a subject apart
        import pandas as pd

        cols = list(metrics.COLUMNS)
        group = pd.concat([metrics.read_metrics(tsv).assign(session=ses) for ses, tsv in tables],
                          ignore_index=True)[[*cols[:1], "session", *cols[1:]]]
        path = deriv / "group_metrics.tsv"
        group.to_csv(path, sep="\t", index=False, na_rep="n/a")
        summary.group_metrics = str(path)
    _write_summary(summary, deriv)
    return summary


def check_writable(folder: Path, what: str) -> None:
    """Raise ConfigError unless ``folder`` exists (or can be made) and takes a new file."""
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{what} {folder} is a file, not a folder; nothing was done")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".weeke-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{what} {folder} is not writable ({exc.strerror or exc}); "
                          "nothing was done") from None


def _write_summary(summary: RunSummary, deriv: Path) -> None:
    from weeke_pipeline import atomic

    atomic.write_text(deriv / "run_summary.json", json.dumps(
        {"output_dir": summary.output_dir, "subjects": summary.subjects,
         "errors": summary.errors, "notes": summary.notes,
         "ingest_failures": summary.ingest_failures, "notice": summary.notice,
         "skipped_files": summary.skipped_files,
         "group_metrics": summary.group_metrics, "qc_index": summary.qc_index,
         "weeke_pipeline_version": __version__}, indent=2) + "\n")
