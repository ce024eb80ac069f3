"""``weeke db lock|unlock --reason``: the coordinator's database lock (recorded in the audit)."""

from __future__ import annotations

import argparse

from weeke_pipeline.cli.commands._reading import add_db_arguments, coordinator, setup

HELP = "lock the reading database (no further edits) or unlock it with a recorded reason"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (("lock", "lock: no further edits"), ("unlock", "unlock (reason required)"),
                       ("status", "print whether the database is locked")):
        p = sub.add_parser(name, help=text)
        if name != "status":
            p.add_argument("--reason", required=name == "unlock", default="",
                           help="why (recorded in the audit trail)")
            p.add_argument("--by", default=None, help="coordinator account recording this")
        add_db_arguments(p)


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.errors import UsageError

    setup(args)
    from weeke_pipeline.reading.models import DatabaseLock

    if args.action == "status":
        print("locked" if DatabaseLock.is_locked() else "unlocked")
        return 0
    from weeke_pipeline.reading.services import ReadingError, set_lock

    user = coordinator(args.by)
    try:
        set_lock(user, args.action == "lock", args.reason)
    except ReadingError as exc:
        raise UsageError(str(exc)) from exc
    print("database " + ("locked" if args.action == "lock" else "unlocked"))
    return 0
