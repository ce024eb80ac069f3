"""The ingest's worker processes: the same bytes whatever their number, and one broken series
still fails alone when its parts are de-identified in parallel."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from weeke_pipeline.ingest import run, scheduler
from weeke_pipeline.resources import data_dir


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def one_subject(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sub-01 of the shipped sample study (T1w, T2w, a DWI of several parts, scanner ADC)."""
    src = data_dir("sample_data")
    dst = tmp_path_factory.mktemp("in")
    shutil.copytree(src / "sub-01" / "dicom", dst / "sub-01")
    shutil.copy(src / "participants.tsv", dst.parent / "participants.tsv")
    return dst


def test_outputs_do_not_depend_on_the_number_of_workers(one_subject: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    n_files = sum(1 for _ in (one_subject / "sub-01" / "05_DWI_6DIR_B1000").iterdir())
    monkeypatch.setattr(scheduler, "CHUNK_FILES", 16)  # many parts per series
    assert n_files > 3 * scheduler.CHUNK_FILES
    digests = {}
    for workers in (1, 3):
        out = tmp_path / f"w{workers}"
        res = run.ingest_and_convert(one_subject, out / "raw", work_dir=out / "work",
                                     participants=one_subject.parent / "participants.tsv",
                                     workers=workers)
        assert [s.status for s in res.series] == ["converted"] * 4, res.series
        digests[workers] = (_digest(out / "raw"), _digest(out / "work" / "deid"))
    raw1, deid1 = digests[1]
    assert any(k.endswith("_dwi.nii.gz") for k in raw1)
    assert sum(1 for k in deid1 if k.endswith(".dcm")) == sum(
        1 for p in one_subject.rglob("*") if p.is_file())
    assert digests[3] == digests[1]


def test_a_part_that_fails_fails_its_series_only(one_subject: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that cannot be read when its part is de-identified (removed after discovery)."""
    inp = tmp_path / "in"
    shutil.copytree(one_subject, inp)
    dwi = sorted((inp / "sub-01" / "05_DWI_6DIR_B1000").iterdir())
    original = run.inspect_dicom

    def inspect_then_lose_a_file(*args, **kwargs):
        out = original(*args, **kwargs)
        dwi[40].unlink()  # the third part of the DWI
        return out

    monkeypatch.setattr(scheduler, "CHUNK_FILES", 16)
    monkeypatch.setattr(run, "inspect_dicom", inspect_then_lose_a_file)
    res = run.ingest_and_convert(inp, tmp_path / "raw", work_dir=tmp_path / "work",
                                 participants=one_subject.parent / "participants.tsv",
                                 workers=2)
    status = {s.classification: s for s in res.series if s.classification != "adc"}
    assert status["dwi"].status == "failed"
    assert "FileNotFoundError" in status["dwi"].message
    assert "05_DWI_6DIR_B1000" in status["dwi"].message
    assert status["t1w"].status == status["t2w"].status == "converted"
    assert not (tmp_path / "raw" / "sub-01" / "ses-01" / "dwi" / "sub-01_ses-01_dwi.nii.gz"
                ).exists()
