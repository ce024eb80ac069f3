"""Bad input: each problem gives a clear message naming the file (relative to the input folder)
and the problem, and the batch goes on with the other series and subjects.

Broken series are copies of the shipped sample's series (sub-02, fake identities planted in the
headers) changed with pydicom; the ingest stage is tested directly (fast), the batch-level
behaviour through ``weeke run`` on inputs that need no imaging workflow.
"""

from __future__ import annotations

import errno
import logging
import shutil
from pathlib import Path

import pydicom
import pytest
from broken_dicom import (
    DWI,
    T2W,
    copy_series,
    first_volumes,
    planted_identities,
    strip_bvalues,
)
from pydicom.uid import generate_uid

from weeke_pipeline import atomic, cli
from weeke_pipeline.ingest.run import IngestResult, NoDicomError, ingest_and_convert


def find(result: IngestResult, where: str):
    hits = [s for s in result.series if s.source == where]
    assert len(hits) == 1, [s.source for s in result.series]
    return hits[0]


# --------------------------------------------------------------------------- ingest checks
@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, IngestResult, str]:
    """One export with a good T2w and one broken T2w copy per problem, ingested once."""
    root = tmp_path_factory.mktemp("export")
    exp = root / "in"
    shutil.copytree(T2W, exp / "good")
    # missing slices: a file dropped from the middle of the stack
    files = copy_series(T2W, exp / "gap")
    files[20].unlink()
    # mixed orientations: one slice coronal
    def coronal(n: int, ds: pydicom.Dataset) -> None:
        if n == 30:
            ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    copy_series(T2W, exp / "mixed_orientation", change=coronal)
    # same position twice (different SOP Instance UIDs)
    def same_pos(n: int, ds: pydicom.Dataset) -> None:
        if n == 11:
            ds.ImagePositionPatient = [-59.4, -70.2, -55.0 + 2.0 * 10]
    copy_series(T2W, exp / "same_position", change=same_pos)
    # same SOP Instance UID twice with different contents
    files = copy_series(T2W, exp / "uid_clash")
    ds = pydicom.dcmread(files[5])
    ds.SOPInstanceUID = pydicom.dcmread(files[4]).SOPInstanceUID
    ds.save_as(files[5])
    # an identical copy of one file (export copied twice): ignored with a warning
    files = copy_series(T2W, exp / "copied")
    shutil.copy(files[7], exp / "copied" / "IM00008 (copy).dcm")
    # a truncated file and stray non-DICOM files
    files = copy_series(T2W, exp / "truncated")
    data = files[25].read_bytes()
    files[25].write_bytes(data[: len(data) // 3])
    (exp / "README.txt").write_text("export notes\n")
    (exp / "good" / "Thumbs.db.bak").write_bytes(b"\x00" * 300)

    out = root / "raw"
    import logging as _logging

    records: list[str] = []

    class Keep(_logging.Handler):
        def emit(self, record: _logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Keep(level=_logging.INFO)
    lg = _logging.getLogger("weeke_pipeline.ingest")
    old = lg.level
    lg.addHandler(handler)
    lg.setLevel(_logging.INFO)
    try:
        res = ingest_and_convert(exp, out, key="test-key", work_dir=root / "work")
    finally:
        lg.removeHandler(handler)
        lg.setLevel(old)
    return out, res, "\n".join(records)


def test_good_series_converts_while_broken_ones_fail(broken) -> None:
    out, res, _ = broken
    assert find(res, "good").status == "converted"
    assert find(res, "copied").status == "converted"
    for where in ("gap", "mixed_orientation", "same_position", "uid_clash", "truncated"):
        r = find(res, where)
        assert r.status == "failed", where
        assert r.message.startswith(f"{where}: "), r.message
    t2w = sorted(out.glob("sub-*/ses-*/anat/*_T2w.nii.gz"))
    assert len(t2w) == 2  # good + the copied one (run-1, run-2)


def test_missing_slice_names_the_neighbouring_files(broken) -> None:
    msg = find(broken[1], "gap").message
    assert "missing slices" in msg and "gap of 4 mm" in msg
    assert "gap/IM00020.dcm" in msg and "gap/IM00022.dcm" in msg and "1 slice(s)" in msg


def test_mixed_orientation_is_refused(broken) -> None:
    msg = find(broken[1], "mixed_orientation").message
    assert "mixed slice orientations" in msg and "coronal" in msg and "axial" in msg
    assert "mixed_orientation/IM00031.dcm" in msg


def test_duplicate_instances(broken) -> None:
    _, res, logs = broken
    msg = find(res, "same_position").message
    assert "same slice position twice" in msg
    assert "same_position/IM00011.dcm" in msg and "same_position/IM00012.dcm" in msg
    msg = find(res, "uid_clash").message
    assert "same SOP Instance UID but different contents" in msg
    assert "uid_clash/IM00005.dcm" in msg and "uid_clash/IM00006.dcm" in msg
    assert "copied/IM00008 (copy).dcm is a copy of copied/IM00008.dcm" in logs


def test_truncated_and_non_dicom_files_are_named(broken) -> None:
    _, res, logs = broken
    skipped = {s.source: s.reason for s in res.skipped_files}
    assert skipped["README.txt"] == "not a DICOM file"
    assert "truncated" in skipped["truncated/IM00026.dcm"]
    assert "truncated/IM00026.dcm: truncated" in logs
    # the series that lost the file is refused, not converted with a hole
    assert "missing slices" in find(res, "truncated").message


def test_no_identity_in_ingest_messages(broken) -> None:
    out, res, logs = broken
    texts = [logs] + [s.message + s.source for s in res.series]
    texts += [s.source + s.reason for s in res.skipped_files]
    texts += [p.read_text(errors="replace") for p in out.rglob("*")
              if p.is_file() and p.suffix in (".json", ".tsv")]
    for secret in planted_identities():
        assert not any(secret in t for t in texts), secret


def test_export_folder_named_after_the_patient_is_scrubbed(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    """PACS exports often name folders after the patient: messages must not repeat it."""
    ds = pydicom.dcmread(next(T2W.glob("*.dcm")))
    folder = tmp_path / "in" / f"{ds.PatientID}_{str(ds.PatientName).split('^')[0]}"
    files = copy_series(T2W, folder / "T2")
    files[10].unlink()
    (folder / "notes.txt").write_text("x")
    caplog.set_level(logging.INFO)
    res = ingest_and_convert(tmp_path / "in", tmp_path / "raw", key="k", work_dir=tmp_path / "w")
    [r] = res.series
    assert r.status == "failed" and "[removed]_[removed]/T2/IM00010.dcm" in r.message
    text = caplog.text + r.message + "".join(s.source for s in res.skipped_files)
    assert "[removed]_[removed]/notes.txt" in text
    for secret in planted_identities():
        assert secret not in text, secret


def test_dwi_without_bvalues_is_kept_but_not_used(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    copy_series(DWI, tmp_path / "in" / "dwi", change=strip_bvalues, keep=first_volumes)
    shutil.copytree(T2W, tmp_path / "in" / "t2")
    caplog.set_level(logging.WARNING)
    res = ingest_and_convert(tmp_path / "in", tmp_path / "raw", key="k", work_dir=tmp_path / "w")
    dwi = find(res, "dwi")
    assert dwi.classification == "dwi" and dwi.status == "converted"
    assert "dwi: DWI without b-values" in caplog.text and "not used for ADC or DTI" in caplog.text
    assert not any(s.classification == "adc" for s in res.series)  # no ADC fitted from it
    from weeke_pipeline.workflows.pipeline import find_sessions

    [session] = find_sessions(tmp_path / "raw")
    assert session.t2w and session.dwi is None and session.adc is None


def test_two_studies_of_one_patient_are_two_sessions_in_date_order(tmp_path: Path) -> None:
    """Sessions are numbered by study date, whatever the folder order."""
    later = {"StudyInstanceUID": generate_uid(), "StudyDate": "20260910",
             "SeriesDate": "20260910", "AcquisitionDate": "20260910", "ContentDate": "20260910"}
    copy_series(T2W, tmp_path / "in" / "a_second_scan", study=later)
    shutil.copytree(T2W, tmp_path / "in" / "b_first_scan")
    res = ingest_and_convert(tmp_path / "in", tmp_path / "raw", key="k", work_dir=tmp_path / "w")
    by_src = {s.source: s for s in res.series}
    assert by_src["b_first_scan"].session == "01" and by_src["a_second_scan"].session == "02"
    assert by_src["a_second_scan"].participant == by_src["b_first_scan"].participant
    sub = by_src["b_first_scan"].participant
    sessions = (tmp_path / "raw" / f"sub-{sub}" / f"sub-{sub}_sessions.tsv").read_text()
    assert sessions.splitlines()[1:] == ["ses-01\t35", "ses-02\t49"]  # age in days, no dates


def test_empty_input_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoDicomError, match="the folder is empty"):
        ingest_and_convert(tmp_path / "empty", tmp_path / "raw", key="k")


# --------------------------------------------------------------------------- disk full
def test_disk_full_leaves_nothing_half_written(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out" / "sub-01_T2w.nii.gz"
    atomic.write_bytes(target, b"complete old version")

    def half_then_full(fin, fout, length=0):
        fout.write(fin.read(10))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", half_then_full)
    src = tmp_path / "new.nii.gz"
    src.write_bytes(b"x" * 1000)
    with pytest.raises(atomic.DiskFullError, match="disk full while writing") as err:
        atomic.copy_file(src, target)
    assert str(target) in str(err.value)
    assert target.read_bytes() == b"complete old version"  # the old complete file stays
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no partial
    with pytest.raises(atomic.DiskFullError):
        atomic.copy_file(src, tmp_path / "out" / "new_T1w.nii.gz")
    assert not (tmp_path / "out" / "new_T1w.nii.gz").exists()


def test_disk_full_during_ingest_stops_with_the_file_named(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """A full disk while the raw data records are written: a clear error naming the file, and
    no partial file left (the write is atomic)."""
    shutil.copytree(T2W, tmp_path / "in" / "t2")
    real_replace = atomic.os.replace

    def full(src, dst):
        if str(dst).endswith("_scans.tsv"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", full)
    with pytest.raises(atomic.DiskFullError,
                       match=r"disk full while writing .*ses-01_scans\.tsv"):
        ingest_and_convert(tmp_path / "in", tmp_path / "raw", key="k", work_dir=tmp_path / "w")
    raw = tmp_path / "raw"
    assert not list(raw.rglob("*_scans.tsv"))
    assert not [p for p in raw.rglob("*") if ".part" in p.name]
    monkeypatch.undo()  # space freed: a re-run completes
    res = ingest_and_convert(tmp_path / "in", raw, key="k", work_dir=tmp_path / "w")
    assert res.ok and list(raw.rglob("*_scans.tsv"))


def test_disk_full_is_a_one_line_cli_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(T2W, tmp_path / "in" / "t2")

    def full(path, data):
        raise atomic.write_error(OSError(errno.ENOSPC, "No space left on device"), path)

    monkeypatch.setattr(atomic, "write_bytes", full)
    (tmp_path / "key").write_text("k")
    rc = cli.main(["run", str(tmp_path / "in"), str(tmp_path / "out"), "--key-file",
                   str(tmp_path / "key"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "weeke run: error: disk full while writing" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- batch level
def test_empty_input_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    assert cli.main(["run", str(tmp_path / "in"), str(tmp_path / "out")]) == 2
    assert "no DICOM image found" in capsys.readouterr().err
    (tmp_path / "in" / "notes.txt").write_text("no images here")
    assert cli.main(["run", str(tmp_path / "in"), str(tmp_path / "out")]) == 2
    assert "none a DICOM image" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["file", "under_file"])
def test_unwritable_output_is_refused_before_any_work(tmp_path: Path, kind: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(T2W, tmp_path / "in" / "t2")
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the output folder should be")
    out = blocker if kind == "file" else blocker / "out"
    assert cli.main(["run", str(tmp_path / "in"), str(out)]) == 2
    err = capsys.readouterr().err
    assert f"output folder {out}" in err and "nothing was done" in err
    assert ("is a file, not a folder" if kind == "file" else "not writable") in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "taken"]
