"""Database side of the analyst commands (``weeke export``, ``weeke agreement``,
``weeke unblind``): stored reads as the records :mod:`weeke_pipeline.analysis.tables` takes, the
case -> subject link, the acting user's role check. Read-only, except the audit entries the
commands write through :func:`weeke_pipeline.reading.audit.record`.

Nothing here computes or stores the automated injury index or a treatment arm: both live only
in the analysts' output files.
"""

from __future__ import annotations

from typing import Any

from weeke_pipeline.reading import timing
from weeke_pipeline.reading.models import Adjudication, Case, Read, ReadBase

#: roles allowed to run the analyst commands (readers and adjudicators must not see other
#: readers' scores, the agreement figures or the injury index)
ANALYST_ROLES = ("analyst", "coordinator")


class NotAllowed(ValueError):
    """The named user may not run this command (message says why)."""


def rater_pseudonym(user: Any) -> str:
    """Stable reader pseudonym for exports: ``rater<id>`` (never the login name)."""
    return f"rater{user.pk:03d}"


def acting_user(username: str | None, allowed: tuple[str, ...] = ANALYST_ROLES) -> Any:
    """The active user ``username`` holding one of ``allowed`` roles (None when not given)."""
    if username is None:
        return None
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise NotAllowed(f"no active user {username!r}")
    roles = set(user.groups.values_list("name", flat=True))
    if not roles & set(allowed):
        raise NotAllowed(f"user {username!r} ({', '.join(sorted(roles)) or 'no role'}) may not "
                         f"run this: needs the {' or '.join(allowed)} role")
    return user


def has_role(user: Any, role: str) -> bool:
    return user is not None and user.groups.filter(name=role).exists()


def _items_of(obj: ReadBase, form: Any) -> dict[str, Any]:
    from weeke_pipeline.reading.services import pending_items

    items = dict(obj.items.get("items", {}))
    if obj.status == ReadBase.DRAFT:  # half-filled items are left out (exported as missing)
        for item_id in pending_items(form, items):
            items.pop(item_id)
    return items


def read_records() -> list[dict[str, Any]]:
    """Every read and adjudication as a record of :func:`tables.reads_long_from_records`.

    ``read_number``: 1, 2, ... in the order the case's reads were opened (stable: a number
    never changes when another read is signed); adjudication 0. ``reader``: pseudonym.
    Drafts are included (status ``draft``) without their half-filled items.
    """
    from weeke_pipeline.reading.services import get_form

    forms: dict[tuple[str, str], Any] = {}

    def form(obj: ReadBase) -> Any:
        key = (obj.form_id, obj.form_version)
        if key not in forms:
            forms[key] = get_form(*key)
        return forms[key]

    def iso(t: Any) -> str | None:
        return t.isoformat().replace("+00:00", "Z") if t else None

    def record(obj: ReadBase, user: Any, kind: str, number: int) -> dict[str, Any]:
        spent = timing.summary(obj)
        timed = obj.opened_at is not None
        return {"reading_code": obj.case.code, "reader": rater_pseudonym(user),
                "read_number": number, "kind": kind, "form_id": obj.form_id,
                "form_version": obj.form_version, "status": obj.status,
                "signed_at": iso(obj.signed_at), "opened_at": iso(obj.opened_at),
                "reading_seconds": spent["reading_seconds"],
                "active_seconds": spent["active_seconds"] if timed else None,
                "item_seconds": spent["item_seconds"] if timed else None,
                "items": _items_of(obj, form(obj))}

    out: list[dict[str, Any]] = []
    numbers: dict[int, int] = {}
    for r in Read.objects.select_related("case", "reader").order_by("case__code", "id"):
        numbers[r.case_id] = numbers.get(r.case_id, 0) + 1
        out.append(record(r, r.reader, "read", numbers[r.case_id]))
    for a in Adjudication.objects.select_related("case", "adjudicator").order_by("case__code"):
        out.append(record(a, a.adjudicator, "adjudication", 0))
    return out


def case_keys() -> dict[tuple[str, str], str]:
    """(subject label, session label) -> reading code of every case."""
    return {(s, ses): c for c, s, ses in Case.objects.values_list("code", "subject", "session")}


def case_subjects() -> list[tuple[str, str]]:
    """(reading code, subject label) of every case, by code (coordinator information)."""
    return list(Case.objects.order_by("code").values_list("code", "subject"))
