"""De-identification of DICOM headers before anything is written.

Profile: DICOM PS3.15 Annex E *Basic Application Level Confidentiality Profile* (code 113100) with
the *Retain Safe Private Option* (113111) restricted to the diffusion/scaling/mosaic private tags
that dcm2niix needs, and **without** the Retain Longitudinal Temporal Information options: every
date, time and date-time is replaced by a dummy value, so no acquisition date survives; the age at
scan is kept, in days, as Patient's Age ``nnnD`` (computed from the original birth and study dates
in memory before they are removed).

Tag lists: the PS3.15 Table E.1-1 action lists shipped by ``dicom-anonymizer`` (KitwareMedical,
maintained, pure Python on pydicom; tables regenerated from each DICOM release -- we use the
``dicomfields_2026c`` table). We use its *tables* but apply the actions ourselves because its
applier (a) acts only on top-level attributes, while the profile applies inside sequences too
(enhanced MR functional groups carry Frame Acquisition DateTime, references carry UIDs); (b) maps
UIDs through a random, process-global dictionary, while re-runs must give identical outputs; and
(c) prints to stdout. ``pydicom`` itself ships no profile table; ``deid`` needs recipe files and
keeps private tags by default; ``dicognito`` invents plausible fake identities and shifts dates
instead of following the table.

Actions: D -> dummy value of the VR; Z -> empty; X -> remove; U -> a UID derived from the original
by keyed hashing (``2.25.<int>`` from HMAC, consistent across files and re-runs); K -> keep; the
conditional actions (X/Z, X/D, Z/D, X/Z/D) -> remove, except attributes that the MR image IOD
requires (empty / dummy then). Extra safety beyond the table: any other DA/DT/TM -> dummy, any
other PN -> removed, any ``*Comments`` attribute -> removed, every private tag not on the allowlist
below -> removed. Patient's Name and Patient ID become the pseudonym.

Pseudonyms: from a participants table (TSV) that maps the DICOM Patient ID to a participant label,
or ``HMAC-SHA256(project key, PatientID)`` (first 10 hex digits, upper case) when no table is given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom.datadict import DicomDictionary, dictionary_VR, get_entry, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID, generate_uid

from weeke_pipeline.bids import names
from weeke_pipeline.bids.tables import TableError, read_table

PROFILE_TABLE = "dicomfields_2026c"
DEIDENTIFICATION_METHOD = (
    "DICOM PS3.15 E.1 Basic Application Level Confidentiality Profile (113100) with Retain Safe "
    "Private Option (113111) limited to diffusion/scaling/mosaic tags; dates and times replaced "
    "(no Retain Longitudinal Temporal Information); age kept in days; "
    f"weeke-pipeline, table dicom-anonymizer {PROFILE_TABLE}"
)
_METHOD_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113111", "Retain Safe Private Option"),
)

#: Private tags kept: (private creator, group) -> element offsets (the low byte of the element).
#: Only numeric / coded values that dcm2niix reads for b-values, gradient directions, intensity
#: scaling, mosaic layout and slice geometry. Checked by converting every real test series with
#: and without them (tests/test_dicom_convert.py asserts b-values and images survive).
SAFE_PRIVATE: dict[tuple[str, int], frozenset[int]] = {
    # Siemens classic: B_value, directionality, gradient, B matrix, mosaic count, slice times;
    # the CSA *image* header (0029,xx10) carries mosaic layout and diffusion info. The CSA *series*
    # header (0029,xx20) is removed: it holds the protocol and e.g. UsedPatientWeight.
    ("SIEMENS MR HEADER", 0x0019): frozenset(
        {0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
         0x17, 0x18, 0x27, 0x28, 0x29}),
    ("SIEMENS CSA HEADER", 0x0029): frozenset({0x08, 0x09, 0x10}),
    # Siemens XA (enhanced): the private functional-group sequences (xxFE) and inside them the
    # phase-encoding polarity (0021,111C), bandwidth per pixel phase (0021,1153), dwell time
    # (0021,1142), slice timing (0021,1104). Not the rest: (0021,102B) holds weight and sex.
    ("SIEMENS MR SDS 01", 0x0021): frozenset({0xFE, 0x01, 0x04, 0x12, 0x51}),
    ("SIEMENS MR SDI 02", 0x0021): frozenset({0xFE, 0x03, 0x04, 0x1C, 0x33, 0x42, 0x48, 0x49,
                                              0x53}),
    # GE: b-value (slop_int_6..9), gradient directions, effective echo spacing, pulse sequence
    ("GEMS_PARM_01", 0x0043): frozenset({0x2C, 0x2F, 0x30, 0x39, 0x88}),
    ("GEMS_ACQU_01", 0x0019): frozenset({0x9C, 0x9E, 0xBB, 0xBC, 0xBD}),
    ("GEMS_IMAG_01", 0x0027): frozenset({0x60}),
    # Philips: b-value, direction label, slice/volume counters, scale slope/intercept, gradients
    ("Philips Imaging DD 001", 0x2001): frozenset(
        {0x03, 0x04, 0x08, 0x0A, 0x0B, 0x17, 0x18, 0x81}),
    ("Philips MR Imaging DD 001", 0x2005): frozenset({0x0D, 0x0E, 0xB0, 0xB1, 0xB2}),
    ("Philips MR Imaging DD 005", 0x2005): frozenset({0x09, 0x0A, 0x13, 0x29}),
    # (2005,1596): without it dcm2niix mis-sorts the scrambled Philips volumes (checked)
    ("Philips MR Imaging DD 006", 0x2005): frozenset({0x96, 0x99}),
    # United Imaging: b-value, gradient direction, slices per mosaic and the per-slice geometry
    # sequence (0065,1051) (without it the mosaic loses its b-values and oblique affine; checked)
    ("Image Private Header", 0x0065): frozenset({0x09, 0x0A, 0x37, 0x50, 0x51}),
}

#: MR image IOD attributes that must stay present (Type 1/2): emptied or dummied, not removed.
_KEEP_PRESENT = {
    Tag(0x0010, 0x0010), Tag(0x0010, 0x0020), Tag(0x0010, 0x0030), Tag(0x0010, 0x0040),
    Tag(0x0008, 0x0020), Tag(0x0008, 0x0030), Tag(0x0008, 0x0050), Tag(0x0008, 0x0090),
    Tag(0x0020, 0x0010), Tag(0x0008, 0x0023), Tag(0x0008, 0x0033),
}


class DeidentificationError(ValueError):
    """A series cannot be de-identified (e.g. no pseudonym for its participant)."""


# --------------------------------------------------------------------------- pseudonyms
@dataclass
class Pseudonymizer:
    """Maps a DICOM Patient ID to a study pseudonym (a BIDS label: letters and digits)."""

    table: dict[str, str] | None = None
    key: bytes | None = None

    @classmethod
    def from_table(cls, path: str | Path, key: bytes | None = None) -> Pseudonymizer:
        """Read a participants table: a Patient ID column and a pseudonym column (column names
        and aliases: :mod:`weeke_pipeline.bids.tables`)."""
        try:
            rows = read_table(path, what="participants table")
        except TableError as exc:
            raise DeidentificationError(str(exc)) from None
        src, dst = rows.patient_column, rows.pseudonym_column
        if src is None or dst not in rows.columns:
            raise DeidentificationError(
                f"{path}: participants table needs a patient_id (or dicom_patient_id) column and "
                "a participant_id (or pseudonym) column")
        table = {}
        for n, row in rows.rows:
            label = names.label(row[dst] or "")
            if not label:
                raise DeidentificationError(f"{path}: line {n}: empty or invalid pseudonym")
            table[(row[src] or "").strip()] = label
        return cls(table=table, key=key)

    def __call__(self, patient_id: str) -> str:
        pid = str(patient_id or "").strip()
        if self.table is not None and pid in self.table:
            return self.table[pid]
        if self.key is not None:
            return hmac.new(self.key, pid.encode(), hashlib.sha256).hexdigest()[:10].upper()
        raise DeidentificationError(
            "the participant's Patient ID is not in the participants table and no project key "
            "was given")


def keyed_uid(uid: str, key: bytes) -> str:
    """A new UID from the original by keyed hashing (same input and key -> same UID)."""
    digest = hmac.new(key, str(uid).encode(), hashlib.sha256).hexdigest()
    return generate_uid(prefix="2.25.", entropy_srcs=[digest])


def age_in_days(ds: Dataset) -> int | None:
    """Age at scan in days from the original Patient's Birth Date and Study/Series date."""
    birth = _date(ds.get("PatientBirthDate"))
    scan = next((d for d in (_date(ds.get(k)) for k in (
        "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")) if d), None)
    if birth is None or scan is None or scan < birth:
        return None
    return (scan - birth).days


