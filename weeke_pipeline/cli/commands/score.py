"""``weeke score FORM --items FILE.json``: validate a read's item set, print its scores as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from weeke_pipeline.errors import UsageError

HELP = "score an item set (JSON) against a scoring form and print the result as JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("form", nargs="?", metavar="FORM",
                        help="form id, e.g. weeke-consensus-2025 (see --list)")
    parser.add_argument("--items", metavar="FILE.json",
                        help='item set {"items": {item_id: {"extent": .., "laterality": ..}}} '
                             "('-' reads standard input)")
    parser.add_argument("--version", dest="form_version", metavar="V",
                        help="form version (default: the latest)")
    parser.add_argument("--list", action="store_true", help="list the available forms and exit")


def read_items_file(name: str) -> object:
    """Parse the item-set JSON file (``-`` = stdin); UsageError naming the file otherwise."""
    label = "standard input" if name == "-" else f"items file {name}"
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{label} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {label}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{label} is not valid JSON: {exc.msg} at line {exc.lineno} "
                         f"column {exc.colno}") from None


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.scoring import FormError, ScoringError, list_forms, load_form, score_items

    if args.list:
        for form_id, version in list_forms():
            print(f"{form_id} {version}")
        return 0
    if not args.form:
        raise UsageError("give a FORM id (weeke score --list shows them)")
    if not args.items:
        raise UsageError("give the item set with --items FILE.json")
    try:
        form = load_form(args.form, args.form_version)
    except FormError as exc:
        raise UsageError(str(exc)) from None
    payload = read_items_file(args.items)
    try:
        result = score_items(form, payload)
    except ScoringError as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(result.as_dict(), indent=2))
    return 0
