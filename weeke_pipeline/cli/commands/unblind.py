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
    from weeke_pipeline.analysis import unblinding as ub
    from weeke_pipeline.analysis.export import form_of_reads, sha256, write_manifest
    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.exports import case_subjects, read_records

    try:
        alloc = ub.read_allocation(args.allocation)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    records = [r for r in read_records() if r["status"] == "signed"]
    try:
        form = form_of_reads(records, need="unblind one form version at a time")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        u = ub.unblind(records, case_subjects(), alloc, form)
    except ub.AllocationError as exc:
        raise UsageError(f"{args.allocation}: {exc}") from None
    files = ub.write_unblinding(u, form, args.out, args.format, n_boot=args.n_boot,
                                seed=args.seed)
    n_arm = u.cases_per_arm
    audit.record(an.actor(user), "unblind", object_type="database", object_id="reading",
                 new={"allocation_sha256": sha256(args.allocation), "cases_per_arm": n_arm,
                      "allocation_rows_without_case": u.unmatched,
                      "unresolved_consensus": u.unresolved,
                      "form": f"{form.id} {form.version}"})
    write_manifest(args.out, "unblind", files, allocation_sha256=sha256(args.allocation),
                   cases_per_arm=n_arm, unresolved_consensus=u.unresolved,
                   form={"id": form.id, "version": form.version})
    if u.unmatched:
        print(f"warning: {u.unmatched} allocation row(s) match no case (left out)")
    if u.unresolved:
        print(f"warning: {u.unresolved} case(s) have no resolved consensus: left out of the "
              "summary (listed in consensus_by_arm)")
    if u.repeated_subjects:  # a case is one subject and session
        print(f"warning: {u.repeated_subjects} subject(s) have cases of several sessions: the "
              "summary and comparison by arm count every case as one infant (study setting "
              "read_sessions names the scan a trial reads)")
    print(f"unblinded {len(u.joined)} case(s) "
          f"({', '.join(f'{k}: {v}' for k, v in n_arm.items())}) -> {args.out} "
          "(recorded in the audit trail)")
    return 0
