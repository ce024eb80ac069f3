"""``weeke audit verify|head``: check the reading app's keyed audit chain; print its head."""

from __future__ import annotations

import argparse

from weeke_pipeline.cli.commands._reading import add_db_arguments, setup

HELP = ("verify the reading audit trail (exit 1 when it was tampered with) or print its head "
        "to keep outside the server")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    verify = sub.add_parser("verify", help="recompute every entry's keyed hash and link, and "
                            "check signed reads and study settings against the trail")
    verify.add_argument("--expect-head", default=None, metavar="N:HASH",
                        help="a head printed earlier by `weeke audit head`: the trail must "
                        "still contain it (refuses a trail emptied or cut since)")
    add_db_arguments(verify)
    add_db_arguments(sub.add_parser("head", help="print N:HASH of the last entry (after "
                                    "verifying); record it outside the server"))


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.cli import UsageError

    setup(args)
    from weeke_pipeline.reading.audit import verify

    try:
        result = verify(getattr(args, "expect_head", None))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if not result.ok:
        where = f" at entry {result.entry_id}" if result.entry_id is not None else ""
        print(f"AUDIT TRAIL BROKEN{where}: {result.problem}")
        return 1
    if args.action == "head":
        print(f"audit head (entries:hash): {result.head}")
        return 0
    against = " and contains the expected head" if args.expect_head else ""
    print(f"audit trail intact: {result.entries} entries{against}")
    return 0
