"""The reading workflow's rules, independent of HTTP: drafts, signing, revisions, consensus,
assignment of cases to readers and the database lock. Views and CLI commands call these."""

from __future__ import annotations

import functools
import random
import secrets
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from weeke_pipeline.constants import DEFAULT_FORM
from weeke_pipeline.reading import audit, study, throttle
from weeke_pipeline.reading.errors import (
    Conflict,
    Forbidden,
    ReadingError,
    TooManyFailures,
    ensure_unlocked,
)
from weeke_pipeline.reading.errors import Locked as Locked  # services.Locked, as before
from weeke_pipeline.reading.models import (
    Adjudication,
    Case,
    DatabaseLock,
    Read,
    ReadBase,
    ReaderAssignment,
    ReadRevision,
)
from weeke_pipeline.scoring import compare

READS_PER_CASE = 2
MAX_REASON = 500
ITEM_KEYS = {"extent", "laterality", "assessable", "reason"}


def check_password(user: Any, password: str, address: str, refusal: str) -> None:
    """Re-entered password for signing: refused while the user name or address is throttled
    (429), a wrong one counted with the login failures and audited (``sign.failed``); every
    wrong password gets the same answer ``refusal`` (403)."""
    try:
        throttle.check(user.username, address)
    except throttle.Throttled as exc:
        raise TooManyFailures(str(exc)) from exc
    if not user.check_password(password or ""):
        throttle.record_failure(user.username, address, "sign.failed")
        raise Forbidden(refusal)


def get_form(form_id: str | None = None, version: str | None = None) -> Any:
    """The score engine's form definition, parsed once per process (the form files of a
    released version are frozen; a new version is picked up by a restart)."""
    return _load_form(form_id or DEFAULT_FORM, version)


@functools.lru_cache(maxsize=32)
def _load_form(form_id: str, version: str | None) -> Any:
    from weeke_pipeline.scoring import load_form

    return load_form(form_id, version)


def form_of(obj: ReadBase) -> Any:
    return get_form(obj.form_id, obj.form_version)


# ---------------------------------------------------------------- item validation

def clean_items(form: Any, payload: Any) -> dict[str, dict[str, Any]]:
    """Structural check of a posted ``{"items": {...}}``: known items and keys, sane types."""
    if not isinstance(payload, dict) or not isinstance(payload.get("items", {}), dict):
        raise ReadingError('expected a JSON object {"items": {item_id: {...}}}')
    known = {item.id for item in form.items}
    items: dict[str, dict[str, Any]] = {}
    for item_id, value in payload.get("items", {}).items():
        if item_id not in known:
            raise ReadingError(f"unknown item {item_id!r} for form {form.id}", item=str(item_id))
        if not isinstance(value, dict):
            raise ReadingError(f"item {item_id}: expected an object, got {value!r}", item=item_id)
        if set(value) - ITEM_KEYS:
            extra = sorted(set(value) - ITEM_KEYS)
            raise ReadingError(f"item {item_id}: unexpected fields {extra}", item=item_id)
        entry = {k: v for k, v in value.items() if v is not None and v != ""}
        if "reason" in entry and (not isinstance(entry["reason"], str)
                                  or len(entry["reason"]) > MAX_REASON):
            raise ReadingError(f"item {item_id}: reason must be text of at most "
                               f"{MAX_REASON} characters", item=item_id)
        if "assessable" in entry and not isinstance(entry["assessable"], bool):
            raise ReadingError(f"item {item_id}: assessable must be true or false", item=item_id)
        if entry.get("assessable", True):
            entry.pop("assessable", None)
            entry.pop("reason", None)
            if "extent" not in entry:
                entry.pop("laterality", None)
                if not entry:
                    continue
        else:
            entry = {"assessable": False, "reason": entry.get("reason", "")}
        items[item_id] = entry
    return items


def item_extents(item: Any) -> set[int]:
    """The extent values an item defines (form definition)."""
    return {e.value for e in item.extents}


def pending_items(form: Any, items: dict[str, dict[str, Any]]) -> list[str]:
    """Items of a draft still being filled in: extent > 0 of a lateralised item without
    laterality, or not assessable without a reason (left out of a draft's score)."""
    pending = []
    for item_id, entry in items.items():
        item = form.item(item_id)
        no_reason = entry.get("assessable") is False and not entry.get("reason", "").strip()
        # only an extent the item has is pending; any other (99) goes to the engine, refused
        extent = entry.get("extent")
        no_side = (item.lateralised and type(extent) is int and extent > 0
                   and extent in item_extents(item) and "laterality" not in entry)
        if no_reason or no_side:
            pending.append(item_id)
    return pending


def score(form: Any, items: dict[str, dict[str, Any]], *, final: bool) -> tuple[Any, list[str]]:
    """Score ``items`` with the engine. Drafts may hold items still being filled in
    (extent without laterality, not-assessable without reason): those are returned as
    ``pending`` and left out of the score. Anything else the engine refuses is an error."""
    from weeke_pipeline.scoring import ScoringError, score_items

    pending: list[str] = [] if final else pending_items(form, items)
    checkable = {k: v for k, v in items.items() if k not in pending}
    try:
        result = score_items(form, {"items": checkable})
    except ScoringError as exc:
        raise ReadingError(str(exc), item=getattr(exc, "item", None)) from exc
    if final and result.missing:
        raise ReadingError(f"{len(result.missing)} item(s) not scored yet: "
                           + ", ".join(result.missing))
    return result, pending


