"""The per-subject imaging workflow: T2w to atlas, T1w and DWI/ADC to T2w, metrics, QC, sink."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from weeke_pipeline.interfaces.bids import DerivativesSink, ExtractB0, TensorMapsToT2w
from weeke_pipeline.interfaces.dti import DTIFit
from weeke_pipeline.interfaces.imaging import (
    AtlasToSubject,
    RegionMetrics,
    RegisterWithinSubject,
    SubjectQC,
)
from weeke_pipeline.workflows.multiatlas import AtlasFiles, init_multiatlas_wf

#: expected peak memory (GB) of the heavy nodes' processes, for MultiProc's scheduling
MEM_GB = {"atlas_reg": 0.6, "rigid": 0.5, "tensor": 0.5, "metrics": 0.4, "qc": 0.4}


def _collect(**kwargs):
    """Dict of the defined keyword arguments (a Function node's body)."""
    from nipype.interfaces.base import isdefined

    out = {}
    for k, v in kwargs.items():
        if v is None or not isdefined(v):
            continue
        if isinstance(v, dict):  # several entries at once (e.g. one per atlas)
            out.update(v)
        else:
            out[k] = v
    return out


def _dict_node(name: str, fields: list[str]) -> pe.Node:
    # a dict of paths: run in the scheduler's process (no round trip through a worker)
    node = pe.Node(niu.Function(input_names=fields, output_names=["out"], function=_collect),
                   name=name, run_without_submitting=True)
    for f in fields:
        setattr(node.inputs, f, None)
    return node


def init_subject_wf(*, subject: str, session: str, atlas_t2w: str, atlas_brain_mask: str,
                    atlas_labels: str, derivatives_dir: str, run_config: str,
                    has_t1w: bool, has_dwi: bool, has_adc: bool, preset: str = "fast",
                    adc_thresholds: tuple[float, ...] = (800.0, 1000.0),
                    reference_tissue: str = "cerebellum", dti: bool = True,
                    atlas_label_table: str | None = None,
                    atlases: list[AtlasFiles] | None = None, label_fusion: str = "jlf",
                    name: str = "subject_wf") -> pe.Workflow:
    """Build one subject's workflow.

    With a DWI and ``dti``, a tensor fit (dipy; ADC only when under 6 directions) gives FA, MD,
    AD and RD, rigidly resampled onto the T2w with the b=0 -> T2w transform.

    With two or more ``atlases`` (multi-atlas segmentation), each is registered by its own
    node and their labels are fused (``label_fusion``: ``jlf`` or ``majority``;
    :func:`~weeke_pipeline.workflows.multiatlas.init_multiatlas_wf`); ``atlas_t2w``,
    ``atlas_brain_mask`` and ``atlas_labels`` are then ignored. The per-region agreement
    between atlases goes into the metrics, QC and the derivatives.

    inputnode: ``t2w``, ``t1w``, ``dwi``, ``bval``, ``bvec``, ``adc`` (BIDS raw files);
    outputnode: ``out_dir`` (derivatives folder), ``qc_status``.
    """
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["t2w", "t1w", "dwi", "bval", "bvec", "adc"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["out_dir", "qc_status"]),
                         name="outputnode")

    # MultiProc resource hints: mem_gb = peak RSS measured on a 1 mm subject (benchmarks/
    # bench_pipeline.py), so a memory-limited run (plugin_args memory_gb) packs nodes safely.
    # n_procs stays 1: a registration uses ITK's threads (ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS),
    # but the atlas registration alone keeps only ~1.2 of 2 cores busy, so the tensor fit runs
    # beside it on the spare core instead of waiting (measured: it then costs no wall time).
    multi = bool(atlases) and len(atlases) > 1
    if multi:
        atlas_reg = init_multiatlas_wf(atlases=list(atlases), preset=preset,
                                       label_fusion=label_fusion, name="atlas_reg")
        o = "outputnode."  # the sub-workflow's outputs
    else:
        if atlases:
            atlas_t2w, atlas_brain_mask = atlases[0].t2w, atlases[0].brain_mask
            atlas_labels = atlases[0].labels
        atlas_reg = pe.Node(AtlasToSubject(atlas_t2w=atlas_t2w,
                                           atlas_brain_mask=atlas_brain_mask,
                                           atlas_labels=atlas_labels, preset=preset),
                            name="atlas_reg", mem_gb=MEM_GB["atlas_reg"])
        o = ""
    metrics = pe.Node(RegionMetrics(subject=subject, adc_thresholds=list(adc_thresholds),
                                    reference=reference_tissue), name="metrics",
                      mem_gb=MEM_GB["metrics"])
    qc = pe.Node(SubjectQC(subject=f"sub-{subject}_ses-{session}"), name="qc",
                 mem_gb=MEM_GB["qc"])
    reports = _dict_node("reports", ["to_atlas", "atlases", "T1w", "ADC"])
    transforms = _dict_node("transforms", ["to_atlas", "atlases", "T1w_to_T2w", "b0_to_T2w"])
    sink = pe.Node(DerivativesSink(derivatives_dir=derivatives_dir, subject=subject,
                                   session=session, run_config=run_config), name="sink")
    if atlas_label_table:
        sink.inputs.label_table = atlas_label_table
    wf.connect([
        (inputnode, atlas_reg, [("t2w", ("inputnode." if multi else "") + "t2w")]),
        (inputnode, metrics, [("t2w", "t2w")]),
        (atlas_reg, metrics, [(o + "labels", "labels"), (o + "brain_mask", "brain_mask")]),
        (inputnode, qc, [("t2w", "t2w")]),
        (atlas_reg, qc, [(o + "labels", "labels"), (o + "brain_mask", "brain_mask")]),
        (atlas_reg, qc, [(o + "report", "report_to_atlas")]),
        (inputnode, sink, [("t2w", "t2w")]),
        (atlas_reg, sink, [(o + "labels", "dseg"), (o + "brain_mask", "brain_mask")]),
        (metrics, sink, [("tsv", "metrics_tsv"), ("json", "metrics_json")]),
        (qc, sink, [("report", "qc_report")]),
        (reports, sink, [("out", "reports")]),
        (transforms, sink, [("out", "transforms")]),
        (sink, outputnode, [("out_dir", "out_dir")]),
        (qc, outputnode, [("status", "qc_status")]),
    ])
    if multi:
        wf.connect([
            (atlas_reg, reports, [("outputnode.reports", "atlases")]),
            (atlas_reg, transforms, [("outputnode.transforms", "atlases")]),
            (atlas_reg, metrics, [("outputnode.confidence", "label_confidence")]),
            (atlas_reg, qc, [("outputnode.confidence", "label_confidence")]),
            (atlas_reg, sink, [("outputnode.confidence", "label_confidence"),
                               ("outputnode.agreement_map", "label_agreement")]),
        ])
    else:
        wf.connect([
            (atlas_reg, reports, [("report", "to_atlas")]),
            (atlas_reg, transforms, [("forward_transforms", "to_atlas")]),
        ])
    if has_t1w:
        t1w_reg = pe.Node(RegisterWithinSubject(name="T1w", preset=preset), name="t1w_reg",
                          mem_gb=MEM_GB["rigid"])
        wf.connect([
            (inputnode, t1w_reg, [("t2w", "t2w"), ("t1w", "moving")]),
            (atlas_reg, t1w_reg, [(o + "brain_mask", "brain_mask")]),
            (t1w_reg, metrics, [("warped", "t1w")]),
            (t1w_reg, qc, [("warped", "t1w"), ("report", "report_t1w")]),
            (t1w_reg, sink, [("warped", "t1w")]),
            (t1w_reg, reports, [("report", "T1w")]),
            (t1w_reg, transforms, [(("transform", _as_list), "T1w_to_T2w")]),
        ])
    if has_dwi:
        b0 = pe.Node(ExtractB0(), name="b0")
        b0_reg = pe.Node(RegisterWithinSubject(name="b0", preset=preset), name="b0_reg",
                         mem_gb=MEM_GB["rigid"])
        wf.connect([
            (inputnode, b0, [("dwi", "dwi"), ("bval", "bval")]),
            (inputnode, b0_reg, [("t2w", "t2w")]),
            (b0, b0_reg, [("out_file", "moving")]),
            (atlas_reg, b0_reg, [(o + "brain_mask", "brain_mask")]),
            (b0_reg, sink, [("warped", "b0")]),
            (b0_reg, reports, [("report", "ADC")]),
            (b0_reg, qc, [("report", "report_adc")]),
            (b0_reg, transforms, [(("transform", _as_list), "b0_to_T2w")]),
        ])
        if dti:
            tensor = pe.Node(DTIFit(prefix="dwi"), name="tensor", mem_gb=MEM_GB["tensor"])
            tensor_t2w = pe.Node(TensorMapsToT2w(), name="tensor_t2w")
            tensor_maps = _dict_node("tensor_maps", ["FA", "MD", "AD", "RD"])
            tensor_figs = _dict_node("tensor_figs", ["facolour", "fitresidual"])
            tensor_qc = _dict_node("tensor_qc", ["dti"])
            wf.connect([
                (inputnode, tensor, [("dwi", "in_file"), ("bval", "in_bval"),
                                     ("bvec", "in_bvec")]),
                (inputnode, tensor_t2w, [("t2w", "t2w")]),
                (b0_reg, tensor_t2w, [("transform", "transform")]),
                (tensor, tensor_t2w, [("fa", "fa"), ("md", "md"), ("ad", "ad"), ("rd", "rd")]),
                (tensor_t2w, metrics, [("fa", "fa"), ("md", "md"), ("ad", "ad"), ("rd", "rd")]),
                (tensor_t2w, tensor_maps, [("fa", "FA"), ("md", "MD"), ("ad", "AD"),
                                           ("rd", "RD")]),
                (tensor_maps, sink, [("out", "extra_maps")]),
                (tensor, tensor_figs, [("fa_colour_png", "facolour"),
                                       ("residual_png", "fitresidual")]),
                (tensor_figs, qc, [("out", "extra_figures")]),
                (tensor, tensor_qc, [("qc_json", "dti")]),
                (tensor_qc, sink, [("out", "extra_qc")]),
            ])
        if has_adc:
            wf.connect([
                (inputnode, b0_reg, [(("adc", _as_list), "also_resample")]),
                (b0_reg, metrics, [(("resampled", _first), "adc")]),
                (b0_reg, qc, [(("resampled", _first), "adc")]),
                (b0_reg, sink, [(("resampled", _first), "adc")]),
            ])
    elif has_adc:
        adc_reg = pe.Node(RegisterWithinSubject(name="ADC", preset=preset), name="adc_reg",
                          mem_gb=MEM_GB["rigid"])
        wf.connect([
            (inputnode, adc_reg, [("t2w", "t2w"), ("adc", "moving")]),
            (atlas_reg, adc_reg, [(o + "brain_mask", "brain_mask")]),
            (adc_reg, metrics, [("warped", "adc")]),
            (adc_reg, qc, [("warped", "adc")]),
            (adc_reg, sink, [("warped", "adc")]),
            (adc_reg, reports, [("report", "ADC")]),
            (adc_reg, qc, [("report", "report_adc")]),
        ])
    return wf


def _as_list(value):
    return [value]





def _first(values):
    return values[0]
