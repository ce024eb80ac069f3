"""The Quick start's first command (`weeke demo`) and the installed package's data folders."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _count(db: Path, table: str, where: str = "") -> int:
    with sqlite3.connect(db) as con:
        return con.execute(f"SELECT COUNT(*) FROM {table} {where}").fetchone()[0]


@pytest.mark.slow
def test_demo_runs_dicom_to_scores_and_is_idempotent(tmp_path: Path) -> None:
    """In a subprocess, as a user runs it (the reading app configures Django per process)."""
    cmd = [sys.executable, "-m", "weeke_pipeline.cli", "demo", "--out", str(tmp_path / "demo")]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "weeke demo finished" in first and "QC fail" not in first
    derivs = tmp_path / "demo/pipeline/derivatives/weeke"
    assert len(list(derivs.glob("sub-*/ses-*/sub-*_metrics.tsv"))) == 3
    assert json.loads((derivs / "run_summary.json").read_text())["errors"] == {}
    db = tmp_path / "demo/reading/reading.sqlite3"
    counts = {t: _count(db, t) for t in ("reading_case", "reading_read", "reading_adjudication")}
    assert counts == {"reading_case": 3, "reading_read": 6, "reading_adjudication": 1}
    assert _count(db, "reading_read", "WHERE status = 'signed'") == 6
    for table in ("reads_long", "reads_wide", "consensus", "metrics", "qc"):
        assert (tmp_path / "demo/tables" / f"{table}.tsv").is_file()
        assert (tmp_path / "demo/tables" / f"{table}.json").is_file()
    assert (tmp_path / "demo/agreement/agreement_report.html").is_file()
    consensus = (tmp_path / "demo/tables/consensus.tsv").read_text()
    assert "sub-0" not in consensus  # pseudonymised: reading codes only
    ref = (tmp_path / "demo/reference_scores.tsv").read_text().splitlines()
    assert len(ref) == 4 and ref[1].split("\t")[-2] == "0"  # sub-01 is normal
    # a second run reuses everything: nothing new, nothing overwritten
    second = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "new cases 0" in second
    assert {t: _count(db, t) for t in counts} == counts


def test_wheel_carries_the_data_folders(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(REPO)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("weeke_pipeline-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("weeke_pipeline/_data/atlases/weeke-phantom/T2w.nii.gz",
                     "weeke_pipeline/_data/atlases/mappings/dhcp_vol_structures.tsv",
                     "weeke_pipeline/_data/scoring_forms/weeke-consensus-2025/1.0.0.yaml",
                     "weeke_pipeline/_data/sample_data/participants.tsv",
                     "weeke_pipeline/_data/sample_data/sub-01/truth/sub-01_truth.json",
                     "weeke_pipeline/_data/workflows/default.toml",
                     "weeke_pipeline/_data/workflows/registration/fast.toml",
                     "weeke_pipeline/imaging/templates/qc_report.html",
                     "weeke_pipeline/reading/static/vendor/niivue/index.js"):
        assert required in names, required
    assert any(n.startswith("weeke_pipeline/_data/sample_data/sub-02/dicom/") for n in names)