def score_response(obj: ReadBase | None, form: Any, items: dict[str, Any],
                   scored: tuple[Any, list[str]] | None = None) -> dict[str, Any]:
    """The JSON answer: score (``scored`` = an existing ``score(...)`` result, else computed),
    items still pending, and the object's version and status."""
    result, pending = scored or score(form, items, final=False)
    out = {"score": result.as_dict(), "pending": pending}
    if obj is not None:
        out.update(version=obj.version, status=obj.status,
                   signed_at=obj.signed_at.isoformat() if obj.signed_at else None)
    return out


# ---------------------------------------------------------------- reads and consensus

def _new_fields(form: Any) -> dict[str, Any]:
    return {"form_id": form.id, "form_version": form.version, "form_sha256": form.sha256}


def get_or_create_read(case: Case, user: Any) -> Read:
    if not ReaderAssignment.objects.filter(case=case, reader=user).exists():
        raise Forbidden("this case is not on your worklist")
    read = Read.objects.filter(case=case, reader=user).first()
    if read is None:
        ensure_unlocked()
        form = get_form()
        with transaction.atomic():
            read = Read.objects.create(case=case, reader=user, **_new_fields(form))
            audit.record(user, "read.create", read, new={"case": case.code, "form": form.id,
                                                         "version": form.version})
    return read


def _label(obj: ReadBase) -> str:
    return "read" if isinstance(obj, Read) else "adjudication"


def save_draft(obj: ReadBase, user: Any, payload: Any, version: Any) -> dict[str, Any]:
    """Autosave a draft; ``version`` must be the one the client edited (else 409)."""
    ensure_unlocked()
    if obj.status != ReadBase.DRAFT:
        raise Conflict("this read is signed: a change needs a reason (revise)")
    form = form_of(obj)
    items = clean_items(form, payload)
    scored = score(form, items, final=False)
    model = type(obj)
    now = timezone.now()
    with transaction.atomic():
        changed = model.objects.filter(pk=obj.pk, version=version, status=ReadBase.DRAFT).update(
            items={"items": items}, version=F("version") + 1, updated_at=now)
        if not changed:
            raise Conflict("this draft was changed in another tab or window since you opened "
                           "it; reload the page to see the latest version")
        audit.record(user, f"{_label(obj)}.update", obj, old=obj.items, new={"items": items})
    # the row now holds exactly this (the conditional update matched version ``version``)
    obj.items, obj.version, obj.updated_at = {"items": items}, version + 1, now
    return score_response(obj, form, items, scored)


def sign(obj: ReadBase, user: Any, password: str, version: Any, *,
         address: str = "") -> dict[str, Any]:
    """Sign a complete draft after password re-entry; a signed read is locked."""
    ensure_unlocked()
    if obj.status != ReadBase.DRAFT:
        raise Conflict("already signed")
    if obj.version != version:
        raise Conflict("this draft was changed in another tab or window; reload before signing")
    form = form_of(obj)
    items = obj.items.get("items", {})
    # completeness before the password: the answer to an incomplete draft does not depend on
    # the password (no oracle); every wrong password then gets the same 403
    result, _ = score(form, items, final=True)
    check_password(user, password, address, "password incorrect: the read was not signed")
    now = timezone.now()
    shown = study.reader_sequences()
    with transaction.atomic():
        changed = type(obj).objects.filter(pk=obj.pk, version=version,
                                           status=ReadBase.DRAFT).update(
            status=ReadBase.SIGNED, signed_at=now, version=version + 1)
        if not changed:
            raise Conflict("this draft was changed meanwhile; reload before signing")
        # the reading conditions: which sequences the study showed when this was signed
        audit.record(user, f"{_label(obj)}.sign", obj, new={
            "items": items, "total": result.total, "form_sha256": obj.form_sha256,
            "sequences_shown": [s for s in obj.case.sequences if s in shown]})
    obj.refresh_from_db()
    return score_response(obj, form, items)


def revise(obj: ReadBase, user: Any, payload: Any, reason: str, password: str,
           version: Any, *, address: str = "") -> dict[str, Any]:
    """Change a signed read: needs a reason and the password; old and new are recorded."""
    ensure_unlocked()
    if obj.status != ReadBase.SIGNED:
        raise Conflict("this read is not signed yet: save the draft instead")
    reason = (reason or "").strip()
    if not reason:
        raise ReadingError("a change after signing needs a reason")
    if len(reason) > MAX_REASON:
        raise ReadingError(f"the reason is longer than {MAX_REASON} characters")
    form = form_of(obj)
    items = clean_items(form, payload)
    score(form, items, final=True)
    check_password(user, password, address, "password incorrect: the change was not saved")
    with transaction.atomic():
        changed = type(obj).objects.filter(pk=obj.pk, version=version).update(
            items={"items": items}, version=F("version") + 1, signed_at=timezone.now())
        if not changed:
            raise Conflict("this read was changed meanwhile; reload the page")
        link = {"read": obj} if isinstance(obj, Read) else {"adjudication": obj}
        ReadRevision.objects.create(changed_by=user, old_items=obj.items,
                                    new_items={"items": items}, reason=reason, **link)
        audit.record(user, f"{_label(obj)}.revise", obj, old=obj.items, new={"items": items},
                     reason=reason)
    obj.refresh_from_db()
    return score_response(obj, form, items)


