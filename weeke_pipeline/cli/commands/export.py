"""``weeke export``: pseudonymised score, metric and QC tables with data dictionaries, plus a
REDCap import (docs/tables.md). Every export is recorded in the audit trail."""

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
    from weeke_pipeline.reading.services import get_form

    if args.with_subject_ids and not has_role(user, "coordinator"):
        raise UsageError("--with-subject-ids is for coordinator accounts: name one with "
                         "--as-user (exports are otherwise pseudonymised by reading code)")
    import pandas as pd

    from weeke_pipeline.analysis import derivative_tables as dt
    from weeke_pipeline.analysis import tables as tb

    records = read_records()
    subjects = dict(case_subjects())  # code -> subject
    versions = sorted({(r["form_id"], r["form_version"]) for r in records})
    if len(versions) > 1:
        raise UsageError(f"reads use {len(versions)} form versions {versions}: the wide and "
                         "consensus tables need one form version")
    form = get_form(*versions[0]) if versions else get_form()
    long = tb.reads_long_from_records(records)
    try:
        wide = tb.reads_wide(long, form)
        cons = tb.consensus(long, form, codes=subjects)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # (name, table, dictionary, extra sidecar keys)
    out_tables = [("reads_long", long, tb.reads_long_dictionary(form), None),
                  ("reads_wide", wide, tb.reads_wide_dictionary(form), None),
                  ("consensus", cons, tb.reads_wide_dictionary(form, consensus_table=True),
                   None)]
    warnings: list[str] = []
    if args.metrics is not None:
        try:
            der = dt.load(args.metrics, case_keys())
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        warnings += der.warnings
        extra = {k: v for k, v in der.metrics_dictionary.items()
                 if k not in der.metrics.columns}
        out_tables += [("metrics", der.metrics, der.metrics_dictionary, extra),
                       ("qc", der.qc, der.qc_dictionary, None)]
    redcap = tb.redcap_records(cons, form)
    redcap_dd = tb.redcap_data_dictionary(form)
    if args.with_subject_ids:
        sessions = {c: ses for (_, ses), c in case_keys().items()}  # code -> session
        out_tables = [(n, tb.insert_subjects(t, subjects, sessions),
                       tb.with_subject_entry(d, session=True), e)
                      for n, t, d, e in out_tables]
        redcap.insert(1, "subject", redcap["reading_code"].map(subjects))
        row = {c: "" for c in redcap_dd.columns}
        row.update({"Variable / Field Name": "subject", "Form Name": redcap_dd.iloc[0, 1],
                    "Field Type": "text", "Field Label": "Subject identifier",
                    "Identifier?": "y"})
        redcap_dd = pd.concat([redcap_dd.iloc[:1], pd.DataFrame([row]),
                                  redcap_dd.iloc[1:]], ignore_index=True)
    problems = tb.validate_redcap(redcap, redcap_dd)
    if problems:  # a bug, not a user error: the engine's values must fit the dictionary
        raise RuntimeError("REDCap export does not validate: " + "; ".join(problems))

    an.prepare_out(args.out, "export")
    files: list[Path] = []
    rows: dict[str, int] = {}
    try:
        for name, table, dictionary, extra in out_tables:
            p = tb.write_table(table, args.out / f"{name}.{args.format}", dictionary,
                               args.format, extra=extra)
            files += [p, p.with_suffix(".json")]
            rows[name] = len(table)
        for name, table in (("redcap_import", redcap), ("redcap_data_dictionary", redcap_dd)):
            p = args.out / f"{name}.csv"
            tb.neutralise_formulas(table).to_csv(p, index=False)
            files.append(p)
            rows[name] = len(table)
    finally:
        event = {"tables": rows, "with_subject_ids": bool(args.with_subject_ids),
                 "format": args.format, "form": f"{form.id} {form.version}",
                 "metrics": args.metrics is not None}
        complete = len(rows) == len(out_tables) + 2
        audit.record(an.actor(user), "export" if complete else "export.failed",
                     object_type="export", new=event)
    an.write_manifest(args.out, "export", files, with_subject_ids=bool(args.with_subject_ids),
                      format=args.format, form={"id": form.id, "version": form.version},
                      rows=rows, warnings=warnings)
    for w in warnings:
        print(f"warning: {w}")
    ids = "WITH subject identifiers" if args.with_subject_ids else "pseudonymised"
    print(f"exported {', '.join(f'{k} ({v} rows)' for k, v in rows.items())} to {args.out} "
          f"({ids}; recorded in the audit trail)")
    return 0
