"""Multi-atlas segmentation workflow: each atlas registered to the subject's T2w by its own
node (``atlas_reg_<k>_<name>``: MultiProc and the cluster plugins run them in parallel), then
one ``fusion`` node (joint label fusion or majority voting,
:mod:`weeke_pipeline.imaging.label_fusion`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from weeke_pipeline.interfaces.multiatlas import FuseLabels, PropagateAtlas
from weeke_pipeline.workflows.nodes import seed_kwargs

#: peak memory (GB) of one atlas registration and of the fusion (5 atlases, 1 mm subject)
MEM_GB = {"atlas_reg": 0.6, "fusion": 0.8}


@dataclass(frozen=True)
class AtlasFiles:
    """The files of one atlas bundle the workflow needs."""

    name: str
    t2w: str
    brain_mask: str
    labels: str


def node_names(atlases: list[AtlasFiles]) -> list[str]:
    """Readable, unique node-name parts: ``01_dhcp_vol_40w``, ``02_...`` (letters, digits, _)."""
    return [f"{k + 1:02d}_{re.sub(r'[^A-Za-z0-9]+', '_', a.name).strip('_')[:40]}"
            for k, a in enumerate(atlases)]


def _as_dict(names: list[str], files: list[str]) -> dict[str, str]:
    return dict(zip(names, files, strict=True))


def _as_list_dict(names: list[str], files: list[list[str]]) -> dict[str, list[str]]:
    return dict(zip(names, files, strict=True))


def init_multiatlas_wf(*, atlases: list[AtlasFiles], preset: str = "fast",
                       label_fusion: str = "jlf", patch_radius: int | None = None,
                       search_radius: int | None = None, seed: int | None = None,
                       name: str = "multiatlas_wf") -> pe.Workflow:
    """Propagate ``atlases`` (two or more) to the subject and fuse their labels.

    inputnode: ``t2w``. outputnode: ``labels``, ``brain_mask`` (fused), ``report`` (the first
    atlas's registration JSON, for QC), ``forward_transforms`` (the first atlas's),
    ``reports`` (``to_atlas-<k>_<name>`` -> registration JSON), ``transforms`` (same keys ->
    transform files), ``confidence`` (label-confidence JSON), ``agreement_map``.
    """
    if len(atlases) < 2:
        raise ValueError("init_multiatlas_wf needs two or more atlases (one atlas: the "
                         "single-atlas node)")
    if label_fusion not in ("jlf", "majority"):
        raise ValueError(f"label fusion {label_fusion!r} not 'jlf' or 'majority'")
    n = len(atlases)
    parts = node_names(atlases)
    keys = [f"to_atlas-{p}" for p in parts]
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(fields=["t2w"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=[
        "labels", "brain_mask", "report", "forward_transforms", "reports", "transforms",
        "confidence", "agreement_map"]), name="outputnode")
    merges = {f: pe.Node(niu.Merge(n), name=f"merge_{f}", run_without_submitting=True)
              for f in ("labels", "atlas_t2w", "brain_mask", "report", "transforms")}
    fusion = pe.Node(FuseLabels(method=label_fusion, atlas_names=[a.name for a in atlases]),
                     name="fusion", mem_gb=MEM_GB["fusion"])
    if patch_radius is not None:
        fusion.inputs.patch_radius = patch_radius
    if search_radius is not None:
        fusion.inputs.search_radius = search_radius
    reports = pe.Node(niu.Function(input_names=["names", "files"], output_names=["out"],
                                   function=_as_dict), name="reports",
                      run_without_submitting=True)
    reports.inputs.names = keys
    transforms = pe.Node(niu.Function(input_names=["names", "files"], output_names=["out"],
                                      function=_as_list_dict), name="transforms",
                         run_without_submitting=True)
    transforms.inputs.names = keys
    for k, (atlas, part) in enumerate(zip(atlases, parts, strict=True)):
        reg = pe.Node(PropagateAtlas(atlas_t2w=atlas.t2w, atlas_brain_mask=atlas.brain_mask,
                                     atlas_labels=atlas.labels, preset=preset,
                                     **seed_kwargs(seed)),
                      name=f"atlas_reg_{part}", mem_gb=MEM_GB["atlas_reg"])
        wf.connect([
            (inputnode, reg, [("t2w", "t2w")]),
            (reg, merges["labels"], [("labels", f"in{k + 1}")]),
            (reg, merges["atlas_t2w"], [("atlas_t2w", f"in{k + 1}")]),
            (reg, merges["brain_mask"], [("brain_mask", f"in{k + 1}")]),
            (reg, merges["report"], [("report", f"in{k + 1}")]),
            (reg, merges["transforms"], [(("forward_transforms", _wrap), f"in{k + 1}")]),
        ])
        if k == 0:
            wf.connect([(reg, outputnode, [("report", "report"),
                                           ("forward_transforms", "forward_transforms")])])
    wf.connect([
        (inputnode, fusion, [("t2w", "t2w")]),
        (merges["labels"], fusion, [("out", "labels")]),
        (merges["brain_mask"], fusion, [("out", "brain_masks")]),
        (merges["report"], reports, [("out", "files")]),
        (merges["transforms"], transforms, [("out", "files")]),
        (fusion, outputnode, [("labels", "labels"), ("brain_mask", "brain_mask"),
                              ("confidence", "confidence"),
                              ("agreement_map", "agreement_map")]),
        (reports, outputnode, [("out", "reports")]),
        (transforms, outputnode, [("out", "transforms")]),
    ])
    if label_fusion == "jlf":
        wf.connect([(merges["atlas_t2w"], fusion, [("out", "atlas_t2w")])])
    return wf


def _wrap(value):
    """A list of transforms as one item of a Merge (which would otherwise flatten it)."""
    return [value]
