"""Study configuration: settings that fix the reading conditions of a trial.

Kept in the database (:class:`~weeke_pipeline.reading.models.StudySetting`), not in a server
flag or environment variable, because which images the readers see is part of the reading
protocol: it must be the same for every server process of a deployment, survive restarts, and
its changes must be attributable (who, when, why), as REDCap's project settings and XNAT's
project configuration are. A coordinator changes a setting with a reason (``weeke study set``
or the coordinator page); every change is a new row and an audit entry (``study.setting``, old
and new value, reason); refused while the database is locked.

Settings:

``reader_sequences``
    the sequences readers and adjudicators are shown, in the viewer's order. Default: the
    clinical sequences T1w, T2w, ADC. Adding ``FA`` shows the fractional-anisotropy map as a
    fourth linked panel; sequences not listed are neither listed nor served to them.

``read_sessions``
    the imaging sessions (BIDS ``ses-`` labels) the study reads, e.g. ``["1month"]`` for the
    trial's 1-month scan. ``weeke cases import`` makes one case per subject and session and
    skips sessions not listed (saying so). Default: empty, every session is a case. Changing
    it later affects later imports only: cases already imported stay.

``hanging_protocol``
    how the reading page lays out the images (``id@version`` of a definition under
    ``scoring_forms/hanging_protocols/``, :mod:`weeke_pipeline.reading.hanging`). Default
    ``neonatal-hie@1.0.0``: one large axial view per sequence side by side (T2w, T1w, ADC, FA),
    linked; three planes or a single sequence on demand; neonatal window/level presets.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction

from weeke_pipeline.reading import audit
from weeke_pipeline.reading.errors import ReadingError, ensure_unlocked
from weeke_pipeline.reading.hanging import DEFAULT_PROTOCOL, ProtocolError, load_protocol
from weeke_pipeline.reading.models import StudySetting
from weeke_pipeline.reading.sequences import CLINICAL_SEQUENCES, SEQUENCES

READER_SEQUENCES = "reader_sequences"
READ_SESSIONS = "read_sessions"
HANGING_PROTOCOL = "hanging_protocol"
DEFAULTS: dict[str, Any] = {READER_SEQUENCES: list(CLINICAL_SEQUENCES),
                            HANGING_PROTOCOL: DEFAULT_PROTOCOL, READ_SESSIONS: []}
_SESSION_LABEL = re.compile(r"[A-Za-z0-9]+")
MAX_REASON = 500


def get(key: str) -> Any:
    """The current value of a setting (its latest change, else its default)."""
    if key not in DEFAULTS:
        raise KeyError(f"unknown study setting {key!r}")
    row = StudySetting.objects.filter(key=key).order_by("-id").values_list("value").first()
    return row[0] if row else DEFAULTS[key]


def reader_sequences() -> list[str]:
    """Sequences shown to readers and adjudicators, in display order."""
    return list(get(READER_SEQUENCES))


def hanging_protocol() -> str:
    """``id@version`` of the hanging protocol the reading page uses."""
    return str(get(HANGING_PROTOCOL))


def parse_sequences(value: str | list[str]) -> list[str]:
    """``"T1w,T2w,ADC,FA"`` or a list -> known sequences in canonical order (no duplicates)."""
    names = [s.strip() for s in (value.split(",") if isinstance(value, str) else value)]
    names = [s for s in names if s]
    unknown = [s for s in names if s not in SEQUENCES]
    if unknown:
        raise ReadingError(f"unknown sequence(s) {', '.join(unknown)}: choose from "
                           + ", ".join(SEQUENCES))
    if not names:
        raise ReadingError("readers need at least one sequence")
    return [s for s in SEQUENCES if s in names]


def read_sessions() -> list[str]:
    """Session labels the study reads (empty: every session)."""
    return list(get(READ_SESSIONS))


def parse_sessions(value: str | list[str]) -> list[str]:
    """``"1month,3month"`` (``ses-`` prefix allowed) or a list -> BIDS labels, in the given
    order, without duplicates; ``""`` or ``"all"`` -> ``[]`` (every session)."""
    names = [s.strip() for s in (value.split(",") if isinstance(value, str) else value)]
    names = [s.removeprefix("ses-") for s in names if s]
    if names == ["all"]:
        return []
    bad = [s for s in names if not _SESSION_LABEL.fullmatch(s)]
    if bad:
        raise ReadingError(f"session label(s) {', '.join(map(repr, bad))}: BIDS labels are "
                           "letters and digits only (e.g. 1month)")
    return list(dict.fromkeys(names))


def set_setting(user: Any, key: str, value: Any, reason: str) -> StudySetting:
    """Record a new value with the reason; audited. Refused when locked or unchanged."""
    ensure_unlocked()
    reason = (reason or "").strip()
    if not reason:
        raise ReadingError("changing a study setting needs a reason")
    if len(reason) > MAX_REASON:
        raise ReadingError(f"the reason is longer than {MAX_REASON} characters")
    if key == READER_SEQUENCES:
        value = parse_sequences(value)
    elif key == READ_SESSIONS:
        value = parse_sessions(value)
    elif key == HANGING_PROTOCOL:
        try:
            load_protocol(value)
        except ProtocolError as exc:
            raise ReadingError(str(exc)) from exc
    old = get(key)
    if value == old:
        raise ReadingError(f"{key} is already {value}")
    with transaction.atomic():
        row = StudySetting.objects.create(key=key, value=value, changed_by=user, reason=reason)
        audit.record(user or "system", "study.setting", object_type="study", object_id=key,
                     old={key: old}, new={key: value}, reason=reason)
    return row


def set_reader_sequences(user: Any, sequences: str | list[str], reason: str) -> StudySetting:
    return set_setting(user, READER_SEQUENCES, sequences, reason)


def history(key: str | None = None) -> list[StudySetting]:
    rows = StudySetting.objects.select_related("changed_by").order_by("-id")
    return list(rows.filter(key=key) if key else rows)
