"""``weeke unblind``: after database lock, join the treatment allocation to the consensus and
summarise the scores by arm (docs/tables.md, "Unblinding").

The allocation is never stored in the reading database: it is read from the file, used, and
only the output files hold arms. The audit trail records the event with the allocation file's
SHA-256 and the number of cases per arm, so the unblinding can be verified later.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from weeke_pipeline.cli.commands._analyst import SEED, add_common, add_format

HELP = ("after database lock: join the treatment allocation to the consensus and summarise "
        "scores by arm (tables, plots)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allocation", type=Path, required=True, metavar="FILE.tsv",
                        help="allocation table: arm plus reading_code or subject (TSV; CSV "
                        "when named .csv)")
    add_common(parser, out_help="folder to write (new, empty, or an earlier unblinding)")
    add_format(parser)
    parser.add_argument("--n-boot", type=int, default=5000,
                        help="bootstrap resamples of the median difference (default 5000)")
    parser.add_argument("--seed", type=int, default=SEED,
                        help=f"bootstrap seed (default {SEED})")


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.cli.commands import _analyst as an
    from weeke_pipeline.errors import UsageError

    an.check_format(args.format)
    user = an.start(args)
    from weeke_pipeline.reading.models import DatabaseLock

    if not DatabaseLock.is_locked():
        raise UsageError("the reading database is not locked: unblinding is refused until the "
                         "coordinator locks it (weeke db lock); nothing was read or written")
    import pandas as pd

    from weeke_pipeline.analysis import tables as tb
    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.exports import case_subjects, read_records
    from weeke_pipeline.reading.services import get_form

    try:
        alloc = tb.read_allocation(args.allocation)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    records = [r for r in read_records() if r["status"] == "signed"]
    pairs = case_subjects()
    codes = [c for c, _ in pairs]
    versions = sorted({(r["form_id"], r["form_version"]) for r in records})
    if len(versions) > 1:
        raise UsageError(f"reads use {len(versions)} form versions {versions}: unblind one "
                         "form version at a time")
    form = get_form(*versions[0]) if versions else get_form()
    cons = tb.consensus(tb.reads_long_from_records(records), form, codes=codes)
    subjects = pd.DataFrame(pairs, columns=["reading_code", "subject"])
    key = "reading_code" if "reading_code" in alloc.columns else "subject"
    known = set(subjects[key])
    unmatched = int((~alloc[key].isin(known)).sum())
    try:
        joined = tb.join_allocation(cons, alloc, subjects=subjects if key == "subject" else None)
    except ValueError as exc:
        raise UsageError(f"{args.allocation}: {exc}") from None
    by_arm, comparison = tb.unblinding_summary(joined, form, n_boot=args.n_boot, seed=args.seed)

    an.prepare_out(args.out, "unblind")
    files: list[Path] = []
    cons_dict = tb.reads_wide_dictionary(form, consensus_table=True)
    cons_dict["arm"] = {"Description": "Treatment arm (allocation file)", "Format": "string"}
    for name, table, dictionary in (
            ("consensus_by_arm", joined, cons_dict),
            ("summary_by_arm", by_arm, tb.unblinding_summary_dictionary()),
            ("comparison", comparison, tb.unblinding_comparison_dictionary())):
        p = tb.write_table(table, args.out / f"{name}.{args.format}", dictionary, args.format)
        files += [p, p.with_suffix(".json")]
    files += tb.unblinding_plots(joined, form, args.out)
    n_arm = {str(k): int(v) for k, v in joined["arm"].value_counts().sort_index().items()}
    unresolved = int((joined["consensus_source"] == "unresolved").sum())
    audit.record(an.actor(user), "unblind", object_type="database", object_id="reading",
                 new={"allocation_sha256": an.sha256(args.allocation), "cases_per_arm": n_arm,
                      "allocation_rows_without_case": unmatched,
                      "unresolved_consensus": unresolved, "form": f"{form.id} {form.version}"})
    an.write_manifest(args.out, "unblind", files, allocation_sha256=an.sha256(args.allocation),
                      cases_per_arm=n_arm, unresolved_consensus=unresolved,
                      form={"id": form.id, "version": form.version})
    if unmatched:
        print(f"warning: {unmatched} allocation row(s) match no case (left out)")
    if unresolved:
        print(f"warning: {unresolved} case(s) have no resolved consensus: left out of the "
              "summary (listed in consensus_by_arm)")
    repeated = int((subjects["subject"].value_counts() > 1).sum())
    if repeated:  # a case is one subject and session
        print(f"warning: {repeated} subject(s) have cases of several sessions: the summary and "
              "comparison by arm count every case as one infant (study setting read_sessions "
              "names the scan a trial reads)")
    print(f"unblinded {len(joined)} case(s) ({', '.join(f'{k}: {v}' for k, v in n_arm.items())})"
          f" -> {args.out} (recorded in the audit trail)")
    return 0
