"""Classify a series as t1w, t2w, dwi, adc, swi, localizer or other from header evidence.

The rules are tried in this order; the first that fires gives the class, and every fact used is
recorded in the evidence string (shown in the series table so a technician can check it):

1. non-MR modality -> other.
2. localizer: ImageType LOCALIZER/SCOUT, or several orthogonal orientations in one short series.
3. derived diffusion maps: ImageType/FrameType token ``ADC`` (Siemens, GE, Philips, Canon) -> adc;
   FA, EXP, eADC, ColFA, TENSOR -> other; TRACEW -> dwi.
4. dwi: a b-value above 50 s/mm^2 in any file or frame, read from the standard Diffusion b-value
   (0018,9087) -- top level or in the enhanced MR Diffusion functional group -- or from the vendor
   private tags: Siemens (0019,100C) / CSA ``B_value``, GE (0043,1039), Philips (2001,1003),
   UIH (0065,1009); or ImageType/FrameType DIFFUSION with directional frames; or an EPI
   (ScanningSequence EP) whose description names diffusion (a DWI whose b-values were lost:
   converted, warned about, not used for ADC/DTI).
5. swi: ImageType SWI / MNIP / SWIP / SWAN; or a 3D gradient echo, TE >= 15 ms, phase image.
6. t1w / t2w from timing (TE, TR, TI in ms; enhanced objects: MR Echo, MR Timing and MR Modifier
   functional groups): inversion recovery with TI < 1500 ms and TE < 40 ms -> t1w (MPRAGE,
   neonatal IR-TSE); TI >= 1500 ms and TE >= 60 ms -> other (FLAIR); TE >= 60 ms and TR >= 1500 ms
   -> t2w; TE <= 30 ms and TR <= 1000 ms -> t1w; TE < 40 ms and TR >= 1500 ms -> other (PD).
7. last resort, the series description / protocol name (keywords; evidence says so).
8. otherwise other.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from weeke_pipeline.ingest.discover import Series

CLASSES = ("t1w", "t2w", "dwi", "adc", "swi", "localizer", "other")
#: b-values at or below this (s/mm^2) count as b=0 (Philips stores 0.001..0.004, UIH 1.25)
B0_MAX = 50.0


@dataclass
class Features:
    """Header facts of one series that the classifier and the series table use."""

    modality: str = ""
    manufacturer: str = ""
    image_type: set[str] = field(default_factory=set)
    scanning_sequence: set[str] = field(default_factory=set)
    sequence_variant: set[str] = field(default_factory=set)
    sequence_name: str = ""
    acquisition_type: str = ""
    te: float | None = None
    tr: float | None = None
    ti: float | None = None
    inversion_recovery: bool = False
    bvalues: list[float] = field(default_factory=list)
    b_source: str = ""
    directionality: set[str] = field(default_factory=set)
    n_files: int = 0
    n_frames: int = 0
    n_orientations: int = 1
    rows: int = 0
    columns: int = 0
    voxel_size: tuple[float, float, float] | None = None
    description: str = ""


@dataclass
class Classification:
    label: str
    evidence: str


# --------------------------------------------------------------------------- header access
def _seq_items(ds: Dataset, keyword: str) -> list[Dataset]:
    seq = ds.get(keyword)
    return list(seq) if seq else []


def _functional(ds: Dataset, frame: Dataset | None, macro: str) -> Dataset | None:
    """An item of a functional-group macro, per-frame first, then shared."""
    for holder in (frame, *(_seq_items(ds, "SharedFunctionalGroupsSequence")[:1])):
        if holder is not None and macro in holder and len(holder[macro].value):
            return holder[macro].value[0]
    return None


def _frames(ds: Dataset) -> list[Dataset | None]:
    pf = _seq_items(ds, "PerFrameFunctionalGroupsSequence")
    return pf if pf else [None]


def _float(value: object) -> float | None:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _private(ds: Dataset, group: int, offset: int, creator: str) -> object | None:
    try:
        return ds.get_private_item(group, offset, creator).value
    except (KeyError, ValueError):
        return None


def _tokens(value: object) -> set[str]:
    if value is None:
        return set()
    seq = hasattr(value, "__iter__") and not isinstance(value, str | bytes)
    items = value if seq else [value]
    return {str(v).strip().upper() for v in items if str(v).strip()}


def _siemens_csa_b(ds: Dataset) -> float | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from nibabel.nicom import csareader

        hdr = csareader.get_csa_header(ds, "image")
        return _float(csareader.get_b_value(hdr)) if hdr else None
    except Exception:  # CSA parsing is best effort; other sources are tried first
        return None


def bvalues_of(ds: Dataset) -> tuple[list[float], str]:
    """b-values (s/mm^2) of every frame of one object, and the tag they were read from."""
    frames = _frames(ds)
    if frames != [None]:
        vals = []
        for fr in frames:
            item = _functional(ds, fr, "MRDiffusionSequence")
            b = _float(item.get("DiffusionBValue")) if item is not None else None
            if b is not None:
                vals.append(b)
        if vals:
            return vals, "MRDiffusionSequence DiffusionBValue (0018,9087)"
    candidates = (
        (lambda: ds.get("DiffusionBValue"), "DiffusionBValue (0018,9087)"),
        (lambda: _private(ds, 0x0019, 0x0C, "SIEMENS MR HEADER"), "Siemens B_value (0019,100C)"),
        (lambda: _private(ds, 0x2001, 0x03, "Philips Imaging DD 001"), "Philips (2001,1003)"),
        (lambda: _ge_b(ds), "GE slop_int_6 (0043,1039)"),
        (lambda: _private(ds, 0x0065, 0x09, "Image Private Header"), "UIH (0065,1009)"),
        (lambda: _siemens_csa_b(ds), "Siemens CSA B_value"),
    )
    for get, name in candidates:
        b = _float(get())
        if b is not None:
            return [b], name
    return [], ""


def _ge_b(ds: Dataset) -> float | None:
    v = _private(ds, 0x0043, 0x39, "GEMS_PARM_01")
    if v is None:
        return None
    first = _float(v[0] if isinstance(v, list | tuple) or (hasattr(v, "__getitem__") and not
                   isinstance(v, str | bytes)) else v)
    return None if first is None else first % 100000  # GE adds 10^9 flags to the b-value


def _timing(ds: Dataset) -> tuple[float | None, float | None, float | None, bool]:
    te, tr, ti = (_float(ds.get(k)) for k in ("EchoTime", "RepetitionTime", "InversionTime"))
    ir = "IR" in _tokens(ds.get("ScanningSequence"))
    fr = _frames(ds)[0]
    echo = _functional(ds, fr, "MREchoSequence")
    if te is None and echo is not None:
        te = _float(echo.get("EffectiveEchoTime"))
    timing = _functional(ds, fr, "MRTimingAndRelatedParametersSequence")
    if tr is None and timing is not None:
        tr = _float(timing.get("RepetitionTime"))
    mod = _functional(ds, fr, "MRModifierSequence")
    if mod is not None:
        ir = ir or str(mod.get("InversionRecovery", "")).upper() == "YES"
        if ti is None and mod.get("InversionTimes") is not None:
            tis = mod.InversionTimes
            ti = _float(tis[0] if hasattr(tis, "__getitem__") and not isinstance(tis, str) else tis)
    if ti is not None and ti > 0:
        ir = True
    return te, tr, ti, ir


def _frame_types(ds: Dataset) -> Iterator[set[str]]:
    yield _tokens(ds.get("ImageType"))
    frames = _frames(ds)
    for fr in frames[:1] + frames[-1:]:
        item = _functional(ds, fr, "MRImageFrameTypeSequence")
        if item is not None:
            yield _tokens(item.get("FrameType"))


def _orientation(ds: Dataset) -> tuple[int, ...] | None:
    iop = ds.get("ImageOrientationPatient")
    if iop is None:
        item = _functional(ds, _frames(ds)[0], "PlaneOrientationSequence")
        iop = item.get("ImageOrientationPatient") if item is not None else None
    if iop is None or len(iop) != 6:
        return None
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = np.cross(row, col)
    return (int(np.argmax(np.abs(normal))),)


def _voxel(ds: Dataset) -> tuple[float, float, float] | None:
    ps, th = ds.get("PixelSpacing"), ds.get("SpacingBetweenSlices") or ds.get("SliceThickness")
    if ps is None:
        item = _functional(ds, _frames(ds)[0], "PixelMeasuresSequence")
        if item is not None:
            ps, th = item.get("PixelSpacing"), item.get("SpacingBetweenSlices") or item.get(
                "SliceThickness")
    if ps is None or len(ps) != 2:
        return None
    return (round(float(ps[1]), 3), round(float(ps[0]), 3), round(float(th or 0), 3))


def extract_features(headers: Iterable[Dataset]) -> Features:
    """Collect the classifier's evidence from the headers of one series."""
    headers = list(headers)
    f = Features(n_files=len(headers))
    first = headers[0]
    f.modality = str(first.get("Modality", ""))
    f.manufacturer = str(first.get("Manufacturer", ""))
    f.sequence_name = str(first.get("SequenceName") or first.get("PulseSequenceName") or "")
    f.acquisition_type = str(first.get("MRAcquisitionType", ""))
    f.description = " ".join(str(first.get(k, "")) for k in ("SeriesDescription", "ProtocolName"))
    f.rows, f.columns = int(first.get("Rows", 0) or 0), int(first.get("Columns", 0) or 0)
    f.voxel_size = _voxel(first)
    f.te, f.tr, f.ti, f.inversion_recovery = _timing(first)
    orients = set()
    for ds in headers:
        for tokens in _frame_types(ds):
            f.image_type |= tokens
        f.scanning_sequence |= _tokens(ds.get("ScanningSequence"))
        f.sequence_variant |= _tokens(ds.get("SequenceVariant"))
        f.n_frames += int(ds.get("NumberOfFrames", 1) or 1)
        vals, src = bvalues_of(ds)
        f.bvalues.extend(vals)
        f.b_source = f.b_source or src
        for fr in _frames(ds)[:1] + _frames(ds)[-1:]:
            item = _functional(ds, fr, "MRDiffusionSequence")
            if item is not None and item.get("DiffusionDirectionality"):
                f.directionality.add(str(item.DiffusionDirectionality).upper())
        o = _orientation(ds)
        if o is not None:
            orients.add(o)
    f.n_orientations = max(1, len(orients))
    return f


