"""Partial studies and bad input through ``weeke run`` (one end-to-end run, sloppy preset).

The export (fake identities planted in every header, the patient's folder named after the
Patient ID as PACS exports often are):

* patient A, first study: T2w, a DWI whose b-values were lost, a truncated file, a README;
* patient A, second study (two weeks later): T2w and T1w;
* patient B: a T1w and a T2w with a missing slice (so no usable T2w).

Expected: A's two studies are ses-01 and ses-02 (study date order) with labels and T2w metrics;
missing T1w / ADC are QC warnings with empty (n/a) metrics, never a failure; B is skipped and
listed; the broken T2w is named in the end table; exit code 1; no identifying value in any
output file, log record, progress line or message.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from broken_dicom import (
    SAMPLE,
    T1W,
    T2W,
    copy_series,
    first_volumes,
    leaks,
    planted_identities,
    strip_bvalues,
)
from pydicom.uid import generate_uid

from weeke_pipeline import cli

pytestmark = pytest.mark.slow
LATER = "20260910"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("partial")
    a = pydicom.dcmread(next(T2W.glob("*.dcm")))
    b_dir = SAMPLE / "sub-03" / "dicom"
    b = pydicom.dcmread(next((b_dir / "03_T2_TSE_AX").glob("*.dcm")))
    exp = root / "export"
    first, second = exp / str(a.PatientID) / "study1", exp / str(a.PatientID) / "study2"
    shutil.copytree(T2W, first / "T2")
    copy_series(SAMPLE / "sub-02" / "dicom" / "05_DWI_6DIR_B1000", first / "DWI",
                change=strip_bvalues, keep=first_volumes)
    trunc = first / "IM_extra.dcm"
    data = next(T1W.glob("*.dcm")).read_bytes()
    trunc.write_bytes(data[: len(data) // 2])
    (first / "README.txt").write_text(f"export of {a.PatientName}\n")
    later = {"StudyInstanceUID": generate_uid(), "StudyDate": LATER, "SeriesDate": LATER,
             "AcquisitionDate": LATER, "ContentDate": LATER}
    copy_series(T2W, second / "T2", study=later)
    copy_series(T1W, second / "T1", study=later)
    shutil.copytree(b_dir / "02_T1_IR_GRE_AX", exp / str(b.PatientID) / "T1")
    gap = copy_series(b_dir / "03_T2_TSE_AX", exp / str(b.PatientID) / "T2")
    gap[30].unlink()

    lines = (SAMPLE / "participants.tsv").read_text().splitlines()
    (root / "participants.tsv").write_text("\n".join([lines[0], lines[2], lines[3]]) + "\n")
    (root / "key").write_text("partial-key")
    out = root / "out"
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Keep(level=logging.DEBUG)
    rootlog = logging.getLogger()
    old = rootlog.level
    rootlog.addHandler(handler)
    rootlog.setLevel(logging.INFO)
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            rc = cli.main(["run", str(exp), str(out), "--participants",
                           str(root / "participants.tsv"), "--key-file", str(root / "key"),
                           "--sloppy", "--no-dti"])
    finally:
        rootlog.removeHandler(handler)
        rootlog.setLevel(old)
    return {"rc": rc, "out": out, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(),
            "logs": "\n".join(records), "argv": [str(exp), str(out), "--participants",
                                                 str(root / "participants.tsv"), "--key-file",
                                                 str(root / "key"), "--sloppy", "--no-dti"]}


def _deriv(out: Path, ses: str) -> Path:
    return out / "derivatives" / "weeke" / "sub-02" / f"ses-{ses}"


def _metrics(out: Path, ses: str) -> pd.DataFrame:
    m = pd.read_csv(_deriv(out, ses) / f"sub-02_ses-{ses}_metrics.tsv", sep="\t")
    return m[m["hemisphere"] != "left_right"].set_index(["region", "hemisphere", "metric"])


def test_end_table_lists_every_subject_and_the_broken_input(run: dict) -> None:
    assert run["rc"] == 1  # not everything succeeded: B skipped, one series refused
    table = run["stdout"]
    rows = {line.split()[0]: line for line in table.splitlines() if line.startswith("sub-")}
    assert rows["sub-02_ses-01"].split()[1] == "warn" and "no T1w" in rows["sub-02_ses-01"]
    assert rows["sub-02_ses-02"].split()[1] in ("pass", "warn")
    assert "no T1w" not in rows["sub-02_ses-02"]
    assert rows["sub-03_ses-01"].split()[1] == "skip" and "no usable T2w" in table
    ingest = [line for line in table.splitlines() if line.startswith("(ingest)")]
    refused = [line for line in ingest if line.split()[1] == "fail"]
    assert len(refused) == 1 and "sub-03: [removed]/T2: missing slices" in refused[0]
    # the damaged file is a row of its own (exit 1 by itself: a file was skipped)
    [skipped] = [line for line in ingest if line.split()[1] == "skip"]
    assert "[removed]/study1/IM_extra.dcm: truncated" in skipped
    assert "IM00030.dcm" in ingest[0] and "IM00032.dcm" in ingest[0]
    assert "[removed]/study1/IM_extra.dcm: truncated" in run["logs"]
    assert "[removed]/study1/DWI: DWI without b-values" in run["logs"]


def test_t2w_alone_gives_labels_and_t2w_metrics_with_empty_t1w_and_adc(run: dict) -> None:
    out = run["out"]
    d = _deriv(out, "01")
    assert (d / "anat" / "sub-02_ses-01_space-T2w_desc-atlas_dseg.nii.gz").is_file()
    m = _metrics(out, "01")["value"]
    t2 = m.xs("t2w_median", level="metric")
    assert t2.notna().all() and (t2 > 0).all()
    for metric in ("t1w_median", "t1w_norm", "adc_mean", "adc_frac_below_800"):
        assert m.xs(metric, level="metric").isna().all(), metric  # n/a, never 0
    raw = (d / "sub-02_ses-01_metrics.tsv").read_text()
    assert "\tt1w_median\tn/a" in raw


def test_two_studies_are_two_sessions_through_to_the_derivatives(run: dict) -> None:
    out = run["out"]
    assert (out / "rawdata/sub-02/sub-02_sessions.tsv").read_text().splitlines()[1:] == [
        "ses-01\t35", "ses-02\t49"]
    assert not list((out / "rawdata/sub-02/ses-02").rglob("*_dwi.nii.gz"))
    m2 = _metrics(out, "02")["value"]
    assert m2.xs("t1w_median", level="metric").notna().all()  # T1w only in the second study
    group = pd.read_csv(out / "derivatives/weeke/group_metrics.tsv", sep="\t",
                        dtype={"subject": str, "session": str})
    assert set(zip(group["subject"], group["session"], strict=True)) == {("02", "01"),
                                                                         ("02", "02")}
    index = (out / "derivatives/weeke/qc_index.html").read_text()
    assert "sub-02_ses-01" in index and "sub-02_ses-02" in index
    t1 = group[(group["metric"] == "t1w_median") & (group["region"] == "thalamus")]
    assert t1.set_index("session")["value"].isna().to_dict() == {"01": True, "02": False}
    assert np.isfinite(group[group["metric"] == "volume_mm3"]["value"]).all()


def test_no_identifying_value_anywhere(run: dict) -> None:
    secrets = [*planted_identities(), LATER]
    texts = {"stdout": run["stdout"], "stderr": run["stderr"], "logs": run["logs"]}
    assert run["logs"] and run["stderr"]  # something was captured
    assert leaks(run["out"], secrets, texts, skip=["key"]) == []


def test_rerun_after_a_crash_reports_the_new_state(run: dict,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """A crash file left by an earlier attempt (e.g. the disk was full) must not mark a
    subject failed once a re-run has finished it; the re-run reuses the finished steps."""
    crash = run["out"] / "work" / "crash" / "crash-20260101-000000-x-sink-0.txt"
    crash.parent.mkdir(exist_ok=True)
    crash.write_text("Node: weeke_wf.sub_02_ses_01_wf.sink\nOSError: [Errno 28] No space left "
                     "on device\n")
    metrics = _deriv(run["out"], "01") / "sub-02_ses-01_metrics.tsv"
    before = metrics.read_bytes()
    assert cli.main(["run", *run["argv"], "--no-progress"]) == 1  # sub-03 still skipped
    rows = {ln.split()[0]: ln.split()[1] for ln in capsys.readouterr().out.splitlines()
            if ln.startswith("sub-")}
    assert rows["sub-02_ses-01"] == "warn" and rows["sub-02_ses-02"] in ("pass", "warn")
    assert metrics.read_bytes() == before and not crash.exists()
