"""Small interfaces of the per-subject workflow: b=0 extraction and the derivatives sink."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from weeke_pipeline.bids import names
from weeke_pipeline.nifti import save_nifti


class _B0InputSpec(BaseInterfaceInputSpec):
    dwi = File(exists=True, mandatory=True, desc="4D DWI")
    bval = File(exists=True, mandatory=True, desc="b-values (FSL format)")
    b0_threshold = traits.Float(50.0, usedefault=True, desc="b <= this counts as b=0")


class _B0OutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="mean b=0 volume")


class ExtractB0(SimpleInterface):
    """Mean of the b=0 volumes (the DWI image with T2 contrast, used to register to T2w)."""

    input_spec = _B0InputSpec
    output_spec = _B0OutputSpec

    def _run_interface(self, runtime):
        img = nib.load(self.inputs.dwi)
        bvals = np.atleast_1d(np.loadtxt(self.inputs.bval))
        data = np.asanyarray(img.dataobj)
        if data.ndim != 4 or data.shape[3] != bvals.size:
            raise ValueError(f"{self.inputs.dwi}: {data.shape} volumes do not match "
                             f"{bvals.size} b-values in {self.inputs.bval}")
        sel = bvals <= self.inputs.b0_threshold
        if not sel.any():
            raise ValueError(f"{self.inputs.bval}: no b=0 volume (b <= "
                             f"{self.inputs.b0_threshold})")
        out = os.path.join(runtime.cwd, "b0.nii.gz")
        save_nifti(data[..., sel].astype(np.float32).mean(axis=3), img.affine, out)
        self._results["out_file"] = out
        return runtime


class _ToT2wInputSpec(BaseInterfaceInputSpec):
    t2w = File(exists=True, mandatory=True, desc="reference grid")
    transform = File(exists=True, mandatory=True, desc="rigid DWI -> T2w transform (ITK)")
    fa = File(exists=True)
    md = File(exists=True)
    ad = File(exists=True)
    rd = File(exists=True)


class _ToT2wOutputSpec(TraitedSpec):
    fa = File(exists=True)
    md = File(exists=True)
    ad = File(exists=True)
    rd = File(exists=True)


class TensorMapsToT2w(SimpleInterface):
    """Resample the tensor maps that exist (none in ADC-only mode) onto the T2w grid."""

    input_spec = _ToT2wInputSpec
    output_spec = _ToT2wOutputSpec

    def _run_interface(self, runtime):
        from weeke_pipeline.imaging import registration as reg

        for key in ("fa", "md", "ad", "rd"):
            src = getattr(self.inputs, key)
            if not isdefined(src):
                continue
            out = os.path.join(runtime.cwd, f"{key}_space-T2w.nii.gz")
            reg.apply_transforms(src, self.inputs.t2w, [self.inputs.transform], out=out)
            self._results[key] = out
        return runtime


class _SinkInputSpec(BaseInterfaceInputSpec):
    derivatives_dir = traits.Str(mandatory=True, desc="the pipeline's derivatives root")
    subject = traits.Str(mandatory=True)
    session = traits.Str(mandatory=True)
    run_config = traits.Str(mandatory=True, desc="run configuration (TOML text)")
    t2w = File(exists=True, desc="T2w (reference space)")
    t1w = File(exists=True, desc="T1w on the T2w grid")
    adc = File(exists=True, desc="ADC on the T2w grid")
    b0 = File(exists=True, desc="mean b=0 on the T2w grid")
    dseg = File(exists=True, desc="atlas labels on the T2w grid")
    brain_mask = File(exists=True, desc="brain mask on the T2w grid")
    label_table = File(exists=True, desc="the atlas label table (labels.tsv)")
    label_agreement = File(exists=True, desc="multi-atlas: fraction of atlases agreeing with"
                           " the fused label, per voxel")
    label_confidence = File(exists=True, desc="multi-atlas: per-region agreement JSON")
    metrics_tsv = File(exists=True)
    metrics_json = File(exists=True)
    qc_report = File(exists=True, desc="QC HTML page (its folder is copied whole)")
    transforms = traits.Dict(traits.Str, traits.List(File(exists=True)),
                             desc="name -> transform files")
    reports = traits.Dict(traits.Str, File(exists=True), desc="name -> registration JSON")
    extra_maps = traits.Dict(traits.Str, File(exists=True),
                             desc="BIDS suffix -> map on the T2w grid (e.g. FA, MD)")
    extra_figures = traits.List(File(exists=True), desc="more QC figures (e.g. FA colour map)")
    extra_qc = traits.Dict(traits.Str, File(exists=True), desc="name -> QC JSON (e.g. dti)")


class _SinkOutputSpec(TraitedSpec):
    out_dir = traits.Str(desc="the subject's derivatives folder")
    files = traits.List(traits.Str)


class DerivativesSink(SimpleInterface):
    """Copy a subject's results into BIDS-derivatives names, with JSON sidecars.

    ``derivatives/weeke/sub-<p>/ses-<s>/anat/sub-<p>_ses-<s>_space-T2w_<desc>_<suffix>.nii.gz``,
    metrics in ``.../sub-<p>_ses-<s>_metrics.tsv``, transforms in ``xfm/``, QC in ``qc/`` and the
    run configuration in ``sub-<p>_ses-<s>_config.toml``.
    """

    input_spec = _SinkInputSpec
    output_spec = _SinkOutputSpec

    def _run_interface(self, runtime):
        i = self.inputs
        session = {"sub": i.subject, "ses": i.session}
        root = Path(i.derivatives_dir)
        base = root / names.folder(session)
        written: list[str] = []

        def name(datatype: str | None = None, **entities: str) -> dict[str, str]:
            """Entities of a file of this session; ``suffix`` may be one of weeke's own
            (``metrics``, ``<name>_registration``...), ``datatype`` a folder (``xfm``, ``qc``)."""
            return {**session, **entities, **({"datatype": datatype} if datatype else {})}

        def put(src: str, entities: dict[str, str], sidecar: dict | None = None) -> None:
            from weeke_pipeline import atomic  # complete files only, even on a full disk

            dest = root / names.build(entities)
            atomic.copy_file(src, dest)
            written.append(str(dest))
            if sidecar is not None:
                side = dest.with_name(dest.name.split(".")[0] + ".json")
                atomic.write_text(side, json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
                written.append(str(side))

        nii = ".nii.gz"
        images = {
            "t2w": (name("anat", desc="preproc", suffix="T2w", extension=nii),
                    "subject T2w (reference space)"),
            "t1w": (name("anat", space="T2w", desc="preproc", suffix="T1w", extension=nii),
                    "T1w rigidly on T2w"),
            "adc": (name("anat", space="T2w", suffix="ADC", extension=nii),
                    "ADC (1e-6 mm^2/s) rigidly on T2w"),
            "b0": (name("anat", space="T2w", desc="b0", suffix="dwiref", extension=nii),
                   "mean b=0 on T2w"),
            "dseg": (name("anat", space="T2w", desc="atlas", suffix="dseg", extension=nii),
                     "atlas labels on the T2w grid (genericLabel), numbered as the atlas label "
                     "table beside it (*_desc-atlas_dseg.tsv)"),
            "brain_mask": (name("anat", space="T2w", desc="brain", suffix="mask", extension=nii),
                           "brain mask from the atlas on T2w"),
            "label_agreement": (name("anat", space="T2w", desc="atlasagreement",
                                     suffix="probseg", extension=nii),
                                "multi-atlas segmentation: per voxel, the fraction of atlases"
                                " whose propagated label is the fused label"),
        }
        for key, (entities, desc) in images.items():
            value = getattr(i, key)
            if isdefined(value):
                put(value, entities, {"Description": desc, "SpatialReference": "T2w",
                                      "Sources": [f"bids:raw:{names.folder(session)}"]})
        if isdefined(i.label_table):
            put(i.label_table, name("anat", space="T2w", desc="atlas", suffix="dseg",
                                    extension=".tsv"))
        if isdefined(i.label_confidence):  # per-region agreement of the fused atlases
            put(i.label_confidence, name("anat", space="T2w", desc="atlas",
                                         suffix="labelconfidence", extension=".json"))
        if isdefined(i.extra_maps):
            for suffix, src in sorted(i.extra_maps.items()):
                put(src, name("dwi", space="T2w", suffix=suffix, extension=nii),
                    {"Description": f"{suffix} map on the T2w grid", "SpatialReference": "T2w"})
        if isdefined(i.metrics_tsv):
            put(i.metrics_tsv, name(suffix="metrics", extension=".tsv"))
        if isdefined(i.metrics_json):
            put(i.metrics_json, name(suffix="metrics", extension=".json"))
        if isdefined(i.transforms):
            for what, files in sorted(i.transforms.items()):
                for n, src in enumerate(files):
                    ext = "".join(Path(src).suffixes) or ".txt"
                    put(src, name("xfm", suffix=f"{what}_step-{n}", extension=ext))
        if isdefined(i.reports):
            for what, src in sorted(i.reports.items()):
                put(src, name("xfm", suffix=f"{what}_registration", extension=".json"))
        if isdefined(i.qc_report):
            qc_src = Path(i.qc_report).parent
            qc_dest = base / "qc"
            if qc_dest.exists():
                shutil.rmtree(qc_dest)
            shutil.copytree(qc_src, qc_dest, ignore=shutil.ignore_patterns(
                "_*", "*.pklz", "*.rst", "command.txt"))
            written.append(str(qc_dest))
        if isdefined(i.extra_figures):
            for src in i.extra_figures:
                put(src, name("qc/figures", desc=Path(src).name.split(".")[0], suffix="qc",
                              extension=".png"))
        if isdefined(i.extra_qc):
            for what, src in sorted(i.extra_qc.items()):
                put(src, name("qc", suffix=f"{what}_qc", extension=".json"))
        cfg = root / names.build(name(suffix="config", extension=".toml"))
        cfg.parent.mkdir(parents=True, exist_ok=True)
        cfg.write_text(i.run_config)
        written.append(str(cfg))
        self._results.update(out_dir=str(base), files=written)
        return runtime