def unique_bvalues(bvalues: Iterable[float]) -> list[float]:
    """Distinct b-values (rounded to 0.01 s/mm^2), sorted."""
    return sorted({round(float(b), 2) for b in bvalues})


# --------------------------------------------------------------------------- rules
_DESC_RULES = (
    (r"loc|scout|survey|3.?pl|aahead", "localizer"),
    (r"\badc\b|apparent", "adc"),
    (r"dwi|dti|diff|tensor|\bb\d{3,4}", "dwi"),
    (r"swi|swan|venobold|susc", "swi"),
    (r"flair", "other"),
    (r"t2|tse.*t2|haste|space|cube", "t2w"),
    (r"t1|mprage|tfl|spgr|bravo|fspgr|mp2rage|3d.?ffe", "t1w"),
)
_DERIVED_OTHER = {"FA", "EXP", "EADC", "COLFA", "TENSOR", "FA_COLOR"}


def _fmt(v: float | None) -> str:
    return "NA" if v is None else f"{v:g}"


def classify_features(f: Features) -> Classification:
    """Apply the rules of the module docstring to the features of one series."""
    it = f.image_type
    if f.modality and f.modality != "MR":
        return Classification("other", f"Modality {f.modality}")
    if it & {"LOCALIZER", "SCOUT", "SURVEY"}:
        loc = "/".join(sorted(it & {"LOCALIZER", "SCOUT", "SURVEY"}))
        return Classification("localizer", f"ImageType {loc}")
    if f.n_orientations >= 2 and f.n_files <= 40 and f.n_frames <= 60:
        return Classification(
            "localizer", f"{f.n_orientations} slice orientations in {f.n_files} files")
    adc_tokens = {t for t in it if t == "ADC" or t.endswith("_ADC") or t == "ADC_MAP"}
    if adc_tokens:
        return Classification("adc", f"ImageType {'/'.join(sorted(adc_tokens))}")
    if it & _DERIVED_OTHER:
        names = "/".join(sorted(it & _DERIVED_OTHER))
        return Classification("other", f"derived diffusion map ImageType {names}")
    high_b = [b for b in f.bvalues if b > B0_MAX]
    ub = unique_bvalues(f.bvalues)
    if high_b:
        return Classification(
            "dwi", f"b-values {';'.join(f'{b:g}' for b in ub)} from {f.b_source}")
    if "TRACEW" in it:
        return Classification("dwi", "ImageType TRACEW (trace-weighted)")
    if "DIFFUSION" in it and f.directionality - {"NONE", "ISOTROPIC"}:
        return Classification("dwi", "FrameType DIFFUSION, directional frames")
    diff_desc = re.search(r"dwi|dti|diff|tensor", f.description.lower())
    if "EP" in f.scanning_sequence and diff_desc:  # else its long TE/TR would say T2w
        return Classification("dwi", f"EPI, series description keyword '{diff_desc.group(0)}';"
                              " no b-value in the headers")
    swi_tokens = it & {"SWI", "MNIP", "SWIP", "SWAN", "MIN IP"}
    if swi_tokens:
        return Classification("swi", f"ImageType {'/'.join(sorted(swi_tokens))}")
    gre = "GR" in f.scanning_sequence
    timing = f"TE={_fmt(f.te)} TR={_fmt(f.tr)} TI={_fmt(f.ti)} ms"
    if gre and f.acquisition_type == "3D" and (f.te or 0) >= 15 and it & {"P", "PHASE"}:
        return Classification("swi", f"3D gradient echo phase image, {timing}")
    te, tr, ti = f.te, f.tr, f.ti
    if f.inversion_recovery and te is not None:
        if ti is not None and ti >= 1500 and te >= 60:
            return Classification("other", f"inversion recovery (FLAIR), {timing}")
        if ti is not None and ti < 300 and te >= 40:
            return Classification("other", f"inversion recovery (STIR), {timing}")
        if te < 40 and (ti is None or ti < 1500):
            return Classification("t1w", f"inversion recovery, short TE, {timing}")
    if te is not None and tr is not None:
        if te >= 60 and tr >= 1500:
            return Classification("t2w", f"long TE and TR, {timing}")
        if te <= 30 and tr <= 1000:
            return Classification("t1w", f"short TE and TR, {timing}")
        if te < 40 and tr >= 1500:
            return Classification("other", f"proton density (short TE, long TR), {timing}")
    text = f.description.lower()
    for pattern, label in _DESC_RULES:
        m = re.search(pattern, text)
        if m:
            return Classification(label, f"series description keyword '{m.group(0)}' (last resort)")
    return Classification("other", f"no rule matched ({timing})")


def classify_series(series: Series) -> tuple[Classification, Features]:
    f = extract_features(i.header for i in series.instances)
    return classify_features(f), f
