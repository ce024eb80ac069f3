"""Options shared by the reading-app subcommands (data folder, database URL)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_db_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, default=None, metavar="DIR",
                        help="reading data folder (database, images, secret key); default "
                        "$WEEKE_DATA_DIR or ./weeke-reading")
    parser.add_argument("--database-url", default=None, metavar="URL",
                        help="postgresql://user@host/name or sqlite:///path; default "
                        "$WEEKE_DATABASE_URL, else SQLite in the data folder")


def setup(args: argparse.Namespace) -> Path:
    """Configure Django, migrate, and return the data folder."""
    from weeke_pipeline.errors import UsageError
    from weeke_pipeline.reading import setup as reading_setup

    try:
        return reading_setup(args.data, args.database_url, migrate=True)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def coordinator(username: str | None) -> object | None:
    """The coordinator account named by ``--by`` (None when not given); UsageError otherwise."""
    from django.contrib.auth import get_user_model

    from weeke_pipeline.errors import UsageError

    if not username:
        return None
    user = get_user_model().objects.filter(username=username, groups__name="coordinator").first()
    if user is None:
        raise UsageError(f"{username!r} is not a coordinator account")
    return user