def _date(value: object) -> dt.date | None:
    text = str(value or "").strip()[:8]
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def format_age(days: int) -> str:
    """DICOM AS value: ``nnnD`` up to 999 days, else ``nnnW``."""
    return f"{days:03d}D" if days <= 999 else f"{min(days // 7, 999):03d}W"


# --------------------------------------------------------------------------- the profile
def _load_actions() -> tuple[dict[BaseTag, str], list[tuple[int, int, int, int, str]]]:
    from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector

    db = dicom_anonymization_database_selector(PROFILE_TABLE)
    exact: dict[BaseTag, str] = {}
    masked: list[tuple[int, int, int, int, str]] = []
    for category, tags in db.items():
        if category == "ALL_TAGS":
            continue
        action = category.removesuffix("_TAGS")
        for t in tags:
            if len(t) == 4:
                masked.append((*t, action))
            else:
                exact[Tag(*t)] = action
    return exact, masked


_ACTIONS: tuple[dict[BaseTag, str], list[tuple[int, int, int, int, str]]] | None = None


def profile_actions() -> tuple[dict[BaseTag, str], list[tuple[int, int, int, int, str]]]:
    global _ACTIONS
    if _ACTIONS is None:
        _ACTIONS = _load_actions()
    return _ACTIONS


