"""The attack walk (issue 13): every URL of the reading app, every role and anonymous, GET and
POST (with and without the CSRF token), against the policy below.

The URL list comes from the URL resolver and the admin's registry, so a new page or model is
walked automatically; a URL name missing from :data:`GET` fails the test (decide who may open
it). Checked for every request: never a server error; a role outside the page's audience gets
a redirect to a login page, 403, 404 or 405, never the page; a refused POST writes nothing (no
audit entry, no changed row); nobody but the coordinator ever sees a subject identifier.
"""

from __future__ import annotations

import json

import pytest

ROLES = ("anonymous", "reader2", "reader3", "adj", "coord", "analyst")
OK = (200,)
#: GET status per URL name and role ("login" = redirect to a login page). Case URLs are opened
#: for the case on reader2's worklist and not on reader3's, which needs no adjudication.
GET: dict[str, dict[str, int | str]] = {
    "home": {"reader2": 302, "reader3": 302, "adj": 302, "coord": 302, "analyst": 200},
    "login": {"anonymous": 200, "reader2": 302, "reader3": 302, "adj": 302, "coord": 302,
              "analyst": 302},
    "logout": {r: 405 for r in ROLES},
    "worklist": {"reader2": 200, "reader3": 200, "adj": 403, "coord": 403, "analyst": 403},
    "read_page": {"reader2": 200, "reader3": 404, "adj": 403, "coord": 403, "analyst": 403},
    "image": {"reader2": 200, "reader3": 404, "adj": 404, "coord": 200, "analyst": 404},
    "read_api": {"reader2": 200, "reader3": 404, "adj": 403, "coord": 403, "analyst": 403},
    "read_action": {"reader2": 400, "reader3": 404, "adj": 403, "coord": 403, "analyst": 403},
    "score_api": {"reader2": 405, "reader3": 405, "adj": 405, "coord": 403, "analyst": 403},
    "adjudication_list": {"reader2": 403, "reader3": 403, "adj": 200, "coord": 403,
                          "analyst": 403},
    "adjudication_page": {"reader2": 403, "reader3": 403, "adj": 404, "coord": 403,
                          "analyst": 403},
    "consensus_api": {"reader2": 403, "reader3": 403, "adj": 404, "coord": 403, "analyst": 403},
    "consensus_action": {"reader2": 403, "reader3": 403, "adj": 404, "coord": 403,
                         "analyst": 403},
    "coordinator": {"reader2": 403, "reader3": 403, "adj": 403, "coord": 200, "analyst": 403},
    "coordinator_lock": {"reader2": 403, "reader3": 403, "adj": 403, "coord": 405,
                         "analyst": 403},
    "coordinator_settings": {"reader2": 403, "reader3": 403, "adj": 403, "coord": 405,
                             "analyst": 403},
    "next_case": {"reader2": 302, "reader3": 302, "adj": 302, "coord": 403, "analyst": 403},
    "preferences_api": {"reader2": 200, "reader3": 200, "adj": 200, "coord": 403,
                        "analyst": 403},
}
#: who may POST to a URL name at all (everyone else must be refused and change nothing)
POST_AUDIENCE = {"login": set(ROLES), "logout": set(ROLES),
                 "read_api": {"reader2"}, "read_action": {"reader2"},
                 "score_api": {"reader2", "reader3", "adj"}, "coordinator_lock": {"coord"},
                 "preferences_api": {"reader2", "reader3", "adj"},
                 "coordinator_settings": {"coord"}}
REFUSED = {302, 403, 404, 405}
SECRETS = ("TESTID", "MRN4471", "DOE^JANE")


def _urls(study) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(name, path) of every non-admin URL pattern, filled with the test's case."""
    from django.urls import URLPattern, get_resolver

    code = study["shared"].code
    args = {"code": code, "sequence": "T2w", "action": "sign",
            "form_id": "weeke-consensus-2025", "version": "1.0.0"}
    out = []
    for pattern in get_resolver().url_patterns:
        if not isinstance(pattern, URLPattern):
            continue  # the admin include, walked separately
        route = str(pattern.pattern)
        path = "/" + route
        for key, value in args.items():
            path = path.replace(f"<str:{key}>", value)
        assert "<" not in path, f"no test value for a parameter of {route}"
        out.append((pattern.name, path))
    return out


def _client(study, role):  # type: ignore[no-untyped-def]
    from django.test import Client

    client = Client(raise_request_exception=False)
    if role != "anonymous":
        client.force_login(study["users"][role])
    return client


