"""One module per ``weeke`` subcommand (see :mod:`weeke_pipeline.cli`)."""
