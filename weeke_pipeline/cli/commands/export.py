"""``weeke export``: pseudonymised score, metric and QC tables with data dictionaries, plus a
REDCap import (docs/tables.md). Every export is recorded in the audit trail. The tables are
built and written by :mod:`weeke_pipeline.analysis.export`."""

from __future__ import annotations

import argparse
from pathlib import Path

from weeke_pipeline.cli.commands._analyst import add_common, add_format

HELP = ("export reads (long, wide), consensus, imaging metrics and QC keyed by reading code, "
        "with data dictionaries and a REDCap import")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, out_help="folder to write (new, empty, or an earlier export)")
    add_format(parser)
    parser.add_argument("--with-subject-ids", action="store_true",
                        help="add the subject column (coordinator accounts only, --as-user)")
    parser.add_argument("--metrics", type=Path, default=None, metavar="PIPELINE_OUTPUT",
                        help="`weeke run` output folder: export its region metrics and QC "
                        "keyed by reading code")


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.cli.commands import _analyst as an
    from weeke_pipeline.errors import UsageError

    an.check_format(args.format)
    user = an.start(args)
    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.exports import case_keys, case_subjects, has_role, read_records

    if args.with_subject_ids and not has_role(user, "coordinator"):
        raise UsageError("--with-subject-ids is for coordinator accounts: name one with "
                         "--as-user (exports are otherwise pseudonymised by reading code)")
    from weeke_pipeline.analysis.export import build_export, form_of_reads, write_export

    records = read_records()
    try:
        form = form_of_reads(records, need="the wide and consensus tables need one form "
                             "version")
        export = build_export(records, form, dict(case_subjects()), case_keys(),
                              metrics=args.metrics, with_subject_ids=args.with_subject_ids)
    except ValueError as exc:
        raise UsageError(str(exc)) from None

    def record(complete: bool, rows: dict[str, int]) -> None:
        event = {"tables": rows, "with_subject_ids": bool(args.with_subject_ids),
                 "format": args.format, "form": f"{form.id} {form.version}",
                 "metrics": args.metrics is not None}
        audit.record(an.actor(user), "export" if complete else "export.failed",
                     object_type="export", new=event)

    rows = write_export(export, args.out, args.format, on_finish=record)
    for w in export.warnings:
        print(f"warning: {w}")
    ids = "WITH subject identifiers" if args.with_subject_ids else "pseudonymised"
    print(f"exported {', '.join(f'{k} ({v} rows)' for k, v in rows.items())} to {args.out} "
          f"({ids}; recorded in the audit trail)")
    return 0