def _state() -> tuple[int, ...]:
    from django.contrib.auth import get_user_model

    from weeke_pipeline.reading import models as m

    return (m.AuditEntry.objects.count(), m.Read.objects.count(),
            m.Adjudication.objects.count(), m.DatabaseLock.objects.count(),
            m.StudySetting.objects.count(), m.Case.objects.count(),
            get_user_model().objects.count())


def _is_login_redirect(response) -> bool:  # type: ignore[no-untyped-def]
    return response.status_code == 302 and "login/" in response["Location"]


def test_every_url_for_every_role_and_anonymous(study) -> None:
    urls = _urls(study)
    assert {name for name, _ in urls} == set(GET), "a URL without a policy in GET"
    clients = {role: _client(study, role) for role in ROLES}  # GETs do not change a session
    for name, path in urls:
        for role in ROLES:
            r = clients[role].get(path)
            want = GET[name].get(role, "login")
            where = f"{role} GET {path}"
            assert r.status_code != 500, where
            if want == "login":
                assert _is_login_redirect(r), f"{where}: {r.status_code}"
            else:
                assert r.status_code == want, f"{where}: {r.status_code} != {want}"
            if path.startswith("/api/") and r.status_code not in (302, 405):
                assert r["Content-Type"] == "application/json", where
            if role != "coord" and name != "image":
                body = b"".join(r.streaming_content) if r.streaming else r.content
                assert not any(s.encode() in body for s in SECRETS), where


@pytest.mark.parametrize("csrf", [True, False], ids=["no-csrf-token", "csrf-token"])
def test_every_post_is_refused_unless_the_role_may(study, csrf) -> None:
    from django.test import Client

    urls = _urls(study)
    body = json.dumps({"version": 1, "items": {}, "password": "guess-guess", "reason": "x"})
    for name, path in urls:
        for role in ROLES:
            client = Client(enforce_csrf_checks=csrf, raise_request_exception=False)
            if role != "anonymous":
                client.force_login(study["users"][role])
            before = _state()
            r = client.post(path, body, content_type="application/json")
            where = f"{role} POST {path} ({'no token' if csrf else 'token'})"
            assert r.status_code != 500, where
            if csrf:
                assert r.status_code == 403 or _is_login_redirect(r), where
                assert _state() == before, f"{where} wrote without a CSRF token"
            elif role not in POST_AUDIENCE.get(name, set()):
                assert r.status_code in REFUSED, f"{where}: {r.status_code}"
                assert _state() == before, f"{where} was refused but wrote"


def _admin_urls(study) -> list[tuple[str, str, bool]]:  # type: ignore[no-untyped-def]
    """(what, path, editable) for every admin page of every registered model."""
    from django.contrib import admin
    from django.urls import reverse

    from weeke_pipeline.reading.admin import AdjudicationAdmin, ReadOnlyAdmin

    out = [("index", reverse("admin:index"), True)]
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        # no add or delete: read-only models, and consensus reads (hand-over only)
        editable = not isinstance(model_admin, ReadOnlyAdmin | AdjudicationAdmin)
        obj = model.objects.order_by("pk").first()
        out += [("changelist", reverse(f"admin:{info[0]}_{info[1]}_changelist"), True),
                ("add", reverse(f"admin:{info[0]}_{info[1]}_add"), editable)]
        if obj is not None:
            for view in ("change", "history", "delete"):
                out.append((view, reverse(f"admin:{info[0]}_{info[1]}_{view}", args=[obj.pk]),
                            editable or view != "delete"))
    return out


def test_admin_pages_for_every_role_and_anonymous(study) -> None:
    from weeke_pipeline.reading import services

    pages = _admin_urls(study)
    assert len(pages) > 30
    clients = {role: _client(study, role) for role in ROLES}  # GETs do not change a session
    for _what, path, editable in pages:
        for role in ROLES:
            r = clients[role].get(path)
            where = f"{role} GET {path}"
            assert r.status_code != 500, where
            if role != "coord":  # only the coordinator is staff
                assert _is_login_redirect(r) and "/admin/login/" in r["Location"], where
            else:
                assert r.status_code == (200 if editable else 403), where
    # locked: every admin form that could write is refused (403), reading still works
    services.set_lock(study["users"]["coord"], True, "walk")
    coord = _client(study, "coord")
    for what, path, _ in pages:
        before = _state()
        if what in ("add", "delete"):
            assert coord.get(path).status_code == 403, path
        if what in ("add", "change", "delete"):
            r = coord.post(path, {"post": "yes"})
            assert r.status_code == 403, f"locked POST {path}: {r.status_code}"
            assert _state() == before, path
        if what in ("changelist", "change", "history", "index"):
            assert coord.get(path).status_code == 200, path
