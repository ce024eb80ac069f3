"""nipype ``SimpleInterface`` wrappers: inputs/outputs are files, the work is done by
:mod:`weeke_pipeline.imaging.registration`, :mod:`weeke_pipeline.imaging.metrics` and
:mod:`weeke_pipeline.imaging.qc`.
Outputs are written in the node's working directory (``runtime.cwd``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)


def _opt(value: Any) -> Any:
    """nipype's Undefined -> None."""
    from nipype.interfaces.base import isdefined

    return value if isdefined(value) else None


def _preset(inputs: Any) -> Any:
    """The preset named by ``inputs.preset``, with ``inputs.random_seed`` when given."""
    import dataclasses

    from weeke_pipeline.imaging import registration as reg

    preset = reg.load_preset(inputs.preset)
    seed = _opt(inputs.random_seed)
    return preset if seed is None else dataclasses.replace(preset, random_seed=int(seed))


def _write_json(path: Path, doc: dict[str, Any]) -> str:
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    return str(path)


# --------------------------------------------------------------------------- registration
class _WithinInputSpec(BaseInterfaceInputSpec):
    t2w = File(exists=True, mandatory=True, desc="subject T2w (fixed)")
    moving = File(exists=True, mandatory=True, desc="T1w, b0 or ADC of the same session")
    preset = traits.Str("fast", usedefault=True, desc="preset name or TOML path")
    exclusion_mask = File(exists=True, desc="T2w-space mask left out of the metric")
    brain_mask = File(exists=True, desc="T2w-space brain mask (metric region, QC)")
    also_resample = InputMultiObject(File(exists=True), desc="images on the moving grid to"
                                     " resample with the same transform (e.g. ADC after b0)")
    name = traits.Str("moving", usedefault=True, desc="label used in output names")
    random_seed = traits.Int(desc="the run's seed, in place of the preset's random_seed")


class _WithinOutputSpec(TraitedSpec):
    transform = File(exists=True, desc="rigid transform moving -> T2w (ITK .mat)")
    warped = File(exists=True, desc="moving resampled on the T2w grid")
    resampled = traits.List(File(exists=True), desc="also_resample images on the T2w grid")
    report = File(exists=True, desc="JSON: command, seconds, similarity before/after")


class RegisterWithinSubject(SimpleInterface):
    """Rigid alignment of one image to the subject's T2w."""

    input_spec = _WithinInputSpec
    output_spec = _WithinOutputSpec

    def _run_interface(self, runtime):
        from weeke_pipeline.imaging import registration as reg

        prefix = os.path.join(runtime.cwd, f"{self.inputs.name}_to-T2w_")
        res = reg.register_within_subject(
            self.inputs.t2w, self.inputs.moving, prefix, preset=_preset(self.inputs),
            exclusion_mask=_opt(self.inputs.exclusion_mask),
            brain_mask=_opt(self.inputs.brain_mask))
        resampled = []
        for i, img in enumerate(_opt(self.inputs.also_resample) or []):
            out = os.path.join(runtime.cwd, f"{self.inputs.name}_extra{i}_space-T2w.nii.gz")
            reg.apply_transforms(img, self.inputs.t2w, res.forward_transforms, out=out)
            resampled.append(out)
        self._results.update(
            transform=res.forward_transforms[0], warped=res.warped, resampled=resampled,
            report=_write_json(Path(prefix + "registration.json"), res.to_dict()))
        return runtime


class _AtlasInputSpec(BaseInterfaceInputSpec):
    t2w = File(exists=True, mandatory=True, desc="subject T2w")
    atlas_t2w = File(exists=True, mandatory=True, desc="atlas T2w template")
    atlas_brain_mask = File(exists=True, mandatory=True, desc="atlas brain mask")
    atlas_labels = File(exists=True, desc="atlas label map (dseg)")
    preset = traits.Str("fast", usedefault=True, desc="preset name or TOML path")
    exclusion_mask = File(exists=True, desc="subject-space injury mask left out of the metric")
    n4 = traits.Enum(None, True, False, usedefault=True, desc="override the preset's N4 choice")
    random_seed = traits.Int(desc="the run's seed, in place of the preset's random_seed")


