"""nipype interface for the tensor fit (:mod:`weeke_pipeline.imaging.dti`) and its QC figures."""

from __future__ import annotations

import json
from pathlib import Path

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)


class _DTIFitInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="4D DWI NIfTI (dcm2niix)")
    in_bval = File(exists=True, mandatory=True, desc="FSL .bval")
    in_bvec = File(exists=True, mandatory=True, desc="FSL .bvec")
    fit_method = traits.Enum("WLS", "OLS", "RWLS", "NLLS", "RESTORE", usedefault=True,
                             desc="dipy TensorModel fit method")
    denoising = traits.Enum("none", "mppca", "patch2self", usedefault=True,
                            desc="optional denoising before the fit")
    check_gradients = traits.Bool(True, usedefault=True,
                                  desc="run the flip/permutation gradient-table check")
    labels = File(exists=True, desc="label map on the DWI grid, outlined in the FA colour figure")
    prefix = traits.Str("dwi", usedefault=True, desc="output file name prefix")


class _DTIFitOutputSpec(TraitedSpec):
    mode = traits.Enum("tensor", "adc", desc="'adc' when fewer than 6 directions")
    fa = File(desc="FA (tensor mode)")
    md = File(desc="MD, 10^-6 mm^2/s (tensor mode)")
    ad = File(desc="AD, 10^-6 mm^2/s (tensor mode)")
    rd = File(desc="RD, 10^-6 mm^2/s (tensor mode)")
    e1 = File(desc="principal eigenvector, 4D, bvec frame (tensor mode)")
    residual = File(desc="fit residual, RMS / S0 (tensor mode)")
    adc = File(desc="ADC, 10^-6 mm^2/s (MD in tensor mode)")
    mask = File(desc="brain mask on the DWI grid")
    qc_json = File(desc="QC numbers, notes and gradient-check scores")
    fa_colour_png = File(desc="direction-encoded FA figure (tensor mode)")
    residual_png = File(desc="fit residual figure (tensor mode)")
    notes = traits.List(traits.Str, desc="QC notes (why no tensor, gradient-check warnings)")


class DTIFit(SimpleInterface):
    """Mask, optional denoising, tensor fit (or ADC only), gradient check and QC figures."""

    input_spec = _DTIFitInputSpec
    output_spec = _DTIFitOutputSpec

    def _run_interface(self, runtime):
        import nibabel as nib
        import numpy as np

        from weeke_pipeline.imaging import dti, qc_figures

        out_dir = Path(runtime.cwd)
        p = self.inputs.prefix
        dwi = dti.load_dwi(self.inputs.in_file, self.inputs.in_bval, self.inputs.in_bvec)
        res = dti.run_dti(dwi, fit_method=self.inputs.fit_method,
                          denoising=self.inputs.denoising,
                          check_gradients=self.inputs.check_gradients)
        paths = dti.save_result(res, out_dir, p)
        out = self._results
        out["mode"] = res.mode
        out["mask"] = str(paths["mask"])
        out["notes"] = list(res.notes)
        if res.maps is not None:
            for key, name in (("fa", "FA"), ("md", "MD"), ("ad", "AD"), ("rd", "RD"),
                              ("e1", "e1"), ("residual", "residual")):
                out[key] = str(paths[name])
            out["adc"] = str(paths["MD"])
            labels = None
            if isdefined(self.inputs.labels):
                labels = np.asarray(nib.load(self.inputs.labels).dataobj)
            out["fa_colour_png"] = str(qc_figures.fa_colour_figure(
                res.maps.fa, res.maps.evec, res.mask, res.affine,
                out_dir / f"{p}_desc-facolour_qc.png", labels=labels))
            out["residual_png"] = str(qc_figures.residual_figure(
                res.maps.residual, res.mask, res.affine, out_dir / f"{p}_desc-residual_qc.png"))
        else:
            out["adc"] = str(paths["ADC"])
        doc = {"qc": res.qc, "notes": res.notes,
               "gradient_check": None if res.check is None else {
                   "best": res.check.best, "is_identity": res.check.is_identity,
                   "consistent": res.check.consistent,
                   "scores_mm": {k: round(v, 3) for k, v in res.check.scores.items()}}}
        qc_path = out_dir / f"{p}_desc-dti_qc.json"
        qc_path.write_text(json.dumps(doc, indent=2) + "\n")
        out["qc_json"] = str(qc_path)
        return runtime
