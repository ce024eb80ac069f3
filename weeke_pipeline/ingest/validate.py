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
  sorted slice positions larger than 1.5 x the median spacing. A slice missing at either end of
  the stack cannot be seen in the headers and is not detected.

Only classic single-frame series are checked (one image per file, positions in the top-level
header); enhanced multi-frame and mosaic files carry their geometry per frame and are left to
dcm2niix. This is header arithmetic only (numpy on Image Position/Orientation): no library offers
these checks as a function (dcm2niix prints them as free-text warnings).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from weeke_pipeline.ingest.discover import Instance, Series

ORIENTATION_TOL = 1e-3
POSITION_DECIMALS = 2  # slice positions compared to 0.01 mm
GAP_FACTOR = 1.5


class SeriesCheckError(ValueError):
    """A series that must not be converted (the message names files and the problem)."""


@dataclass
class SeriesCheck:
    """The instances to convert and the warnings about the others."""

    instances: list[Instance]
    warnings: list[str] = field(default_factory=list)


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
    h = inst.header
    frames = int(h.get("NumberOfFrames", 1) or 1)
    image_type = [str(v).upper() for v in (h.get("ImageType") or [])]
    return (frames <= 1 and "MOSAIC" not in image_type and "ImageOrientationPatient" in h
            and "ImagePositionPatient" in h)


def _plane(iop: np.ndarray) -> str:
    normal = np.cross(iop[:3], iop[3:])
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]


def check_series(series: Series) -> SeriesCheck:
    """Check one series; raise :class:`SeriesCheckError` when it must not be converted."""
    check = SeriesCheck(list(series.instances))
    _remove_duplicates(series, check)
    items = check.instances
    if len(items) < 2 or not all(_is_classic(i) for i in items):
        return check
    where = series_label(series)

    sizes: dict[tuple[int, int], list[Instance]] = defaultdict(list)
    for i in items:
        sizes[(int(i.header.get("Rows", 0)), int(i.header.get("Columns", 0)))].append(i)
    if len(sizes) > 1:
        desc = "; ".join(f"{len(v)} file(s) of {r}x{c} (e.g. {_examples(v, 1)})"
                         for (r, c), v in sizes.items())
        raise SeriesCheckError(f"{where}: mixed image sizes in one series: {desc}")

    iops = np.array([[float(x) for x in i.header.ImageOrientationPatient] for i in items])
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
    pos = np.array([[float(x) for x in i.header.ImagePositionPatient] for i in items])
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
        gaps = np.flatnonzero(steps > GAP_FACTOR * spacing)
        if gaps.size:
            k = int(gaps[0])
            lo, hi = at[float(levels[k])][0], at[float(levels[k + 1])][0]
            missing = sum(round(steps[g] / spacing) - 1 for g in gaps)
            raise SeriesCheckError(
                f"{where}: missing slices: gap of {steps[k]:.3g} mm between {_name(lo)} and "
                f"{_name(hi)} (slice spacing {spacing:.3g} mm); about {missing} slice(s) "
                "missing")
    return check
