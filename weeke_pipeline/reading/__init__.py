"""The blinded reading web application (Django): cases, reads, adjudication, audit, locking.

Use :func:`setup` before touching models from Python code or a CLI command::

    from weeke_pipeline.reading import setup
    setup(data_dir="reading-data")            # SQLite under reading-data/, WAL mode
    setup(database_url="postgresql://u@/weeke?host=/run/postgresql")
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["setup"]

_CONFIGURED: dict[str, str] = {}


def setup(data_dir: str | os.PathLike[str] | None = None, database_url: str | None = None,
          *, migrate: bool = False, **overrides: object) -> Path:
    """Configure Django for the reading app (once per process) and return the data folder.

    ``data_dir`` defaults to ``$WEEKE_DATA_DIR`` or ``./weeke-reading``; ``database_url`` to
    ``$WEEKE_DATABASE_URL`` / ``$DATABASE_URL`` or SQLite ``<data_dir>/reading.sqlite3``.
    ``overrides`` are extra Django settings (tests use them). With ``migrate`` the database
    schema is created or brought up to date.
    """
    import django
    from django.conf import settings

    from weeke_pipeline.reading.settings import build_settings

    if settings.configured:
        want = str(Path(data_dir).resolve()) if data_dir is not None else None
        if want is not None and _CONFIGURED.get("data_dir") != want:
            raise RuntimeError(
                f"the reading app is already configured for {_CONFIGURED.get('data_dir')}; "
                "one data folder per process"
            )
    else:
        conf = build_settings(data_dir=data_dir, database_url=database_url)
        conf.update(overrides)
        settings.configure(**conf)
        _CONFIGURED["data_dir"] = str(conf["WEEKE_DATA_DIR"])
        django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
    return Path(settings.WEEKE_DATA_DIR)
