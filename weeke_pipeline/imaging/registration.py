"""Registration with antspyx: within-subject rigid alignment and subject T2w to atlas T2w.

Layer: pure functions over images (paths or ``ants.ANTsImage``), no nipype. Presets are versioned
TOML files in ``workflows/registration/`` (:func:`load_preset`); each stage of a preset maps to
one ``antsRegistration`` block (``--transform/--metric/--convergence/--shrink-factors/
--smoothing-sigmas/--masks``). We assemble the command ourselves (:func:`build_command`) and run
it through antspyx's raw-argument entry point ``ants.registration(args, None)`` because the
keyword API hides the per-stage settings a versioned preset must pin down.

Determinism (verified on this machine, see docs/registration_metrics_qc.md):
- antspyx 0.6.3 silently ignores a ``random_seed=`` keyword (it lands in ``**kwargs``); we pass
  ``--random-seed`` explicitly.
- Mattes MI is not reproducible with more than one ITK thread even with a fixed seed, because
  the joint histogram is accumulated in thread order. GC (global correlation) and CC
  (neighbourhood cross-correlation), ANTs' "Repro" metrics, are. The shipped presets use only
  these; :func:`load_preset` warns when a preset uses MI with
  ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` other than 1. ITK reads that variable once per
  process (before the first filter runs): set it before using antspyx, not per call.

Conventions: in :func:`register` ``fixed`` is the reference grid; ``moving`` is resampled onto
it with ``forward_transforms``; ``inverse_transforms`` (+ ``inverse_invert``) bring fixed-space
images (atlas labels) back onto the moving grid. Metric masks follow antsRegistration ``-x``:
the metric is evaluated only where the fixed mask is non-zero and the mapped point falls where
the moving mask is non-zero; an injury (exclusion) mask is therefore passed as its complement.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import tomllib
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # antspyx is heavy to import; imported inside functions
    import ants

LOG = logging.getLogger(__name__)

TRANSFORMS = ("Rigid", "Affine", "SyN")
METRICS = ("GC", "CC", "MI", "Mattes", "MeanSquares")
REPRODUCIBLE_METRICS = ("GC", "CC", "MeanSquares")
INITIALIZERS = {"identity": None, "geometric_center": 0, "center_of_mass": 1}


# --------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class Stage:
    """One antsRegistration stage (transform, metric, multi-resolution schedule)."""

    transform: str
    metric: str
    iterations: tuple[int, ...]
    shrink_factors: tuple[int, ...]
    smoothing_sigmas: tuple[float, ...]
    gradient_step: float = 0.1
    metric_param: int = 32
    sampling: str = "Regular"
    sampling_rate: float = 0.25
    convergence_threshold: float = 1e-6
    convergence_window: int = 10
    flow_sigma: float = 3.0
    total_sigma: float = 0.0
    use_mask: bool = True

    def __post_init__(self) -> None:
        if self.transform not in TRANSFORMS:
            raise ValueError(f"stage transform {self.transform!r} not one of {TRANSFORMS}")
        if self.metric not in METRICS:
            raise ValueError(f"stage metric {self.metric!r} not one of {METRICS}")
        n = len(self.iterations)
        if not (n == len(self.shrink_factors) == len(self.smoothing_sigmas)) or n == 0:
            raise ValueError("stage iterations, shrink_factors and smoothing_sigmas must have the"
                             f" same non-zero length (got {n}, {len(self.shrink_factors)},"
                             f" {len(self.smoothing_sigmas)})")
        if self.sampling not in ("Regular", "Random", "None"):
            raise ValueError(f"stage sampling {self.sampling!r} not Regular, Random or None")


@dataclass(frozen=True)
class StageSet:
    initialize: str
    stages: tuple[Stage, ...]

    @property
    def deformable(self) -> bool:
        return any(s.transform == "SyN" for s in self.stages)


@dataclass(frozen=True)
class Preset:
    """A versioned registration preset (see ``workflows/registration/*.toml``)."""

    name: str
    version: str
    description: str
    random_seed: int
    within_subject: StageSet
    to_atlas: StageSet
    winsorize: tuple[float, float] | None = (0.005, 0.995)
    histogram_matching: bool = False
    n4: bool = False
    fixed_mask_dilation_mm: float = 6.0
    source: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (TOML/JSON serialisable) for the run configuration."""
        d = asdict(self)
        d.pop("source")
        return d


def preset_dir() -> Path:
    from weeke_pipeline.resources import data_dir

    return data_dir("workflows") / "registration"


def list_presets() -> list[str]:
    """Names of the shipped presets."""
    return sorted(p.stem for p in preset_dir().glob("*.toml"))


def _stageset(raw: dict[str, Any], where: str) -> StageSet:
    init = raw.get("initialize", "identity")
    if init not in INITIALIZERS:
        raise ValueError(f"{where}: initialize {init!r} not one of {sorted(INITIALIZERS)}")
    stages = []
    for i, st in enumerate(raw.get("stages", [])):
        try:
            kw = dict(st)
            for key in ("iterations", "shrink_factors", "smoothing_sigmas"):
                kw[key] = tuple(kw[key])
            stages.append(Stage(**kw))
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"{where}: stage {i + 1}: {exc}") from None
    if not stages:
        raise ValueError(f"{where}: no stages")
    return StageSet(init, tuple(stages))


def load_preset(name_or_path: str | os.PathLike[str]) -> Preset:
    """Load a preset by shipped name (``fast``, ``precise``) or from a TOML file path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = preset_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            raise ValueError(f"unknown registration preset {name_or_path!r};"
                             f" shipped: {', '.join(list_presets())}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read registration preset: {exc}") from None
    try:
        wz = raw.get("winsorize")
        preset = Preset(
            name=str(raw["name"]), version=str(raw["version"]),
            description=str(raw.get("description", "")), random_seed=int(raw["random_seed"]),
            within_subject=_stageset(raw["within_subject"], f"{path}: [within_subject]"),
            to_atlas=_stageset(raw["to_atlas"], f"{path}: [to_atlas]"),
            winsorize=tuple(wz) if wz else None,
            histogram_matching=bool(raw.get("histogram_matching", False)),
            n4=bool(raw.get("n4", False)),
            fixed_mask_dilation_mm=float(raw.get("fixed_mask_dilation_mm", 0.0)),
            source=str(path),
        )
    except KeyError as exc:
        raise ValueError(f"{path}: registration preset lacks required key {exc}") from None
    threads = os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "")
    for ss in (preset.within_subject, preset.to_atlas):
        for st in ss.stages:
            if st.metric not in REPRODUCIBLE_METRICS and threads != "1":
                warnings.warn(f"{path}: metric {st.metric} is reproducible only with"
                              " ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1", stacklevel=2)
    return preset


# --------------------------------------------------------------------------- command
def _fmt(values: Sequence[float]) -> str:
    return "x".join(f"{v:g}" for v in values)


def build_command(fixed: str, moving: str, stages: Sequence[Stage], outprefix: str, *,
                  initialize: str = "identity", fixed_mask: str | None = None,
                  moving_mask: str | None = None, random_seed: int = 1,
                  winsorize: Sequence[float] | None = None, histogram_matching: bool = False,
                  warped: str | None = None) -> list[str]:
    """antsRegistration arguments for ``stages`` (pure; file paths only).

    Each stage gets its own ``--masks [fixed,moving]`` (``NA`` where absent or
    ``use_mask = false``), output transforms are collapsed (``0GenericAffine.mat`` for all
    linear stages, ``1Warp.nii.gz``/``1InverseWarp.nii.gz`` for SyN).
    """
    if INITIALIZERS.get(initialize, "bad") == "bad":
        raise ValueError(f"initialize {initialize!r} not one of {sorted(INITIALIZERS)}")
    out = f"[{outprefix},{warped}]" if warped else outprefix
    args = ["--dimensionality", "3", "--output", out, "--interpolation", "Linear",
            "--collapse-output-transforms", "1", "--write-composite-transform", "0",
            "--use-histogram-matching", str(int(histogram_matching)), "--float", "1",
            "--random-seed", str(int(random_seed))]
    if winsorize:
        args += ["--winsorize-image-intensities", f"[{winsorize[0]:g},{winsorize[1]:g}]"]
    if INITIALIZERS[initialize] is not None:
        args += ["--initial-moving-transform", f"[{fixed},{moving},{INITIALIZERS[initialize]}]"]
    for st in stages:
        if st.transform == "SyN":
            tx = f"SyN[{st.gradient_step:g},{st.flow_sigma:g},{st.total_sigma:g}]"
        else:
            tx = f"{st.transform}[{st.gradient_step:g}]"
        metric = "MI" if st.metric == "Mattes" else st.metric
        args += [
            "--transform", tx,
            "--metric", f"{metric}[{fixed},{moving},1,{st.metric_param},{st.sampling},"
                        f"{st.sampling_rate:g}]",
            "--convergence", f"[{_fmt(st.iterations)},{st.convergence_threshold:g},"
                             f"{st.convergence_window}]",
            "--shrink-factors", _fmt(st.shrink_factors),
            "--smoothing-sigmas", _fmt(st.smoothing_sigmas) + "vox",
            "--masks", (f"[{fixed_mask or 'NA'},{moving_mask or 'NA'}]" if st.use_mask
                        else "[NA,NA]"),
        ]
    return args


# --------------------------------------------------------------------------- helpers
def read_image(img: Any, what: str = "image") -> ants.ANTsImage:
    """An ANTsImage from a path or an ANTsImage; clear error naming the file otherwise."""
    import ants

    if isinstance(img, ants.ANTsImage):
        return img
    path = Path(img)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    try:
        out = ants.image_read(str(path))
    except Exception as exc:  # antspyx raises bare ValueError/RuntimeError on bad files
        raise ValueError(f"{path}: cannot read {what} as an image: {exc}") from None
    if out.dimension != 3:
        raise ValueError(f"{path}: {what} must be a 3D image (got {out.dimension}D)")
    if not np.isfinite(out.numpy()).all():
        raise ValueError(f"{path}: {what} contains NaN or infinite values")
    return out


def _to_file(img: Any, tmp: Path, name: str) -> str:
    """A path for antsRegistration: the file itself, or an in-memory image written to ``tmp``
    uncompressed (gzip costs more than the disk space saves for a temporary file)."""
    import ants

    if isinstance(img, ants.ANTsImage):
        p = tmp / f"{name}.nii"
        ants.image_write(img, str(p))
        return str(p)
    return str(img)


def _binary(img: ants.ANTsImage) -> ants.ANTsImage:
    return img.new_image_like((img.numpy() > 0.5).astype("float32"))


def dilate_ball(mask: np.ndarray, spacing: Sequence[float], radius_mm: float) -> np.ndarray:
    """Binary dilation of ``mask`` by a ball of ``radius_mm`` (physical units, anisotropic
    voxels): voxel x is set when some mask voxel y has sum_i ((x_i - y_i) spacing_i)^2 <= r^2.

    Same result as ``ndimage.binary_dilation`` with that ball as structuring element, but
    O(voxels) instead of O(voxels x ball): the nearest mask voxel of every voxel comes from one
    exact Euclidean distance transform (``ndimage.distance_transform_edt``), and the ball test
    is applied to that voxel's offset. Only the mask's bounding box grown by the radius is
    transformed (nothing outside it can be reached): the brain is a fraction of the grid.
    """
    from scipy import ndimage

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy()
    sp = np.asarray(spacing, dtype=np.float64)
    box = []
    for axis in range(mask.ndim):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        pad = int(np.ceil(radius_mm / sp[axis])) + 1
        box.append(slice(max(0, hit[0] - pad), min(mask.shape[axis], hit[-1] + pad + 1)))
    crop = mask[tuple(box)]
    idx = ndimage.distance_transform_edt(~crop, sampling=sp, return_distances=False,
                                         return_indices=True)
    d2 = np.zeros(crop.shape, dtype=np.float64)
    for axis in range(crop.ndim):
        off = idx[axis] - np.arange(crop.shape[axis]).reshape(
            [-1 if a == axis else 1 for a in range(crop.ndim)])
        d2 += (off * sp[axis]) ** 2
    out = np.zeros(mask.shape, dtype=bool)
    out[tuple(box)] = d2 <= radius_mm ** 2
    return out


def inclusion_mask(reference: Any, *, exclusion: Any | None = None,
                   region: Any | None = None, dilate_mm: float = 0.0) -> ants.ANTsImage | None:
    """Metric mask = ``region`` (optionally dilated) minus ``exclusion`` on the reference grid.

    Returns None when neither is given (metric over the whole image).
    """
    import ants

    if exclusion is None and region is None:
        return None
    ref = read_image(reference, "reference image")
    keep = np.ones(ref.shape, dtype=bool)
    if region is not None:
        reg = ants.resample_image_to_target(read_image(region, "brain mask"), ref,
                                            interp_type="nearestNeighbor")
        r = reg.numpy() > 0.5
        if dilate_mm > 0:
            r = dilate_ball(r, ref.spacing, dilate_mm)
        keep &= r
    if exclusion is not None:
        exc = ants.resample_image_to_target(read_image(exclusion, "exclusion mask"), ref,
                                            interp_type="nearestNeighbor")
        keep &= exc.numpy() <= 0.5
    if not keep.any():
        raise ValueError("registration metric mask is empty (exclusion mask covers the image)")
    return ref.new_image_like(keep.astype("float32"))


#: similarity (QC numbers, identity fallback) is measured on the fixed grid subsampled to about
#: this spacing: every k-th voxel along an axis, k = floor(SIMILARITY_SPACING_MM / spacing), so
#: k = 1 (the full grid) for voxels over 1 mm (clinical 1.2 x 1.2 x 2 mm) and k = 2 for 1 mm
SIMILARITY_SPACING_MM = 2.0


def similarity_strides(spacing: Sequence[float]) -> tuple[int, ...]:
    """Voxel strides of the similarity grid (see :data:`SIMILARITY_SPACING_MM`)."""
    return tuple(max(1, int(SIMILARITY_SPACING_MM / float(s) + 1e-6)) for s in spacing)


def _same_grid(a: ants.ANTsImage, b: ants.ANTsImage) -> bool:
    return (a.shape == b.shape and np.allclose(a.spacing, b.spacing, atol=1e-6)
            and np.allclose(a.origin, b.origin, atol=1e-4)
            and np.allclose(a.direction, b.direction, atol=1e-6))


def _strided(img: ants.ANTsImage, strides: Sequence[int]) -> ants.ANTsImage:
    """Every ``strides``-th voxel of ``img`` as an image on the coarser grid (same origin and
    direction, spacing x strides): the voxel values are the original ones, not resampled."""
    import ants

    if all(k == 1 for k in strides):
        return img
    arr = img.numpy()[tuple(slice(None, None, k) for k in strides)]
    return ants.from_numpy(np.ascontiguousarray(arr), origin=list(img.origin),
                           spacing=[s * k for s, k in zip(img.spacing, strides, strict=True)],
                           direction=img.direction)


def similarity(fixed: Any, moving_in_fixed: Any, mask: Any | None = None, *,
               bins: int = 64) -> dict[str, float]:
    """Similarity of ``moving_in_fixed`` to ``fixed`` within ``mask`` (non-zero voxels).

    Measured on the fixed grid subsampled to about 2 mm (:func:`similarity_strides`; the full
    grid for clinical voxels): a moving image on another grid is resampled (linear) straight
    onto those points, which gives the same values as resampling onto the full grid and then
    subsampling.

    - ``mattes_mi``: Mattes mutual information (ITK/ANTs, 32 bins), sign flipped from
      ``ants.image_similarity`` (which returns a cost) so that higher = more similar.
    - ``nmi``: normalised mutual information (Studholme) (H(A)+H(B))/H(A,B), in [1, 2],
      from ``skimage.metrics.normalized_mutual_information``; 1 = independent.
    - ``correlation``: Pearson correlation of the masked voxel values.
    """
    import ants
    from skimage.metrics import normalized_mutual_information

    f_full = read_image(fixed, "fixed image")
    m = read_image(moving_in_fixed, "moving image")
    strides = similarity_strides(f_full.spacing)
    f = _strided(f_full, strides)
    if _same_grid(m, f_full):
        m = _strided(m, strides)
    else:
        m = ants.resample_image_to_target(m, f, interp_type="linear")
    fm = None
    sel = np.ones(f.shape, dtype=bool)
    if mask is not None:
        mk = read_image(mask, "mask")
        mk = (_strided(mk, strides) if _same_grid(mk, f_full)
              else ants.resample_image_to_target(mk, f, interp_type="nearestNeighbor"))
        sel = mk.numpy() > 0.5
        fm = mk.new_image_like(sel.astype("float32"))
    a, b = f.numpy()[sel].astype(np.float64), m.numpy()[sel].astype(np.float64)
    mi = -float(ants.image_similarity(f, m, metric_type="MattesMutualInformation",
                                      fixed_mask=fm, sampling_strategy="none"))
    nmi = float(normalized_mutual_information(a, b, bins=bins)) if a.size > 1 else float("nan")
    corr = (float(np.corrcoef(a, b)[0, 1]) if a.size > 1 and a.std() > 0 and b.std() > 0
            else float("nan"))
    return {"mattes_mi": mi, "nmi": nmi, "correlation": corr}


# --------------------------------------------------------------------------- registration
@dataclass
class RegistrationResult:
    """Files written by one registration and what it took."""

    outprefix: str
    forward_transforms: list[str]       # moving -> fixed grid (apply_transforms order)
    inverse_transforms: list[str]       # fixed -> moving grid
    inverse_invert: list[bool]          # whichtoinvert for inverse_transforms
    warped: str                         # moving resampled on the fixed grid
    seconds: float
    command: list[str]
    similarity_before: dict[str, float] = field(default_factory=dict)
    similarity_after: dict[str, float] = field(default_factory=dict)
    note: str = ""                      # e.g. why the identity transform was kept

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def register(fixed: Any, moving: Any, stageset: StageSet, outprefix: str | os.PathLike[str], *,
             fixed_mask: Any | None = None, moving_mask: Any | None = None,
             random_seed: int = 1, winsorize: Sequence[float] | None = (0.005, 0.995),
             histogram_matching: bool = False,
             similarity_mask: Any | None = None) -> RegistrationResult:
    """Register ``moving`` to ``fixed`` with the stages of ``stageset``.

    ``outprefix`` is explicit (e.g. ``out/sub-x_from-T2w_to-atlas_``); its folder is created.
    Files: ``<prefix>0GenericAffine.mat`` (+ ``1Warp.nii.gz``, ``1InverseWarp.nii.gz`` for SyN)
    and ``<prefix>Warped.nii.gz``. Masks are inclusion masks (see module docstring).
    Similarity (:func:`similarity`) within ``similarity_mask`` (default ``fixed_mask``) is
    measured before (moving resampled with the identity transform) and after.
    """
    import ants

    prefix = str(outprefix)
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    # a re-run must not pick up stale files of an earlier run with the same prefix
    for stale in ("0GenericAffine.mat", "1Warp.nii.gz", "1InverseWarp.nii.gz", "Warped.nii.gz"):
        Path(prefix + stale).unlink(missing_ok=True)
    f_img = read_image(fixed, "fixed image")
    m_img = read_image(moving, "moving image")
    with tempfile.TemporaryDirectory(prefix="weeke-reg-") as tmpd:
        tmp = Path(tmpd)
        f_path = _to_file(f_img if isinstance(fixed, ants.ANTsImage) else fixed, tmp, "fixed")
        m_path = _to_file(m_img if isinstance(moving, ants.ANTsImage) else moving, tmp, "moving")
        fm_path = (_to_file(_binary(read_image(fixed_mask, "fixed mask")), tmp, "fixed_mask")
                   if fixed_mask is not None else None)
        mm_path = (_to_file(_binary(read_image(moving_mask, "moving mask")), tmp, "moving_mask")
                   if moving_mask is not None else None)
        warped = prefix + "Warped.nii.gz"
        args = build_command(f_path, m_path, stageset.stages, prefix,
                             initialize=stageset.initialize, fixed_mask=fm_path,
                             moving_mask=mm_path, random_seed=random_seed, winsorize=winsorize,
                             histogram_matching=histogram_matching, warped=warped)
        t0 = time.perf_counter()
        try:
            ants.registration(args, None)
        except RuntimeError as exc:
            raise RuntimeError(f"antsRegistration failed for moving {_name(moving)} -> fixed"
                               f" {_name(fixed)}: {exc}") from None
        seconds = time.perf_counter() - t0
    affine = prefix + "0GenericAffine.mat"
    if stageset.deformable:
        fwd = [prefix + "1Warp.nii.gz", affine]
        inv, inv_flags = [affine, prefix + "1InverseWarp.nii.gz"], [True, False]
    else:
        fwd, inv, inv_flags = [affine], [affine], [True]
    for p in {*fwd, *inv}:
        if not Path(p).is_file():
            raise RuntimeError(f"antsRegistration did not write {p}")
    # the command holds temporary paths; record it with stable placeholders
    shown = [a.replace(str(tmp) + "/", "<tmp>/") for a in args]
    res = RegistrationResult(prefix, fwd, inv, inv_flags, warped, seconds, shown)
    sim_mask = similarity_mask if similarity_mask is not None else fixed_mask
    # identity transform: the moving image resampled onto the (similarity) fixed grid
    res.similarity_before = similarity(f_img, m_img, sim_mask)
    res.similarity_after = similarity(f_img, ants.image_read(warped), sim_mask)
    LOG.info("registered %s -> %s in %.1f s", _name(moving), _name(fixed), seconds)
    return res


def _name(img: Any) -> str:
    return "<in-memory image>" if not isinstance(img, str | os.PathLike) else Path(img).name


def apply_transforms(image: Any, reference: Any, transforms: Sequence[str],
                     invert: Sequence[bool] | None = None, *, interpolation: str = "linear",
                     out: str | os.PathLike[str] | None = None) -> ants.ANTsImage:
    """Resample ``image`` onto ``reference`` through ``transforms`` (antspyx order).

    ``interpolation="genericLabel"`` for label maps (ANTs' label-preserving Gaussian
    interpolation; every output value is one of the input labels), ``"nearestNeighbor"`` also
    keeps labels. Label outputs are written as integers.
    """
    import ants

    img = read_image(image, "image to resample")
    ref = read_image(reference, "reference image")
    res = ants.apply_transforms(fixed=ref, moving=img, transformlist=list(transforms),
                                whichtoinvert=list(invert) if invert is not None else None,
                                interpolator=interpolation)
    if interpolation in ("genericLabel", "nearestNeighbor", "multiLabel"):
        arr = np.rint(res.numpy())
        ptype = "unsigned char" if arr.max(initial=0) < 256 and arr.min(initial=0) >= 0 \
            else "unsigned int"
        res = res.new_image_like(arr.astype("float32")).clone(ptype)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        ants.image_write(res, str(out))
    return res


def warp_labels(labels: Any, reference: Any, transforms: Sequence[str],
                invert: Sequence[bool] | None = None, *,
                out: str | os.PathLike[str] | None = None) -> ants.ANTsImage:
    """Resample a label map with label-preserving interpolation (genericLabel)."""
    return apply_transforms(labels, reference, transforms, invert, interpolation="genericLabel",
                            out=out)


def register_within_subject(t2w: Any, moving: Any, outprefix: str | os.PathLike[str], *,
                            preset: Preset | str = "fast", exclusion_mask: Any | None = None,
                            brain_mask: Any | None = None) -> RegistrationResult:
    """Rigidly align ``moving`` (T1w, b0 or ADC) to the subject's ``t2w``.

    ``exclusion_mask`` (T2w space, e.g. an injury mask) is left out of the metric;
    ``brain_mask`` (T2w space) restricts the metric and the similarity measure to the brain.
    """
    p = load_preset(preset) if isinstance(preset, str) else preset
    fixed_mask = inclusion_mask(t2w, exclusion=exclusion_mask, region=brain_mask,
                                dilate_mm=p.fixed_mask_dilation_mm if brain_mask is not None
                                else 0.0)
    res = register(t2w, moving, p.within_subject, outprefix, fixed_mask=fixed_mask,
                   random_seed=p.random_seed, winsorize=p.winsorize,
                   histogram_matching=p.histogram_matching,
                   similarity_mask=brain_mask if brain_mask is not None else fixed_mask)
    before = res.similarity_before.get("nmi", float("nan"))
    after = res.similarity_after.get("nmi", float("nan"))
    if after < before - IDENTITY_FALLBACK_NMI:
        # Same session, scanner coordinates: the identity is the prior. A rigid result that
        # fits worse than it (e.g. GC on inverted T1w/T2w contrast) is not kept.
        import ants

        tx = ants.create_ants_transform(transform_type="AffineTransform", dimension=3)
        ants.write_transform(tx, res.forward_transforms[0])
        apply_transforms(moving, t2w, res.forward_transforms, out=res.warped)
        res.note = (f"identity kept: the rigid result lowered NMI from {before:.3f} to "
                    f"{after:.3f}")
        res.similarity_after = dict(res.similarity_before)
        LOG.info("%s: %s", _name(moving), res.note)
    return res


#: keep the identity when rigid registration lowers NMI by more than this (same session)
IDENTITY_FALLBACK_NMI = 0.005


@dataclass
class AtlasResult:
    """Outputs of :func:`atlas_to_subject`, all files."""

    registration: RegistrationResult
    t2w_preproc: str          # T2w after optional N4, subject grid
    brain_mask: str           # atlas brain mask warped back, subject grid
    labels: str | None        # atlas labels warped back, subject grid (genericLabel)
    t2w_brain: str            # T2w x brain mask, subject grid

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def n4(image: Any, mask: Any | None = None) -> ants.ANTsImage:
    """N4 bias field correction (antspyx ``n4_bias_field_correction``, shrink factor 4)."""
    import ants

    img = read_image(image, "image for bias correction")
    m = read_image(mask, "mask") if mask is not None else None
    return ants.n4_bias_field_correction(img, mask=m, shrink_factor=4)


def atlas_to_subject(t2w: Any, atlas_t2w: Any, atlas_brain_mask: Any,
                     outprefix: str | os.PathLike[str], *, atlas_labels: Any | None = None,
                     preset: Preset | str = "fast", exclusion_mask: Any | None = None,
                     n4_correct: bool | None = None) -> AtlasResult:
    """Register the subject T2w (moving) to the atlas T2w (fixed), warp atlas mask/labels back.

    1. optional N4 on the T2w (``preset.n4`` unless ``n4_correct`` is given);
    2. rigid -> affine -> SyN (``preset.to_atlas``) with the metric restricted to the atlas
       brain mask dilated by ``preset.fixed_mask_dilation_mm`` (fixed side) and excluding
       ``exclusion_mask`` (subject T2w space, moving side);
    3. atlas brain mask warped back (linear, thresholded at 0.5) = the subject's brain mask;
       atlas labels warped back with genericLabel.
    Files: ``<prefix>desc-preproc_T2w.nii.gz`` (only with N4; otherwise ``t2w_preproc`` is
    the input file), ``<prefix>desc-brain_mask.nii.gz``,
    ``<prefix>desc-atlas_dseg.nii.gz``, ``<prefix>desc-brain_T2w.nii.gz`` + registration files.
    """
    import ants

    p = load_preset(preset) if isinstance(preset, str) else preset
    prefix = str(outprefix)
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    sub = read_image(t2w, "T2w image")
    atl = read_image(atlas_t2w, "atlas T2w template")
    do_n4 = p.n4 if n4_correct is None else n4_correct
    sub_pre = n4(sub) if do_n4 else sub
    if do_n4 or not isinstance(t2w, str | os.PathLike):
        pre_path = prefix + "desc-preproc_T2w.nii.gz"
        ants.image_write(sub_pre, pre_path)
    else:  # unchanged: no copy
        pre_path = str(t2w)
    atl_mask = read_image(atlas_brain_mask, "atlas brain mask")
    fixed_mask = inclusion_mask(atl, region=atl_mask, dilate_mm=p.fixed_mask_dilation_mm)
    moving_mask = (inclusion_mask(sub, exclusion=exclusion_mask)
                   if exclusion_mask is not None else None)
    reg = register(atl, sub_pre, p.to_atlas, prefix, fixed_mask=fixed_mask,
                   moving_mask=moving_mask, random_seed=p.random_seed, winsorize=p.winsorize,
                   histogram_matching=p.histogram_matching, similarity_mask=atl_mask)
    mask_prob = apply_transforms(atl_mask, sub, reg.inverse_transforms, reg.inverse_invert)
    brain = mask_prob.new_image_like((mask_prob.numpy() >= 0.5).astype("float32"))
    brain = brain.clone("unsigned char")
    mask_path = prefix + "desc-brain_mask.nii.gz"
    ants.image_write(brain, mask_path)
    lab_path = None
    if atlas_labels is not None:
        lab_path = prefix + "desc-atlas_dseg.nii.gz"
        warp_labels(atlas_labels, sub, reg.inverse_transforms, reg.inverse_invert, out=lab_path)
    brain_t2w = sub_pre * brain.clone("float")
    brain_path = prefix + "desc-brain_T2w.nii.gz"
    ants.image_write(brain_t2w, brain_path)
    return AtlasResult(reg, pre_path, mask_path, lab_path, brain_path)


def dice(a: np.ndarray, b: np.ndarray, labels: Sequence[int] | None = None) -> dict[int, float]:
    """Dice 2|A∩B|/(|A|+|B|) per label of two label arrays on the same grid (NaN if both empty)."""
    a = np.asarray(a).astype(np.int64).ravel()
    b = np.asarray(b).astype(np.int64).ravel()
    if labels is None:
        labels = [int(v) for v in np.union1d(np.unique(a), np.unique(b)) if v != 0]
    k = max(int(a.max(initial=0)), int(b.max(initial=0)), *labels) + 1
    inter = np.bincount(a[a == b], minlength=k)
    na, nb = np.bincount(a, minlength=k), np.bincount(b, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = 2.0 * inter / (na + nb)
    return {int(lab): float(d[lab]) for lab in labels}
