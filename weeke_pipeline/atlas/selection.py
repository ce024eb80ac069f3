"""Which atlases a run uses: names or folders, several for multi-atlas segmentation, and
``dhcp-auto`` (the dHCP weeks around each infant's postmenstrual age at scan).

``dhcp-auto`` rule: among the installed dHCP volumetric atlas bundles (``weeke atlas fetch
dhcp``: bundles ``dhcp-vol-<week>w`` in the user atlas folder, or any bundle whose atlas.json
names the ``dhcpVol`` template), take the :data:`DHCP_AUTO_COUNT` bundles whose
``postmenstrual_age_weeks`` is nearest to the infant's postmenstrual age at scan
(``pma_at_scan_weeks`` + ``pma_at_scan_days`` / 7 from the run's participants table; ties go to
the younger week). At 1 month after term (about 44 weeks) that is 42, 43 and 44 w (the atlas
ends at 44 w); at 41+3 w: 41, 42 and 40 w.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from weeke_pipeline.atlas.bundle import AtlasBundle, AtlasError, load_atlas
from weeke_pipeline.resources import find_atlas, user_atlas_dir

DHCP_AUTO = "dhcp-auto"
DHCP_AUTO_COUNT = 3


class AtlasSelectionError(AtlasError):
    """An atlas list that cannot be resolved (the message names what is missing)."""


def installed_dhcp(search: list[Path] | None = None) -> list[AtlasBundle]:
    """Installed dHCP bundles (see module docstring), sorted by week."""
    found: dict[Path, AtlasBundle] = {}
    for folder in search or [user_atlas_dir()]:
        if not folder.is_dir():
            continue
        for meta in sorted(folder.glob("*/atlas.json")):
            path = meta.parent
            text = meta.read_text(encoding="utf-8", errors="replace")
            if not (path.name.startswith("dhcp-vol-") or "dhcpVol" in text):
                continue
            try:
                bundle = load_atlas(path)
            except AtlasError:
                continue
            found[path.resolve()] = bundle
    return sorted(found.values(), key=lambda b: float(b.meta["postmenstrual_age_weeks"]))


def choose_dhcp_weeks(pma_weeks: float, bundles: list[AtlasBundle],
                      count: int = DHCP_AUTO_COUNT) -> list[AtlasBundle]:
    """The ``count`` bundles nearest in postmenstrual age (ties: the younger week first);
    returned nearest first (the first is the primary atlas for QC)."""
    ranked = sorted(bundles, key=lambda b: (abs(float(b.meta["postmenstrual_age_weeks"])
                                                - pma_weeks),
                                            float(b.meta["postmenstrual_age_weeks"])))
    return ranked[:count]


def participant_pma(participants: str | os.PathLike[str] | None, subject: str) -> float:
    """Postmenstrual age at scan (weeks, with days as sevenths) of ``subject`` (pseudonym,
    with or without ``sub-``) from the run's participants table."""
    if not participants:
        raise AtlasSelectionError(
            f"--atlas {DHCP_AUTO} needs the participants table (--participants) with "
            "participant_id and pma_at_scan_weeks columns")
    path = Path(participants)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        cols = reader.fieldnames or []
        for col in ("participant_id", "pma_at_scan_weeks"):
            if col not in cols:
                raise AtlasSelectionError(
                    f"{path}: participants table has no {col} column, which --atlas "
                    f"{DHCP_AUTO} needs (postmenstrual age at scan, completed weeks)")
        want = subject.removeprefix("sub-")
        for row in reader:
            if (row.get("participant_id") or "").removeprefix("sub-") != want:
                continue
            raw_w = (row.get("pma_at_scan_weeks") or "").strip()
            raw_d = (row.get("pma_at_scan_days") or "0").strip() or "0"
            try:
                weeks = float(raw_w) + float(raw_d) / 7.0
            except ValueError:
                raise AtlasSelectionError(
                    f"{path}: participant sub-{want}: pma_at_scan_weeks {raw_w!r} /"
                    f" pma_at_scan_days {raw_d!r} is not a number") from None
            return weeks
    raise AtlasSelectionError(f"{path}: participant sub-{want} is not in the participants "
                              f"table (--atlas {DHCP_AUTO} needs the age at scan)")


def resolve_atlases(names: list[str], *, subject: str = "",
                    participants: str | None = None,
                    search: list[Path] | None = None) -> list[AtlasBundle]:
    """The atlas bundles of ``names`` for one subject (``dhcp-auto`` expanded), validated;
    an atlas named twice is used once."""
    out: list[AtlasBundle] = []
    for name in names:
        if name == DHCP_AUTO:
            bundles = installed_dhcp(search)
            if not bundles:
                raise AtlasSelectionError(
                    f"--atlas {DHCP_AUTO}: no dHCP atlas installed in {user_atlas_dir()}; "
                    "run `weeke atlas fetch dhcp` (or copy a TemplateFlow home and fetch "
                    "offline)")
            out += choose_dhcp_weeks(participant_pma(participants, subject), bundles)
        else:
            out.append(load_atlas(find_atlas(name)))
    unique: dict[Path, AtlasBundle] = {}
    for b in out:
        unique.setdefault(b.path.resolve(), b)
    return list(unique.values())


def check_same_labels(bundles: list[AtlasBundle]) -> None:
    """Fusion needs one label numbering: every bundle's label table must give each index the
    same region name as the first one's."""
    if len(bundles) < 2:
        return
    first = {row["index"]: row["name"] for row in bundles[0].labels}
    for b in bundles[1:]:
        for row in b.labels:
            if row["index"] in first and first[row["index"]] != row["name"]:
                raise AtlasSelectionError(
                    f"{b.path}/labels.tsv: label {row['index']} is {row['name']!r} but "
                    f"{first[row['index']]!r} in {bundles[0].path}/labels.tsv; atlases fused "
                    "together must share the label numbering (import them with weeke atlas "
                    "import)")
