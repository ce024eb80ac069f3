"""The ``weeke`` command: :mod:`.main` parses and dispatches, :mod:`.commands` one module each."""

from weeke_pipeline.cli.main import SUBCOMMANDS, UsageError, build_parser, main

__all__ = ["SUBCOMMANDS", "UsageError", "build_parser", "main"]
