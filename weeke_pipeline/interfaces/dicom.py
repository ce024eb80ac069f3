"""Nipype interfaces for DICOM ingest: inspect, ingest+de-identify+convert, ADC fit.

Each wraps one function of :mod:`weeke_pipeline.ingest` (SimpleInterface, no logic here).
The project key is passed as a *file* so it never appears in nipype's saved inputs.
"""

from __future__ import annotations

import os
from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)


class InspectDicomInputSpec(BaseInterfaceInputSpec):
    dicom_dir = traits.Either(Directory(exists=True), File(exists=True), mandatory=True)
    series_table = File(exists=True, desc="edited series table (overrides the classifier)")


class InspectDicomOutputSpec(TraitedSpec):
    series_table = File(exists=True)


class InspectDicom(SimpleInterface):
    """Discover and classify series; write the series table TSV."""

    input_spec = InspectDicomInputSpec
    output_spec = InspectDicomOutputSpec

    def _run_interface(self, runtime):
        from weeke_pipeline.ingest.run import inspect_dicom
        from weeke_pipeline.ingest.series_table import write_table

        table = self.inputs.series_table if self.inputs.series_table else None
        _, rows, _ = inspect_dicom(self.inputs.dicom_dir, table)
        self._results["series_table"] = str(write_table(rows, Path(runtime.cwd) / "series.tsv"))
        return runtime


class IngestDicomInputSpec(BaseInterfaceInputSpec):
    dicom_dir = traits.Either(Directory(exists=True), File(exists=True), mandatory=True)
    out_dir = traits.Str(mandatory=True, desc="BIDS raw output folder")
    participants = File(exists=True, desc="participants TSV (patient_id -> participant_id)")
    series_table = File(exists=True, desc="edited series table")
    sessions = File(exists=True, desc="sessions TSV (study -> ses- label)")
    key_file = File(exists=True, desc="file holding the project key (HMAC pseudonyms, UIDs)")
    compute_adc = traits.Bool(True, usedefault=True)


class IngestDicomOutputSpec(TraitedSpec):
    out_dir = Directory(exists=True)
    t1w = traits.List(File(exists=True))
    t2w = traits.List(File(exists=True))
    dwi = traits.List(File(exists=True))
    bval = traits.List(File(exists=True))
    bvec = traits.List(File(exists=True))
    adc = traits.List(File(exists=True))
    result = File(exists=True, desc="JSON: per-series status, messages, outputs")
    failed = traits.Int(desc="number of series that failed")


class IngestDicom(SimpleInterface):
    """De-identify and convert a DICOM tree into BIDS (``ingest_and_convert``)."""

    input_spec = IngestDicomInputSpec
    output_spec = IngestDicomOutputSpec

    def _run_interface(self, runtime):
        from weeke_pipeline.ingest.run import ingest_and_convert, result_json

        key = Path(self.inputs.key_file).read_bytes().strip() if self.inputs.key_file else None
        res = ingest_and_convert(
            self.inputs.dicom_dir, self.inputs.out_dir,
            participants=self.inputs.participants or None,
            series_table=self.inputs.series_table or None,
            sessions=self.inputs.sessions or None, key=key,
            work_dir=Path(runtime.cwd) / "work", compute_adc=self.inputs.compute_adc)
        out = Path(self.inputs.out_dir)
        files = [out / o for s in res.series if s.status == "converted" for o in s.outputs]
        pick = {k: sorted(str(f) for f in files if str(f).endswith(v)) for k, v in {
            "t1w": "_T1w.nii.gz", "t2w": "_T2w.nii.gz", "dwi": "_dwi.nii.gz",
            "bval": "_dwi.bval", "bvec": "_dwi.bvec", "adc": "_ADC.nii.gz"}.items()}
        self._results.update(pick)
        self._results["out_dir"] = str(out)
        path = Path(runtime.cwd) / "ingest_result.json"
        path.write_text(result_json(res))
        self._results["result"] = str(path)
        self._results["failed"] = sum(s.status == "failed" for s in res.series)
        return runtime


class ComputeADCInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="4D DWI NIfTI")
    in_bval = File(exists=True, mandatory=True)
    mask = File(exists=True, desc="mask (default: Otsu on b=0)")


class ComputeADCOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="ADC map in 10^-6 mm^2/s")


class ComputeADC(SimpleInterface):
    """Log-linear ADC fit (:func:`weeke_pipeline.ingest.adc.fit_adc`)."""

    input_spec = ComputeADCInputSpec
    output_spec = ComputeADCOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nib
        import numpy as np

        from weeke_pipeline.ingest.adc import fit_adc

        img = nib.load(self.inputs.in_file)
        mask = (np.asarray(nib.load(self.inputs.mask).dataobj) > 0) if self.inputs.mask else None
        adc = fit_adc(np.asarray(img.dataobj, np.float32),
                      np.loadtxt(self.inputs.in_bval, ndmin=1), mask)
        out = os.path.join(runtime.cwd, "adc.nii.gz")
        nib.save(nib.Nifti1Image(adc, img.affine), out)
        self._results["out_file"] = out
        return runtime
