"""Options and set-up shared by the analyst subcommands (export, agreement, unblind)."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from weeke_pipeline.cli.commands._reading import add_db_arguments, setup
from weeke_pipeline.constants import DEFAULT_SEED

FORMATS = ("tsv", "csv", "parquet")
MANIFEST = "manifest.json"
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


def prepare_out(out: Path, kind: str) -> None:
    """Make ``out`` ready: new or empty, or an earlier output of the same command (whose listed
    files are removed first, so no stale table, e.g. one with subject ids, is left behind)."""
    from weeke_pipeline.errors import UsageError

    manifest = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        try:
            old = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            old = None
        if not isinstance(old, dict) or old.get("kind") != kind:
            raise UsageError(f"{out}: folder is not empty and holds no earlier `weeke {kind}` "
                             "output: choose a new or empty folder")
        for name in old.get("files", []):
            f = out / Path(name).name
            if f.is_file():
                f.unlink()
        manifest.unlink()
    out.mkdir(parents=True, exist_ok=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(out: Path, kind: str, files: list[Path], **info: Any) -> Path:
    """``manifest.json``: what was written (file names, SHA-256) and how."""
    from datetime import UTC, datetime

    from weeke_pipeline import __version__

    doc = {"kind": kind, "created": datetime.now(UTC).isoformat(timespec="seconds"),
           "weeke_pipeline_version": __version__, **info,
           "files": sorted(p.name for p in files),
           "sha256": {p.name: sha256(p) for p in sorted(files)}}
    path = out / MANIFEST
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
