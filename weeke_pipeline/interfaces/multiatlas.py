"""nipype wrappers of multi-atlas segmentation: one atlas propagated to the subject (its own
node, so the execution plugin runs the atlases in parallel) and the label fusion step
(:mod:`weeke_pipeline.imaging.label_fusion`)."""

from __future__ import annotations

import os

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from weeke_pipeline.interfaces.imaging import AtlasToSubject, _AtlasOutputSpec, _opt


class _PropagateOutputSpec(_AtlasOutputSpec):
    atlas_t2w = File(exists=True, desc="atlas T2w template on the subject T2w grid (linear)")


class PropagateAtlas(AtlasToSubject):
    """:class:`AtlasToSubject` plus the atlas T2w resampled onto the subject grid (the
    intensities joint label fusion compares with the subject's)."""

    output_spec = _PropagateOutputSpec

    def _run_interface(self, runtime):
        from weeke_pipeline.imaging import registration as reg

        runtime = super()._run_interface(runtime)
        out = os.path.join(runtime.cwd, "atlas_space-T2w_T2w.nii.gz")
        reg.apply_transforms(self.inputs.atlas_t2w, self.inputs.t2w,
                             self._results["inverse_transforms"],
                             self._results["inverse_invert"], out=out)
        self._results["atlas_t2w"] = out
        return runtime


class _FuseInputSpec(BaseInterfaceInputSpec):
    t2w = File(exists=True, mandatory=True, desc="subject T2w (the fusion target)")
    labels = InputMultiObject(File(exists=True), mandatory=True,
                              desc="each atlas's labels on the subject grid")
    atlas_t2w = InputMultiObject(File(exists=True), desc="each atlas's T2w on the subject grid"
                                 " (needed for jlf)")
    brain_masks = InputMultiObject(File(exists=True), desc="each atlas's brain mask on the"
                                   " subject grid (fused by majority)")
    atlas_names = traits.List(traits.Str, desc="atlas names, in the order of labels")
    method = traits.Enum("jlf", "majority", usedefault=True, desc="label fusion method")
    patch_radius = traits.Int(desc="JLF patch radius (voxels)")
    search_radius = traits.Int(desc="JLF search radius (voxels)")


class _FuseOutputSpec(TraitedSpec):
    labels = File(exists=True, desc="fused labels on the subject grid")
    brain_mask = File(exists=True, desc="brain mask: at least half of the atlases")
    agreement_map = File(exists=True, desc="fraction of atlases agreeing with the fused label")
    confidence = File(exists=True, desc="JSON: per-region agreement and pairwise Dice")


class FuseLabels(SimpleInterface):
    """Fuse the propagated atlas labels (joint label fusion or majority voting)."""

    input_spec = _FuseInputSpec
    output_spec = _FuseOutputSpec

    def _run_interface(self, runtime):
        from weeke_pipeline.atlas.regions import BY_INDEX
        from weeke_pipeline.imaging import label_fusion as lf

        kw = {}
        for key in ("patch_radius", "search_radius"):
            if _opt(getattr(self.inputs, key)) is not None:
                kw[key] = int(getattr(self.inputs, key))
        res = lf.fuse_files(
            self.inputs.t2w, list(self.inputs.labels), runtime.cwd,
            atlas_images=list(_opt(self.inputs.atlas_t2w) or []) or None,
            brain_masks=list(_opt(self.inputs.brain_masks) or []) or None,
            method=self.inputs.method, atlas_names=_opt(self.inputs.atlas_names) or None,
            region_names={k: r.name for k, r in BY_INDEX.items()}, **kw)
        self._results.update(labels=res.labels, brain_mask=res.brain_mask,
                             agreement_map=res.agreement_map, confidence=res.confidence)
        return runtime
