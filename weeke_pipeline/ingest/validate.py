"""Checks of one series' files before conversion: duplicates, orientation, size, slice gaps.

dcm2niix converts many broken series without failing (it warns on stdout and writes a volume
with a hole or an averaged geometry), so the ingest checks the headers first and refuses a
series that would give a wrong image. Problems, each naming files relative to the input folder:

* **duplicate instances**: the same SOP Instance UID twice. Byte-identical copies (an export
  copied twice) are ignored with a warning; different files under one UID are an error.
* **mixed orientations**: Image Orientation (Patient) differing by more than 1e-3 between files.
* **mixed image sizes**: different Rows x Columns.
* **same position twice**: a slice position occurring more often than the others (a single
  volume with two images at one place, or one volume of a multi-volume series with an extra one).
* **missing slices**: a slice position present in fewer volumes than the others, or a gap in the
  sorted slice positions of about a whole multiple (> 1.5 x) of the median spacing. A slice
  missing at either end of the stack cannot be seen in the headers and is not detected.
* **geometry of every file** (before dcm2niix, which would otherwise guess): Image Orientation
  (Patient) present with 6 finite numbers forming two orthogonal unit vectors; Image Position
  (Patient) present with 3 finite numbers; Pixel Spacing present with 2 finite positive numbers,
  the same in every file. One file without orientation used to switch these checks off for its
  whole series; missing or NaN positions gave a NIfTI without orientation that failed late.
* **irregular slice spacing**: steps between sorted positions differing from the median by more
  than 10 % (and 0.05 mm) that are not whole multiples of it (dcm2niix regrids such stacks
  silently).
* **one slice**: a series of a single image is not a volume.

Only classic single-frame series get the position checks (one image per file, positions in
the top-level header); enhanced multi-frame and mosaic files carry their geometry per frame and
are left to dcm2niix. This is header arithmetic only (numpy on Image Position/Orientation): no
library offers these checks as a function (dcm2niix prints them as free-text warnings).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from weeke_pipeline.ingest.discover import Instance, Series

ORIENTATION_TOL = 1e-3
POSITION_DECIMALS = 2  # slice positions compared to 0.01 mm
GAP_FACTOR = 1.5
IRREGULAR_FRACTION = 0.10  # a step off the median spacing by more than this is irregular
IRREGULAR_MIN_MM = 0.05
UNIT_TOL = 0.01  # |row|, |col| = 1 and row . col = 0 within this


class SeriesCheckError(ValueError):
    """A series that must not be converted (the message names files and the problem)."""


@dataclass
class SeriesCheck:
    """The instances to convert and the warnings about the others."""

    instances: list[Instance]
    warnings: list[str] = field(default_factory=list)
    volumes: int | None = None  # images per slice position (classic series), else None


def series_label(series: Series) -> str:
    """The series' location relative to the input folder (its folder, zip or single file)."""
    labels = [i.source.label for i in series.instances]
    if len(labels) == 1:
        return labels[0]
    parts = [lab.replace("!", "!/").split("/")[:-1] for lab in labels]
    common: list[str] = []
    for items in zip(*parts, strict=False):
        if len(set(items)) != 1:
            break
        common.append(items[0])
    return "/".join(common).replace("!/", "!").rstrip("!") or "(input folder)"


def _name(inst: Instance) -> str:
    return inst.source.label


def _examples(items: list[Instance], n: int = 3) -> str:
    names = [_name(i) for i in items[:n]]
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(names) + more


def _remove_duplicates(series: Series, check: SeriesCheck) -> None:
    by_uid: dict[str, list[Instance]] = defaultdict(list)
    for inst in series.instances:
        by_uid[str(inst.header.get("SOPInstanceUID", ""))].append(inst)
    keep: list[Instance] = []
    for uid, items in by_uid.items():
        if not uid or len(items) == 1:
            keep.extend(items)
            continue
        # keep the plainest name (copies are usually "IM1 (copy).dcm", "IM1_1.dcm"...)
        items = sorted(items, key=lambda i: (len(_name(i)), _name(i)))
        first = items[0]
        data = first.source.read_bytes()
        for other in items[1:]:
            if other.source.read_bytes() != data:
                raise SeriesCheckError(
                    f"{series_label(series)}: duplicate instance: {_name(first)} and "
                    f"{_name(other)} have the same SOP Instance UID but different contents; "
                    "remove the wrong one")
            check.warnings.append(f"duplicate instance: {_name(other)} is a copy of "
                                  f"{_name(first)} (same SOP Instance UID); ignored")
        keep.append(first)
    order = {id(i): n for n, i in enumerate(series.instances)}
    check.instances = sorted(keep, key=lambda i: order[id(i)])


