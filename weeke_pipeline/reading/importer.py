"""Import cases for reading from pipeline outputs or a simple NIfTI layout.

Layout looked for under OUTPUT (any depth): ``sub-<label>[_entities]_<T1w|T2w|ADC>.nii[.gz]``,
and the fractional-anisotropy map ``..._FA.nii[.gz]`` (the pipeline writes it on the T2w grid as
``derivatives/weeke/sub-*/ses-*/dwi/*_space-T2w_FA.nii.gz``; whether readers see it is a study
setting, :mod:`weeke_pipeline.reading.study`); the subject from the ``sub-`` entity of the file
name, else of a parent folder; a subject needs at least one of T1w/T2w/ADC. And a
``participants.tsv`` (the first found, top first) with ``participant_id`` and the age at scan:
``pma_weeks`` (e.g. ``40.43`` or ``40+3``) or ``pma_days``, and ``day_of_life``; or the columns
``weeke synth`` writes (``pma_at_scan_weeks``, ``pma_at_scan_days``, ``day_of_life_at_scan``).
Where several images of one subject and sequence exist, one in the subject's T2w space
(``space-T2w``) or native space (no ``space-``) wins, then the shortest path.

Each case gets a random reading code; the images are copied, with identifying NIfTI header
fields cleared (descrip, aux_file, intent_name, db_name, extensions), to
``<data>/images/<code>/<sequence>.nii.gz``: nothing on disk under the code names the subject.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from weeke_pipeline.bids import names
from weeke_pipeline.bids.tables import PARTICIPANT_COLUMN, TableError, participant, read_table
from weeke_pipeline.reading.sequences import CLINICAL_SEQUENCES, SEQUENCES

_NIFTI = (".nii", ".nii.gz")
CODE_ALPHABET = "ACDEFGHJKLMNPQRTUVWXY34679"  # no look-alikes (0/O, 1/I, 2/Z, 5/S, 8/B)


class ImportProblem(ValueError):
    """Bad input, with the file and the problem in the message."""


@dataclass
class Found:
    subject: str
    images: dict[str, Path] = field(default_factory=dict)
    pma_weeks: int | None = None
    pma_days: int | None = None
    day_of_life: int | None = None


def _rank(path: Path) -> tuple[int, int]:
    space = names.parse(path.name).get("space")
    pref = 0 if space is None or space == "T2w" else 1
    return (pref, len(str(path)))


def find_images(root: Path) -> dict[str, Found]:
    found: dict[str, Found] = {}
    best: dict[tuple[str, str], Path] = {}
    for path in sorted(root.rglob("*.nii*")):
        entities = names.parse(path)  # the subject: of the name, else of a parent folder
        seq, label = entities.get("suffix"), entities.get("sub")
        if seq not in SEQUENCES or entities["extension"] not in _NIFTI or not label:
            continue
        if not path.is_file():
            continue
        key = (label, seq)
        if key not in best or _rank(path) < _rank(best[key]):
            best[key] = path
    for (label, seq), path in sorted(best.items()):
        found.setdefault(label, Found(subject=label)).images[seq] = path
    return found


def _pma(row: dict[str, str], where: str) -> tuple[int | None, int | None]:
    raw = (row.get("pma_weeks") or "").strip()
    days = (row.get("pma_days") or "").strip()
    if row.get("pma_at_scan_weeks"):  # the layout `weeke synth` and the pipeline write
        raw = f"{row['pma_at_scan_weeks'].strip()}+{(row.get('pma_at_scan_days') or '0').strip()}"
    try:
        if raw and raw.lower() != "n/a":
            if "+" in raw:
                w, d = raw.split("+", 1)
                return int(w), int(d)
            total = round(float(raw) * 7)
        elif days and days.lower() != "n/a":
            total = int(float(days))
        else:
            return None, None
    except ValueError as exc:
        raise ImportProblem(f"{where}: postmenstrual age {raw or days!r} is not a number "
                            "(weeks like 40.4 or 40+3, or pma_days)") from exc
    if not 150 <= total <= 420:
        raise ImportProblem(f"{where}: postmenstrual age {total} days is outside 22-60 weeks")
    return total // 7, total % 7


def read_participants(root: Path, found: dict[str, Found]) -> list[str]:
    """Fill ages from participants.tsv; returns warnings."""
    tables = sorted(root.rglob("participants.tsv"), key=lambda p: (len(p.parts), str(p)))
    if not tables:
        return ["no participants.tsv found: postmenstrual age and day of life left empty"]
    table = tables[0]
    try:
        rows = read_table(table, what="participants table")
    except TableError as exc:
        raise ImportProblem(str(exc)) from None
    if PARTICIPANT_COLUMN not in rows.columns:
        raise ImportProblem(f"{table}: no participant_id column")
    for n, row in rows.rows:
        label = participant(row.get(PARTICIPANT_COLUMN) or "")
        if label not in found:
            continue
        where = f"{table} line {n}"
        f = found[label]
        f.pma_weeks, f.pma_days = _pma(row, where)
        dol = (row.get("day_of_life") or row.get("day_of_life_at_scan") or "").strip()
        if dol and dol.lower() != "n/a":
            try:
                f.day_of_life = int(float(dol))
            except ValueError as exc:
                raise ImportProblem(f"{where}: day_of_life {dol!r} is not a number") from exc
    return [f"sub-{k}: not in {table}" for k, f in found.items() if f.pma_weeks is None]


def deidentified_copy(src: Path, dest: Path, box: object = None) -> None:
    """Write ``src`` to ``dest`` (NIfTI-1/2, gzipped) with identifying header fields cleared,
    cropped to the world ``box`` (:mod:`weeke_pipeline.reading.image_prep`) when given."""
    import nibabel as nib

    try:
        img = nib.load(str(src))
    except Exception as exc:  # nibabel raises several types for broken files
        raise ImportProblem(f"{src}: not a readable NIfTI image ({exc})") from exc
    if len(img.shape) < 3:
        raise ImportProblem(f"{src}: expected a 3D image, found shape {img.shape}")
    hdr = img.header.copy()
    for key in ("descrip", "aux_file", "intent_name", "db_name"):
        if key in hdr:
            hdr[key] = b""
    hdr.extensions.clear()
    out = type(img)(img.dataobj, img.affine, hdr)
    if box is not None:
        from weeke_pipeline.reading.image_prep import crop_to_box

        out = crop_to_box(out, box)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part.nii.gz")
    nib.save(out, str(tmp))
    tmp.replace(dest)


def new_code(existing: set[str]) -> str:
    while True:
        code = "WK-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))
        if code not in existing:
            return code


def _crop_box(f: Found, margin_mm: float | None) -> object:
    """World box around the subject's brain mask (the pipeline's ``*_desc-brain_mask`` beside
    its T2w), grown by ``margin_mm``; None (no cropping) without a mask or with margin None."""
    if margin_mm is None or "T2w" not in f.images:
        return None
    masks = sorted(f.images["T2w"].parent.glob("*_desc-brain_mask.nii*"))
    if not masks:
        return None
    import nibabel as nib

    from weeke_pipeline.reading.image_prep import brain_box

    return brain_box(nib.load(str(masks[0])), margin_mm)


def import_cases(root: Path, user: object = None, *, crop_margin_mm: float | None = 15.0
                 ) -> tuple[list[str], list[str]]:
    """Import every subject under ``root`` not imported yet. Returns (new codes, warnings).

    Images are cropped to the brain mask plus ``crop_margin_mm`` where the pipeline wrote one
    (None: never crop)."""
    from django.conf import settings
    from django.db import transaction

    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.models import Case
    from weeke_pipeline.reading.services import assign_cases

    root = Path(root)
    if not root.is_dir():
        raise ImportProblem(f"{root}: not a folder")
    found = find_images(root)
    if not found:
        raise ImportProblem(f"{root}: no images named sub-<id>[_...]_(T1w|T2w|ADC).nii[.gz] found")
    warnings = read_participants(root, found)
    data = Path(settings.WEEKE_DATA_DIR)
    known = set(Case.objects.values_list("subject", flat=True))
    codes = set(Case.objects.values_list("code", flat=True))
    created: list[str] = []
    for label, f in sorted(found.items()):
        if not any(s in f.images for s in CLINICAL_SEQUENCES):
            warnings.append(f"sub-{label}: no T1w, T2w or ADC image (only "
                            f"{', '.join(sorted(f.images))}), not imported")
            continue
        if label in known:
            warnings.append(f"sub-{label}: already imported, skipped")
            continue
        code = new_code(codes)
        codes.add(code)
        images = {}
        box = _crop_box(f, crop_margin_mm)
        for seq in SEQUENCES:
            if seq in f.images:
                rel = Path("images") / code / f"{seq}.nii.gz"
                deidentified_copy(f.images[seq], data / rel, box)
                images[seq] = str(rel)
        with transaction.atomic():
            case = Case.objects.create(code=code, subject=label, pma_weeks=f.pma_weeks,
                                       pma_days=f.pma_days, day_of_life=f.day_of_life,
                                       sequences=[s for s in SEQUENCES if s in images],
                                       images=images)
            audit.record(user or "system", "case.import", case, new={
                "sequences": case.sequences, "pma": case.pma_label,
                "day_of_life": case.day_of_life})
        created.append(code)
    assign_cases()
    return created, warnings
