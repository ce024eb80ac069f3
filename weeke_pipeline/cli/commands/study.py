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
    st.add_argument("--read-sessions", metavar="LIST",
                    help="imaging sessions (ses- labels) the study reads, comma separated, "
                    "e.g. 1month; 'all' (default): every session is a case")
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

    def text(value: object) -> str:
        return (",".join(value) or "all") if isinstance(value, list) else str(value)

    if args.action == "show":
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

    changes = [(study.READER_SEQUENCES, args.reader_sequences),
               (study.READ_SESSIONS, args.read_sessions),
               (study.HANGING_PROTOCOL, args.hanging_protocol)]
    changes = [(k, v) for k, v in changes if v is not None]
    if not changes:
        raise UsageError("name a setting to change: --reader-sequences, --read-sessions or "
                         "--hanging-protocol")
    user = coordinator(args.by)
    for key, value in changes:
        try:
            study.set_setting(user, key, value, args.reason)
        except ReadingError as exc:
            raise UsageError(str(exc)) from exc
        print(f"{key.replace('_', '-')} {text(study.get(key))}")
    return 0
