"""Receivers: role groups after migrate; logins, logouts and failed logins into the audit trail;
the database lock on every model write."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_migrate, pre_delete, pre_save
from django.dispatch import receiver


@receiver(post_migrate)
def create_role_groups(sender: Any, **kwargs: Any) -> None:
    if getattr(sender, "label", None) != "reading":
        return
    from django.contrib.auth.models import Group

    from weeke_pipeline.reading.models import ROLES

    for role in ROLES:
        Group.objects.get_or_create(name=role)
    from weeke_pipeline.reading import audit

    audit.ensure_keyed()  # a new database, or one from before the keyed chain


@receiver(user_logged_in)
def audit_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from weeke_pipeline.reading import audit

    audit.record(user, "login", object_type="user", object_id=user.username)


@receiver(user_logged_out)
def audit_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    from weeke_pipeline.reading import audit

    if user is not None:
        audit.record(user, "logout", object_type="user", object_id=user.username)


@receiver(user_login_failed)
def audit_login_failed(sender: Any, credentials: Any, request: Any = None, **kwargs: Any) -> None:
    from weeke_pipeline.reading import throttle

    throttle.record_failure(throttle.normalise_username(credentials.get("username", "")),
                            throttle.client_address(request), "login.failed")


# ---------------------------------------------------------------- database lock, every path

#: models that stay writable while the database is locked: the audit trail itself, the lock
#: history, login failures (throttling), a reader's screen layout and keys (no trial data),
#: sessions and Django's bookkeeping
_WRITABLE_WHEN_LOCKED = {"auditentry", "audithead", "databaselock", "loginfailure",
                         "readerpreference"}
_GUARDED_APPS = {"reading", "auth"}


def _guard(sender: Any, **kwargs: Any) -> None:
    """Backstop of the lock for every ``save()``/``delete()`` of a case, assignment, read,
    setting, user or group, whatever calls it (CLI, admin, a script): the services refuse
    earlier with a clear message; this makes a path that forgot to ask fail too. Logging in
    stays possible: it saves ``last_login`` only, or ``password`` only when Django re-hashes
    the same password with stronger parameters (a password *change* saves more fields or goes
    through the admin, which the lock refuses)."""
    meta = sender._meta
    if meta.app_label not in _GUARDED_APPS or meta.model_name in _WRITABLE_WHEN_LOCKED:
        return
    if meta.model_name in ("permission",):
        return
    if set(kwargs.get("update_fields") or ()) in ({"last_login"}, {"password"}):
        return  # login bookkeeping: last_login, and Django re-hashing the same password
    from weeke_pipeline.reading.errors import Locked
    from weeke_pipeline.reading.models import DatabaseLock

    if DatabaseLock.is_locked():
        raise Locked(f"the reading database is locked: {meta.verbose_name} not changed")


@receiver(pre_save)
def refuse_save_when_locked(sender: Any, **kwargs: Any) -> None:
    _guard(sender, **kwargs)


@receiver(pre_delete)
def refuse_delete_when_locked(sender: Any, **kwargs: Any) -> None:
    _guard(sender)


@receiver(m2m_changed)
def refuse_membership_change_when_locked(sender: Any, action: str, **kwargs: Any) -> None:
    if action.startswith("pre_"):
        _guard(kwargs["model"] if sender._meta.auto_created else sender)
