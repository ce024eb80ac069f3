"""De-identification and conversion to BIDS on the real DICOM (with planted identities)."""

from __future__ import annotations

import gzip
import json
import logging
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from weeke_pipeline.ingest.run import ingest_and_convert

pytestmark = pytest.mark.shared_data

#: vendor folder -> expected b-values per volume, as a sorted list (README + headers)
BVALS = {
    "siemens_xa30_dwi": [0] + [2500] * 20,
    "canon_enhanced_dwi": [0] + [1500] * 12,
    "philips_ingenia_dwi": [0, 0.001, 0.002, 0.003, 0.004] + [1000] * 12,
    "siemens_prisma_dwi_mosaic": [5, 5, 1500],
    "uih_mosaic_dti": [1.25126] + [929.75] * 16,
}


@pytest.fixture(scope="module")
def converted(shared_data: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("bids")
    res = ingest_and_convert(shared_data / "dicom", out / "raw", key="test-key",
                             work_dir=out / "work")
    return res, out / "raw"


def _direct(src: Path, dest: Path, dcm2niix_bin: str) -> Path:
    dest.mkdir(parents=True)
    subprocess.run([dcm2niix_bin, "-z", "y", "-f", "ref", "-o", str(dest), str(src)],
                   check=True, capture_output=True)
    return dest / "ref.nii.gz"


@pytest.mark.slow
@pytest.mark.parametrize("folder", sorted(BVALS))
def test_dwi_bvals_and_images_survive_deidentification(converted, shared_data: Path,
                                                       tmp_path: Path, dcm2niix_bin: str,
                                                       folder: str) -> None:
    res, raw = converted
    [series] = [s for s in res.series if s.source.startswith(folder) and s.classification == "dwi"]
    assert series.status == "converted", series.message
    dwi = raw / next(o for o in series.outputs if o.endswith("_dwi.nii.gz"))
    assert dwi.parent.name == "dwi" and dwi.name.startswith(f"sub-{series.participant}_ses-01")
    bvals = np.loadtxt(str(dwi).replace(".nii.gz", ".bval"))
    np.testing.assert_allclose(np.sort(bvals), BVALS[folder], atol=1e-3)
    bvecs = np.loadtxt(str(dwi).replace(".nii.gz", ".bvec"))
    assert bvecs.shape == (3, len(bvals))
    # same voxels, affine and volume order as converting the original (identifying) files
    ref = _direct(shared_data / "dicom" / folder, tmp_path / "ref", dcm2niix_bin)
    a, b = nib.load(ref), nib.load(dwi)
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-3)
    np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
    np.testing.assert_allclose(np.loadtxt(str(ref).replace(".nii.gz", ".bval")), bvals)


@pytest.mark.slow
def test_scanner_adc_kept_and_fitted_adc_elsewhere(converted) -> None:
    res, raw = converted
    by_sub: dict[str, list[str]] = {}
    for s in res.series:
        if s.status == "converted":
            by_sub.setdefault(s.participant, []).extend(s.outputs)
    xa = next(p for p, outs in by_sub.items() if any(o.endswith("_T1w.nii.gz") for o in outs))
    assert any(o.endswith("_desc-scanner_ADC.nii.gz") for o in by_sub[xa])
    assert not any("logfit" in o for o in by_sub[xa])
    sidecar = json.loads((raw / next(o for o in by_sub[xa] if o.endswith("scanner_ADC.json")))
                         .read_text())
    assert sidecar["Units"] == "10^-6 mm^2/s"
    others = [p for p in by_sub if p != xa]
    assert len(others) == 4
    for p in others:
        fit = next(o for o in by_sub[p] if o.endswith("_desc-logfit_ADC.nii.gz"))
        adc = np.asarray(nib.load(raw / fit).dataobj)
        inside = adc[adc > 0]
        # adult brain + CSF: median in the physiological range (10^-6 mm^2/s)
        assert 500 < np.median(inside) < 2000
    assert (raw / "deidentification.json").exists()
    assert (raw / f"sub-{xa}" / f"sub-{xa}_sessions.tsv").exists()


