"""``weeke study show|set``: the study configuration of the reading app (audited settings)."""

from __future__ import annotations

import argparse

from weeke_pipeline.cli.commands._reading import add_db_arguments, coordinator, setup

HELP = "show or change study settings of the reading app (e.g. whether readers see FA)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="print the current settings and their change history")
    add_db_arguments(show)
    st = sub.add_parser("set", help="change a setting (reason required; audited)")
    st.add_argument("--reader-sequences", metavar="LIST",
                    help="sequences shown to readers and adjudicators, comma separated, from "
                    "T1w,T2w,ADC,FA (default T1w,T2w,ADC; add FA for a fourth linked panel)")
    st.add_argument("--hanging-protocol", metavar="ID@VERSION",
                    help="layout of the reading page, a definition under "
                    "scoring_forms/hanging_protocols/ (default neonatal-hie@1.0.0)")
    st.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
    st.add_argument("--by", default=None, help="coordinator account recording this")
    add_db_arguments(st)


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.errors import UsageError

    setup(args)
    from weeke_pipeline.reading import study

    if args.action == "show":
        def text(value: object) -> str:
            return ",".join(value) if isinstance(value, list) else str(value)

        for key, default in study.DEFAULTS.items():
            value = study.get(key)
            note = " (default)" if value == default else f" (default {text(default)})"
            print(f"{key.replace('_', '-')}\t{text(value)}{note}")
        for row in reversed(study.history()):
            who = row.changed_by.username if row.changed_by else "cli"
            print(f"  {row.changed_at:%Y-%m-%d %H:%M} {row.key.replace('_', '-')}="
                  f"{text(row.value)} by {who}: {row.reason}")
        return 0
    from weeke_pipeline.reading.services import ReadingError

    if args.reader_sequences is None and args.hanging_protocol is None:
        raise UsageError("give --reader-sequences and/or --hanging-protocol")
    user = coordinator(args.by)
    try:
        if args.reader_sequences is not None:
            study.set_reader_sequences(user, args.reader_sequences, args.reason)
            print("reader-sequences " + ",".join(study.reader_sequences()))
        if args.hanging_protocol is not None:
            study.set_setting(user, study.HANGING_PROTOCOL, args.hanging_protocol, args.reason)
            print("hanging-protocol " + study.hanging_protocol())
    except ReadingError as exc:
        raise UsageError(str(exc)) from exc
    return 0
