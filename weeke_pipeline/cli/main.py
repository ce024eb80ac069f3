"""The ``weeke`` command.

Each subcommand lives in its own module under :mod:`weeke_pipeline.cli.commands` and exposes
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Modules import their
heavy dependencies (nipype, antspyx, Django) inside ``run`` so ``weeke --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from weeke_pipeline import __version__
from weeke_pipeline.errors import UsageError

#: subcommand name -> module implementing it (order = order in ``weeke --help``)
SUBCOMMANDS: dict[str, str] = {
    "inspect": "weeke_pipeline.cli.commands.inspect",
    "demo": "weeke_pipeline.cli.commands.demo",
    "run": "weeke_pipeline.cli.commands.run",
    "synth": "weeke_pipeline.cli.commands.synth",
    "atlas": "weeke_pipeline.cli.commands.atlas",
    "score": "weeke_pipeline.cli.commands.score",
    "forms": "weeke_pipeline.cli.commands.forms",
    "serve": "weeke_pipeline.cli.commands.serve",
    "users": "weeke_pipeline.cli.commands.users",
    "cases": "weeke_pipeline.cli.commands.cases",
    "audit": "weeke_pipeline.cli.commands.audit",
    "db": "weeke_pipeline.cli.commands.db",
    "study": "weeke_pipeline.cli.commands.study",
    "export": "weeke_pipeline.cli.commands.export",
    "agreement": "weeke_pipeline.cli.commands.agreement",
    "unblind": "weeke_pipeline.cli.commands.unblind",
}


__all__ = ["SUBCOMMANDS", "UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weeke",
        description="Neonatal brain MRI to blinded Weeke brain-injury scores.",
    )
    parser.add_argument("--version", action="version", version=f"weeke-pipeline {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, modname in SUBCOMMANDS.items():
        module = importlib.import_module(modname)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    levels = (logging.WARNING, logging.INFO, logging.DEBUG)
    logging.basicConfig(
        level=levels[min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._module.run(args) or 0)
    except UsageError as exc:
        print(f"weeke {args.command}: error: {exc}", file=sys.stderr)
        return 2

