"""``weeke forms``: list, show, validate and freeze scoring form definitions."""

from __future__ import annotations

import argparse
import json
import sys

from weeke_pipeline.errors import UsageError

HELP = "list, show, validate or freeze scoring form definitions (scoring_forms/)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    sub.add_parser("list", help="forms and versions, released or draft")
    show = sub.add_parser("show", help="print a form definition as JSON (what the web form shows)")
    show.add_argument("form", metavar="FORM")
    show.add_argument("--version", dest="form_version", metavar="V")
    val = sub.add_parser("validate", help="check definition files (schema and sums)")
    val.add_argument("files", nargs="+", metavar="FILE")
    frz = sub.add_parser("freeze", help="record a version as released in scoring_forms/frozen.json")
    frz.add_argument("form", metavar="FORM")
    frz.add_argument("form_version", metavar="VERSION")


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.scoring import FormError, freeze, list_forms, load_form, load_form_file

    try:
        if args.action == "list":
            for form_id, version in list_forms():
                form = load_form(form_id, version)
                state = "released" if form.released else "draft"
                print(f"{form_id}\t{version}\t{state}\ttotal 0-{form.total_max}\t{form.title}")
        elif args.action == "show":
            print(json.dumps(load_form(args.form, args.form_version).as_dict(), indent=2))
        elif args.action == "validate":
            bad = 0
            for name in args.files:
                try:
                    form = load_form_file(name)
                except FormError as exc:
                    bad += 1
                    print(f"weeke forms: error: {exc}", file=sys.stderr)
                    continue
                print(f"ok {name}: {form.id} {form.version} sha256 {form.sha256}")
            return 2 if bad else 0
        elif args.action == "freeze":
            sha = freeze(args.form, args.form_version)
            print(f"released {args.form} {args.form_version} sha256 {sha}")
    except FormError as exc:
        raise UsageError(str(exc)) from None
    return 0