def _action_for(tag: BaseTag) -> str | None:
    exact, masked = profile_actions()
    if tag in exact:
        return exact[tag]
    for group, elem, gmask, emask, action in masked:
        if tag.group & gmask == group & gmask and tag.element & emask == elem & emask:
            return action
    return None


_DUMMY = {"DA": "19000101", "DT": "19000101000000", "TM": "000000", "PN": "ANONYMOUS",
          "AS": "000D", "UI": "2.25.0"}


def _dummy(elem: DataElement) -> object:
    if elem.VR in _DUMMY:
        return _DUMMY[elem.VR]
    if elem.VR in ("SQ",):
        return Sequence([])
    if elem.VR in ("US", "SS", "UL", "SL", "FL", "FD", "IS", "DS", "SV", "UV"):
        return 0
    if elem.VR in ("OB", "OW", "UN", "OD", "OF", "OL", "OV"):
        return b""
    return "ANONYMIZED"


def _is_safe_private(ds: Dataset, tag: BaseTag) -> bool:
    if tag.element < 0x0010:
        return False
    if tag.element <= 0x00FF:  # a private creator: keep the ones whose block we keep
        return (str(ds[tag].value).strip(), tag.group) in SAFE_PRIVATE
    creator_tag = Tag(tag.group, tag.element >> 8)
    if creator_tag not in ds:
        return False
    creator = str(ds[creator_tag].value).strip()
    allowed = SAFE_PRIVATE.get((creator, tag.group))
    return allowed is not None and (tag.element & 0xFF) in allowed


def _in_dictionary(tag: BaseTag) -> bool:
    """A public tag pydicom's data dictionary knows (repeating groups such as 60xx too)."""
    if tag in DicomDictionary:
        return True
    try:
        get_entry(tag)
    except KeyError:
        return False
    return True


