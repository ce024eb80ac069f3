"""Admin site for the coordinator: cases (with the code-to-subject link), assignments, reads,
lock history; the audit trail is read-only here."""

from typing import Any

from django.contrib import admin

from weeke_pipeline.reading import models


@admin.register(models.Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("code", "subject", "session", "pma_weeks", "pma_days", "day_of_life",
                    "imported_at")
    search_fields = ("code", "subject")


@admin.register(models.ReaderAssignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("reader", "case", "position")
    list_filter = ("reader",)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(models.Read)
class ReadAdmin(ReadOnlyAdmin):
    list_display = ("case", "reader", "status", "form_id", "form_version", "signed_at")


@admin.register(models.Adjudication)
class AdjudicationAdmin(ReadOnlyAdmin):
    list_display = ("case", "adjudicator", "status", "signed_at")


@admin.register(models.ReadRevision)
class RevisionAdmin(ReadOnlyAdmin):
    list_display = ("read", "adjudication", "changed_by", "changed_at", "reason")


@admin.register(models.AuditEntry)
class AuditAdmin(ReadOnlyAdmin):
    list_display = ("id", "timestamp", "actor", "action", "object_type", "object_id", "reason")
    list_filter = ("action",)


@admin.register(models.DatabaseLock)
class LockAdmin(ReadOnlyAdmin):
    list_display = ("at", "locked", "by", "reason")


@admin.register(models.StudySetting)
class StudySettingAdmin(ReadOnlyAdmin):
    list_display = ("changed_at", "key", "value", "changed_by", "reason")
