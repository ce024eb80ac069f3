"""``weeke inspect DIR``: the series table (one row per series with its classification)."""

from __future__ import annotations

import argparse

HELP = ("list and classify the DICOM series under a folder (writes an editable series table; "
        "exit 1 when a damaged file was skipped, a series refused, or no image found)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dicom_dir", help="folder (any depth, zip files too) or a zip file")
    parser.add_argument("--out", help="write the series table to this TSV file")
    parser.add_argument("--series-table", help="an edited series table whose classifications "
                        "override the classifier")
    parser.add_argument("--sessions", help="sessions table (study -> ses- label): adds the "
                        "session column each series will get")
    parser.add_argument("--participants", help="participants table (needed with --sessions "
                        "when the sessions table names participants by participant_id)")
    parser.add_argument("--max-file-mb", type=float, metavar="MB",
                        help="skip files larger than this (default 2048, or WEEKE_DICOM_MAX_MB)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from weeke_pipeline.errors import UsageError
    from weeke_pipeline.ingest.convert import CONVERTED
    from weeke_pipeline.ingest.deidentify import identifying_values, scrubber
    from weeke_pipeline.ingest.run import inspect_dicom, preview_sessions
    from weeke_pipeline.ingest.series_table import format_table, write_table
    from weeke_pipeline.ingest.validate import SeriesCheckError, check_series, series_label

    if not Path(args.dicom_dir).exists():
        raise UsageError(f"{args.dicom_dir}: no such file or folder")
    try:
        series, rows, skipped = inspect_dicom(args.dicom_dir, args.series_table,
                                              max_file_mb=args.max_file_mb)
        if args.sessions or args.participants:
            preview_sessions(series, rows, args.sessions, args.participants)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(format_table(rows))
    # scrubbed like the ingest's messages (file names can carry identities)
    scrub = scrubber(sorted({v for s in series for v in identifying_values(s.first)}))
    refused = []
    for s, r in zip(series, rows, strict=True):
        if s.problem:
            refused.append(f"{scrub(series_label(s))}: {scrub(s.problem)}")
        elif r.classification in CONVERTED:  # the checks the ingest makes before converting
            try:
                check_series(s)
            except Exception as exc:
                refused.append(scrub(str(exc) if isinstance(exc, SeriesCheckError) else
                                     f"{series_label(s)}: series checks failed "
                                     f"({type(exc).__name__})"))
    damaged = [f for f in skipped if f.damaged]
    for line in refused:
        print(f"refused  {line}")
    for f in skipped:
        print(f"{'skipped' if f.damaged else 'ignored':<8} {f.source}: {f.reason}")
    print(f"{len(rows)} series ({len(refused)} would be refused); {len(damaged)} damaged "
          f"file(s) skipped; {len(skipped) - len(damaged)} file(s) ignored (not DICOM images)")
    if args.out:
        print(f"series table written to {write_table(rows, args.out)}")
    return 0 if rows and not refused and not damaged else 1
