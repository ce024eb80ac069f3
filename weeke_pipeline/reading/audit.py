"""Append-only audit trail with a SHA-256 hash chain.

``hash_i = SHA-256(canonical JSON of {timestamp, actor, action, object_type, object_id, old, new,
reason, prev_hash})`` with ``prev_hash = hash_{i-1}`` (64 zeros for the first entry). Changing,
inserting or deleting any stored entry breaks the chain at that point (:func:`verify`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from weeke_pipeline.reading.models import AuditEntry, AuditHead

GENESIS = "0" * 64


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(*, timestamp: datetime, actor: str, action: str, object_type: str, object_id: str,
               old: Any, new: Any, reason: str, prev_hash: str) -> str:
    content = {
        "timestamp": timestamp.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor, "action": action, "object_type": object_type,
        "object_id": object_id, "old": old, "new": new, "reason": reason,
        "prev_hash": prev_hash,
    }
    return hashlib.sha256(_canonical(content).encode()).hexdigest()


def record(actor: Any, action: str, obj: Any = None, *, old: Any = None, new: Any = None,
           reason: str = "", object_type: str = "", object_id: str = "") -> AuditEntry:
    """Append one entry. ``actor``: a user, a username, or None for the system."""
    name = getattr(actor, "username", None) or (actor if isinstance(actor, str) else "system")
    if obj is not None:
        object_type = object_type or obj._meta.model_name
        object_id = object_id or str(getattr(obj, "code", None) or obj.pk)
    # JSON round trip so the hashed value is exactly what the JSONField gives back
    old = json.loads(_canonical(old)) if old is not None else None
    new = json.loads(_canonical(new)) if new is not None else None
    with transaction.atomic():
        head = AuditHead.objects.select_for_update().filter(pk=1).first()
        if head is None:
            head = AuditHead.objects.create(pk=1, last_hash=GENESIS)
            head = AuditHead.objects.select_for_update().get(pk=1)
        ts = timezone.now()
        fields = {"timestamp": ts, "actor": str(name)[:150], "action": action,
                  "object_type": object_type, "object_id": str(object_id)[:64],
                  "old": old, "new": new, "reason": reason, "prev_hash": head.last_hash}
        digest = entry_hash(**fields)
        entry = AuditEntry(**fields, hash=digest)
        entry.save()
        head.last_hash = digest
        head.save(update_fields=["last_hash"])
    return entry


@dataclass
class VerifyResult:
    ok: bool
    entries: int
    problem: str = ""
    entry_id: int | None = None


def verify() -> VerifyResult:
    """Recompute the chain; report the first entry whose hash or link does not match."""
    prev = GENESIS
    n = 0
    for entry in AuditEntry.objects.order_by("id").iterator():
        n += 1
        if entry.prev_hash != prev:
            return VerifyResult(False, n, "link to the previous entry broken "
                                "(an entry was removed, inserted or reordered)", entry.id)
        expected = entry_hash(
            timestamp=entry.timestamp, actor=entry.actor, action=entry.action,
            object_type=entry.object_type, object_id=entry.object_id, old=entry.old,
            new=entry.new, reason=entry.reason, prev_hash=entry.prev_hash)
        if expected != entry.hash:
            return VerifyResult(False, n, "content does not match its hash (entry was altered)",
                                entry.id)
        prev = entry.hash
    head = AuditHead.objects.filter(pk=1).first()
    if head is not None and head.last_hash != prev:
        return VerifyResult(False, n, "the last entries were removed (chain head mismatch)")
    return VerifyResult(True, n)
