"""Admin site for the coordinator: cases (with the code-to-subject link), assignments, users,
reads, lock history; the audit trail is read-only here.

Every admin change (add, change, delete, password, group membership) is recorded in the audit
trail with the fields' old and new values (passwords as "(changed)" only), next to Django's own
admin log, through the admin's ``construct_change_message``/``log_*`` hooks. While the database
is locked, nothing can be added, changed or deleted (change permission withdrawn: the pages are
read-only and a forged POST gets 403). The admin login uses the app's login limits
(``admin.site.login_form``).
"""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group

from weeke_pipeline.reading import audit, models
from weeke_pipeline.reading.accounts import USERNAME_VALIDATOR
from weeke_pipeline.reading.views import ThrottledAdminAuthenticationForm

admin.site.login_form = ThrottledAdminAuthenticationForm
_DIFF = "_weeke_admin_diff"


def _jsonable(field: Any, value: Any) -> Any:
    """A form value as JSON for the audit entry (model objects by their name)."""
    if isinstance(field, forms.ModelMultipleChoiceField):
        if value is not None and not hasattr(value, "model"):
            value = field.queryset.filter(pk__in=list(value))
        return sorted(str(o) for o in (value or []))
    if isinstance(field, forms.ModelChoiceField):
        if value is not None and not hasattr(value, "_meta"):
            value = field.queryset.filter(pk=value).first()
        return None if value is None else str(value)
    if isinstance(value, datetime.date | datetime.time | decimal.Decimal):
        return str(value)
    try:
        json.dumps(value)
    except TypeError:
        return str(value)
    return value


def _object_id(obj: Any) -> str:
    return str(getattr(obj, "code", None) or getattr(obj, "username", None) or obj.pk)


class AuditedAdmin(admin.ModelAdmin):
    """Refuses edits while the database is locked; records every edit in the audit trail."""

    def _writable(self) -> bool:
        return not models.DatabaseLock.is_locked()

    def has_add_permission(self, request: Any, *args: Any) -> bool:
        return self._writable() and super().has_add_permission(request, *args)

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return self._writable() and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return self._writable() and super().has_delete_permission(request, obj)

    def construct_change_message(self, request: Any, form: Any, formsets: Any,
                                 add: bool = False) -> Any:
        old, new = {}, {}
        for name in form.changed_data:
            field = form.fields.get(name)
            if "password" in name:
                old[name], new[name] = "(hidden)", "(changed)"
                continue
            old[name] = None if add else _jsonable(field, form.initial.get(name))
            new[name] = _jsonable(field, form.cleaned_data.get(name))
        setattr(request, _DIFF, (old, new))
        return super().construct_change_message(request, form, formsets, add)

    def _audit(self, request: Any, obj: Any, action: str) -> None:
        old, new = getattr(request, _DIFF, (None, None))
        audit.record(request.user, action, object_type=obj._meta.model_name,
                     object_id=_object_id(obj), old=old or None, new=new or None)

    def log_addition(self, request: Any, obj: Any, message: Any) -> Any:
        self._audit(request, obj, "admin.add")
        return super().log_addition(request, obj, message)

    def log_change(self, request: Any, obj: Any, message: Any) -> Any:
        self._audit(request, obj, "admin.change")
        return super().log_change(request, obj, message)

    def log_deletions(self, request: Any, queryset: Any) -> Any:
        for obj in queryset:
            audit.record(request.user, "admin.delete", object_type=obj._meta.model_name,
                         object_id=_object_id(obj), old={"object": str(obj)})
        return super().log_deletions(request, queryset)


@admin.register(models.Case)
class CaseAdmin(AuditedAdmin):
    list_display = ("code", "subject", "session", "pma_weeks", "pma_days", "day_of_life",
                    "imported_at")
    search_fields = ("code", "subject")
    # the code-to-subject link and the image files are the importer's: not editable
    readonly_fields = ("code", "subject", "session", "sequences", "images", "imported_at")


@admin.register(models.ReaderAssignment)
class AssignmentAdmin(AuditedAdmin):
    list_display = ("reader", "case", "position")
    list_filter = ("reader",)


class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    """Django's user admin, locked and audited like the rest; user names follow the same rule
    as ``weeke users add``."""

    def get_form(self, request: Any, obj: Any = None, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, **kwargs)
        field = form.base_fields.get("username")
        if field is not None and USERNAME_VALIDATOR not in field.validators:
            field.validators.append(USERNAME_VALIDATOR)
        return form


class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    """Django's group admin, locked and audited like the rest."""


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), AuditedUserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, AuditedGroupAdmin)


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
class AdjudicationAdmin(AuditedAdmin):
    """Read-only, except handing a consensus still in draft to another adjudicator (a
    consensus belongs to one adjudicator: only they can save and sign it)."""

    list_display = ("case", "adjudicator", "status", "signed_at")
    fields = ("case", "adjudicator", "status", "signed_at")
    readonly_fields = ("case", "status", "signed_at")

    def has_add_permission(self, request: Any, *args: Any) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return (super().has_change_permission(request, obj)
                and (obj is None or obj.status == models.ReadBase.DRAFT))

    def formfield_for_foreignkey(self, db_field: Any, request: Any, **kwargs: Any) -> Any:
        if db_field.name == "adjudicator":
            kwargs["queryset"] = get_user_model().objects.filter(
                groups__name="adjudicator", is_active=True).order_by("username")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


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