class _AtlasOutputSpec(TraitedSpec):
    forward_transforms = traits.List(File(exists=True), desc="subject -> atlas (apply order)")
    inverse_transforms = traits.List(File(exists=True), desc="atlas -> subject (apply order)")
    inverse_invert = traits.List(traits.Bool, desc="whichtoinvert for inverse_transforms")
    warped = File(exists=True, desc="subject T2w on the atlas grid")
    t2w_preproc = File(exists=True)
    brain_mask = File(exists=True, desc="brain mask on the subject T2w grid")
    t2w_brain = File(exists=True)
    labels = File(desc="atlas labels on the subject T2w grid")
    report = File(exists=True, desc="JSON: command, seconds, similarity before/after")


class AtlasToSubject(SimpleInterface):
    """T2w -> atlas registration, brain mask and labels warped back to the T2w."""

    input_spec = _AtlasInputSpec
    output_spec = _AtlasOutputSpec

    def _run_interface(self, runtime):
        from weeke_pipeline.imaging import registration as reg

        prefix = os.path.join(runtime.cwd, "from-T2w_to-atlas_")
        res = reg.atlas_to_subject(
            self.inputs.t2w, self.inputs.atlas_t2w, self.inputs.atlas_brain_mask, prefix,
            atlas_labels=_opt(self.inputs.atlas_labels), preset=_preset(self.inputs),
            exclusion_mask=_opt(self.inputs.exclusion_mask), n4_correct=self.inputs.n4)
        r = res.registration
        self._results.update(
            forward_transforms=r.forward_transforms, inverse_transforms=r.inverse_transforms,
            inverse_invert=r.inverse_invert, warped=r.warped, t2w_preproc=res.t2w_preproc,
            brain_mask=res.brain_mask, t2w_brain=res.t2w_brain,
            report=_write_json(Path(prefix + "registration.json"), r.to_dict()))
        if res.labels:
            self._results["labels"] = res.labels
        return runtime


# --------------------------------------------------------------------------- metrics
class _MetricsInputSpec(BaseInterfaceInputSpec):
    subject = traits.Str(mandatory=True, desc="subject pseudonym")
    labels = File(exists=True, mandatory=True, desc="labels in T2w space")
    t2w = File(exists=True)
    t1w = File(exists=True, desc="T1w in T2w space")
    adc = File(exists=True, desc="ADC (10^-6 mm^2/s) in T2w space")
    brain_mask = File(exists=True)
    adc_thresholds = traits.List(traits.Float, [800.0, 1000.0], usedefault=True)
    reference = traits.Str("cerebellum", usedefault=True,
                           desc="reference tissue: cerebellum, brain or white_matter")
    fa = File(exists=True, desc="FA in T2w space")
    md = File(exists=True, desc="MD (10^-6 mm^2/s) in T2w space")
    ad = File(exists=True, desc="AD (10^-6 mm^2/s) in T2w space")
    rd = File(exists=True, desc="RD (10^-6 mm^2/s) in T2w space")
    label_confidence = File(exists=True, desc="multi-atlas label confidence JSON: adds the"
                            " label_agreement and label_pairwise_dice rows")


class _MetricsOutputSpec(TraitedSpec):
    tsv = File(exists=True, desc="long metrics table")
    json = File(exists=True, desc="data dictionary")