def _is_classic(inst: Instance) -> bool:
    """One image per file, its geometry in the top-level header (not enhanced, not mosaic)."""
    h = inst.header
    try:
        frames = int(h.get("NumberOfFrames", 1) or 1)
        image_type = [str(v).upper() for v in (h.get("ImageType") or [])]
    except (TypeError, ValueError):
        return True
    # mosaics (Siemens MOSAIC, United Imaging VFRAME) keep their slice geometry elsewhere
    return frames <= 1 and not {"MOSAIC", "VFRAME"} & set(image_type)


def _numbers(inst: Instance, keyword: str, n: int) -> np.ndarray | str:
    """``n`` finite numbers of ``keyword``, or what is wrong with them."""
    value = inst.header.get(keyword)
    if value is None or value == "":
        return "missing"
    values = list(value) if hasattr(value, "__len__") and not isinstance(value, str) else [value]
    if len(values) != n:
        return f"{len(values)} value(s) where {n} are needed"
    try:
        out = np.array([float(v) for v in values])
    except (TypeError, ValueError):
        return "not numbers"
    if not np.all(np.isfinite(out)):
        return "not finite (NaN or infinite)"
    return out


_NAMES = {"ImageOrientationPatient": "Image Orientation (Patient) (0020,0037)",
          "ImagePositionPatient": "Image Position (Patient) (0020,0032)",
          "PixelSpacing": "Pixel Spacing (0028,0030)"}