def differing_items(a: Read, b: Read) -> list[str]:
    """Items on which two reads differ (:func:`weeke_pipeline.scoring.compare.differing_items`)."""
    return compare.differing_items(a.items.get("items", {}), b.items.get("items", {}))


def signed_reads(case: Case) -> list[Read]:
    return list(case.reads.filter(status=ReadBase.SIGNED).order_by("id"))


def needs_adjudication(case: Case) -> bool:
    reads = signed_reads(case)
    return len(reads) >= READS_PER_CASE and bool(differing_items(reads[0], reads[1]))


def get_or_create_adjudication(case: Case, user: Any) -> Adjudication:
    adj = Adjudication.objects.filter(case=case).first()
    if adj is not None:
        # a consensus is its adjudicator's: another one can neither change nor sign it (the
        # export credits the adjudicator who opened it, who is then also who signed it)
        if adj.adjudicator_id != user.pk:
            raise Forbidden("this consensus is being recorded by another adjudicator")
        return adj
    if not needs_adjudication(case):
        raise Forbidden("this case does not need adjudication")
    ensure_unlocked()
    reads = signed_reads(case)
    form = get_form(reads[0].form_id, reads[0].form_version)
    # start from the items both readers agree on
    a, b = reads[0].items.get("items", {}), reads[1].items.get("items", {})
    ca, cb = compare.comparable(a), compare.comparable(b)
    agreed = {k: v for k, v in a.items() if k in cb and ca[k] == cb[k]}
    with transaction.atomic():
        adj = Adjudication.objects.create(case=case, adjudicator=user, items={"items": agreed},
                                          **_new_fields(form))
        audit.record(user, "adjudication.create", adj, object_id=case.code,
                     new={"case": case.code, "reads": [r.pk for r in reads]})
    return adj


# ---------------------------------------------------------------- assignment and lock

def readers() -> list[Any]:
    group = Group.objects.filter(name="reader").first()
    return list(group.user_set.filter(is_active=True).order_by("id")) if group else []


def assign_cases() -> int:
    """Give every case up to READS_PER_CASE readers (those with the fewest cases first).

    Each reader's new cases are appended to their worklist in an order shuffled with the
    reader's own seed (``random.Random(f"{seed}:{start}")`` over the cases sorted by code), and
    the seed is stored on each assignment so the order is reproducible.
    """
    pool = readers()
    if not pool:
        return 0
    new: dict[int, list[Case]] = {}
    load = dict(ReaderAssignment.objects.values_list("reader").annotate(n=Count("id")))
    by_id = {u.id: u for u in pool}
    cases = Case.objects.annotate(n=Count("assignments")).filter(n__lt=READS_PER_CASE)
    for case in cases.order_by("code"):
        have = set(case.assignments.values_list("reader_id", flat=True))
        want = READS_PER_CASE - len(have)
        candidates = sorted((uid for uid in by_id if uid not in have),
                            key=lambda uid: (load.get(uid, 0), uid))
        for uid in candidates[:want]:
            new.setdefault(uid, []).append(case)
            load[uid] = load.get(uid, 0) + 1
    count = 0
    with transaction.atomic():
        for uid, batch in new.items():
            reader = by_id[uid]
            first = ReaderAssignment.objects.filter(reader=reader).order_by("id").first()
            seed = first.seed if first else secrets.randbits(62)
            start = ReaderAssignment.objects.filter(reader=reader).count()
            order = sorted(batch, key=lambda c: c.code)
            random.Random(f"{seed}:{start}").shuffle(order)
            for i, case in enumerate(order):
                ReaderAssignment.objects.create(reader=reader, case=case, position=start + i,
                                                seed=seed)
            audit.record("system", "assignment.create", object_type="user",
                         object_id=reader.username, new={"cases": [c.code for c in order]})
            count += len(order)
    return count


def set_lock(user: Any, locked: bool, reason: str) -> DatabaseLock:
    reason = (reason or "").strip()
    if not locked and not reason:
        raise ReadingError("unlocking needs a reason")
    if locked == DatabaseLock.is_locked():
        raise ReadingError("the database is already " + ("locked" if locked else "unlocked"))
    with transaction.atomic():
        event = DatabaseLock.objects.create(locked=locked, by=user, reason=reason)
        audit.record(user or "system", "database.lock" if locked else "database.unlock",
                     object_type="database", object_id="reading", reason=reason,
                     new={"locked": locked})
    return event
