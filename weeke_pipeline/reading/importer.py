"""Import cases for reading from pipeline outputs or a simple NIfTI layout: one case per
subject AND session.

Images are found under OUTPUT at any depth by their BIDS entities (``sub``, ``ses``, ``space``,
``desc``, ``run`` and the suffix ``T1w|T2w|ADC|FA``), parsed by :mod:`weeke_pipeline.bids.names`
(the naming module the pipeline writes with); ``sub``/``ses`` come from the file name, else
from ``sub-*``/``ses-*`` parent folders; a file without a ``ses`` entity belongs to the session
"" (data without sessions). Each (subject, session) is a case: a subject scanned twice is two
cases, each with its own images only; the study setting ``read_sessions``
(:mod:`weeke_pipeline.reading.study`) names the sessions the study reads (the trial: the
1-month scan), others are skipped with a note.

Which images, when several candidates exist for one case and sequence: all of a case's images
come from ONE dataset, the pipeline's derivatives (a folder whose ``dataset_description.json``
says ``"DatasetType": "derivative"``) when it has images of that session, else the raw data,
else files outside any BIDS dataset (so not Nipype's copies in the output's ``work/`` folder);
inside it, T2w space or native (no ``space``) before other spaces, ``desc-preproc`` or no
``desc`` before other descriptions, then the lowest ``run``, then the name. So importing the
whole output folder or only ``derivatives/weeke`` gives the same cases and images, and a case
never mixes sessions, nor raw and processed images.

Ages at scan: a sessions table ``sub-<label>/sub-<label>_sessions.tsv`` (``session_id`` plus
the age columns below) gives them per session; ``participants.tsv`` (the first found, top
first; ``participant_id`` and ``pma_weeks`` (``40.43`` or ``40+3``) or ``pma_days``, and
``day_of_life``, or the columns ``weeke synth`` and the pipeline write: ``pma_at_scan_weeks``,
``pma_at_scan_days``, ``day_of_life_at_scan``) per subject, used for a subject's case only when
the subject has one session (the ages of two scans differ: left empty with a warning).

Each case gets a random reading code; the images are copied, with identifying NIfTI header
fields cleared (descrip, aux_file, intent_name, db_name, extensions), to
``<data>/images/<code>/<sequence>.nii.gz``: nothing on disk under the code names the subject
or the session.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from functools import cache
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
    """One case to import: a subject's session and its images (sequence -> file)."""

    subject: str
    session: str = ""
    images: dict[str, Path] = field(default_factory=dict)
    dataset: Path | None = None
    pma_weeks: int | None = None
    pma_days: int | None = None
    day_of_life: int | None = None

    @property
    def name(self) -> str:
        """``sub-X`` or ``sub-X ses-Y`` (messages; coordinator side only)."""
        return f"sub-{self.subject}" + (f" ses-{self.session}" if self.session else "")


@cache
def _is_derivative(folder: Path) -> bool:
    desc = folder / "dataset_description.json"
    try:
        return json.loads(desc.read_text()).get("DatasetType") == "derivative"
    except (OSError, ValueError, AttributeError):
        return False


@cache
def _is_dataset(folder: Path) -> bool:
    return (folder / "dataset_description.json").is_file()


def _dataset(path: Path, root: Path) -> Path:
    """The BIDS dataset ``path`` belongs to: the nearest folder (up to ``root``) with a
    ``dataset_description.json``, else ``root``."""
    for parent in path.parents:
        if (parent / "dataset_description.json").is_file():
            return parent
        if parent == root:
            break
    return root


def _rank(ent: dict[str, str], path: Path) -> tuple[int, int, int, str]:
    space = ent.get("space")
    desc = ent.get("desc")
    run = ent.get("run", "")
    return (0 if space in (None, "T2w") else 1, 0 if desc in (None, "preproc") else 1,
            int(run) if run.isdigit() else 0, path.name)


