"""The sessions table: a study's ``ses-`` label from a site-internal TSV, matched against the
original headers; unlisted studies keep the date order without ever taking a listed label.

The export is built as in ``test_partial_studies`` (copies of the shipped sample series with fake
identities planted, later studies with a new Study UID, date and accession number); only the
ingest runs (no registration), so the tests stay fast.
"""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import pydicom
import pytest
from broken_dicom import SAMPLE, T1W, T2W, copy_series, leaks, planted_identities
from pydicom.uid import generate_uid

from weeke_pipeline import cli
from weeke_pipeline.config import RunConfig
from weeke_pipeline.ingest.run import ingest_and_convert, inspect_dicom, preview_sessions
from weeke_pipeline.ingest.sessions import SessionTableError, read_table

T2W_B = SAMPLE / "sub-03" / "dicom" / "03_T2_TSE_AX"
T2W_C = SAMPLE / "sub-01" / "dicom" / "03_T2_TSE_AX"
SECOND, THIRD = "20260910", "20261015"  # 49 and 84 days of life (the first study: 35)
ACC2, ACC3 = "ACC77700002", "ACC77700003"


def _study(date: str, accession: str) -> dict[str, str]:
    return {"StudyInstanceUID": generate_uid(), "StudyDate": date, "SeriesDate": date,
            "AcquisitionDate": date, "ContentDate": date, "AccessionNumber": accession}


def _header(folder: Path) -> pydicom.Dataset:
    return pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True)


