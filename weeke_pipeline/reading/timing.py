"""Reading time of a read or consensus read, as reader studies record it.

- ``opened_at``: when the reader first opened the case page (server clock).
- reading time = ``signed_at - opened_at`` (server clock, wall time, includes breaks).
- active time: the page measures it (``reading/static/reading/timing.js``): time between
  consecutive reader actions (key, click, wheel, pointer move over the page) counts when the
  gap is at most the hanging protocol's ``idle_threshold_s``; a longer gap counts as idle and
  is left out entirely. Time per item: each active interval is credited to the item the
  reader was on (the focused item of the form; none while in the viewer).

The page sends what it measured since its last acknowledged save with each autosave and with
the signature (``{"timing": {"active_s": 12.5, "items": {"gm_thalamus": 4.0}}}``); the server
adds it after the save succeeded, so a refused save never counts twice. Increments are
checked: non-negative, finite, known items, no more than the wall time since the previous
increment (plus a small tolerance), item time no more than active time. At signing, the
totals go into the audit trail (``read.timing`` / ``adjudication.timing``).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from weeke_pipeline.reading import audit
from weeke_pipeline.reading.models import Read, ReadBase

#: seconds of slack for clock granularity between the page's clock and the server's
TOLERANCE_S = 5.0


class TimingError(ValueError):
    """A timing increment that cannot be right (the message says why)."""


def mark_opened(obj: ReadBase, now: datetime | None = None) -> None:
    """Record the first opening of the page (no-op once set)."""
    if obj.opened_at is None:
        now = now or timezone.now()
        type(obj).objects.filter(pk=obj.pk, opened_at__isnull=True).update(opened_at=now)
        obj.opened_at = obj.opened_at or now


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TimingError(f"{what} must be a number of seconds")
    if value < 0:
        raise TimingError(f"{what} must not be negative")
    return float(value)


def clean(timing: Any, item_ids: set[str]) -> tuple[float, dict[str, float]]:
    """(active seconds, seconds per item) of a posted increment, checked."""
    if not isinstance(timing, dict) or set(timing) - {"active_s", "items"}:
        raise TimingError('timing must be {"active_s": seconds, "items": {item: seconds}}')
    active = _seconds(timing.get("active_s", 0), "timing.active_s")
    items = timing.get("items", {})
    if not isinstance(items, dict):
        raise TimingError("timing.items must be an object {item: seconds}")
    per_item = {}
    for key, value in items.items():
        if key not in item_ids:
            raise TimingError(f"timing.items: unknown item {key!r}")
        per_item[key] = _seconds(value, f"timing.items.{key}")
    if sum(per_item.values()) > active + 1e-6:
        raise TimingError("timing: time on items exceeds the active time")
    return active, per_item


def add(obj: ReadBase, timing: Any, item_ids: set[str], *, since: datetime | None) -> None:
    """Add a checked increment to the stored totals. ``since``: when the previous increment
    was stored (or the page opened), bounding what the increment may claim."""
    if timing is None:
        return
    active, per_item = clean(timing, item_ids)
    now = timezone.now()
    if since is not None and active > (now - since).total_seconds() + TOLERANCE_S:
        raise TimingError("timing: more active time than has passed since the last save")
    with transaction.atomic():
        row = type(obj).objects.select_for_update().get(pk=obj.pk)
        totals = dict(row.item_seconds or {})
        for key, sec in per_item.items():
            totals[key] = round(totals.get(key, 0.0) + sec, 3)
        row.active_seconds = round(row.active_seconds + active, 3)
        row.item_seconds = totals
        type(obj).objects.filter(pk=obj.pk).update(active_seconds=row.active_seconds,
                                                   item_seconds=totals)
    obj.active_seconds, obj.item_seconds = row.active_seconds, totals


def summary(obj: ReadBase) -> dict[str, Any]:
    """Reading time, active time and time per item of a read (seconds; None when unknown)."""
    total = None
    if obj.opened_at is not None and obj.signed_at is not None:
        total = round((obj.signed_at - obj.opened_at).total_seconds(), 3)
    return {"opened_at": obj.opened_at.isoformat() if obj.opened_at else None,
            "reading_seconds": total, "active_seconds": round(obj.active_seconds, 3),
            "item_seconds": dict(obj.item_seconds or {})}


def record_signed(obj: ReadBase, user: Any) -> None:
    """Put the reading-time totals of a just-signed read into the audit trail."""
    obj.refresh_from_db()
    label = "read" if isinstance(obj, Read) else "adjudication"
    audit.record(user, f"{label}.timing", obj, new=summary(obj))