def find_cases(root: Path, sessions: list[str] | None = None
               ) -> tuple[dict[tuple[str, str], Found], list[str]]:
    """The cases under ``root`` by (subject, session), and notes on what was left out.

    ``sessions``: the session labels read (None or empty: all).
    """
    root = Path(root)
    # (subject, session) -> dataset -> sequence -> [(rank, path)]
    candidates: dict[tuple[str, str], dict[Path, dict[str, list[tuple[tuple, Path]]]]] = {}
    for path in sorted(root.rglob("*.nii*")):
        ent = names.parse(path)  # sub/ses of the name, else of the parent folders
        if (ent.get("suffix") not in SEQUENCES or ent["extension"] not in _NIFTI
                or not ent.get("sub") or not path.is_file()):
            continue
        key = (ent["sub"], ent.get("ses", ""))
        seq = ent["suffix"]
        by_set = candidates.setdefault(key, {}).setdefault(_dataset(path, root), {})
        by_set.setdefault(seq, []).append((_rank(ent, path), path))
    found: dict[tuple[str, str], Found] = {}
    notes: list[str] = []
    skipped: dict[str, int] = {}
    for (sub, ses), datasets in sorted(candidates.items()):
        if sessions and ses not in sessions:
            skipped[ses] = skipped.get(ses, 0) + 1
            continue
        usable = [d for d in datasets if any(s in datasets[d] for s in CLINICAL_SEQUENCES)]
        pool = usable or list(datasets)
        best = min(pool, key=lambda d: (not _is_derivative(d), not _is_dataset(d),
                                        len(d.parts), str(d)))
        case = Found(subject=sub, session=ses, dataset=best)
        for seq, items in sorted(datasets[best].items()):
            case.images[seq] = min(items)[1]
        found[(sub, ses)] = case
    for ses, n in sorted(skipped.items()):
        notes.append(f"ses-{ses or '(none)'}: {n} subject(s) not imported (the study reads "
                     f"session(s) {', '.join(sessions or [])})")
    if sessions:
        subjects = {sub for sub, _ in candidates}
        for sub in sorted(subjects):
            missing = [s for s in sessions if (sub, s) not in found]
            if missing:
                notes.append(f"sub-{sub}: no images of session(s) {', '.join(missing)}")
    return found, notes


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


AGE_COLUMNS = ("pma_weeks", "pma_days", "day_of_life", "pma_at_scan_weeks",
               "pma_at_scan_days", "day_of_life_at_scan")


def _has_age(row: dict[str, str]) -> bool:
    return any((row.get(c) or "").strip().lower() not in ("", "n/a") for c in AGE_COLUMNS)


def _rows(path: Path, key: str) -> list[tuple[dict[str, str], str]]:
    """(row, "file line N") of a BIDS TSV that must have the column ``key``."""
    try:
        table = read_table(path, what="table of ages")
    except TableError as exc:
        raise ImportProblem(str(exc)) from None
    if key not in table.columns:
        raise ImportProblem(f"{path}: no {key} column")
    return [(row, f"{path} line {n}") for n, row in table.rows]


def _set_ages(f: Found, row: dict[str, str], where: str) -> None:
    f.pma_weeks, f.pma_days = _pma(row, where)
    dol = (row.get("day_of_life") or row.get("day_of_life_at_scan") or "").strip()
    if dol and dol.lower() != "n/a":
        try:
            f.day_of_life = int(float(dol))
        except ValueError as exc:
            raise ImportProblem(f"{where}: day_of_life {dol!r} is not a number") from exc