class RegionMetrics(SimpleInterface):
    """Per-region metrics TSV + JSON data dictionary for one subject."""

    input_spec = _MetricsInputSpec
    output_spec = _MetricsOutputSpec

    def _run_interface(self, runtime):
        from weeke_pipeline.imaging import metrics as m

        th = tuple(self.inputs.adc_thresholds)
        table = m.region_metrics(
            self.inputs.subject, self.inputs.labels, t1w=_opt(self.inputs.t1w),
            t2w=_opt(self.inputs.t2w), adc=_opt(self.inputs.adc),
            brain_mask=_opt(self.inputs.brain_mask), adc_thresholds=th,
            reference=self.inputs.reference,
            tensor={k: _opt(getattr(self.inputs, k)) for k in ("fa", "md", "ad", "rd")})
        extra = None
        if _opt(self.inputs.label_confidence):
            from weeke_pipeline.imaging import label_fusion as lf

            conf = json.loads(Path(self.inputs.label_confidence).read_text(encoding="utf-8"))
            table = lf.append_confidence_rows(table, conf)
            extra = lf.confidence_dictionary(conf)
        tsv, js = m.write_metrics(table, Path(runtime.cwd) / f"{self.inputs.subject}_metrics.tsv",
                                  adc_thresholds=th, reference=self.inputs.reference,
                                  extra_metrics=extra)
        self._results.update(tsv=str(tsv), json=str(js))
        return runtime


# --------------------------------------------------------------------------- QC
class _QCInputSpec(BaseInterfaceInputSpec):
    subject = traits.Str(mandatory=True)
    t2w = File(exists=True)
    labels = File(exists=True)
    brain_mask = File(exists=True)
    t1w = File(exists=True, desc="T1w in T2w space")
    adc = File(exists=True, desc="ADC in T2w space")
    # the registration reports one by one: a workflow connects them straight from the
    # registration nodes, so QC starts as soon as the last registration ends
    report_to_atlas = File(exists=True, desc="atlas registration JSON")
    report_t1w = File(exists=True, desc="T1w -> T2w registration JSON")
    report_adc = File(exists=True, desc="b0/ADC -> T2w registration JSON")
    error = traits.Str(desc="upstream error text: the report then shows it (status fail)")
    extra_figures = traits.Dict(traits.Str, File(exists=True),
                                desc="name -> PNG made by another step (e.g. FA colour map)")
    label_confidence = File(exists=True, desc="multi-atlas label confidence JSON (fusion)")
    atlas_notice = traits.Str("", usedefault=True,
                              desc="atlas notice (phantom atlas on real data): status fail")
    atlas_labels = traits.Either(File(exists=True), traits.List(File(exists=True)),
                                 desc="atlas dseg(s): coverage is judged on the regions they have")
    pma_weeks = traits.Float(desc="postmenstrual age at scan: expected brain volume")


class _QCOutputSpec(TraitedSpec):
    report = File(exists=True, desc="HTML page")
    json = File(exists=True)
    status = traits.Enum("pass", "warn", "fail")


class SubjectQC(SimpleInterface):
    """QC numbers, flag, figures and HTML report (written even for a failed subject)."""

    input_spec = _QCInputSpec
    output_spec = _QCOutputSpec

    def _run_interface(self, runtime):
        from weeke_pipeline.imaging import qc

        files = {}
        for key, trait in (("to_atlas", "report_to_atlas"), ("T1w", "report_t1w"),
                           ("ADC", "report_adc")):
            if _opt(getattr(self.inputs, trait)):
                files[key] = getattr(self.inputs, trait)
        regs = {k: json.loads(Path(v).read_text(encoding="utf-8")) for k, v in files.items()}
        res = qc.run_subject_qc(
            self.inputs.subject, runtime.cwd, t2w=_opt(self.inputs.t2w),
            labels=_opt(self.inputs.labels), brain_mask=_opt(self.inputs.brain_mask),
            t1w=_opt(self.inputs.t1w), adc=_opt(self.inputs.adc), registration=regs or None,
            error=_opt(self.inputs.error), extra_figures=_opt(self.inputs.extra_figures),
            notices=[self.inputs.atlas_notice] if self.inputs.atlas_notice else (),
            atlas_labels=_opt(self.inputs.atlas_labels), pma_weeks=_opt(self.inputs.pma_weeks),
            label_confidence=(json.loads(Path(self.inputs.label_confidence).read_text())
                              if _opt(self.inputs.label_confidence) else None))
        self._results.update(report=res.report, json=res.json, status=res.status)
        return runtime
