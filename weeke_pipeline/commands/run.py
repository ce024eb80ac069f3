"""``weeke run``: the batch imaging pipeline (DICOM folder -> de-identified BIDS, atlas labels,
region metrics, QC), as Nipype workflows on any Nipype execution plugin."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "run the batch imaging pipeline on a folder of scanner exports"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", nargs="?", type=Path,
                   help="run specification TOML (see workflows/default.toml); options below "
                        "override it")
    p.add_argument("--input", dest="input_dir", help="folder of DICOM exports (or zip files)")
    p.add_argument("--out", dest="output_dir", help="output folder (default weeke-output)")
    p.add_argument("--work", dest="work_dir", help="work folder (default <out>/work)")
    p.add_argument("--participants", help="participants TSV: patient_id -> participant_id, ages")
    p.add_argument("--series-table", dest="series_table", help="edited `weeke inspect` table")
    p.add_argument("--key-file", dest="key_file", help="project key file for pseudonyms")
    p.add_argument("--atlas", help="atlas bundle folder (default: shipped phantom atlas)")
    p.add_argument("--preset", help="registration preset: fast, precise or a TOML path")
    p.add_argument("--plugin", help="Nipype plugin: Linear, MultiProc, SLURM, SGE, PBS, ...")
    p.add_argument("--n-procs", type=int, help="processes for MultiProc")
    p.add_argument("--subjects", nargs="+", help="only these participant labels")
    p.add_argument("--no-dti", action="store_true", help="skip the diffusion tensor fit")


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.cli import UsageError
    from weeke_pipeline.pipeline import run_pipeline
    from weeke_pipeline.runconfig import ConfigError, RunConfig

    try:
        cfg = RunConfig.from_toml(args.spec) if args.spec else RunConfig()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    for key in ("input_dir", "output_dir", "work_dir", "participants", "series_table",
                "key_file", "atlas", "preset", "plugin", "subjects"):
        value = getattr(args, key)
        if value:
            setattr(cfg, key, [str(v) for v in value] if key == "subjects" else str(value))
    if args.n_procs:
        cfg.plugin_args = {**cfg.plugin_args, "n_procs": args.n_procs}
    if args.no_dti:
        cfg.dti = False
    for key in ("participants", "series_table", "key_file", "atlas"):
        value = getattr(cfg, key)
        if value and not Path(value).exists():
            raise UsageError(f"{key.replace('_', ' ')} {value}: no such file or folder")
    try:
        summary = run_pipeline(cfg)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps({"subjects": summary.subjects, "errors": summary.errors,
                      "ingest_failures": summary.ingest_failures}, indent=2))
    print(f"outputs: {summary.output_dir}/rawdata (BIDS raw), "
          f"{summary.output_dir}/derivatives/weeke (derivatives)")
    print(f"QC: {summary.qc_index}")
    return 0 if summary.ok else 1
