"""Reading as a neuroradiologist reads (server side): hanging protocols and reader preferences,
the worklist's progress, filter and "next case", and reading time recorded with each read.

The browser side (keyboard scoring, linked views, window/level, remembered layout, idle gaps)
is in test_reading_keyboard.py.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import PASSWORD
from helpers import complete_items


def client_for(user):  # type: ignore[no-untyped-def]
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def post_json(client, url: str, body):  # type: ignore[no-untyped-def]
    return client.post(url, json.dumps(body), content_type="application/json")


# ---------------------------------------------------------------- hanging protocols

def test_shipped_protocol_is_valid_and_complete(reading_app) -> None:
    from weeke_pipeline.reading import hanging

    p = hanging.load_protocol()
    assert p["default_layout"] == "side-by-side"
    kinds = {lay["kind"] for lay in p["layouts"]}
    assert kinds == {"row", "multiplanar", "single"}
    # every sequence a reader can be shown has window presets, ADC in absolute units
    assert set(p["windows"]) >= {"T1w", "T2w", "ADC", "FA"}
    assert all(w["mode"] == "absolute" for w in p["windows"]["ADC"])


def test_broken_protocol_is_refused_naming_the_file(reading_app, tmp_path, monkeypatch) -> None:
    import shutil

    from weeke_pipeline.reading import hanging

    root = tmp_path / "scoring_forms"
    shutil.copytree(hanging.protocols_root().parent / "schema", root / "schema")
    bad = root / "hanging_protocols" / "site" / "1.0.0.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text("format: 1\nid: site\nversion: 1.0.0\ntitle: x\nsequence_order: [T2w]\n"
                   "default_layout: nope\nlayouts: [{id: row, label: r, kind: row}]\n"
                   "windows: {T2w: [{id: d, label: d, mode: guess, range: [0, 1]}]}\n")
    monkeypatch.setattr(hanging, "protocols_root", lambda: root / "hanging_protocols")
    hanging.load_protocol.cache_clear()
    try:
        with pytest.raises(hanging.ProtocolError, match=r"1\.0\.0\.yaml.*windows/T2w/0/mode"):
            hanging.load_protocol("site@1.0.0")
        bad.write_text(bad.read_text().replace("guess", "robust"))
        hanging.load_protocol.cache_clear()
        with pytest.raises(hanging.ProtocolError, match="default_layout 'nope'"):
            hanging.load_protocol("site@1.0.0")
        with pytest.raises(hanging.ProtocolError, match="unknown hanging protocol"):
            hanging.load_protocol("site@2.0.0")
    finally:
        hanging.load_protocol.cache_clear()


def test_study_setting_picks_the_protocol_and_refuses_unknown_ones(study) -> None:
    from weeke_pipeline.reading import services
    from weeke_pipeline.reading import study as study_settings

    coord = study["users"]["coord"]
    assert study_settings.hanging_protocol() == "neonatal-hie@1.0.0"
    with pytest.raises(services.ReadingError, match="unknown hanging protocol"):
        study_settings.set_setting(coord, study_settings.HANGING_PROTOCOL, "other@9.9.9", "why")


# ---------------------------------------------------------------- preferences

def test_reader_layout_and_keys_are_remembered_and_checked(study) -> None:
    reader = client_for(study["users"]["reader1"])
    got = reader.get("/api/preferences").json()
    assert got["keys"]["extent_0"] == "0" and got["layout"] == ""
    assert post_json(reader, "/api/preferences", {"layout": "three-plane"}).status_code == 200
    page = reader.get(f"/case/{study['shared'].code}/")
    config = json.loads(page.context["config"] and json.dumps(page.context["config"]))
    assert config["layout"] == "three-plane"
    # another reader is unaffected
    other = client_for(study["users"]["reader2"]).get(f"/case/{study['shared'].code}/")
    assert other.context["config"]["layout"] == "side-by-side"

    bad = post_json(reader, "/api/preferences", {"layout": "mosaic"})
    assert bad.status_code == 400 and "unknown layout" in bad.json()["error"]
    clash = post_json(reader, "/api/preferences", {"keys": {"bilateral": "u"}})
    assert clash.status_code == 400 and "bound to both" in clash.json()["error"]
    assert post_json(reader, "/api/preferences", {"keys": {"nope": "x"}}).status_code == 400
    assert post_json(reader, "/api/preferences", {"keys": {"save": "Escape"}}).status_code == 400
    ok = post_json(reader, "/api/preferences", {"keys": {"unilateral": "q", "bilateral": "e"}})
    assert ok.status_code == 200 and ok.json()["keys"]["bilateral"] == "e"
    page = reader.get(f"/case/{study['shared'].code}/")
    assert page.context["config"]["keys"]["unilateral"] == "q"
    assert post_json(reader, "/api/preferences", {"keys": {}}).json()["keys"]["unilateral"] == "u"


# ---------------------------------------------------------------- worklist

def test_worklist_progress_filter_and_next_case(study) -> None:
    from weeke_pipeline.reading.models import Read, ReaderAssignment

    user = study["users"]["reader1"]
    reader = client_for(user)
    codes = [a.case.code for a in ReaderAssignment.objects.filter(reader=user)
             .order_by("position")]
    assert len(codes) == 2
    page = reader.get("/worklist/")
    assert page.context["progress"] == {"signed": 0, "draft": 0, "todo": 2}
    assert page.context["next_code"] == codes[0]
    assert reader.get("/next/")["Location"] == f"/case/{codes[0]}/"

    # the second case becomes a draft: "next" resumes it (even after the first)
    reader.get(f"/case/{codes[1]}/")
    post_json(reader, f"/api/case/{codes[1]}/read", {"items": {}, "version": 1})
    assert reader.get("/next/")["Location"] == f"/case/{codes[1]}/"
    drafts = reader.get("/worklist/?show=draft").context["rows"]
    assert [r["case"].code for r in drafts] == [codes[1]]

    # sign it: next after it is the case not started; the worklist counts it
    body = {**complete_items(), "version": 2}
    assert post_json(reader, f"/api/case/{codes[1]}/read", body).status_code == 200
    r = post_json(reader, f"/api/case/{codes[1]}/read/sign", {"password": PASSWORD,
                                                              "version": 3})
    assert r.status_code == 200, r.content
    assert reader.get(f"/next/?after={codes[1]}")["Location"] == f"/case/{codes[0]}/"
    progress = reader.get("/worklist/").context["progress"]
    assert progress == {"signed": 1, "draft": 0, "todo": 1}
    # all signed: back to the worklist with a message
    Read.objects.filter(reader=user).update(status="signed")
    reader.get(f"/case/{codes[0]}/")
    Read.objects.filter(reader=user).update(status="signed")
    assert reader.get("/next/")["Location"] == "/worklist/"


# ---------------------------------------------------------------- reading time

def test_reading_time_is_recorded_checked_and_audited(study) -> None:
    from weeke_pipeline.reading.models import AuditEntry, Read

    user = study["users"]["reader2"]
    code = study["shared"].code
    reader = client_for(user)
    reader.get(f"/case/{code}/")
    read = Read.objects.get(case__code=code, reader=user)
    assert read.opened_at is not None
    # pretend the page has been open for 10 minutes
    Read.objects.filter(pk=read.pk).update(opened_at=read.opened_at - timedelta(minutes=10),
                                           updated_at=read.updated_at - timedelta(minutes=10))
    r = post_json(reader, f"/api/case/{code}/read", {
        "items": {"gm_thalamus": {"extent": 0}}, "version": 1,
        "timing": {"active_s": 90.0, "items": {"gm_thalamus": 30.0, "gm_plic": 12.5}}})
    assert r.status_code == 200 and "timing_error" not in r.json()
    read.refresh_from_db()
    assert read.active_seconds == 90.0
    assert read.item_seconds == {"gm_thalamus": 30.0, "gm_plic": 12.5}

    # impossible increments are refused (the save itself still counts), nothing added
    for bad, why in (({"active_s": -1}, "negative"), ({"active_s": 5, "items": {"x": 1}},
                                                       "unknown item"),
                     ({"active_s": 1, "items": {"gm_plic": 2}}, "exceeds"),
                     ({"active_s": 3600}, "more active time than has passed")):
        version = read.version
        r = post_json(reader, f"/api/case/{code}/read",
                      {"items": {}, "version": version, "timing": bad})
        assert r.status_code == 200 and why in r.json()["timing_error"], (bad, r.json())
        read.refresh_from_db()
        assert read.active_seconds == 90.0 and read.version == version + 1

    body = {**complete_items(), "version": read.version}
    post_json(reader, f"/api/case/{code}/read", body)
    read.refresh_from_db()
    r = post_json(reader, f"/api/case/{code}/read/sign", {
        "password": PASSWORD, "version": read.version,
        "timing": {"active_s": 3.0, "items": {"gm_plic": 2.5}}})
    assert r.status_code == 200, r.content
    read.refresh_from_db()
    assert read.active_seconds == 93.0 and read.item_seconds["gm_plic"] == 15.0
    entry = AuditEntry.objects.filter(action="read.timing").get()
    assert entry.new["active_seconds"] == 93.0
    assert entry.new["reading_seconds"] == pytest.approx(600, abs=30)
    assert entry.new["item_seconds"] == {"gm_thalamus": 30.0, "gm_plic": 15.0}


def test_wrong_password_does_not_count_the_time_twice(study) -> None:
    from weeke_pipeline.reading.models import Read

    user = study["users"]["reader2"]
    code = study["shared"].code
    reader = client_for(user)
    reader.get(f"/case/{code}/")
    post_json(reader, f"/api/case/{code}/read", {**complete_items(), "version": 1})
    r = post_json(reader, f"/api/case/{code}/read/sign",
                  {"password": "wrong", "version": 2, "timing": {"active_s": 4.0}})
    assert r.status_code == 403
    assert Read.objects.get(case__code=code, reader=user).active_seconds == 0


def test_reading_time_round_trips_to_every_export(study, tmp_path) -> None:
    """A timed, signed read -> read records -> reads long -> reads wide -> long again, and
    the files `weeke export` writes; every new column has a dictionary entry."""
    import pandas as pd

    from weeke_pipeline.analysis import agreement as ag
    from weeke_pipeline.analysis import tables as tb
    from weeke_pipeline.reading.exports import read_records
    from weeke_pipeline.reading.models import Read
    from weeke_pipeline.scoring import load_form

    user = study["users"]["reader2"]
    code = study["shared"].code
    reader = client_for(user)
    reader.get(f"/case/{code}/")
    read = Read.objects.get(case__code=code, reader=user)
    Read.objects.filter(pk=read.pk).update(opened_at=read.opened_at - timedelta(minutes=5),
                                           updated_at=read.updated_at - timedelta(minutes=5))
    post_json(reader, f"/api/case/{code}/read", {
        **complete_items(), "version": 1,
        "timing": {"active_s": 120.5, "items": {"gm_thalamus": 40.25}}})
    assert post_json(reader, f"/api/case/{code}/read/sign",
                     {"password": PASSWORD, "version": 2}).status_code == 200

    records = [r for r in read_records() if r["reading_code"] == code and r["status"] ==
               "signed"]
    assert records[0]["active_seconds"] == 120.5
    form = load_form("weeke-consensus-2025")
    long = tb.reads_long_from_records(records)
    row = long[long["item"] == "gm_thalamus"].iloc[0]
    assert row["active_seconds"] == 120.5 and row["item_seconds"] == 40.25
    assert long[long["item"] == "gm_plic"]["item_seconds"].iloc[0] == 0
    assert 290 <= row["reading_seconds"] <= 330
    wide = tb.reads_wide(long, form)
    assert wide["active_seconds"].iloc[0] == 120.5 and wide["gm_thalamus_seconds"].iloc[0] == 40.25
    back = tb.wide_to_long(wide, form)
    pd.testing.assert_frame_equal(back.reset_index(drop=True), long.reset_index(drop=True))
    for table, dictionary in ((long, tb.reads_long_dictionary(form)),
                              (wide, tb.reads_wide_dictionary(form))):
        assert set(table.columns) <= set(dictionary), set(table.columns) - set(dictionary)
        path = tb.write_table(table, tmp_path / "t.tsv", dictionary)
        again = pd.read_csv(path, sep="\t")
        assert again["active_seconds"].iloc[0] == 120.5
    cons = tb.consensus(long, form)
    assert not [c for c in cons.columns if "seconds" in c]  # per read, not per case
    times = ag.reading_time_table(long)
    assert times["active_s_median"].iloc[0] == 120.5 and times["n_reads"].iloc[0] == 1
    assert set(times.columns) == set(ag.reading_time_dictionary())


# ---------------------------------------------------------------- smaller images

def _world_value(img, xyz):  # type: ignore[no-untyped-def]
    import numpy as np

    ijk = np.linalg.inv(img.affine) @ np.array([*xyz, 1.0])
    return np.asarray(img.dataobj)[tuple(np.round(ijk[:3]).astype(int))]


def test_crop_to_brain_box_keeps_world_positions_on_any_grid() -> None:
    import nibabel as nib
    import numpy as np

    from weeke_pipeline.reading.image_prep import brain_box, crop_to_box

    rng = np.random.default_rng(1)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-50, -60, -40]
    mask = np.zeros((100, 120, 80), np.uint8)
    mask[30:70, 40:80, 20:60] = 1
    mask_img = nib.Nifti1Image(mask, affine)
    box = brain_box(mask_img, margin_mm=5)
    assert np.allclose(box, [[-20.5 - 5, -20.5 - 5, -20.5 - 5], [19.5 + 5, 19.5 + 5, 19.5 + 5]])
    img = nib.Nifti1Image(rng.random((100, 120, 80), dtype=np.float32), affine)
    cropped = crop_to_box(img, box)
    assert cropped.shape == (50, 50, 50)
    for xyz in ([0, 0, 0], [-24, 23, -10], [19, -25, 24]):
        assert _world_value(cropped, xyz) == _world_value(img, xyz)
    # a 2 mm image on another grid (oblique-free but flipped x) is cut to the same box
    aff2 = np.diag([-2.0, 2.0, 2.0, 1.0])
    aff2[:3, 3] = [49, -59, -39]
    img2 = nib.Nifti1Image(rng.random((50, 60, 40), dtype=np.float32), aff2)
    c2 = crop_to_box(img2, box)
    assert c2.shape[0] < 50 and _world_value(c2, [1, 1, 1]) == _world_value(img2, [1, 1, 1])
    assert brain_box(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), affine)) is None


def test_import_crops_to_the_pipeline_brain_mask(db, tmp_path) -> None:
    import nibabel as nib
    import numpy as np
    from django.conf import settings

    from weeke_pipeline.reading.importer import import_cases
    from weeke_pipeline.reading.models import Case

    anat = tmp_path / "out" / "derivatives" / "weeke" / "sub-CROP1" / "anat"
    anat.mkdir(parents=True)
    affine = np.eye(4)
    t2 = np.arange(80 * 90 * 70, dtype=np.float32).reshape(80, 90, 70)
    nib.save(nib.Nifti1Image(t2, affine), str(anat / "sub-CROP1_desc-preproc_T2w.nii.gz"))
    mask = np.zeros(t2.shape, np.uint8)
    mask[30:50, 30:60, 20:50] = 1
    nib.save(nib.Nifti1Image(mask, affine), str(anat / "sub-CROP1_space-T2w_desc-brain_mask"
                                                     ".nii.gz"))
    # the pipeline writes a JSON sidecar beside the mask: not an image to load
    (anat / "sub-CROP1_space-T2w_desc-brain_mask.json").write_text("{}")
    codes, _ = import_cases(tmp_path / "out", crop_margin_mm=4)
    case = Case.objects.get(code=codes[0])
    stored = nib.load(str(settings.WEEKE_DATA_DIR / case.images["T2w"]))
    assert stored.shape == (28, 38, 38)
    assert _world_value(stored, [40, 45, 35]) == t2[40, 45, 35]
