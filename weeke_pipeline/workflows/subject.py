"""One session's imaging workflow: anatomical registration, diffusion, region metrics, QC and
the outputs, each step its own workflow (:mod:`.anatomical`, :mod:`.diffusion`,
:mod:`.outputs`)."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from weeke_pipeline.interfaces.imaging import RegionMetrics, SubjectQC
from weeke_pipeline.workflows.anatomical import init_anat_reg_wf
from weeke_pipeline.workflows.diffusion import init_dwi_wf
from weeke_pipeline.workflows.multiatlas import AtlasFiles
from weeke_pipeline.workflows.nodes import MEM_GB
from weeke_pipeline.workflows.outputs import init_ds_subject_wf


def init_subject_wf(*, subject: str, session: str, atlas_t2w: str, atlas_brain_mask: str,
                    atlas_labels: str, derivatives_dir: str, run_config: str,
                    has_t1w: bool, has_dwi: bool, has_adc: bool, preset: str = "fast",
                    seed: int | None = None,
                    adc_thresholds: tuple[float, ...] = (800.0, 1000.0),
                    reference_tissue: str = "cerebellum", dti: bool = True,
                    atlas_label_table: str | None = None, atlas_notice: str = "",
                    atlases: list[AtlasFiles] | None = None, label_fusion: str = "jlf",
                    pma_weeks: float | None = None,
                    name: str = "subject_wf") -> pe.Workflow:
    """Build one session's workflow.

    Parameters
    ----------
    subject, session
        BIDS labels
    atlas_t2w, atlas_brain_mask, atlas_labels, atlas_label_table
        the atlas bundle's images and label table
    derivatives_dir, run_config
        where the outputs go, and the run configuration saved beside them
    has_t1w, has_dwi, has_adc
        which images the session has (the T2w is required)
    preset
        registration preset name or TOML path
    seed
        the registrations' random seed (default: the preset's)
    adc_thresholds, reference_tissue
        region metrics options (:mod:`weeke_pipeline.imaging.metrics`)
    dti
        fit the diffusion tensor when there is a DWI
    atlas_notice
        a notice for the QC report (the phantom atlas on real data: QC ``fail``;
        :mod:`weeke_pipeline.atlas.honesty`), empty for none
    pma_weeks
        postmenstrual age at scan: QC's expected brain volume (None: 36-48 weeks)
    atlases, label_fusion
        two or more atlases: multi-atlas segmentation, each registered by its own node and the
        labels fused (``jlf`` or ``majority``; :mod:`weeke_pipeline.workflows.multiatlas`);
        ``atlas_t2w``, ``atlas_brain_mask`` and ``atlas_labels`` are then not used. The
        per-region agreement between the atlases goes to the metrics, QC and the derivatives.
    name
        workflow name

    Inputs
    ------
    t2w, t1w, dwi, bval, bvec, adc
        BIDS raw files

    Outputs
    -------
    out_dir
        the session's derivatives folder
    qc_status
        ``pass``, ``warn`` or ``fail``
    """
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["t2w", "t1w", "dwi", "bval", "bvec", "adc"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=["out_dir", "qc_status"]),
                         name="outputnode")
    multi = bool(atlases) and len(atlases) > 1
    anat_wf = init_anat_reg_wf(atlas_t2w=atlas_t2w, atlas_brain_mask=atlas_brain_mask,
                               atlas_labels=atlas_labels, preset=preset, seed=seed,
                               has_t1w=has_t1w, atlases=atlases, label_fusion=label_fusion)
    metrics = pe.Node(RegionMetrics(subject=subject, adc_thresholds=list(adc_thresholds),
                                    reference=reference_tissue), name="metrics",
                      mem_gb=MEM_GB["metrics"])
    # QC judges label coverage on the regions the atlas (or any of the atlases) has
    qc = pe.Node(SubjectQC(subject=f"sub-{subject}_ses-{session}", atlas_notice=atlas_notice,
                           atlas_labels=[a.labels for a in atlases] if multi else atlas_labels),
                 name="qc", mem_gb=MEM_GB["qc"])
    if pma_weeks is not None:  # expected brain volume for the age (imaging.qc_anatomy)
        qc.inputs.pma_weeks = pma_weeks
    ds_wf = init_ds_subject_wf(derivatives_dir=derivatives_dir, subject=subject,
                               session=session, run_config=run_config,
                               atlas_label_table=atlas_label_table)
    wf.connect([
        (inputnode, anat_wf, [("t2w", "inputnode.t2w"), ("t1w", "inputnode.t1w")]),
        (inputnode, metrics, [("t2w", "t2w")]),
        (anat_wf, metrics, [("outputnode.labels", "labels"),
                            ("outputnode.brain_mask", "brain_mask")]),
        (inputnode, qc, [("t2w", "t2w")]),
        (anat_wf, qc, [("outputnode.labels", "labels"), ("outputnode.brain_mask", "brain_mask"),
                       ("outputnode.atlas_report", "report_to_atlas")]),
        (inputnode, ds_wf, [("t2w", "inputnode.t2w")]),
        (anat_wf, ds_wf, [("outputnode.labels", "inputnode.dseg"),
                          ("outputnode.brain_mask", "inputnode.brain_mask")]),
        (metrics, ds_wf, [("tsv", "inputnode.metrics_tsv"),
                          ("json", "inputnode.metrics_json")]),
        (qc, ds_wf, [("report", "inputnode.qc_report")]),
        (ds_wf, outputnode, [("outputnode.out_dir", "out_dir")]),
        (qc, outputnode, [("status", "qc_status")]),
    ])
    if multi:  # every atlas's registration kept; agreement into metrics, QC and outputs
        wf.connect([
            (anat_wf, ds_wf, [("outputnode.atlas_reports", "inputnode.atlas_reports"),
                              ("outputnode.atlas_transforms_each",
                               "inputnode.atlas_transforms_each"),
                              ("outputnode.label_confidence", "inputnode.label_confidence"),
                              ("outputnode.label_agreement", "inputnode.label_agreement")]),
            (anat_wf, metrics, [("outputnode.label_confidence", "label_confidence")]),
            (anat_wf, qc, [("outputnode.label_confidence", "label_confidence")]),
        ])
    else:
        wf.connect([
            (anat_wf, ds_wf, [("outputnode.atlas_report", "inputnode.atlas_report"),
                              ("outputnode.atlas_transforms", "inputnode.atlas_transforms")]),
        ])
    if has_t1w:
        wf.connect([
            (anat_wf, metrics, [("outputnode.t1w", "t1w")]),
            (anat_wf, qc, [("outputnode.t1w", "t1w"), ("outputnode.t1w_report", "report_t1w")]),
            (anat_wf, ds_wf, [("outputnode.t1w", "inputnode.t1w"),
                              ("outputnode.t1w_report", "inputnode.t1w_report"),
                              ("outputnode.t1w_transforms", "inputnode.t1w_transforms")]),
        ])
    if has_dwi or has_adc:
        dwi_wf = init_dwi_wf(has_dwi=has_dwi, has_adc=has_adc, dti=dti, preset=preset, seed=seed)
        wf.connect([
            (inputnode, dwi_wf, [("t2w", "inputnode.t2w"), ("dwi", "inputnode.dwi"),
                                 ("bval", "inputnode.bval"), ("bvec", "inputnode.bvec"),
                                 ("adc", "inputnode.adc")]),
            (anat_wf, dwi_wf, [("outputnode.brain_mask", "inputnode.brain_mask")]),
            (dwi_wf, qc, [("outputnode.adc_report", "report_adc")]),
            (dwi_wf, ds_wf, [("outputnode.adc_report", "inputnode.adc_report")]),
        ])
        if has_adc:
            wf.connect([
                (dwi_wf, metrics, [("outputnode.adc", "adc")]),
                (dwi_wf, qc, [("outputnode.adc", "adc")]),
                (dwi_wf, ds_wf, [("outputnode.adc", "inputnode.adc")]),
            ])
        if has_dwi:
            wf.connect([
                (dwi_wf, ds_wf, [("outputnode.b0", "inputnode.b0"),
                                 ("outputnode.b0_transforms", "inputnode.b0_transforms")]),
            ])
            if dti:
                wf.connect([
                    (dwi_wf, metrics, [("outputnode.fa", "fa"), ("outputnode.md", "md"),
                                       ("outputnode.ad", "ad"), ("outputnode.rd", "rd")]),
                    (dwi_wf, qc, [("outputnode.tensor_figures", "extra_figures")]),
                    (dwi_wf, ds_wf, [("outputnode.tensor_maps", "inputnode.tensor_maps"),
                                     ("outputnode.tensor_qc", "inputnode.tensor_qc")]),
                ])
    return wf