PLANTED = {
    "PatientName": "Zyxwuvski^Quentinella",
    "PatientID": "MRN99887766",
    "PatientBirthDate": "20240201",
    "AccessionNumber": "ACC55443322",
    "InstitutionName": "Planted Memorial Hospital",
    "DeviceSerialNumber": "SN7766554433",
    "StudyDate": "20240229",
    "ImageComments": "baby of Quentinella, bed 7",
    "StudyDescription": "Plantedstudy Zeta",
}


def _plant(src: Path, dest: Path) -> None:
    ds = pydicom.dcmread(src)
    for k, v in PLANTED.items():
        setattr(ds, k, v)
    ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = PLANTED["StudyDate"]
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.1"  # one study: one session
    block = ds.private_block(0x0011, "PLANTED PRIVATE", create=True)
    block.add_new(0x01, "LO", "Quentinella private")
    dest.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dest)


def test_planted_identities_never_reach_outputs_or_logs(shared_data: Path, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "src"
    for f in sorted((shared_data / "dicom" / "uih_mosaic_dti").rglob("*.dcm")):
        _plant(f, src / "dwi" / f.name)
    t1 = next((shared_data / "dicom" / "siemens_xa30_t1w").glob("*.dcm"))
    _plant(t1, src / "t1" / "t1.dcm")
    (src / "readme.txt").write_text("not dicom")
    participants = tmp_path / "participants.tsv"
    participants.write_text(f"patient_id\tparticipant_id\n{PLANTED['PatientID']}\tsub-W001\n")
    caplog.set_level(logging.DEBUG)
    res = ingest_and_convert(src, tmp_path / "raw", participants=participants,
                             work_dir=tmp_path / "work")
    assert [s.status for s in res.series] == ["converted"] * 3  # dwi, t1w, fitted ADC
    raw, work = tmp_path / "raw", tmp_path / "work"
    assert (raw / "sub-W001" / "ses-01" / "anat" / "sub-W001_ses-01_T1w.nii.gz").exists()
    bvals = np.loadtxt(raw / "sub-W001" / "ses-01" / "dwi" / "sub-W001_ses-01_dwi.bval")
    np.testing.assert_allclose(np.sort(bvals), BVALS["uih_mosaic_dti"], atol=1e-3)
    assert (raw / "sub-W001" / "sub-W001_sessions.tsv").read_text().splitlines()[1] == \
        "ses-01\t28"
    needles = set(PLANTED.values()) | {"Quentinella", "Zyxwuvski", "2024-02-29", "2024-02-01",
                                       "Planted Memorial"}
    deid_files = list((work / "deid").rglob("*.dcm"))
    assert deid_files
    ds = pydicom.dcmread(deid_files[0])
    assert ds.PatientAge == "028D" and ds.PatientIdentityRemoved == "YES"
    assert str(ds.PatientName) == "W001" and ds.DeidentificationMethod
    for f in [*raw.rglob("*"), *work.rglob("*")]:
        assert not any(n in str(f) for n in needles), f
        if f.is_file():
            data = f.read_bytes()
            if f.name.endswith(".gz"):
                data = gzip.decompress(data)
            for n in needles:
                assert n.encode() not in data, (f, n)
    for n in needles:
        assert n not in caplog.text
        assert n not in json.dumps([s.__dict__ for s in res.series])


def test_participant_missing_from_table_fails_that_series_only(shared_data: Path,
                                                               tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(shared_data / "dicom" / "siemens_prisma_dwi_mosaic", src / "a")
    shutil.copytree(shared_data / "dicom" / "siemens_xa30_t1w", src / "b")
    pid = str(pydicom.dcmread(next((src / "b").glob("*.dcm")), stop_before_pixels=True).PatientID)
    table = tmp_path / "p.tsv"
    table.write_text(f"patient_id\tparticipant_id\n{pid}\tB01\n")
    res = ingest_and_convert(src, tmp_path / "raw", participants=table, compute_adc=False)
    status = {s.source.split("/")[0]: s for s in res.series}
    assert status["b"].status == "converted"
    assert status["a"].status == "failed" and "participants table" in status["a"].message
    assert status["a"].source in status["a"].message
    assert not res.ok