def _tsv(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("\n".join("\t".join(r) for r in rows) + "\n")
    return path


def _export(root: Path) -> Path:
    """Patient A (sample sub-02): T2w in the sample study, T1w two weeks later, T2w again
    seven weeks later; patient B (sample sub-03): one T2w study."""
    exp = root / "export"
    shutil.copytree(T2W, exp / "A" / "first" / "T2")
    copy_series(T1W, exp / "A" / "second" / "T1", study=_study(SECOND, ACC2))
    copy_series(T2W, exp / "A" / "third" / "T2", study=_study(THIRD, ACC3))
    shutil.copytree(T2W_B, exp / "B" / "T2")
    return exp


def _participants(root: Path) -> Path:
    lines = (SAMPLE / "participants.tsv").read_text().splitlines()
    return _tsv(root / "participants.tsv", [ln.split("\t") for ln in lines])


class _Logs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


def _ingest(exp: Path, out: Path, **kw: object) -> tuple[object, str]:
    handler, lg = _Logs(), logging.getLogger("weeke_pipeline.ingest")
    old = lg.level
    lg.addHandler(handler)
    lg.setLevel(logging.INFO)
    try:
        res = ingest_and_convert(exp, out, key="sessions-key", work_dir=out.parent / "work",
                                 compute_adc=False, **kw)
    finally:
        lg.removeHandler(handler)
        lg.setLevel(old)
    return res, "\n".join(handler.records)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A's first study by Patient ID + accession number, the second by pseudonym + study date,
    a label ``03`` for a study not in the export; the third study and patient B unlisted."""
    root = tmp_path_factory.mktemp("sessions")
    exp = _export(root)
    a = _header(T2W)
    table = _tsv(root / "sessions.tsv", [
        ["patient_id", "participant_id", "accession_number", "study_date", "session"],
        [str(a.PatientID), "", str(a.AccessionNumber), "", "1month"],
        ["", "sub-02", "", SECOND, "ses-7weeks"],
        [str(a.PatientID), "", "", "20270101", "03"],
    ])
    out = root / "raw"
    res, logs = _ingest(exp, out, participants=_participants(root), sessions=table)
    return {"root": root, "out": out, "res": res, "logs": logs, "table": table}


def test_listed_studies_get_the_table_labels(labelled: dict) -> None:
    sub = labelled["out"] / "sub-02"
    assert sorted(p.name for p in sub.glob("ses-*")) == ["ses-04", "ses-1month", "ses-7weeks"]
    # the right images in each: T2w of the first study, T1w of the second
    assert [p.name for p in (sub / "ses-1month").rglob("*.nii.gz")] == [
        "sub-02_ses-1month_T2w.nii.gz"]
    assert [p.name for p in (sub / "ses-7weeks").rglob("*.nii.gz")] == [
        "sub-02_ses-7weeks_T1w.nii.gz"]
    scans = (sub / "ses-7weeks" / "sub-02_ses-7weeks_scans.tsv").read_text().splitlines()
    assert scans == ["filename\tclassification", "anat/sub-02_ses-7weeks_T1w.nii.gz\tt1w"]
    # sessions.tsv in study order (age at scan), not in label order
    assert (sub / "sub-02_sessions.tsv").read_text().splitlines() == [
        "session_id\tage_days", "ses-1month\t35", "ses-7weeks\t49", "ses-04\t84"]
    assert all(s.status == "converted" for s in labelled["res"].series)
    assert {r.session for r in labelled["res"].table} == {"1month", "7weeks", "04", "01"}


def test_unlisted_studies_fall_back_to_date_order_without_taking_a_listed_label(
        labelled: dict) -> None:
    # A's third study is the 3rd by date, but the table gives A a "03": it becomes 04
    third = labelled["out"] / "sub-02" / "ses-04" / "anat" / "sub-02_ses-04_T2w.nii.gz"
    assert third.is_file()
    assert (labelled["out"] / "sub-03" / "ses-01" / "anat" / "sub-03_ses-01_T2w.nii.gz").is_file()
    logs = labelled["logs"]
    table = str(labelled["table"])
    assert f"sub-02: a study is not in the sessions table {table}: session ses-04" in logs
    assert f"sub-03: a study is not in the sessions table {table}: session ses-01" in logs


def test_no_identifying_value_in_outputs_or_logs(labelled: dict) -> None:
    secrets = [*planted_identities(), SECOND, THIRD, ACC2, ACC3]
    texts = {"logs": labelled["logs"],
             "results": "\n".join(s.message + s.source for s in labelled["res"].series)}
    assert leaks(labelled["out"], secrets, texts) == []


def test_two_studies_with_one_label_fail_alone(tmp_path: Path) -> None:
    """A's two studies both called 1month (would merge); C's study listed twice with different
    labels through two keys; B unlisted goes on."""
    exp = tmp_path / "export"
    shutil.copytree(T2W, exp / "A" / "first")
    copy_series(T1W, exp / "A" / "second", study=_study(SECOND, ACC2))
    shutil.copytree(T2W_B, exp / "B")
    shutil.copytree(T2W_C, exp / "C")
    a, c = _header(T2W), _header(T2W_C)
    table = _tsv(tmp_path / "sessions.tsv", [
        ["patient_id", "accession_number", "study_date", "session"],
        [str(a.PatientID), str(a.AccessionNumber), "", "1month"],
        [str(a.PatientID), ACC2, "", "1month"],
        [str(c.PatientID), str(c.AccessionNumber), "", "1month"],
        [str(c.PatientID), "", str(c.StudyDate), "term"],
    ])
    out = tmp_path / "raw"
    res, logs = _ingest(exp, out, participants=_participants(tmp_path), sessions=table)
    by = {s.source: s for s in res.series}
    for src in ("A/first", "A/second"):
        assert by[src].status == "failed" and by[src].participant == "02"
        assert by[src].message == (
            f"{src}: sessions table {table}: lines 2, 3 give 2 different studies the session "
            "ses-1month (they would be merged); not converted")
    assert by["C"].status == "failed"
    assert by["C"].message == (f"C: sessions table {table}: lines 4, 5 give different sessions "
                               "for one study; not converted")
    assert by["B"].status == "converted"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz")) == [
        "sub-03/ses-01/anat/sub-03_ses-01_T2w.nii.gz"]
    secrets = [*planted_identities(), SECOND, ACC2]
    texts = {"logs": logs, "messages": "\n".join(s.message for s in res.series)}
    assert leaks(out, secrets, texts) == []


# --------------------------------------------------------------------------- bad tables
PID, ACC = "HN6055135", "ACC02881062"  # sample sub-02 (fake): must never be printed
BAD = {
    "no session column": ([["patient_id", "accession_number"], [PID, ACC]],
                          "line 1: the sessions table needs a session column"),
    "no participant column": ([["accession_number", "session"], [ACC, "1month"]],
                              "line 1: the sessions table needs a patient_id or participant_id"),
    "unknown key column": ([["patient_id", "study_uid", "session"], [PID, "1.2.3", "1month"]],
                           "line 1: the sessions table needs a study key column, one of "
                           "study_instance_uid, accession_number, study_date (unknown column(s):"
                           " study_uid)"),
    "invalid label": ([["patient_id", "accession_number", "session"], [PID, ACC, "1 month"]],
                      "line 2: empty or invalid session label"),
    "empty label": ([["patient_id", "accession_number", "session"], [PID, ACC, ""]],
                    "line 2: empty or invalid session label"),
    "same study twice": ([["patient_id", "accession_number", "session"], [PID, ACC, "1month"],
                          [PID, "ACC1", "term"], [PID, ACC, "2month"]],
                         "line 4: the same study as line 2 with a different session label"),
    "bad date": ([["patient_id", "study_date", "session"], [PID, "20261340", "1month"]],
                 "line 2: study_date is not a date (YYYYMMDD)"),
    "no key value": ([["patient_id", "study_date", "session"], [PID, "", "1month"]],
                     "line 2: no study key"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_table_is_a_clear_error_naming_file_and_line(tmp_path: Path, case: str) -> None:
    rows, expected = BAD[case]
    path = _tsv(tmp_path / "sessions.tsv", rows)
    with pytest.raises(SessionTableError) as err:
        read_table(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {expected}"), msg
    assert PID not in msg and ACC not in msg and "20261340" not in msg


def test_bad_table_stops_the_ingest_before_any_work(tmp_path: Path) -> None:
    path = _tsv(tmp_path / "s.tsv", [["patient_id", "accession_number", "session"],
                                     [PID, ACC, "1-month"]])
    with pytest.raises(SessionTableError, match="line 2: empty or invalid session label"):
        ingest_and_convert(T2W, tmp_path / "raw", key="k", sessions=path)
    assert not (tmp_path / "raw").exists()


def test_a_participants_table_with_a_session_column_names_sessions(tmp_path: Path) -> None:
    """No separate table: ``session`` + a study key in the participants table; rows with an
    empty session keep the date order. ``weeke inspect`` shows the labels."""
    lines = [ln.split("\t") for ln in (SAMPLE / "participants.tsv").read_text().splitlines()]
    head = [*lines[0], "accession_number", "session"]
    rows = [head] + [[*ln, str(_header(SAMPLE / ln[0] / "dicom" / "03_T2_TSE_AX")
                               .AccessionNumber), "1month" if ln[0] == "sub-02" else ""]
                     for ln in lines[1:]]
    participants = _tsv(tmp_path / "participants.tsv", rows)
    exp = tmp_path / "in"
    shutil.copytree(T2W, exp / "A")
    shutil.copytree(T2W_B, exp / "B")
    series, table_rows, _ = inspect_dicom(exp)
    preview_sessions(series, table_rows, None, participants)
    assert {Path(r.path).name: r.session for r in table_rows} == {"A": "1month",
                                                                  "B": "01 (date order)"}
    out = tmp_path / "raw"
    _, logs = _ingest(exp, out, participants=participants)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.nii.gz")) == [
        "sub-02/ses-1month/anat/sub-02_ses-1month_T2w.nii.gz",
        "sub-03/ses-01/anat/sub-03_ses-01_T2w.nii.gz"]
    assert f"sub-03: a study is not in the sessions table {participants}" in logs


def test_inspect_shows_the_session_of_each_series(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "in"
    shutil.copytree(T2W, exp / "A")
    copy_series(T2W, exp / "A2", study=_study(SECOND, ACC2))
    table = _tsv(tmp_path / "sessions.tsv", [["patient_id", "accession_number", "session"],
                                             [PID, ACC, "1month"]])
    assert cli.main(["inspect", str(exp), "--sessions", str(table), "--out",
                     str(tmp_path / "series.tsv")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[0] == "session"
    assert sorted(ln.split()[0] for ln in out.splitlines()[1:3]) == ["02", "1month"]
    assert "(date order)" in out
    with open(tmp_path / "series.tsv", newline="") as fh:
        written = {Path(r["path"]).name: r["session"]
                   for r in csv.DictReader(fh, delimiter="\t")}
    assert written == {"A": "1month", "A2": "02 (date order)"}


# --------------------------------------------------------------------------- CLI / config
def test_run_spec_key_is_resolved_and_recorded(tmp_path: Path) -> None:
    spec = tmp_path / "spec" / "run.toml"
    spec.parent.mkdir()
    spec.write_text('[inputs]\ninput_dir = "in"\nsessions = "tables/sessions.tsv"\n')
    cfg = RunConfig.from_toml(spec)
    assert cfg.sessions == str((tmp_path / "spec" / "tables" / "sessions.tsv").resolve())
    assert f'sessions = "{cfg.sessions}"' in cfg.to_toml()


def test_weeke_run_sessions_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--sessions reaches the ingest: a missing file and a bad table are one-line usage errors
    (exit 2) before any conversion."""
    exp = tmp_path / "in"
    shutil.copytree(T2W, exp / "A")
    args = ["run", str(exp), str(tmp_path / "out"), "--key-file", str(tmp_path / "key"),
            "--no-progress"]
    (tmp_path / "key").write_text("k")
    assert cli.main([*args, "--sessions", str(tmp_path / "nope.tsv")]) == 2
    assert f"sessions {tmp_path / 'nope.tsv'}: no such file" in capsys.readouterr().err
    bad = _tsv(tmp_path / "s.tsv", [["patient_id", "accession", "session"], [PID, ACC, "x"]])
    assert cli.main([*args, "--sessions", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: line 1: the sessions table needs a study key column" in err
    assert PID not in err and ACC not in err
    assert not list((tmp_path / "out").rglob("*.nii.gz"))


@pytest.mark.slow
def test_weeke_run_end_to_end_with_a_named_session(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """One T2w study named ``1month`` through registration, metrics and the group tables."""
    exp = tmp_path / "in"
    shutil.copytree(T2W, exp / "A")
    table = _tsv(tmp_path / "sessions.tsv", [["participant_id", "accession_number", "session"],
                                             ["sub-02", ACC, "1month"]])
    out = tmp_path / "out"
    assert cli.main(["run", str(exp), str(out), "--participants", str(_participants(tmp_path)),
                     "--sessions", str(table), "--sloppy", "--no-dti", "--no-progress"]) == 0
    assert "sub-02_ses-1month" in capsys.readouterr().out
    deriv = out / "derivatives" / "weeke"
    assert (deriv / "sub-02" / "ses-1month" / "sub-02_ses-1month_metrics.tsv").is_file()
    group = (deriv / "group_metrics.tsv").read_text().splitlines()
    session = group[0].split("\t").index("session")
    assert {ln.split("\t")[session] for ln in group[1:]} == {"1month"}
    assert f'sessions = "{table}"' in (deriv / "run_config.toml").read_text()
    assert leaks(out, planted_identities(), skip=["key"]) == []
