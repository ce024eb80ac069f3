"""The nipype interfaces run the pure functions (workflow wiring is the lead's)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from weeke_pipeline.interfaces.dicom import ComputeADC, IngestDicom, InspectDicom


def test_compute_adc_interface(tmp_path: Path) -> None:
    b = np.array([0, 1000, 1000])
    dwi = np.broadcast_to(np.array([800.0, *(800 * np.exp(-1000 * 1.2e-3 * np.ones(2)))]),
                          (4, 4, 4, 3)).copy()
    nib.save(nib.Nifti1Image(dwi.astype(np.float32), np.eye(4)), tmp_path / "dwi.nii.gz")
    np.savetxt(tmp_path / "dwi.bval", b[None], fmt="%g")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), tmp_path / "m.nii.gz")
    res = ComputeADC(in_file=str(tmp_path / "dwi.nii.gz"), in_bval=str(tmp_path / "dwi.bval"),
                     mask=str(tmp_path / "m.nii.gz")).run(cwd=str(tmp_path))
    adc = np.asarray(nib.load(res.outputs.out_file).dataobj)
    np.testing.assert_allclose(adc, 1200.0, rtol=1e-5)


@pytest.mark.shared_data
def test_inspect_and_ingest_interfaces(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "dicom" / "siemens_xa30_t1w"
    res = InspectDicom(dicom_dir=str(src)).run(cwd=str(tmp_path))
    assert "t1w" in Path(res.outputs.series_table).read_text()
    key = tmp_path / "key"
    key.write_text("project-secret\n")
    out = IngestDicom(dicom_dir=str(src), out_dir=str(tmp_path / "raw"),
                      key_file=str(key)).run(cwd=str(tmp_path))
    assert len(out.outputs.t1w) == 1 and out.outputs.failed == 0
    assert "project-secret" not in Path(out.outputs.result).read_text()
