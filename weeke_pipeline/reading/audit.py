"""Append-only audit trail: a hash chain keyed with a secret kept outside the database.

``hash_i = HMAC-SHA256(key, canonical JSON of {timestamp, actor, action, object_type, object_id,
old, new, reason, prev_hash})`` with ``prev_hash = hash_{i-1}`` (64 zeros for the first entry).
The key (``$WEEKE_AUDIT_KEY``, else the file ``<data>/audit_key``, mode 600, created on first
use; never in the database) is what stops someone with write access to the database from
rewriting an entry and recomputing every later hash: without the key the hashes cannot be
recomputed. Keep the key with the secret key, out of database dumps and away from people who
can edit the database.

What :func:`verify` checks, and what it needs:

* every entry's hash and link (changed, inserted, deleted or reordered entries);
* a trail that is empty, or not keyed, although a key exists (emptied tables);
* against an exported head (``weeke audit head`` prints ``N:hash``; store it outside the
  server, e.g. in the trial master file or with the backups; ``weeke audit verify
  --expect-head N:hash``): a trail cut after that point (the last entries deleted and the
  stored head updated) or rewritten before it;
* that the data equal what the trail says: every signed read and consensus holds the items of
  its last ``*.sign``/``*.revise`` entry, every study setting the value of its last
  ``study.setting`` entry, every case the age, day of life and sequences of its ``case.import``
  entry and later admin changes (an edit of these tables behind the app's back).

Databases from before the key (chained with plain SHA-256, the formula used to be published
without a key): the first write after the upgrade (every ``weeke`` reading command migrates and
does it) appends an ``audit.key`` entry, itself keyed, that records the number of earlier
entries and their last hash. :func:`verify` checks the earlier part with the old formula up to
that entry and the rest with the key, so old entries cannot be rewritten without breaking the
keyed entry that commits to them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from weeke_pipeline.reading.models import AuditEntry, AuditHead

GENESIS = "0" * 64
_MISSING = object()
KEY_ACTION = "audit.key"
KEY_FILE = "audit_key"


class AuditKeyMissing(RuntimeError):
    """The trail is keyed but the key is not available."""


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def key_path() -> Path:
    return Path(settings.WEEKE_DATA_DIR) / KEY_FILE


def audit_key(*, create: bool = False) -> bytes | None:
    """The chain key: ``$WEEKE_AUDIT_KEY``, else ``<data>/audit_key`` (created with ``create``,
    mode 600). None when there is none."""
    if os.environ.get("WEEKE_AUDIT_KEY"):
        return os.environ["WEEKE_AUDIT_KEY"].encode()
    path = key_path()
    if not path.exists():
        if not create:
            return None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def _content(*, timestamp: datetime, actor: str, action: str, object_type: str, object_id: str,
             old: Any, new: Any, reason: str, prev_hash: str) -> bytes:
    return _canonical({
        "timestamp": timestamp.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor, "action": action, "object_type": object_type,
        "object_id": object_id, "old": old, "new": new, "reason": reason,
        "prev_hash": prev_hash,
    }).encode()


def entry_hash(key: bytes | None = None, **fields: Any) -> str:
    """HMAC-SHA256 of the entry with ``key``; plain SHA-256 (entries from before the key)
    when ``key`` is None."""
    content = _content(**fields)
    if key is None:
        return hashlib.sha256(content).hexdigest()
    return hmac.new(key, content, hashlib.sha256).hexdigest()


def _fingerprint(key: bytes) -> str:
    """First 16 hex digits of SHA-256(key): tells a wrong key from tampering, reveals nothing
    usable about the key."""
    return hashlib.sha256(key).hexdigest()[:16]


def _append(head: AuditHead, key: bytes, fields: dict[str, Any]) -> AuditEntry:
    fields = {**fields, "timestamp": timezone.now(), "prev_hash": head.last_hash}
    entry = AuditEntry(**fields, hash=entry_hash(key, **fields))
    entry.save()
    head.last_hash = entry.hash
    return entry


def _locked_head() -> AuditHead:
    head = AuditHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        AuditHead.objects.create(pk=1, last_hash=GENESIS)
        head = AuditHead.objects.select_for_update().get(pk=1)
    return head


def _key_for(head: AuditHead) -> bytes:
    """The key for the next entry; starts the keyed chain (``audit.key`` entry) if needed."""
    if head.keyed:
        key = audit_key()
        if key is None:
            raise AuditKeyMissing(
                f"the audit trail is keyed but its key is missing: restore {key_path()} or set "
                "WEEKE_AUDIT_KEY (nothing is recorded without it)")
        return key
    key = audit_key(create=True)
    assert key is not None
    n = AuditEntry.objects.count()
    _append(head, key, {"actor": "system", "action": KEY_ACTION, "object_type": "audit",
                        "object_id": "chain", "old": None, "reason": "",
                        "new": {"previous_entries": n, "previous_head": head.last_hash,
                                "key_sha256": _fingerprint(key)}})
    head.keyed = True
    return key


def ensure_keyed() -> None:
    """Start the keyed chain now (new database, or one from before the key)."""
    if AuditHead.objects.filter(pk=1, keyed=True).exists():
        return
    with transaction.atomic():
        head = _locked_head()
        if not head.keyed:
            _key_for(head)
            head.save(update_fields=["last_hash", "keyed"])


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
        head = _locked_head()
        key = _key_for(head)
        entry = _append(head, key, {"actor": str(name)[:150], "action": action,
                                    "object_type": object_type,
                                    "object_id": str(object_id)[:64], "old": old, "new": new,
                                    "reason": reason})
        head.save(update_fields=["last_hash", "keyed"])
    return entry


@dataclass
class VerifyResult:
    ok: bool
    entries: int
    problem: str = ""
    entry_id: int | None = None
    head: str = ""


def _fields(entry: AuditEntry) -> dict[str, Any]:
    return {"timestamp": entry.timestamp, "actor": entry.actor, "action": entry.action,
            "object_type": entry.object_type, "object_id": entry.object_id, "old": entry.old,
            "new": entry.new, "reason": entry.reason, "prev_hash": entry.prev_hash}


def _parse_head(expect_head: str) -> tuple[int, str]:
    count, _, digest = expect_head.strip().partition(":")
    if not count.isdigit() or len(digest) != 64:
        raise ValueError(f"expected head {expect_head!r}: use N:HASH as `weeke audit head` "
                         "prints it")
    return int(count), digest.lower()


def verify(expect_head: str | None = None) -> VerifyResult:
    """Check the chain, the key, an exported head (``N:hash``) and the data against the trail;
    report the first problem."""
    want = _parse_head(expect_head) if expect_head else None
    key = audit_key()
    prev, n, keyed = GENESIS, 0, False
    signed: dict[tuple[str, str], Any] = {}
    setting: dict[str, Any] = {}
    cases: dict[str, dict[str, Any]] = {}
    for entry in AuditEntry.objects.order_by("id").iterator():
        n += 1
        if entry.prev_hash != prev:
            return VerifyResult(False, n, "link to the previous entry broken "
                                "(an entry was removed, inserted or reordered)", entry.id)
        if not keyed and entry.action == KEY_ACTION:
            if key is None:
                return VerifyResult(False, n, f"the trail is keyed but the key is missing "
                                    f"(restore {key_path()} or set WEEKE_AUDIT_KEY)", entry.id)
            if (entry.new or {}).get("previous_entries") != n - 1 or (
                    entry.new or {}).get("previous_head") != prev:
                return VerifyResult(False, n, "the key entry does not match the entries "
                                    "before it (earlier entries were changed)", entry.id)
            keyed = True
            if (entry.new or {}).get("key_sha256") != _fingerprint(key):
                return VerifyResult(False, n, "the audit key is not the one this trail was "
                                    f"written with (check {key_path()} or WEEKE_AUDIT_KEY)",
                                    entry.id)
        if not hmac.compare_digest(entry_hash(key if keyed else None, **_fields(entry)),
                                   entry.hash):
            return VerifyResult(False, n, "content does not match its hash (entry was altered)",
                                entry.id)
        if want and n == want[0] and entry.hash != want[1]:
            return VerifyResult(False, n, f"entry {n} is not the exported head (the trail was "
                                "rewritten up to it)", entry.id)
        prev = entry.hash
        kind, _, verb = entry.action.partition(".")
        if kind in ("read", "adjudication") and verb in ("sign", "revise"):
            signed[(kind, entry.object_id)] = (entry.new or {}).get("items")
        elif entry.action == "study.setting":
            setting[entry.object_id] = (entry.new or {}).get(entry.object_id)
        elif entry.object_type == "case" and entry.action in ("case.import", "admin.change"):
            _replay_case(cases, entry)
    if n == 0:
        if key is not None:
            return VerifyResult(False, 0, "the trail is empty although an audit key exists "
                                "(its entries were removed)")
        return VerifyResult(True, 0)
    if key is not None and not keyed:
        return VerifyResult(False, n, "the trail is not keyed although an audit key exists "
                            "(the key entry was removed and the chain recomputed)")
    if want and n < want[0]:
        return VerifyResult(False, n, f"the trail is shorter ({n} entries) than the exported "
                            f"head ({want[0]} entries): its last entries were removed")
    head = AuditHead.objects.filter(pk=1).first()
    if head is not None and head.last_hash != prev:
        return VerifyResult(False, n, "the last entries were removed (chain head mismatch)")
    problem = _data_problem(signed, setting) or _case_problem(cases)
    if problem:
        return VerifyResult(False, n, problem)
    return VerifyResult(True, n, head=f"{n}:{prev}")


def _data_problem(signed: dict[tuple[str, str], Any], setting: dict[str, Any]) -> str:
    """The first signed read/consensus or study setting that differs from its audit entries."""
    from weeke_pipeline.reading.models import Adjudication, Read, ReadBase, StudySetting

    for kind, model in (("read", Read), ("adjudication", Adjudication)):
        for pk, status, items in model.objects.values_list("pk", "status", "items"):
            logged = signed.get((kind, str(pk)))
            if status == ReadBase.SIGNED and (kind, str(pk)) not in signed:
                return f"{kind} {pk} is signed but the trail has no signature for it"
            if (kind, str(pk)) in signed and status != ReadBase.SIGNED:
                return f"{kind} {pk} was signed (audit trail) but is now a {status}"
            if status == ReadBase.SIGNED and (items or {}).get("items") != logged:
                return (f"{kind} {pk}: its items differ from its last signature or revision "
                        "in the audit trail (edited in the database)")
    latest: dict[str, Any] = {}
    for key, value in StudySetting.objects.order_by("id").values_list("key", "value"):
        latest[key] = value
    for name in sorted(set(latest) | set(setting)):
        if latest.get(name, _MISSING) != setting.get(name, _MISSING):
            return (f"study setting {name} is {latest.get(name, '(default)')!r} but the audit "
                    f"trail says {setting.get(name, '(default)')!r} (edited in the database)")
    return ""


#: the case fields the trail records (import, then admin changes)
CASE_FIELDS = ("pma_weeks", "pma_days", "day_of_life")


def _replay_case(cases: dict[str, dict[str, Any]], entry: AuditEntry) -> None:
    """Apply a ``case.import`` or an admin change of a case to its expected state."""
    new = entry.new or {}
    if entry.action == "case.import":
        pma = str(new.get("pma", "n/a"))
        weeks, _, days = pma.partition("+")
        cases[entry.object_id] = {
            "pma_weeks": int(weeks) if weeks.isdigit() else None,
            "pma_days": int(days) if days.isdigit() else None,
            "day_of_life": new.get("day_of_life"), "sequences": new.get("sequences")}
    elif entry.object_id in cases:
        cases[entry.object_id].update({k: v for k, v in new.items() if k in CASE_FIELDS})


def _case_problem(cases: dict[str, dict[str, Any]]) -> str:
    """The first case whose age, day of life or sequences differ from its import and admin
    changes in the trail, or that has no import entry (added behind the app's back)."""
    from weeke_pipeline.reading.models import Case

    for code, *values in Case.objects.values_list("code", *CASE_FIELDS, "sequences"):
        want = cases.get(code)
        if want is None:
            return f"case {code} has no import entry in the audit trail (added in the database)"
        have = dict(zip((*CASE_FIELDS, "sequences"), values, strict=True))
        if have["pma_weeks"] is not None and want["pma_days"] is None:
            want = {**want, "pma_days": have["pma_days"]}  # an age entered without days
        differ = [k for k in have if have[k] != want[k]]
        if differ:
            return (f"case {code}: {', '.join(differ)} differ from the audit trail (edited in "
                    "the database)")
    return ""


def head() -> str:
    """``N:hash`` of the last entry (export it to check later that nothing was cut)."""
    last = AuditEntry.objects.order_by("-id").first()
    return f"{AuditEntry.objects.count()}:{last.hash if last else GENESIS}"
