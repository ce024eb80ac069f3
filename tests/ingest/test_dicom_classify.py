"""Classification, series table and discovery on the real multi-vendor DICOM."""

from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

import pytest

from weeke_pipeline import cli
from weeke_pipeline.ingest.discover import discover, group_series
from weeke_pipeline.ingest.run import inspect_dicom

pytestmark = pytest.mark.shared_data

#: folder -> (classification, distinct b-values) from the data README and the headers
EXPECTED = {
    "siemens_xa30_dwi": ("dwi", [0, 2500]),
    "siemens_xa30_adc": ("adc", []),
    "siemens_xa30_t1w": ("t1w", []),
    "canon_enhanced_dwi": ("dwi", [0, 1500]),
    "uih_mosaic_dti": ("dwi", [1.25, 929.75]),  # UIH stores the effective b (0065,1009)
    "siemens_prisma_dwi_mosaic": ("dwi", [5, 1500]),
}


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_classification_and_bvals(shared_data: Path, folder: str) -> None:
    _, rows, _ = inspect_dicom(shared_data / "dicom" / folder)
    assert len(rows) == 1
    label, bvals = EXPECTED[folder]
    assert rows[0].classification == label, rows[0].evidence
    found = [float(b) for b in rows[0].bvals.split(";")] if rows[0].bvals else []
    assert found == pytest.approx(bvals, abs=0.01)
    assert rows[0].evidence


def test_philips_extra_objects_do_not_join_the_series(shared_data: Path) -> None:
    _, rows, skipped = inspect_dicom(shared_data / "dicom" / "philips_ingenia_dwi")
    assert [r.classification for r in rows] == ["dwi"]
    assert rows[0].n_files == 544  # 32 slices x 17 volumes; PS and private objects left out
    # Philips stores its b=0 volumes as b 0, 0.001 .. 0.004 (rounded to 0.01 in the table)
    assert [float(b) for b in rows[0].bvals.split(";")] == [0, 1000]
    assert {Path(s.source).name for s in skipped} == {"PS_0545.dcm", "XX_0546.dcm",
                                                       "XX_0547.dcm"}


def test_inspect_cli_writes_and_reads_back_table(shared_data: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    src = shared_data / "dicom" / "uih_mosaic_dti"
    out = tmp_path / "series.tsv"
    assert cli.main(["inspect", str(src), "--out", str(out)]) == 0
    assert "dwi" in capsys.readouterr().out
    rows = list(csv.DictReader(out.open(), delimiter="\t"))
    assert len(rows) == 1
    for col in ("path", "series_uid", "n_files", "classification", "evidence", "bvals",
                "n_frames", "modality", "dims", "voxel_size"):
        assert rows[0][col] != "", col
    assert rows[0]["n_files"] == "17" and rows[0]["dims"].startswith("320x256")
    # an edited table overrides the classifier
    rows[0]["classification"] = "other"
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
        w.writeheader()
        w.writerows(rows)
    _, again, _ = inspect_dicom(src, out)
    assert again[0].classification == "other"
    assert "override" in again[0].evidence
    # a bad label is a clear error naming the file and line
    rows[0]["classification"] = "flair"
    with out.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
        w.writeheader()
        w.writerows(rows)
    assert cli.main(["inspect", str(src), "--series-table", str(out)]) == 2
    assert "line 2" in capsys.readouterr().err


def test_zip_non_dicom_and_truncated(shared_data: Path, tmp_path: Path,
                                     caplog: pytest.LogCaptureFixture) -> None:
    src = shared_data / "dicom" / "siemens_prisma_dwi_mosaic"
    with zipfile.ZipFile(tmp_path / "export.zip", "w") as zf:
        for f in sorted(src.glob("*.dcm")):
            zf.write(f, f"nested/{f.name}")
    (tmp_path / "notes.txt").write_text("not an image")
    good = sorted((shared_data / "dicom" / "uih_mosaic_dti").rglob("*.dcm"))[0]
    (tmp_path / "broken.dcm").write_bytes(good.read_bytes()[:4000])
    images, skipped = discover(tmp_path)
    series = group_series(images)
    assert len(series) == 1 and len(series[0].instances) == 3
    reasons = {s.source: s.reason for s in skipped}
    assert reasons["notes.txt"] == "not a DICOM file"
    assert "truncated" in reasons["broken.dcm"]
    assert "notes.txt" in caplog.text and "broken.dcm" in caplog.text
    assert "export.zip!nested/" in series[0].instances[0].source.label


def test_missing_folder_is_a_usage_error(tmp_path: Path) -> None:
    assert cli.main(["inspect", str(tmp_path / "nope")]) == 2


def test_empty_folder_has_no_series(tmp_path: Path) -> None:
    shutil.rmtree(tmp_path, ignore_errors=True)
    tmp_path.mkdir()
    _, rows, skipped = inspect_dicom(tmp_path)
    assert rows == [] and skipped == []