#: text the profile table keeps but that can hold anything typed at the console
_CODE_MEANING, _SEQUENCE_NAME = Tag(0x0008, 0x0104), Tag(0x0018, 0x0024)
_FREE_TEXT_KEPT = {_CODE_MEANING, _SEQUENCE_NAME}
#: a pulse sequence name as scanners write it (``*tse2d1_16``, ``ep_b1000#1``, ``fl3d1r``):
#: at most 16 characters with a digit, ``*`` or ``#`` in it
SEQUENCE_NAME = re.compile(r"(?=.*[0-9*#])[A-Za-z0-9*#_+\-.%]{1,16}")
_PRIVATE_TEXT_VRS = {"AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UN"}
_PRIVATE_NUMBERS = re.compile(r"[-+0-9.eE \\]*")
#: code words kept in allow-listed private text elements (vendor flags, CSA header types)
_PRIVATE_CODES = {"IMAGE NUM 4", "MR", "DIRECTIONAL", "NONE", "ISOTROPIC", "NO", "YES",
                  "ON", "OFF", "TRACE"}


def _clean_free_text(ds: Dataset, tag: BaseTag) -> None:
    """CodeMeaning (free text in code sequences) emptied; Sequence Name kept only when it looks
    like a scanner's sequence name (dcm2niix uses it), else removed."""
    if tag == _CODE_MEANING:
        ds[tag].value = ""
        return
    value = ds[tag].value
    if not (isinstance(value, str) and SEQUENCE_NAME.fullmatch(value.strip())):
        del ds[tag]


def _clean_private(ds: Dataset, tag: BaseTag) -> None:
    """An allow-listed private element: the Siemens CSA image header rebuilt from its allowed
    fields (:mod:`weeke_pipeline.ingest.csa`); text values kept only when they are numbers or a
    known code word (a name typed into a private field would otherwise pass), else emptied."""
    from weeke_pipeline.ingest.csa import rebuild_csa

    if tag.element <= 0xFF:
        return  # a private creator (only allow-listed ones reach here)
    elem = ds[tag]
    creator_tag = Tag(tag.group, tag.element >> 8)
    if (creator_tag in ds and str(ds[creator_tag].value).strip() == "SIEMENS CSA HEADER"
            and tag.element & 0xFF == 0x10):
        raw = elem.value if isinstance(elem.value, bytes) else b""
        rebuilt = rebuild_csa(raw)
        if rebuilt is None:
            del ds[tag]
        else:
            elem.value = rebuilt
        return
    if elem.VR not in _PRIVATE_TEXT_VRS:
        return  # binary numbers (US, FD, SL...), written as read
    value = elem.value
    if isinstance(value, bytes):
        if not value or any(b < 32 and b not in (0, 9, 10, 13) for b in value) or any(
                b > 126 for b in value):
            return  # binary content of an implicit-VR (UN) element: numbers
        text = value.decode("ascii").rstrip("\x00 ")
    else:
        items = value if isinstance(value, list) or hasattr(value, "append") else [value]
        text = "\\".join(str(v) for v in items).strip()
    if len(text) <= 2 or _PRIVATE_NUMBERS.fullmatch(text) or text.upper() in _PRIVATE_CODES:
        return
    elem.value = b"" if isinstance(value, bytes) else ""


def _vr(ds: Dataset, tag: BaseTag) -> str | None:
    """The VR of an element without parsing its value: the explicit VR, else (implicit VR
    transfer syntax, or UN) the data dictionary's, as pydicom's own conversion would use."""
    vr = ds.get_item(tag).VR
    if vr in (None, "UN") and tag in DicomDictionary:
        return dictionary_VR(tag)
    return vr