def _geometry(where: str, items: list[Instance]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orientation, position and pixel spacing of every file; SeriesCheckError naming the first
    file whose value is missing or unusable."""
    arrays: dict[str, list[np.ndarray]] = {k: [] for k in _NAMES}
    for inst in items:
        for key, n in (("ImageOrientationPatient", 6), ("ImagePositionPatient", 3),
                       ("PixelSpacing", 2)):
            got = _numbers(inst, key, n)
            if isinstance(got, str):
                what = f"has no {_NAMES[key]}" if got == "missing" else f"{_NAMES[key]}: {got}"
                raise SeriesCheckError(f"{where}: {_name(inst)} {what}; the volume's geometry "
                                       "is unknown, not converted")
            arrays[key].append(got)
        iop, ps = arrays["ImageOrientationPatient"][-1], arrays["PixelSpacing"][-1]
        row, col = iop[:3], iop[3:]
        if (abs(np.linalg.norm(row) - 1) > UNIT_TOL or abs(np.linalg.norm(col) - 1) > UNIT_TOL
                or abs(float(row @ col)) > UNIT_TOL):
            raise SeriesCheckError(f"{where}: {_name(inst)} {_NAMES['ImageOrientationPatient']}"
                                   ": not two orthogonal unit vectors; not converted")
        if np.any(ps <= 0) or np.any(ps > 100):
            raise SeriesCheckError(f"{where}: {_name(inst)} {_NAMES['PixelSpacing']}: "
                                   f"{' x '.join(f'{v:g}' for v in ps)} mm is not a voxel size;"
                                   " not converted")
    spacing = np.array(arrays["PixelSpacing"])
    odd = np.flatnonzero(np.max(np.abs(spacing - spacing[0]), axis=1) > 1e-3)
    if odd.size:
        raise SeriesCheckError(f"{where}: mixed pixel spacing in one series: {_name(items[0])} "
                               f"and {_name(items[int(odd[0])])} differ; not converted")
    return (np.array(arrays["ImageOrientationPatient"]), np.array(arrays["ImagePositionPatient"]),
            spacing)


def _plane(iop: np.ndarray) -> str:
    normal = np.cross(iop[:3], iop[3:])
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]


def check_series(series: Series) -> SeriesCheck:
    """Check one series; raise :class:`SeriesCheckError` when it must not be converted."""
    check = SeriesCheck(list(series.instances))
    _remove_duplicates(series, check)
    items = check.instances
    where = series_label(series)
    if len(items) == 1 and _is_classic(items[0]):
        raise SeriesCheckError(f"{where}: only one slice ({_name(items[0])}): a single image is "
                               "not a volume; not converted")
    if not all(_is_classic(i) for i in items):
        return check

    sizes: dict[tuple[int, int], list[Instance]] = defaultdict(list)
    for i in items:
        sizes[(int(i.header.get("Rows", 0)), int(i.header.get("Columns", 0)))].append(i)
    if len(sizes) > 1:
        desc = "; ".join(f"{len(v)} file(s) of {r}x{c} (e.g. {_examples(v, 1)})"
                         for (r, c), v in sizes.items())
        raise SeriesCheckError(f"{where}: mixed image sizes in one series: {desc}")

    iops, pos, _ = _geometry(where, items)
    groups: list[tuple[np.ndarray, list[Instance]]] = []
    for iop, inst in zip(iops, items, strict=True):
        for ref, members in groups:
            if np.max(np.abs(iop - ref)) <= ORIENTATION_TOL:
                members.append(inst)
                break
        else:
            groups.append((iop, [inst]))
    if len(groups) > 1:
        desc = "; ".join(f"{len(m)} {_plane(ref)} file(s) (e.g. {_examples(m, 1)})"
                         for ref, m in groups)
        raise SeriesCheckError(f"{where}: mixed slice orientations in one series: {desc}")

    normal = np.cross(iops[0, :3], iops[0, 3:])
    dist = np.round(pos @ normal, POSITION_DECIMALS)
    at: dict[float, list[Instance]] = defaultdict(list)
    for d, inst in zip(dist, items, strict=True):
        at[float(d)].append(inst)
    counts = Counter(len(v) for v in at.values())
    n_vol = counts.most_common(1)[0][0]
    extra = sorted((d for d, v in at.items() if len(v) > n_vol),
                   key=lambda d: at[d][0].source.label)
    if extra:
        d = extra[0]
        raise SeriesCheckError(
            f"{where}: same slice position twice: {_examples(at[d])} are all at {d:g} mm"
            f" ({len(at[d])} images where the other positions have {n_vol});"
            f" {len(extra)} position(s) affected")
    check.volumes = n_vol
    fewer = [d for d, v in at.items() if len(v) < n_vol]
    if fewer:
        d = sorted(fewer)[0]
        raise SeriesCheckError(
            f"{where}: missing slices: position {d:g} mm has {len(at[d])} image(s) (e.g. "
            f"{_examples(at[d], 1)}) where the others have {n_vol} (one per volume);"
            f" {len(fewer)} position(s) affected")
    levels = np.array(sorted(at))
    if len(levels) >= 3:
        steps = np.diff(levels)
        spacing = float(np.median(steps))
        ratio = steps / spacing
        whole = np.abs(ratio - np.round(ratio)) < 0.25
        gaps = np.flatnonzero((steps > GAP_FACTOR * spacing) & whole)
        if gaps.size:
            k = int(gaps[0])
            lo, hi = at[float(levels[k])][0], at[float(levels[k + 1])][0]
            missing = sum(round(steps[g] / spacing) - 1 for g in gaps)
            raise SeriesCheckError(
                f"{where}: missing slices: gap of {steps[k]:.3g} mm between {_name(lo)} and "
                f"{_name(hi)} (slice spacing {spacing:.3g} mm); about {missing} slice(s) "
                "missing")
        off = np.flatnonzero(np.abs(steps - spacing) > max(IRREGULAR_FRACTION * spacing,
                                                           IRREGULAR_MIN_MM))
        if off.size:
            k = int(off[0])
            lo, hi = at[float(levels[k])][0], at[float(levels[k + 1])][0]
            raise SeriesCheckError(
                f"{where}: irregular slice spacing: steps from {steps.min():.3g} to "
                f"{steps.max():.3g} mm (median {spacing:.3g} mm; e.g. {steps[k]:.3g} mm between"
                f" {_name(lo)} and {_name(hi)}); dcm2niix would regrid it, not converted")
    elif len(levels) == 1 and len(items) > 1 and n_vol == len(items):
        raise SeriesCheckError(f"{where}: only one slice position ({len(items)} images all at "
                               f"{levels[0]:g} mm): not a volume; not converted")
    return check
