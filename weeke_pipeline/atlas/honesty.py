"""Honest defaults: say so when phantom labels are put on a real brain.

The default atlas (``weeke-phantom``) is a geometric phantom: right for the demo, tests and
benchmarks on synthetic subjects, meaningless on a real infant (measured on real neonates:
Dice 0.16 for deep grey matter). A run that registers it to data that is not this project's
synthetic data therefore gets a notice in the status table and a ``fail`` in the QC report,
with the one command that fetches a real atlas.

Synthetic data is recognised by the header markers defined here and written by
:mod:`weeke_pipeline.synth.dicom_writer` (ManufacturerModelName and SoftwareVersions), which
survive de-identification and reach dcm2niix's JSON sidecar (``ManufacturersModelName``,
``SoftwareVersions``; dcm2niix drops an unknown ``Manufacturer``). No sidecar, or other values,
count as real data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

#: header markers of synthetic DICOM (written by weeke_pipeline.synth.dicom_writer)
SYNTH_MANUFACTURER = "WeekeSynth"
SYNTH_MODEL = "Phantom 3T"
SYNTH_SOFTWARE = "weeke-pipeline synth"
FETCH_COMMAND = "weeke atlas fetch dhcp --cohort 40..44"


def sidecar_of(image: str | Path) -> Path:
    """The BIDS JSON sidecar of a NIfTI image (``x.nii.gz`` -> ``x.json``)."""
    p = Path(image)
    name = p.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return p.with_name(name[: -len(ext)] + ".json")
    return p.with_suffix(".json")


def is_synthetic(image: str | Path) -> bool:
    """True when the image's sidecar carries the synthetic-data markers (both of them)."""
    side = sidecar_of(image)
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (meta.get("ManufacturersModelName") == SYNTH_MODEL
            and meta.get("SoftwareVersions") == SYNTH_SOFTWARE)


def is_phantom_atlas(meta: Mapping[str, object]) -> bool:
    """True for the phantom atlas bundle (``atlas.json``: ``phantom: true`` or its name)."""
    return bool(meta.get("phantom")) or str(meta.get("name", "")).startswith("weeke-phantom")


def phantom_notice(atlas_meta: Mapping[str, object], t2w: str | Path) -> str:
    """The notice for a subject, or ``""`` when the atlas is real or the data synthetic."""
    if not is_phantom_atlas(atlas_meta) or is_synthetic(t2w):
        return ""
    return (f"PHANTOM atlas labels on real data (not anatomy): fetch a real atlas with "
            f"`{FETCH_COMMAND}`, re-run with --atlas dhcp-vol-44w")


def run_notice(atlas_meta: Mapping[str, object], t2w_images: list[str]) -> str:
    """The banner of a run's status table, or ``""`` (see :func:`phantom_notice`)."""
    real = [t for t in t2w_images if phantom_notice(atlas_meta, t)]
    if not real:
        return ""
    return (f"NOTE: {len(real)} of {len(t2w_images)} session(s) are real (not synthetic) data "
            f"and the atlas is the phantom {atlas_meta.get('name')}: its labels are a geometric "
            f"phantom, not anatomy (QC fails them). Fetch a real neonatal atlas with\n"
            f"    {FETCH_COMMAND}\n"
            f"and re-run with --atlas dhcp-vol-44w (the week nearest the age at scan; "
            f"docs/atlases.md).")