def _apply_profile(dataset: Dataset, key: bytes) -> None:
    """The profile's action on every element of ``dataset`` and, recursively, of the items of
    its sequences.

    Elements are looked at through their tag and VR only; a value is parsed only when it must
    change (dummy, empty, new UID), when it is a sequence to descend into, or when it names a
    private block. Kept elements stay as read and are written back byte for byte (parsing and
    re-encoding every value, as ``Dataset.walk`` does, took 3/4 of the de-identification)."""
    for tag in list(dataset.keys()):
        if tag.is_private:
            if not _is_safe_private(dataset, tag):
                del dataset[tag]
            elif dataset[tag].VR == "SQ":
                for item in dataset[tag].value:
                    _apply_profile(item, key)
            else:
                _clean_private(dataset, tag)
            continue
        if tag.element == 0 or not _in_dictionary(tag):
            del dataset[tag]  # group lengths, and elements no dictionary knows (unknown text)
            continue
        if tag in _FREE_TEXT_KEPT:
            _clean_free_text(dataset, tag)
            continue
        vr = _vr(dataset, tag)
        action = _action_for(tag)
        if action is None:
            if vr in ("DA", "DT", "TM"):
                action = "D"
            elif vr == "PN" or (keyword_for_tag(tag) or "").endswith("Comments"):
                action = "X"
            else:
                action = "K"
        if action == "X_Z_U_STAR":
            action = "U" if vr == "UI" else "Z"
        if action.startswith("X") and len(action) > 1:  # X/Z, X/D, X/Z/D
            action = "X" if tag not in _KEEP_PRESENT else action.split("_")[-1]
        if action == "Z_D":
            action = "D" if tag in _KEEP_PRESENT else "Z"
        if action == "X":
            del dataset[tag]
            continue
        if action == "K":
            if vr == "SQ":
                for item in dataset[tag].value:
                    _apply_profile(item, key)
            continue
        elem = dataset[tag]
        if action == "Z":
            elem.value = Sequence([]) if elem.VR == "SQ" else None
        elif action == "D":
            elem.value = _dummy(elem)
        elif action == "U" and elem.value:
            vals = elem.value if isinstance(elem.value, list) or hasattr(
                elem.value, "append") else [elem.value]
            new = [keyed_uid(v, key) for v in vals]
            elem.value = new if len(new) > 1 else new[0]


#: file meta elements kept: group length, version, SOP class/instance (replaced), transfer syntax,
#: implementation UID/name (pydicom's own on writing)
_META_KEEP = {Tag(0x0002, e) for e in (0x0000, 0x0001, 0x0002, 0x0003, 0x0010, 0x0012, 0x0013)}


def deidentify_dataset(ds: Dataset, *, pseudonym: str, key: bytes,
                       age_days: int | None = None) -> None:
    """Apply the profile to ``ds`` in place (recursively); set the pseudonym and age."""
    if age_days is None:
        age_days = age_in_days(ds)
    _apply_profile(ds, key)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:  # only what a file meta header needs (no source AE, private info)
        for t in list(meta.keys()):
            if Tag(t) not in _META_KEEP:
                del meta[t]
        if "SOPInstanceUID" in ds:
            meta.MediaStorageSOPInstanceUID = UID(ds.SOPInstanceUID)
    ds.PatientName = pseudonym
    ds.PatientID = pseudonym
    if age_days is not None:
        ds.PatientAge = format_age(age_days)
    elif "PatientAge" in ds:
        del ds.PatientAge
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD[:64]
    codes = []
    for value, meaning in _METHOD_CODES:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)


_IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
                "DeviceSerialNumber", "StationName", "ReferringPhysicianName", "StudyDate",
                "SeriesDate", "AcquisitionDate", "StudyID", "OtherPatientIDs",
                "OtherPatientNames", "PerformingPhysicianName", "OperatorsName",
                "StudyDescription", "PatientMotherBirthName", "PatientAddress",
                "RequestingPhysician")
_IDENTIFYING_TAGS = tuple(Tag(k) for k in _IDENTIFYING)


def identity_key(ds: Dataset) -> tuple[object, ...]:
    """The identifying elements of a header as stored (bytes as read, nothing parsed): two
    headers with the same key have the same :func:`identifying_values`, so a series' files
    need them worked out once."""
    elements = ds._dict  # a raw element's value is its undecoded bytes
    out: list[object] = [ds.get("SpecificCharacterSet")]
    for tag in _IDENTIFYING_TAGS:
        elem = elements.get(tag)
        out.append(None if elem is None else elem.value if elem.is_raw else str(elem.value))
    return tuple(out)


