"""``weeke run``: the batch imaging pipeline (DICOM folder -> de-identified BIDS, atlas labels,
region metrics, QC), as Nipype workflows on any Nipype execution plugin."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = ("run the batch imaging pipeline on a folder of scanner exports (exit 0: every subject "
        "pass/warn; 1: a subject failed or was skipped, a series refused or a damaged file "
        "skipped; 2: usage or set-up error)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", nargs="?", help="folder of DICOM exports (any depth, zip files too)")
    p.add_argument("output", nargs="?", help="output folder (rawdata/, derivatives/weeke/)")
    p.add_argument("--config", type=Path, help="run specification TOML (workflows/default.toml;"
                   " options given here override it)")
    p.add_argument("--work-dir", help="work folder, the cache a re-run resumes from "
                   "(default OUTPUT/work)")
    p.add_argument("--participant-label", nargs="+", metavar="LABEL",
                   help="only these participants (pseudonyms, with or without sub-)")
    p.add_argument("--participants", help="participants TSV: patient_id -> participant_id, ages")
    p.add_argument("--series-table", help="edited `weeke inspect` table")
    p.add_argument("--sessions", help="sessions TSV: patient_id (or participant_id), a study key "
                   "(study_instance_uid, accession_number or study_date) -> session label")
    p.add_argument("--key-file", help="project key file for keyed-hash pseudonyms")
    p.add_argument("--atlas", action="append", metavar="ATLAS",
                   help="atlas bundle: a shipped or fetched name (`weeke atlas list`) or a "
                   "folder. Repeat for multi-atlas segmentation (each atlas registered on its "
                   "own, labels fused); `dhcp-auto` = the 3 installed dHCP weeks nearest each "
                   "infant's postmenstrual age at scan (participants table)")
    p.add_argument("--label-fusion", choices=("jlf", "majority"),
                   help="how several atlases' labels are fused: joint label fusion (default) "
                   "or majority voting")
    p.add_argument("--preset", help="registration preset: fast (default), precise or a TOML path")
    p.add_argument("--sloppy", action="store_true",
                   help="quickest registration (testing only: preset 'sloppy')")
    p.add_argument("--plugin", help="Nipype plugin: Linear, MultiProc (default), SLURM, SGE, "
                   "PBS, LSF, OAR, Condor (a different plugin than --config's drops its "
                   "plugin_args)")
    p.add_argument("--plugin-args", help='plugin arguments as JSON, e.g. \'{"n_procs": 4}\' or '
                   '\'{"sbatch_args": "--mem=4G", "poll_interval": 10}\'')
    p.add_argument("--nprocs", type=int, help="processes for MultiProc")
    p.add_argument("--no-dti", action="store_true", help="skip the diffusion tensor fit")
    p.add_argument("--no-progress", action="store_true", help="no progress display")
    p.add_argument("--max-file-mb", type=float, metavar="MB",
                   help="skip DICOM files (and zip members) larger than this (default 2048, or "
                        "WEEKE_DICOM_MAX_MB)")


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.atomic import OutputWriteError
    from weeke_pipeline.config import ConfigError, RunConfig
    from weeke_pipeline.errors import UsageError
    from weeke_pipeline.execution import DriverInterrupted, LockedError
    from weeke_pipeline.workflows.pipeline import run_pipeline, status_table

    try:
        cfg = RunConfig.from_toml(args.config) if args.config else RunConfig()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if args.plugin and args.plugin != cfg.plugin:
        cfg.plugin_args = {}  # the configuration's arguments belong to its own plugin
    for key, value in (("input_dir", args.input), ("output_dir", args.output),
                       ("work_dir", args.work_dir), ("participants", args.participants),
                       ("series_table", args.series_table), ("sessions", args.sessions),
                       ("key_file", args.key_file),
                       ("preset", "sloppy" if args.sloppy else args.preset),
                       ("plugin", args.plugin)):
        if value:
            setattr(cfg, key, str(value))
    if args.participant_label:
        cfg.subjects = [s.removeprefix("sub-") for s in args.participant_label]
    if args.atlas:
        from weeke_pipeline.atlas.selection import DHCP_AUTO
        from weeke_pipeline.resources import find_atlas

        found = [a if a == DHCP_AUTO else str(find_atlas(a)) for a in args.atlas]
        if len(found) == 1 and found[0] != DHCP_AUTO:
            cfg.atlas, cfg.atlases = found[0], []  # one atlas: exactly as before
        else:
            cfg.atlas, cfg.atlases = "", found
    if args.label_fusion:
        cfg.label_fusion = args.label_fusion
    if args.plugin_args:
        try:
            extra = json.loads(args.plugin_args)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--plugin-args is not valid JSON: {exc}") from None
        if not isinstance(extra, dict):
            raise UsageError("--plugin-args must be a JSON object")
        cfg.plugin_args = {**cfg.plugin_args, **extra}
    if args.nprocs:
        cfg.plugin_args = {**cfg.plugin_args, "n_procs": args.nprocs}
    if args.no_dti:
        cfg.dti = False
    if args.max_file_mb:
        cfg.max_file_mb = args.max_file_mb
    if not cfg.input_dir:
        raise UsageError("give the INPUT folder (or input_dir in --config)")
    if not cfg.output_dir:
        raise UsageError("give the OUTPUT folder (or output_dir in --config)")
    for key in ("participants", "series_table", "sessions", "key_file", "atlas"):
        value = getattr(cfg, key)
        if value and not Path(value).exists():
            raise UsageError(f"{key.replace('_', ' ')} {value}: no such file or folder")
    for value in cfg.atlases:
        if value != "dhcp-auto" and not Path(value).exists():
            raise UsageError(f"atlas {value}: no such atlas name or folder")
    try:
        cfg.check("options")
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    try:
        summary = run_pipeline(cfg, progress=not args.no_progress)
    except (ConfigError, OutputWriteError, LockedError) as exc:  # bad set-up, full disk,
        raise UsageError(str(exc)) from None                     # folder in use: one line
    except DriverInterrupted as exc:
        jobs = f"; cancelled job(s) {' '.join(exc.cancelled)}" if exc.cancelled else ""
        print(f"weeke run: interrupted ({exc.args[0]}){jobs}. Run the same command again to "
              "resume: finished steps are kept in the work folder.", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:  # Ctrl-C before the workflows started (during the ingest)
        print("weeke run: interrupted. Run the same command again to resume.", file=sys.stderr)
        return 130
    print(status_table(summary))
    print(f"\noutputs: {summary.output_dir}/rawdata (de-identified BIDS raw), "
          f"{summary.output_dir}/derivatives/weeke (labels, metrics, QC)")
    print(f"QC index: {summary.qc_index}")
    return 0 if summary.ok else 1
