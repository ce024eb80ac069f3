"""Who and what a series is: grouping that never merges two infants or two acquisitions.

Series are grouped by (Study, Series Instance UID), but exports do share UIDs by accident
(anonymising tools that reset UIDs, PACS merges, one infant exported under another's study). A
group whose files disagree on the patient (Patient ID, Patient's Name, Birth Date) or on the
acquisition (Scanning Sequence, Sequence Variant, MR Acquisition Type, Repetition Time) is split
into one part per identity/acquisition, and every part is refused with a message naming its
files: converting it would give one infant another's images, or a T1w volume inside a T2w.
Things that legitimately vary inside one series are not compared: Sequence Name (Siemens
``ep_b0``/``ep_b1000``), Echo Time (multi-echo), Image Type (Philips DWIs carry derived images).

Pseudonyms are keyed on the Patient ID; without one, on the Patient's Name and Birth Date (two
infants without IDs then get different pseudonyms); without any of these the series is refused.
Files of one Patient ID with different birth dates are refused too (two infants, one ID).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any

from pydicom.dataset import Dataset


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # a damaged value: compared as empty
        return ""
    if value is None:
        return ""
    if isinstance(value, list | tuple) or hasattr(value, "append"):
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


def patient_identity(ds: Dataset) -> tuple[str, str, str]:
    """(Patient ID, Patient's Name, Birth Date) as stored (in memory only, never written)."""
    return (_text(ds, "PatientID"), _text(ds, "PatientName"), _text(ds, "PatientBirthDate")[:8])


def acquisition(ds: Dataset) -> tuple[str, ...]:
    tr = _text(ds, "RepetitionTime")
    with contextlib.suppress(ValueError):
        tr = f"{float(tr):.0f}"
    return (_text(ds, "ScanningSequence"), _text(ds, "SequenceVariant"),
            _text(ds, "MRAcquisitionType"), tr)


def patient_key(ds: Dataset) -> str:
    """The string the pseudonym is made from: the Patient ID; without one, the Patient's Name
    and Birth Date. Raises ValueError when the header has none of them."""
    pid, name, birth = patient_identity(ds)
    if pid:
        return pid
    if name or birth:
        return f"(no Patient ID) name={name} birth={birth}"
    raise ValueError("no Patient ID, Patient's Name or Birth Date: cannot tell which infant "
                     "the series belongs to; not converted (fill in the Patient ID)")


def split_conflicts(instances: list[Any]) -> list[tuple[list[Any], str]]:
    """The instances of one (Study, Series UID) group (``discover.Instance``: ``.header``) as
    one part with no problem when they agree on patient and acquisition; else one part per
    patient (then per acquisition), each with the reason it is refused."""
    for key, what in ((patient_identity, "different patients (Patient ID, Name or Birth "
                       "Date differ)"),
                      (acquisition, "different acquisitions (Scanning Sequence, Sequence "
                       "Variant, Acquisition Type or Repetition Time differ)")):
        parts: dict[tuple[str, ...], list[Any]] = defaultdict(list)
        for inst in instances:
            parts[key(inst.header)].append(inst)
        if len(parts) > 1:
            return [(items, f"files of {len(parts)} {what} share one Study and Series "
                            f"Instance UID ({len(items)} of {len(instances)} files here); "
                            "refused, so that they are not merged: export the series again or "
                            "separate the files")
                    for items in parts.values()]
    return [(list(instances), "")]


def birth_date_conflicts(series: list[Any], pseudonyms: dict[int, str]) -> dict[int, str]:
    """Series (by ``id()``) whose participant key is shared with files of another birth date."""
    births: dict[str, set[str]] = defaultdict(set)
    for s in series:
        p = pseudonyms.get(id(s))
        if p is not None:
            births[p].add(patient_identity(s.first)[2])
    bad = {p for p, b in births.items() if len(b - {""}) > 1}
    return {id(s): ("files with one Patient ID but different birth dates (two infants under one"
                    " ID?); not converted: correct the Patient ID or the participants table")
            for s in series if pseudonyms.get(id(s)) in bad}
