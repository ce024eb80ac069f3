"""Options and set-up shared by the analyst subcommands (export, agreement, unblind); their
output folders and manifests are :mod:`weeke_pipeline.analysis.export`'s."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from weeke_pipeline.cli.commands._reading import add_db_arguments, setup
from weeke_pipeline.constants import DEFAULT_SEED

FORMATS = ("tsv", "csv", "parquet")
#: defaults of agreement.DEFAULT_N_BOOT and DEFAULT_SEED, repeated here so `weeke --help`
#: does not import numpy/pandas (tests/reading/test_analyst_cli.py checks they match)
N_BOOT = 2000
SEED = DEFAULT_SEED


def add_common(parser: argparse.ArgumentParser, *, out_help: str) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help=out_help)
    parser.add_argument("--as-user", default=None, metavar="NAME",
                        help="account running this (analyst or coordinator role; recorded in "
                        "the audit trail; default: recorded as 'cli')")
    add_db_arguments(parser)


def add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="tsv",
                        help="table format (default tsv; parquet needs the 'parquet' extra: "
                        "pip install 'weeke-pipeline[parquet]')")


def check_format(fmt: str) -> None:
    """Fail early (before touching the database) when parquet is asked without pyarrow."""
    from weeke_pipeline.errors import UsageError

    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UsageError("--format parquet needs pyarrow, which is not installed: "
                             "pip install 'weeke-pipeline[parquet]' (or use --format tsv/csv)"
                             ) from None


def start(args: argparse.Namespace) -> Any:
    """Set up Django and return the acting user (None without --as-user); exit 2 on a user
    who may not run analyst commands."""
    from weeke_pipeline.errors import UsageError

    setup(args)
    from weeke_pipeline.reading.exports import NotAllowed, acting_user

    try:
        return acting_user(args.as_user)
    except NotAllowed as exc:
        raise UsageError(str(exc)) from None


def actor(user: Any) -> Any:
    return user if user is not None else "cli"
