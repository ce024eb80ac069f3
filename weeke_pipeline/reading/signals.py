"""Receivers: role groups after migrate; logins, logouts and failed logins into the audit trail."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_migrate
from django.dispatch import receiver


def client_address(request: Any) -> str:
    return (request.META.get("REMOTE_ADDR") or "unknown")[:64] if request is not None else ""


@receiver(post_migrate)
def create_role_groups(sender: Any, **kwargs: Any) -> None:
    if getattr(sender, "label", None) != "reading":
        return
    from django.contrib.auth.models import Group

    from weeke_pipeline.reading.models import ROLES

    for role in ROLES:
        Group.objects.get_or_create(name=role)


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
    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.models import LoginFailure

    username = str(credentials.get("username", ""))[:150]
    LoginFailure.objects.create(username=username, address=client_address(request))
    audit.record("anonymous", "login.failed", object_type="user", object_id=username[:64])
