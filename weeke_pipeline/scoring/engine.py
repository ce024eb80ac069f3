"""The score engine: validate a reader's item set against its form and add it up.

Rules (Weeke 2018; 2025 consensus table, shared/reference/weeke_score.md):

- item score = extent + laterality for a lateralised item, extent alone otherwise;
  laterality is 1 (unilateral) or 2 (bilateral) when extent > 0 and 0 (not applicable) when
  extent is 0;
- subscore = sum of its items' scores; total = sum of the subscores; no weights;
- an item left out of the payload is not yet scored (``missing``); an item marked not assessable
  (with a reason) is not scored either. Either makes its subscore and the total *incomplete*:
  the sums then cover the scored items only and carry ``complete: false`` -- never a silent 0.

Payload: ``{"items": {item_id: {"extent": int, "laterality": int} | {"assessable": false,
"reason": str}}}``; other top-level keys are ignored (a read may carry more than the items).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from weeke_pipeline.scoring.forms import LATERALITY, Form, Item

ITEM_FIELDS = ("extent", "laterality", "assessable", "reason")


class ScoringError(ValueError):
    """An item set the form does not allow; ``item`` is the offending item id (or None)."""

    def __init__(self, message: str, item: str | None = None) -> None:
        super().__init__(message)
        self.item = item


@dataclass(frozen=True)
class ItemScore:
    """One item of a read: scored (``assessable``) or not assessable (``reason``)."""

    extent: int | None
    laterality: int | None  # 0 when extent is 0; None on a non-lateralised or unscored item
    score: int | None
    assessable: bool = True
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"extent": self.extent, "laterality": self.laterality, "score": self.score,
                "assessable": self.assessable, "reason": self.reason}


@dataclass(frozen=True)
class ScoreResult:
    form_id: str
    form_version: str
    items: dict[str, ItemScore]
    subscores: dict[str, int]
    subscores_complete: dict[str, bool]
    total: int
    complete: bool
    missing: list[str]
    not_assessable: list[dict[str, str]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "form": {"id": self.form_id, "version": self.form_version},
            "items": {k: v.as_dict() for k, v in self.items.items()},
            "subscores": dict(self.subscores),
            "subscores_complete": dict(self.subscores_complete),
            "total": self.total,
            "complete": self.complete,
            "missing": list(self.missing),
            "not_assessable": [dict(d) for d in self.not_assessable],
        }


def item_score(item: Item, extent: int, laterality: int | None) -> int:
    """extent + laterality (lateralised item), extent alone otherwise. Inputs already valid."""
    return extent + ((laterality or 0) if item.lateralised else 0)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_item(form: Form, item_id: Any, entry: Any) -> ItemScore:
    """Validate one payload entry; ScoringError naming the item when the form forbids it."""
    known = [it.id for it in form.items]
    if item_id not in known:
        raise ScoringError(f"unknown item {item_id!r}: form {form.id} {form.version} has items "
                           f"{', '.join(known)}", item=str(item_id))
    item = form.item(item_id)
    where = f"item {item_id!r}"
    if not isinstance(entry, dict):
        raise ScoringError(f"{where}: expected an object like {{\"extent\": 1"
                           + (', "laterality": 2' if item.lateralised else "")
                           + f"}}, got {entry!r}", item=item_id)
    extra = sorted(set(entry) - set(ITEM_FIELDS))
    if extra:
        raise ScoringError(f"{where}: unexpected field(s) {', '.join(map(repr, extra))} "
                           f"(allowed: {', '.join(ITEM_FIELDS)})", item=item_id)

    assessable = entry.get("assessable", True)
    if not isinstance(assessable, bool):
        raise ScoringError(f"{where}: 'assessable' must be true or false, got {assessable!r}",
                           item=item_id)
    extent, laterality, reason = entry.get("extent"), entry.get("laterality"), entry.get("reason")

    if not assessable:
        if not isinstance(reason, str) or not reason.strip():
            raise ScoringError(f"{where}: marked not assessable without a reason "
                               f"(give \"reason\", e.g. \"motion\")", item=item_id)
        if extent is not None or laterality is not None:
            raise ScoringError(f"{where}: marked not assessable but also given an extent or "
                               f"laterality; give one or the other", item=item_id)
        return ItemScore(None, None, None, assessable=False, reason=reason.strip())

    if reason not in (None, ""):
        raise ScoringError(f"{where}: a reason is only recorded for a not-assessable item "
                           f"(\"assessable\": false)", item=item_id)
    allowed = [e.value for e in item.extents]
    allowed_txt = ", ".join(f"{e.value} = {e.label}" for e in item.extents)
    if extent is None:
        raise ScoringError(f"{where}: extent missing (allowed: {allowed_txt})", item=item_id)
    if not _is_int(extent):
        raise ScoringError(f"{where}: extent must be an integer, got {extent!r} "
                           f"(allowed: {allowed_txt})", item=item_id)
    if extent not in allowed:
        raise ScoringError(f"{where}: extent {extent} out of range (allowed: {allowed_txt})",
                           item=item_id)

    if not item.lateralised:
        if laterality is not None:
            raise ScoringError(f"{where}: laterality given ({laterality!r}) but the item is not "
                               f"lateralised (score is the extent alone)", item=item_id)
        return ItemScore(extent, None, extent)

    lat_txt = ", ".join(f"{v} = {lab}" for v, lab in LATERALITY.items())
    if extent == 0:
        # 0 is the reference table's "not applicable" code, so it is accepted as absent.
        if laterality is not None and laterality != 0:
            raise ScoringError(f"{where}: laterality given ({laterality!r}) but extent is 0 "
                               f"(leave laterality out when there is no finding)", item=item_id)
        return ItemScore(0, 0, 0)
    if laterality is None:
        raise ScoringError(f"{where}: laterality missing; extent {extent} > 0 needs laterality "
                           f"({lat_txt})", item=item_id)
    if not _is_int(laterality) or laterality not in LATERALITY:
        raise ScoringError(f"{where}: laterality must be 1 or 2 ({lat_txt}), got {laterality!r}",
                           item=item_id)
    return ItemScore(extent, laterality, item_score(item, extent, laterality))


def score_items(form: Form, payload: Any) -> ScoreResult:
    """Validate ``payload`` against ``form`` and compute item scores, subscores and total."""
    if not isinstance(payload, dict) or not isinstance(payload.get("items"), dict):
        raise ScoringError('the item set must be an object {"items": {item_id: {...}, ...}}')
    given = payload["items"]
    parsed = {item_id: _parse_item(form, item_id, entry) for item_id, entry in given.items()}

    items = {it.id: parsed[it.id] for it in form.items if it.id in parsed}  # form order
    missing = [it.id for it in form.items if it.id not in parsed]
    not_assessable = [{"item": k, "reason": v.reason or ""} for k, v in items.items()
                      if not v.assessable]
    subscores: dict[str, int] = {}
    sub_complete: dict[str, bool] = {}
    for sub in form.subscores:
        members = form.items_of(sub.id)
        scored = [items[it.id].score for it in members
                  if it.id in items and items[it.id].assessable]
        subscores[sub.id] = sum(s for s in scored if s is not None)
        sub_complete[sub.id] = len(scored) == len(members)
    return ScoreResult(
        form_id=form.id, form_version=form.version, items=items, subscores=subscores,
        subscores_complete=sub_complete, total=sum(subscores.values()),
        complete=all(sub_complete.values()), missing=missing, not_assessable=not_assessable,
    )
