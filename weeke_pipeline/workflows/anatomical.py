"""Anatomical registration: the atlas onto the subject's T2w, the T1w rigidly onto the T2w."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from weeke_pipeline.interfaces.imaging import AtlasToSubject, RegisterWithinSubject
from weeke_pipeline.workflows.multiatlas import AtlasFiles, init_multiatlas_wf
from weeke_pipeline.workflows.nodes import MEM_GB, as_list, seed_kwargs


def init_anat_reg_wf(*, atlas_t2w: str, atlas_brain_mask: str, atlas_labels: str,
                     preset: str = "fast", seed: int | None = None, has_t1w: bool = False,
                     atlases: list[AtlasFiles] | None = None, label_fusion: str = "jlf",
                     name: str = "anat_reg_wf") -> pe.Workflow:
    """Register the atlas to the subject's T2w (the reference space) and the T1w to the T2w.

    The atlas step is antspyx SyN with the preset's parameters (:mod:`weeke_pipeline.imaging.
    registration`); the T1w step is rigid, restricted to the atlas brain mask.

    Parameters
    ----------
    atlas_t2w, atlas_brain_mask, atlas_labels
        the atlas bundle's T2w template, brain mask and label image
    preset
        registration preset name or TOML path
    seed
        the registrations' random seed (default: the preset's)
    has_t1w
        whether the session has a T1w (else no T1w node and its outputs stay undefined)
    atlases, label_fusion
        two or more atlases: multi-atlas segmentation (the sub-workflow ``atlas_reg`` of
        :func:`~weeke_pipeline.workflows.multiatlas.init_multiatlas_wf`: one registration node
        per atlas, then label fusion, ``jlf`` or ``majority``) instead of the single node
    name
        workflow name

    Inputs
    ------
    t2w
        the subject's T2w (BIDS raw)
    t1w
        the subject's T1w (BIDS raw; used when ``has_t1w``)

    Outputs
    -------
    labels, brain_mask
        atlas labels and brain mask on the T2w grid
    atlas_report
        registration JSON of the atlas step (similarity before/after, run time; with several
        atlases: the first one's)
    atlas_transforms
        the atlas -> T2w transform files, in application order (several atlases: the first's)
    atlas_reports, atlas_transforms_each
        several atlases: dicts ``to_atlas-<k>_<name>`` -> registration JSON / transform files
    label_confidence, label_agreement
        several atlases: per-region agreement JSON and the voxel agreement map
    t1w
        the T1w resampled on the T2w grid
    t1w_report
        registration JSON of the T1w step
    t1w_transforms
        the T1w -> T2w transform, as a one-element list
    """
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["t2w", "t1w"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=[
        "labels", "brain_mask", "atlas_report", "atlas_transforms", "t1w", "t1w_report",
        "t1w_transforms", "atlas_reports", "atlas_transforms_each", "label_confidence",
        "label_agreement"]), name="outputnode")
    o = ""  # where atlas_reg's outputs are: the node itself, or the multi-atlas outputnode
    if atlases and len(atlases) > 1:
        atlas_reg = init_multiatlas_wf(atlases=list(atlases), preset=preset,
                                       label_fusion=label_fusion, seed=seed,
                                       name="atlas_reg")
        o = "outputnode."
        wf.connect([
            (inputnode, atlas_reg, [("t2w", "inputnode.t2w")]),
            (atlas_reg, outputnode, [("outputnode.reports", "atlas_reports"),
                                     ("outputnode.transforms", "atlas_transforms_each"),
                                     ("outputnode.confidence", "label_confidence"),
                                     ("outputnode.agreement_map", "label_agreement")]),
        ])
    else:
        if atlases:
            atlas_t2w, atlas_brain_mask = atlases[0].t2w, atlases[0].brain_mask
            atlas_labels = atlases[0].labels
        atlas_reg = pe.Node(AtlasToSubject(atlas_t2w=atlas_t2w,
                                           atlas_brain_mask=atlas_brain_mask,
                                           atlas_labels=atlas_labels, preset=preset,
                                           **seed_kwargs(seed)),
                            name="atlas_reg", mem_gb=MEM_GB["atlas_reg"])
        wf.connect([(inputnode, atlas_reg, [("t2w", "t2w")])])
    wf.connect([
        (atlas_reg, outputnode, [(o + "labels", "labels"), (o + "brain_mask", "brain_mask"),
                                 (o + "report", "atlas_report"),
                                 (o + "forward_transforms", "atlas_transforms")]),
    ])
    if has_t1w:
        t1w_reg = pe.Node(RegisterWithinSubject(name="T1w", preset=preset, **seed_kwargs(seed)),
                          name="t1w_reg",
                          mem_gb=MEM_GB["rigid"])
        wf.connect([
            (inputnode, t1w_reg, [("t2w", "t2w"), ("t1w", "moving")]),
            (atlas_reg, t1w_reg, [(o + "brain_mask", "brain_mask")]),
            (t1w_reg, outputnode, [("warped", "t1w"), ("report", "t1w_report"),
                                   (("transform", as_list), "t1w_transforms")]),
        ])
    return wf
