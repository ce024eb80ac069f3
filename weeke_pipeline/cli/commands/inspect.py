"""``weeke inspect DIR``: the series table (one row per series with its classification)."""

from __future__ import annotations

import argparse

HELP = "list and classify the DICOM series under a folder (writes an editable series table)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dicom_dir", help="folder (any depth, zip files too) or a zip file")
    parser.add_argument("--out", help="write the series table to this TSV file")
    parser.add_argument("--series-table", help="an edited series table whose classifications "
                        "override the classifier")
    parser.add_argument("--sessions", help="sessions table (study -> ses- label): adds the "
                        "session column each series will get")
    parser.add_argument("--participants", help="participants table (needed with --sessions "
                        "when the sessions table names participants by participant_id)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from weeke_pipeline.errors import UsageError
    from weeke_pipeline.ingest.run import inspect_dicom, preview_sessions
    from weeke_pipeline.ingest.series_table import format_table, write_table

    if not Path(args.dicom_dir).exists():
        raise UsageError(f"{args.dicom_dir}: no such file or folder")
    try:
        series, rows, skipped = inspect_dicom(args.dicom_dir, args.series_table)
        if args.sessions or args.participants:
            preview_sessions(series, rows, args.sessions, args.participants)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(format_table(rows))
    print(f"{len(rows)} series; {len(skipped)} files skipped")
    if args.out:
        print(f"series table written to {write_table(rows, args.out)}")
    return 0 if rows else 1
