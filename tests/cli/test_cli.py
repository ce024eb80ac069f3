"""The ``weeke`` command: help for every subcommand, version."""

from __future__ import annotations

import subprocess
import sys

import pytest

from weeke_pipeline import cli


def test_every_subcommand_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for name in cli.SUBCOMMANDS:
        with pytest.raises(SystemExit) as exc:
            cli.main([name, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: weeke " + name)


def test_console_script_version() -> None:
    out = subprocess.run([sys.executable, "-m", "weeke_pipeline.cli", "--version"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("weeke-pipeline ")


def test_no_subcommand_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2