def read_ages(root: Path, found: dict[tuple[str, str], Found]) -> list[str]:
    """Fill the cases' ages at scan from the sessions and participants tables; warnings."""
    per_session: dict[tuple[str, str], tuple[dict[str, str], str]] = {}
    for table in sorted(root.rglob("sub-*_sessions.tsv")):
        sub = names.parse(table).get("sub", "")
        for row, where in _rows(table, "session_id"):
            ses = names.session_label(row.get("session_id") or "") or ""
            if (sub, ses) in found and _has_age(row):
                per_session.setdefault((sub, ses), (row, where))
    per_subject: dict[str, tuple[dict[str, str], str]] = {}
    tables = sorted(root.rglob("participants.tsv"), key=lambda p: (len(p.parts), str(p)))
    if tables:
        for row, where in _rows(tables[0], PARTICIPANT_COLUMN):
            sub = participant(row.get(PARTICIPANT_COLUMN) or "")
            ses = names.session_label(row.get("session_id") or row.get("session") or "")
            if ses:  # a participants table with one row per session
                per_session.setdefault((sub, ses), (row, where))
            else:
                per_subject.setdefault(sub, (row, where))
    n_sessions: dict[str, int] = {}
    for sub, _ in found:
        n_sessions[sub] = n_sessions.get(sub, 0) + 1
    warnings = [] if tables else [
        "no participants.tsv found: postmenstrual age and day of life left empty"]
    for (sub, ses), f in sorted(found.items()):
        if (sub, ses) in per_session:
            _set_ages(f, *per_session[(sub, ses)])
        elif sub in per_subject and n_sessions[sub] == 1:
            _set_ages(f, *per_subject[sub])
        elif sub in per_subject and _has_age(per_subject[sub][0]):
            warnings.append(f"{f.name}: {per_subject[sub][1]} gives one age for the subject's "
                            f"{n_sessions[sub]} sessions: ages left empty (give them per "
                            f"session in sub-{sub}_sessions.tsv)")
        elif tables:
            warnings.append(f"{f.name}: not in {tables[0]}")
    return warnings


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
    from weeke_pipeline.reading.settings import private_folder

    private_folder(dest.parent)  # images/ and images/<code>/: owner only (0700)
    tmp = dest.with_name(dest.name + ".part.nii.gz")
    nib.save(out, str(tmp))
    os.chmod(tmp, 0o600)  # the owner only, like the database and the keys
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
    t2w = names.parse(f.images["T2w"])
    masks = [p for p in names.select(f.images["T2w"].parent.iterdir(), sub=t2w.get("sub"),
                                     ses=t2w.get("ses"), desc="brain", suffix="mask")
             if names.parse(p).get("extension") in (".nii", ".nii.gz")]
    if not masks:
        return None
    import nibabel as nib

    from weeke_pipeline.reading.image_prep import brain_box

    return brain_box(nib.load(str(masks[0])), margin_mm)


def import_cases(root: Path, user: object = None, *, crop_margin_mm: float | None = 15.0
                 ) -> tuple[list[str], list[str]]:
    """Import every case (subject and session) under ``root`` not imported yet, of the
    sessions the study reads. Returns (new codes, warnings).

    Images are cropped to the brain mask plus ``crop_margin_mm`` where the pipeline wrote one
    (None: never crop)."""
    from django.conf import settings
    from django.db import transaction

    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.models import Case
    from weeke_pipeline.reading.services import assign_cases, ensure_unlocked

    ensure_unlocked()  # before any image is copied
    root = Path(root)
    if not root.is_dir():
        raise ImportProblem(f"{root}: not a folder")
    from weeke_pipeline.reading import study

    found, warnings = find_cases(root, study.read_sessions())
    if not found and not warnings:
        raise ImportProblem(f"{root}: no images named sub-<id>[_ses-<label>][_...]_"
                            "(T1w|T2w|ADC).nii[.gz] found")
    warnings += read_ages(root, found)
    data = Path(settings.WEEKE_DATA_DIR)
    known = set(Case.objects.values_list("subject", "session"))
    codes = set(Case.objects.values_list("code", flat=True))
    created: list[str] = []
    for key, f in sorted(found.items()):
        if not any(s in f.images for s in CLINICAL_SEQUENCES):
            warnings.append(f"{f.name}: no T1w, T2w or ADC image (only "
                            f"{', '.join(sorted(f.images))}), not imported")
            continue
        if key in known:
            warnings.append(f"{f.name}: already imported, skipped")
            continue
        if f.session and (f.subject, "") in known:
            # a case imported before cases had sessions (its session is unknown): importing
            # this session too could read the same scan twice under two codes
            warnings.append(f"{f.name}: sub-{f.subject} has a case without a session label "
                            "(imported before cases were session-aware): not imported")
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
            case = Case.objects.create(code=code, subject=f.subject, session=f.session,
                                       pma_weeks=f.pma_weeks,
                                       pma_days=f.pma_days, day_of_life=f.day_of_life,
                                       sequences=[s for s in SEQUENCES if s in images],
                                       images=images)
            audit.record(user or "system", "case.import", case, new={
                "session": case.session, "sequences": case.sequences, "pma": case.pma_label,
                "day_of_life": case.day_of_life})
        created.append(code)
    assign_cases()
    return created, warnings
