"""The web layer: who may open what, no identifiers on any page, bad input refused clearly."""

from __future__ import annotations

import json

import pytest
from conftest import IDENTIFIER, PASSWORD
from helpers import complete_items


def client_for(user=None, csrf: bool = False):  # type: ignore[no-untyped-def]
    from django.test import Client

    client = Client(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_login(user)
    return client


def post_json(client, url: str, body) -> object:  # type: ignore[no-untyped-def]
    return client.post(url, json.dumps(body), content_type="application/json")


def test_authorisation_matrix(study) -> None:
    shared, other = study["shared"].code, study["other"].code
    u = study["users"]
    # reader2 is assigned `shared` only; reader3 `other` only
    urls = {
        "/worklist/": {"reader2": 200, "adj": 403, "coord": 403, "analyst": 403},
        f"/case/{shared}/": {"reader2": 200, "reader3": 404, "adj": 403, "coord": 403,
                             "analyst": 403},
        f"/api/case/{shared}/read": {"reader2": 200, "reader3": 404, "adj": 403,
                                     "coord": 403, "analyst": 403},
        f"/case/{shared}/image/T2w.nii.gz": {"reader2": 200, "reader3": 404, "adj": 404,
                                             "coord": 200, "analyst": 404},
        f"/case/{other}/image/ADC.nii.gz": {"reader2": 404, "reader3": 200},
        "/adjudication/": {"reader2": 403, "adj": 200, "coord": 403},
        f"/adjudication/{shared}/": {"reader2": 403, "adj": 404},  # not needed (no reads)
        "/coordinator/": {"reader2": 403, "adj": 403, "coord": 200, "analyst": 403},
        "/admin/reading/case/": {"reader2": 302, "coord": 200, "analyst": 302},
    }
    for url, expect in urls.items():
        anon = client_for().get(url)
        assert anon.status_code == 302 and "/login/" in anon["Location"], url
        for name, status in expect.items():
            got = client_for(u[name]).get(url).status_code
            assert got == status, f"{name} GET {url}: {got} != {status}"


def test_reader_never_sees_other_read_or_identifiers(study) -> None:
    u = study["users"]
    code = study["shared"].code
    c1, c2 = client_for(u["reader1"]), client_for(u["reader2"])
    assert c1.get(f"/case/{code}/").status_code == 200
    r = post_json(c1, f"/api/case/{code}/read",
                  {**complete_items(gm_plic={"extent": 1, "laterality": 1}), "version": 1})
    assert r.status_code == 200, r.content
    mine = c2.get(f"/api/case/{code}/read").json()
    assert mine["items"] == {} and mine["score"]["total"] == 0
    pages = [c2.get(url) for url in ("/worklist/", f"/case/{code}/", f"/api/case/{code}/read")]
    for page in pages:
        text = page.content.decode()
        for secret in ("TESTID", IDENTIFIER, "MRN4471", "reader1", "arm", "allocation"):
            assert secret not in text, (page.request["PATH_INFO"], secret)
    image = c2.get(f"/case/{code}/image/T1w.nii.gz")
    body = b"".join(image.streaming_content)
    import gzip

    raw = gzip.decompress(body)
    assert b"MRN4471" not in raw and b"JANE" not in raw and b"TESTID" not in raw
    coord = client_for(u["coord"]).get("/coordinator/").content.decode()
    assert "TESTID1234" in coord and code in coord  # the link: coordinator only


def test_bad_input_is_refused_clearly(study) -> None:
    code = study["shared"].code
    client = client_for(study["users"]["reader2"])
    url = f"/api/case/{code}/read"
    cases = [
        ({"items": {"gm_thalamus": {"extent": 3, "laterality": 1}}, "version": 1}, "extent"),
        ({"items": {"gm_thalamus": {"extent": 0, "laterality": 2}}, "version": 1}, "laterality"),
        ({"items": {"no_such_item": {"extent": 0}}, "version": 1}, "unknown item"),
        ({"items": {"gm_thalamus": {"extent": 1, "laterality": 1, "total": 99}},
          "version": 1}, "unexpected fields"),
        ({"items": {"add_ivh": {"assessable": False, "reason": "x" * 501}}, "version": 1},
         "500"),
        ({"items": {}}, "version"),
    ]
    for body, message in cases:
        r = post_json(client, url, body)
        assert r.status_code == 400 and message in r.json()["error"], (body, r.content)
    r = client.post(url, "not json", content_type="application/json")
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    # script-bearing free text is stored as text and shown escaped
    script = "<script>alert(1)</script>"
    r = post_json(client, url, {"items": {"add_ivh": {"assessable": False, "reason": script}},
                                "version": 1})
    assert r.status_code == 200
    page = client.get(f"/case/{code}/").content.decode()
    assert script not in page and "\\u003Cscript\\u003E" in page


def test_posts_without_csrf_token_are_refused(study) -> None:
    code = study["shared"].code
    client = client_for(study["users"]["reader2"], csrf=True)
    r = post_json(client, f"/api/case/{code}/read", {**complete_items(), "version": 1})
    assert r.status_code == 403
    r = client_for(study["users"]["coord"], csrf=True).post("/coordinator/lock",
                                                            {"action": "lock"})
    assert r.status_code == 403


def test_sign_with_password_then_revise_with_reason_over_http(study) -> None:
    code = study["shared"].code
    client = client_for(study["users"]["reader2"])
    url = f"/api/case/{code}/read"
    r = post_json(client, url, {**complete_items(), "version": 1})
    version = r.json()["version"]
    r = post_json(client, url + "/sign", {"password": "nope", "version": version})
    assert r.status_code == 403 and "password" in r.json()["error"]
    r = post_json(client, url + "/sign", {"password": PASSWORD, "version": version})
    assert r.status_code == 200 and r.json()["status"] == "signed"
    r = post_json(client, url, {**complete_items(), "version": r.json()["version"]})
    assert r.status_code == 409 and "reason" in r.json()["error"]
    r = post_json(client, url + "/revise", {**complete_items(add_ivh={"extent": 1}),
                                            "reason": "IVH seen on re-review",
                                            "password": PASSWORD, "version": version + 1})
    assert r.status_code == 200 and r.json()["score"]["total"] == 1


def test_locked_database_refuses_saves_with_423(study) -> None:
    code = study["shared"].code
    coord = client_for(study["users"]["coord"])
    reader = client_for(study["users"]["reader2"])
    assert reader.get(f"/case/{code}/").status_code == 200  # read created before the lock
    coord.post("/coordinator/lock", {"action": "lock", "reason": "analysis"})
    r = post_json(reader, f"/api/case/{code}/read", {**complete_items(), "version": 1})
    assert r.status_code == 423 and "locked" in r.json()["error"]
    coord.post("/coordinator/lock", {"action": "unlock", "reason": ""})
    r = post_json(reader, f"/api/case/{code}/read", {**complete_items(), "version": 1})
    assert r.status_code == 423  # unlock without a reason was refused
    coord.post("/coordinator/lock", {"action": "unlock", "reason": "late query resolved"})
    r = post_json(reader, f"/api/case/{code}/read", {**complete_items(), "version": 1})
    assert r.status_code == 200


def test_login_is_throttled_and_audited(study) -> None:
    from django.test import Client

    from weeke_pipeline.reading.models import AuditEntry

    client = Client()
    for _ in range(5):
        r = client.post("/login/", {"username": "reader2", "password": "wrong"})
        assert r.status_code == 200 and "correct" in r.content.decode()
    r = client.post("/login/", {"username": "reader2", "password": PASSWORD})
    assert "Too many failed logins" in r.content.decode()
    assert "_auth_user_id" not in client.session
    ok = Client().post("/login/", {"username": "reader1", "password": PASSWORD})
    assert ok.status_code == 302
    actions = list(AuditEntry.objects.values_list("action", flat=True))
    assert actions.count("login.failed") == 5 and "login.throttled" in actions
    assert "login" in actions


def test_adjudicator_sees_both_reads_and_records_consensus(study) -> None:
    from weeke_pipeline.reading.models import Adjudication

    case = study["shared"]
    for name, extent in (("reader1", 1), ("reader2", 2)):
        client = client_for(study["users"][name])
        url = f"/api/case/{case.code}/read"
        r = post_json(client, url, {**complete_items(
            gm_basal_ganglia={"extent": extent, "laterality": 2}), "version": 1})
        r = post_json(client, url + "/sign", {"password": PASSWORD, "version": r.json()["version"]})
        assert r.status_code == 200
    adj = client_for(study["users"]["adj"])
    assert case.code in adj.get("/adjudication/").content.decode()
    page = adj.get(f"/adjudication/{case.code}/").content.decode()
    from django.utils.html import escape

    from weeke_pipeline.scoring import load_form

    extents = load_form("weeke-consensus-2025").item("gm_basal_ganglia").extents
    assert 'class="differs"' in page
    assert escape(f"1: {extents[1].label}, bilateral") in page
    assert escape(f"2: {extents[2].label}, bilateral") in page
    assert "reader1" not in page and "TESTID" not in page
    assert adj.get(f"/case/{case.code}/image/T2w.nii.gz").status_code == 200
    url = f"/api/case/{case.code}/consensus"
    r = post_json(adj, url, {**complete_items(gm_basal_ganglia={"extent": 2, "laterality": 2}),
                             "version": 1})
    r = post_json(adj, url + "/sign", {"password": PASSWORD, "version": r.json()["version"]})
    assert r.status_code == 200 and r.json()["score"]["total"] == 4
    assert Adjudication.objects.get(case=case).status == "signed"


@pytest.mark.parametrize("role", ["reader", "adjudicator"])
def test_live_score_endpoint(study, role) -> None:
    user = study["users"]["reader2" if role == "reader" else "adj"]
    r = post_json(client_for(user), "/api/score/weeke-consensus-2025/1.0.0",
                  {"items": {"gm_thalamus": {"extent": 1, "laterality": 2},
                             "wm_corpus_callosum": {"extent": 1}}})
    data = r.json()
    assert data["score"]["total"] == 4 and data["score"]["complete"] is False
