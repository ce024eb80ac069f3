"""``weeke audit verify``: check the reading app's audit hash chain."""

from __future__ import annotations

import argparse

from weeke_pipeline.cli.commands._reading import add_db_arguments, setup

HELP = "verify the reading audit trail's hash chain (exit 1 when it was tampered with)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add_db_arguments(sub.add_parser("verify", help="recompute every entry's hash and link"))


def run(args: argparse.Namespace) -> int:
    setup(args)
    from weeke_pipeline.reading.audit import verify

    result = verify()
    if result.ok:
        print(f"audit trail intact: {result.entries} entries")
        return 0
    where = f" at entry {result.entry_id}" if result.entry_id is not None else ""
    print(f"AUDIT TRAIL BROKEN{where}: {result.problem}")
    return 1
