"""The outputs of one session: BIDS-derivatives names under ``derivatives/weeke``."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from weeke_pipeline.interfaces.bids import DerivativesSink
from weeke_pipeline.workflows.nodes import dict_node


def init_ds_subject_wf(*, derivatives_dir: str, subject: str, session: str, run_config: str,
                       atlas_label_table: str | None = None,
                       name: str = "ds_subject_wf") -> pe.Workflow:
    """Write a session's results with their sidecars (:class:`~weeke_pipeline.interfaces.bids.
    DerivativesSink`, names from :mod:`weeke_pipeline.bids.names`); undefined inputs are not
    written.

    Parameters
    ----------
    derivatives_dir
        the pipeline's derivatives root (``OUTPUT/derivatives/weeke``)
    subject, session
        the BIDS labels
    run_config
        the run configuration (TOML text), saved as ``sub-<p>_ses-<s>_config.toml``
    atlas_label_table
        the atlas label table, saved beside the labels
    name
        workflow name

    Inputs
    ------
    t2w, t1w, adc, b0
        the images on the T2w grid
    dseg, brain_mask
        atlas labels and brain mask on the T2w grid
    metrics_tsv, metrics_json
        region metrics and their data dictionary
    qc_report
        the QC HTML page (its folder is copied whole)
    atlas_report, t1w_report, adc_report
        registration JSON of each step
    atlas_transforms, t1w_transforms, b0_transforms
        transform files of each step
    tensor_maps
        dict BIDS suffix -> tensor map on the T2w grid
    tensor_qc
        dict name -> QC JSON of the tensor fit
    atlas_reports, atlas_transforms_each
        multi-atlas: dicts ``to_atlas-<k>_<name>`` -> registration JSON / transform files
    label_confidence, label_agreement
        multi-atlas: per-region agreement JSON, voxel agreement map

    Outputs
    -------
    out_dir
        the session's derivatives folder
    """
    wf = pe.Workflow(name=name)
    fields = ["t2w", "t1w", "adc", "b0", "dseg", "brain_mask", "metrics_tsv", "metrics_json",
              "qc_report", "atlas_report", "t1w_report", "adc_report", "atlas_transforms",
              "t1w_transforms", "b0_transforms", "tensor_maps", "tensor_qc", "atlas_reports",
              "atlas_transforms_each", "label_confidence", "label_agreement"]
    inputnode = pe.Node(niu.IdentityInterface(fields=fields), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["out_dir"]), name="outputnode")
    reports = dict_node("reports", ["to_atlas", "atlases", "T1w", "ADC"])
    transforms = dict_node("transforms", ["to_atlas", "atlases", "T1w_to_T2w", "b0_to_T2w"])
    sink = pe.Node(DerivativesSink(derivatives_dir=derivatives_dir, subject=subject,
                                   session=session, run_config=run_config), name="sink")
    if atlas_label_table:
        sink.inputs.label_table = atlas_label_table
    wf.connect([
        (inputnode, sink, [("t2w", "t2w"), ("t1w", "t1w"), ("adc", "adc"), ("b0", "b0"),
                           ("dseg", "dseg"), ("brain_mask", "brain_mask"),
                           ("metrics_tsv", "metrics_tsv"), ("metrics_json", "metrics_json"),
                           ("qc_report", "qc_report"), ("tensor_maps", "extra_maps"),
                           ("tensor_qc", "extra_qc"), ("label_confidence", "label_confidence"),
                           ("label_agreement", "label_agreement")]),
        (inputnode, reports, [("atlas_report", "to_atlas"), ("atlas_reports", "atlases"),
                              ("t1w_report", "T1w"), ("adc_report", "ADC")]),
        (inputnode, transforms, [("atlas_transforms", "to_atlas"),
                                 ("atlas_transforms_each", "atlases"),
                                 ("t1w_transforms", "T1w_to_T2w"),
                                 ("b0_transforms", "b0_to_T2w")]),
        (reports, sink, [("out", "reports")]),
        (transforms, sink, [("out", "transforms")]),
        (sink, outputnode, [("out_dir", "out_dir")]),
    ])
    return wf
