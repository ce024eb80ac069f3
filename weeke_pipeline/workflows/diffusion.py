"""Diffusion: the b=0 (or the ADC map) rigidly onto the T2w, the tensor fit and its maps."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from weeke_pipeline.interfaces.bids import ExtractB0, TensorMapsToT2w
from weeke_pipeline.interfaces.dti import DTIFit
from weeke_pipeline.interfaces.imaging import RegisterWithinSubject
from weeke_pipeline.workflows.nodes import MEM_GB, as_list, dict_node, first, seed_kwargs


def init_dwi_wf(*, has_dwi: bool, has_adc: bool, dti: bool = True, preset: str = "fast",
                seed: int | None = None, name: str = "dwi_wf") -> pe.Workflow:
    """Bring the session's diffusion data onto the T2w grid.

    With a DWI: the mean b=0 is registered rigidly to the T2w (within the atlas brain mask) and
    the scanner's ADC map, when there is one, is resampled with the same transform; with
    ``dti``, a tensor fit (dipy; ADC only under 6 directions, :mod:`weeke_pipeline.imaging.dti`)
    gives FA, MD, AD and RD, resampled the same way. Without a DWI, the ADC map itself is
    registered rigidly to the T2w.

    Parameters
    ----------
    has_dwi, has_adc
        whether the session has a DWI (with b-values and vectors) and an ADC map
    dti
        fit the diffusion tensor when there is a DWI
    preset
        registration preset name or TOML path
    seed
        the registrations' random seed (default: the preset's)
    name
        workflow name

    Inputs
    ------
    t2w
        the subject's T2w (reference grid)
    brain_mask
        the atlas brain mask on the T2w grid
    dwi, bval, bvec, adc
        BIDS raw diffusion files (those the session has)

    Outputs
    -------
    b0
        the mean b=0 on the T2w grid
    b0_transforms
        the b=0 -> T2w transform, as a one-element list
    adc
        the ADC map on the T2w grid
    adc_report
        registration JSON of the b=0 (or ADC) step
    fa, md, ad, rd
        tensor maps on the T2w grid
    tensor_maps
        dict BIDS suffix -> tensor map on the T2w grid (``FA``, ``MD``, ``AD``, ``RD``)
    tensor_figures
        dict name -> QC figure of the tensor fit (FA colour map, fit residual)
    tensor_qc
        dict ``dti`` -> QC JSON of the tensor fit
    """
    wf = pe.Workflow(name=name)
    inputnode = pe.Node(niu.IdentityInterface(
        fields=["t2w", "brain_mask", "dwi", "bval", "bvec", "adc"]), name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(fields=[
        "b0", "b0_transforms", "adc", "adc_report", "fa", "md", "ad", "rd", "tensor_maps",
        "tensor_figures", "tensor_qc"]), name="outputnode")
    if has_dwi:
        b0 = pe.Node(ExtractB0(), name="b0")
        b0_reg = pe.Node(RegisterWithinSubject(name="b0", preset=preset, **seed_kwargs(seed)),
                         name="b0_reg",
                         mem_gb=MEM_GB["rigid"])
        wf.connect([
            (inputnode, b0, [("dwi", "dwi"), ("bval", "bval")]),
            (inputnode, b0_reg, [("t2w", "t2w"), ("brain_mask", "brain_mask")]),
            (b0, b0_reg, [("out_file", "moving")]),
            (b0_reg, outputnode, [("warped", "b0"), ("report", "adc_report"),
                                  (("transform", as_list), "b0_transforms")]),
        ])
        if dti:
            tensor = pe.Node(DTIFit(prefix="dwi"), name="tensor", mem_gb=MEM_GB["tensor"])
            tensor_t2w = pe.Node(TensorMapsToT2w(), name="tensor_t2w")
            tensor_maps = dict_node("tensor_maps", ["FA", "MD", "AD", "RD"])
            tensor_figs = dict_node("tensor_figs", ["facolour", "fitresidual"])
            tensor_qc = dict_node("tensor_qc", ["dti"])
            wf.connect([
                (inputnode, tensor, [("dwi", "in_file"), ("bval", "in_bval"),
                                     ("bvec", "in_bvec")]),
                (inputnode, tensor_t2w, [("t2w", "t2w")]),
                (b0_reg, tensor_t2w, [("transform", "transform")]),
                (tensor, tensor_t2w, [("fa", "fa"), ("md", "md"), ("ad", "ad"), ("rd", "rd")]),
                (tensor_t2w, outputnode, [("fa", "fa"), ("md", "md"), ("ad", "ad"),
                                          ("rd", "rd")]),
                (tensor_t2w, tensor_maps, [("fa", "FA"), ("md", "MD"), ("ad", "AD"),
                                           ("rd", "RD")]),
                (tensor_maps, outputnode, [("out", "tensor_maps")]),
                (tensor, tensor_figs, [("fa_colour_png", "facolour"),
                                       ("residual_png", "fitresidual")]),
                (tensor_figs, outputnode, [("out", "tensor_figures")]),
                (tensor, tensor_qc, [("qc_json", "dti")]),
                (tensor_qc, outputnode, [("out", "tensor_qc")]),
            ])
        if has_adc:
            wf.connect([
                (inputnode, b0_reg, [(("adc", as_list), "also_resample")]),
                (b0_reg, outputnode, [(("resampled", first), "adc")]),
            ])
    elif has_adc:
        adc_reg = pe.Node(RegisterWithinSubject(name="ADC", preset=preset, **seed_kwargs(seed)),
                          name="adc_reg",
                          mem_gb=MEM_GB["rigid"])
        wf.connect([
            (inputnode, adc_reg, [("t2w", "t2w"), ("adc", "moving"),
                                  ("brain_mask", "brain_mask")]),
            (adc_reg, outputnode, [("warped", "adc"), ("report", "adc_report")]),
        ])
    return wf
