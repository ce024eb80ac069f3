"""Honest defaults: the phantom atlas on data that is not this project's synthetic data is
called out in the status table and fails QC with the command that fetches a real atlas; on
synthetic data (the demo, tests) nothing changes. Synthetic data is recognised by header
markers that survive de-identification and dcm2niix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from weeke_pipeline.atlas.bundle import load_atlas
from weeke_pipeline.atlas.honesty import FETCH_COMMAND, is_synthetic, phantom_notice, run_notice
from weeke_pipeline.config import RunConfig
from weeke_pipeline.imaging import qc
from weeke_pipeline.ingest.run import ingest_and_convert
from weeke_pipeline.resources import data_dir, default_atlas_dir
from weeke_pipeline.workflows.pipeline import (
    RunSummary,
    SubjectInputs,
    build_workflow,
    status_table,
)

T2_SERIES = data_dir("sample_data") / "sub-02" / "dicom" / "03_T2_TSE_AX"


def _convert(src: Path, tmp: Path, *, vendor: tuple[str, str] | None = None) -> Path:
    """The T2w series through the real ingest (de-identification + dcm2niix), optionally
    re-labelled as a scanner's export (model and software version changed, nothing else)."""
    dicom = tmp / "dicom" / src.name
    shutil.copytree(src, dicom)
    if vendor:
        for f in dicom.iterdir():
            ds = pydicom.dcmread(f)
            ds.Manufacturer = "Philips Medical Systems"
            ds.ManufacturerModelName, ds.SoftwareVersions = vendor
            ds.save_as(f)
    ingest_and_convert(tmp / "dicom", tmp / "rawdata", key=b"k", work_dir=tmp / "work", workers=1)
    (t2w,) = sorted((tmp / "rawdata").rglob("*_T2w.nii.gz"))
    return t2w


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    synth = _convert(T2_SERIES, tmp_path_factory.mktemp("synth"))
    real = _convert(T2_SERIES, tmp_path_factory.mktemp("real"), vendor=("Ingenia", "5.7.1"))
    return {"synthetic": synth, "real": real}


def test_synthetic_markers_survive_deidentification_and_dcm2niix(converted) -> None:
    assert is_synthetic(converted["synthetic"])
    assert not is_synthetic(converted["real"])
    assert not is_synthetic(converted["real"].with_name("absent_T2w.nii.gz"))  # no sidecar


def test_phantom_atlas_on_real_data_gets_the_notice(converted, tmp_path: Path) -> None:
    phantom = load_atlas(default_atlas_dir()).meta
    assert phantom_notice(phantom, converted["synthetic"]) == ""
    notice = phantom_notice(phantom, converted["real"])
    assert "PHANTOM" in notice and FETCH_COMMAND in notice
    real_atlas = {**phantom, "name": "dhcp-vol-44w"}
    assert phantom_notice(real_atlas, converted["real"]) == ""
    # the workflow's QC node carries it for the real session only
    sessions = [SubjectInputs(subject="01", session="01", t2w=str(converted["synthetic"])),
                SubjectInputs(subject="02", session="01", t2w=str(converted["real"]))]
    wf = build_workflow(RunConfig(), sessions, deriv=tmp_path / "d", work=tmp_path / "w")
    assert wf.get_node("sub_01_ses_01_wf.qc").inputs.atlas_notice == ""
    assert wf.get_node("sub_02_ses_01_wf.qc").inputs.atlas_notice == notice
    # the status table opens with the run-wide banner
    banner = run_notice(phantom, [s.t2w for s in sessions])
    assert "1 of 2 session(s)" in banner and FETCH_COMMAND in banner
    assert run_notice(phantom, [str(converted["synthetic"])]) == ""
    summary = RunSummary(output_dir=str(tmp_path), subjects={"sub-02_ses-01": "fail"},
                         notes={"sub-02_ses-01": notice}, notice=banner)
    table = status_table(summary)
    assert table.startswith("NOTE:") and FETCH_COMMAND in table.splitlines()[1]


def test_qc_report_shows_the_notice_and_fails(tmp_path: Path) -> None:
    notice = "PHANTOM atlas labels on real data (not anatomy): fetch a real atlas"
    res = qc.run_subject_qc("sub-02_ses-01", tmp_path, error=None, notices=[notice])
    assert res.status == "fail" and res.reasons[0] == notice
    page = Path(res.report).read_text()
    assert f'<p class="notice">{notice}</p>' in page.replace("&#x27;", "'")
    assert json.loads(Path(res.json).read_text())["notices"] == [notice]
