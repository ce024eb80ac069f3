"""Password-guessing limits shared by the login pages (app and admin) and signing.

A failure is stored in :class:`~weeke_pipeline.reading.models.LoginFailure` under the user name
*as Django authenticates it* (Unicode NFKC, surrounding white space stripped: what
``django.contrib.auth.forms.UsernameField`` cleans to), so ``"ana "``, ``"ana\\t"`` and
full-width ``ａｎａ`` count as ``ana``; and under the client address. A login or a signature is
refused while the name has ``WEEKE_LOGIN_MAX_FAILURES_USER`` or the address
``WEEKE_LOGIN_MAX_FAILURES_IP`` failures within ``WEEKE_LOGIN_WINDOW_S``.

The client address is ``REMOTE_ADDR``, unless that is one of ``WEEKE_TRUSTED_PROXIES`` (setting
or environment, comma separated, addresses or networks such as ``127.0.0.1,10.0.0.0/8``): then
``X-Forwarded-For`` is read from the right, skipping trusted proxies, and the first other
address is the client (a client cannot pick its address by sending the header itself, since
only the proxy's own appended entry is believed).

Why not django-axes (which fits Django 5.2): the app already keeps failures in its own table,
audits them and shows them to the coordinator, and needs sign failures counted with login
failures and a per-name and a per-address limit at once; axes would add a second failure store,
its own lockout responses and django-ipware for the same two checks written here.
"""

from __future__ import annotations

import ipaddress
import os
import unicodedata
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone


class Throttled(Exception):
    """Too many recent failures for this user name or address."""

    def __init__(self) -> None:
        minutes = settings.WEEKE_LOGIN_WINDOW_S // 60
        super().__init__(f"Too many failed logins or signatures: try again in {minutes} minutes.")


def normalise_username(raw: Any) -> str:
    """The user name as Django's login form cleans it (``CharField`` strips white space, then
    ``UsernameField`` applies NFKC), at most 150 characters."""
    return unicodedata.normalize("NFKC", str(raw or "").strip())[:150]


def trusted_proxies() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    raw = getattr(settings, "WEEKE_TRUSTED_PROXIES", None)
    if raw is None:
        raw = os.environ.get("WEEKE_TRUSTED_PROXIES", "")
    if isinstance(raw, str):
        raw = raw.split(",")
    return [ipaddress.ip_network(p.strip(), strict=False) for p in raw if p.strip()]


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


def client_address(request: Any) -> str:
    """The client's address: REMOTE_ADDR, or the one a trusted proxy forwarded."""
    if request is None:
        return ""
    remote = (request.META.get("REMOTE_ADDR") or "unknown")[:64]
    proxies = trusted_proxies()
    addr = _ip(remote)
    if not proxies or addr is None or not any(addr in net for net in proxies):
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        ip = _ip(hop)
        if ip is None:
            return hop[:64]  # garbage from the client side: counted under that string
        if not any(ip in net for net in proxies):
            return str(ip)
    return remote


def check(username: str, address: str) -> None:
    """Raise :class:`Throttled` when the name or the address has too many recent failures."""
    from weeke_pipeline.reading.models import LoginFailure

    since = timezone.now() - timedelta(seconds=settings.WEEKE_LOGIN_WINDOW_S)
    recent = LoginFailure.objects.filter(at__gte=since)
    if (recent.filter(username=username).count() >= settings.WEEKE_LOGIN_MAX_FAILURES_USER
            or (address and recent.filter(address=address).count()
                >= settings.WEEKE_LOGIN_MAX_FAILURES_IP)):
        raise Throttled


def record_failure(username: str, address: str, action: str) -> None:
    """Store one failure (counted by :func:`check`) and audit it as ``action``."""
    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.models import LoginFailure

    LoginFailure.objects.create(username=username, address=address[:64])
    audit.record("anonymous" if action == "login.failed" else username, action,
                 object_type="user", object_id=username[:64], new={"address": address[:64]})
