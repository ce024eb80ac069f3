"""Database models of the reading app.

No model holds a treatment arm: allocation only joins the tables after database lock
(analyst exports, issue 6). The subject pseudonym is kept on :class:`Case` for the coordinator;
readers and adjudicators only ever see the random reading code.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

ROLES = ("reader", "adjudicator", "coordinator", "analyst")


class Case(models.Model):
    """One MRI examination (one subject's session) under a random reading code."""

    code = models.CharField(max_length=16, unique=True)
    #: study pseudonym (never a name or hospital number); shown to the coordinator only
    subject = models.CharField(max_length=64)
    #: BIDS session label (``ses-`` entity without the prefix; "" when the data has none);
    #: coordinator and exports only, never on a reader's or adjudicator's page: a label such
    #: as "postdose" or "3month" would tell when the scan was made relative to treatment
    session = models.CharField(max_length=64, blank=True, default="")
    pma_weeks = models.PositiveSmallIntegerField(null=True, blank=True)
    pma_days = models.PositiveSmallIntegerField(null=True, blank=True)
    day_of_life = models.PositiveSmallIntegerField(null=True, blank=True)
    #: sequences available for reading, e.g. ["T1w", "T2w", "ADC"]
    sequences = models.JSONField(default=list)
    #: sequence -> de-identified image path relative to the data folder (named by code)
    images = models.JSONField(default=dict)
    imported_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["subject", "session"],
                                               name="case_one_per_subject_session")]

    def __str__(self) -> str:  # the code only: str() appears in admin pages and logs
        return self.code

    @property
    def pma_label(self) -> str:
        if self.pma_weeks is None:
            return "n/a"
        return f"{self.pma_weeks}+{self.pma_days or 0}"


class ReaderAssignment(models.Model):
    """A case on a reader's worklist, at a position of that reader's own shuffled order."""

    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                               related_name="assignments")
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="assignments")
    position = models.PositiveIntegerField()
    #: seed of the reader's shuffle (stored so the order can be reproduced and audited)
    seed = models.BigIntegerField()
    assigned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["reader_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["reader", "case"], name="one_assignment_per_reader"),
        ]


class ReadBase(models.Model):
    """Fields shared by a reader's read and the adjudicator's consensus read."""

    DRAFT, SIGNED = "draft", "signed"
    STATUS = [(DRAFT, "draft"), (SIGNED, "signed")]

    form_id = models.CharField(max_length=64)
    form_version = models.CharField(max_length=32)
    form_sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=8, choices=STATUS, default=DRAFT)
    #: the score-engine payload {"items": {...}} (see docs/scoring.md)
    items = models.JSONField(default=dict)
    #: optimistic concurrency: each save must name the version it edited
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    signed_at = models.DateTimeField(null=True, blank=True)
    #: reading time (:mod:`weeke_pipeline.reading.timing`): first opening of the page, active
    #: seconds (idle gaps over the protocol's threshold left out) and active seconds per item
    opened_at = models.DateTimeField(null=True, blank=True)
    active_seconds = models.FloatField(default=0)
    item_seconds = models.JSONField(default=dict)

    class Meta:
        abstract = True


class Read(ReadBase):
    """One reader's independent read of one case."""

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="reads")
    reader = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                               related_name="reads")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "reader"], name="one_read_per_reader"),
        ]


class Adjudication(ReadBase):
    """The consensus read recorded by an adjudicator when two signed reads differ."""

    case = models.OneToOneField(Case, on_delete=models.PROTECT, related_name="adjudication")
    adjudicator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                    related_name="adjudications")


class ReadRevision(models.Model):
    """A change to a signed read or consensus: old and new items and the reason given."""

    read = models.ForeignKey(Read, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="revisions")
    adjudication = models.ForeignKey(Adjudication, null=True, blank=True,
                                     on_delete=models.PROTECT, related_name="revisions")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    changed_at = models.DateTimeField(auto_now_add=True)
    old_items = models.JSONField()
    new_items = models.JSONField()
    reason = models.TextField()


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: object) -> int:
        raise PermissionError("the audit trail is append-only: entries cannot be updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("the audit trail is append-only: entries cannot be deleted")


class AuditEntry(models.Model):
    """One audit event; ``hash`` = HMAC-SHA256 (key outside the database) over the entry's
    content and ``prev_hash`` (:mod:`weeke_pipeline.reading.audit`).

    Append-only at model level (save refuses updates; delete and queryset update/delete raise);
    editing the table behind Django's back breaks the chain, which ``weeke audit verify`` finds.
    """

    timestamp = models.DateTimeField()
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=40)
    object_type = models.CharField(max_length=40, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    old = models.JSONField(null=True, blank=True)
    new = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "audit entries"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None or kwargs.get("force_update"):
            raise PermissionError("the audit trail is append-only: entries cannot be changed")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise PermissionError("the audit trail is append-only: entries cannot be deleted")


class AuditHead(models.Model):
    """Single row locked while appending so concurrent writers chain in order."""

    last_hash = models.CharField(max_length=64, default="0" * 64)
    #: the chain is keyed (HMAC) from its ``audit.key`` entry on (reading/audit.py)
    keyed = models.BooleanField(default=False)


class DatabaseLock(models.Model):
    """History of lock/unlock events; the latest row is the current state."""

    locked = models.BooleanField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT)
    at = models.DateTimeField(auto_now_add=True)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]

    @classmethod
    def is_locked(cls) -> bool:
        last = cls.objects.order_by("-id").first()
        return bool(last and last.locked)


class LoginFailure(models.Model):
    """A failed login, counted per username and per client address for throttling."""

    username = models.CharField(max_length=150, db_index=True)
    address = models.CharField(max_length=64, db_index=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)


class StudySetting(models.Model):
    """History of the study configuration: one row per change of one setting (``key``), the
    latest row of a key is its current value; a key without rows has its default
    (:mod:`weeke_pipeline.reading.study`). Rows are never changed: each change is a new row
    with who, when and why, and an audit entry with the old and new value."""

    key = models.CharField(max_length=64, db_index=True)
    value = models.JSONField()
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.PROTECT)
    changed_at = models.DateTimeField(auto_now_add=True)
    reason = models.TextField()

    class Meta:
        ordering = ["id"]


class ReaderPreference(models.Model):
    """A reader's own viewer layout (the one last used) and key bindings
    (:mod:`weeke_pipeline.reading.hanging`). Display choices only: nothing here changes a read."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="reading_preference")
    layout = models.CharField(max_length=32, blank=True)
    keys = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)