def identifying_values(ds: Dataset) -> list[str]:
    """Identifying strings of a header (to scrub from messages): names (and each part of a
    person name), IDs, dates, accession, institution, device serial, station..."""
    out = []
    for k in _IDENTIFYING:
        try:
            v = ds.get(k)
        except Exception:  # a malformed value must not stop the scrubbing of the others
            continue
        if v in (None, ""):
            continue
        values = list(v) if isinstance(v, list | tuple) or hasattr(v, "append") else [v]
        for item in values:
            text = str(item).strip()
            out.append(text)
            if k.endswith(("Name", "Physician")) and "^" in text:
                out.extend(p.strip() for p in text.split("^"))
            if k == "PatientName":
                out.append(text.replace("^", " ").strip())
    return [v for v in out if len(v) >= 3]


#: a UID-like run of digits and dots (file names made of SOP Instance UIDs): not scrubbed
_UID_RUN = re.compile(r"\d+(?:\.\d+){3,}")


def scrubber(values: list[str]) -> Callable[[str], str]:
    """A function removing ``values`` from a message (longest first).

    Runs of digits and dots that look like UIDs (``1.3.12.2.1107.5.2.43.20250310...dcm``, file
    names many scanners use) are left as they are: a study date inside a UID component is not
    the patient's identity, and scrubbing it made the file impossible to find. Purely numeric
    values are removed only where they stand alone (not inside a longer number)."""
    vals = sorted({v for v in values if v}, key=len, reverse=True)
    patterns = [re.compile(rf"(?<!\d){re.escape(v)}(?!\d)" if v.isdigit() else re.escape(v))
                for v in vals]

    def scrub_part(text: str) -> str:
        for pattern in patterns:
            text = pattern.sub("[removed]", text)
        return text

    def scrub(text: str) -> str:
        out, pos = [], 0
        for m in _UID_RUN.finditer(text):
            out.append(scrub_part(text[pos:m.start()]))
            out.append(m.group(0))
            pos = m.end()
        out.append(scrub_part(text[pos:]))
        return "".join(out)

    return scrub


def record(key_source: str) -> dict[str, object]:
    """A JSON-able description of the method, for the outputs."""
    import importlib.metadata as md

    try:
        version = md.version("dicom-anonymizer")
    except md.PackageNotFoundError:  # pragma: no cover
        version = "unknown"
    return {
        "DeidentificationMethod": DEIDENTIFICATION_METHOD,
        "DeidentificationMethodCodeSequence": [
            {"CodeValue": v, "CodingSchemeDesignator": "DCM", "CodeMeaning": m}
            for v, m in _METHOD_CODES],
        "ProfileTable": f"dicom-anonymizer {version} {PROFILE_TABLE} (PS3.15 Table E.1-1)",
        "RetainLongitudinalTemporalInformation": False,
        "DatesAndTimes": "replaced by dummy values (DA 19000101, TM 000000)",
        "PatientAge": "age at scan in days (nnnD) from the original birth and study dates",
        "UIDs": "HMAC-SHA256 of the original UID with the project key, as 2.25.<int>",
        "Pseudonym": key_source,
        "PrivateTagsKept": {f"{c} ({g:04X})": [f"xx{e:02X}" for e in sorted(es)]
                            for (c, g), es in SAFE_PRIVATE.items()},
    }


def write_deidentified(sources: list, out_dir: str | Path, *, pseudonym: str, key: bytes,
                       age_days: int | None = None, start: int = 1) -> list[Path]:
    """De-identify the objects of one series (``discover.Source`` items) into ``out_dir``.

    Files are named ``00001.dcm``... in the given order, numbered from ``start`` (a series can
    be written in parts by several processes); nothing from the source path or header reaches
    a file name."""
    import io

    import pydicom

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for n, src in enumerate(sources, start=start):
        ds = pydicom.dcmread(io.BytesIO(src.read_bytes()))
        deidentify_dataset(ds, pseudonym=pseudonym, key=key, age_days=age_days)
        path = out_dir / f"{n:05d}.dcm"
        ds.save_as(path)
        written.append(path)
    return written
