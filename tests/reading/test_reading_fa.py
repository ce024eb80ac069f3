"""FA as a fourth linked panel: imported with the other sequences, shown to readers only when
the study setting allows it (default: clinical sequences only), changes audited."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import IDENTIFIER, write_study
from live import cli_env, weeke


def add_fa(root: Path, subject: str) -> None:
    """FA where the pipeline writes it (T2w grid) and a DWI-grid copy that must lose (no
    session: the case's other images, from write_study, have none either)."""
    rng = np.random.default_rng(1)
    dwi = root / "derivatives" / "weeke" / f"sub-{subject}" / "dwi"
    dwi.mkdir(parents=True)
    for space, shape in (("T2w", (12, 14, 10)), ("dwi", (6, 7, 5))):
        img = nib.Nifti1Image(rng.random(shape, dtype=np.float32), np.eye(4))
        img.header["descrip"] = IDENTIFIER.encode()
        img.header["aux_file"] = b"MRN4471"
        nib.save(img, str(dwi / f"sub-{subject}_space-{space}_FA.nii.gz"))


@pytest.fixture()
def fa_study(db: Path, make_user, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Two readers, an adjudicator and a coordinator; one case with T1w/T2w/ADC/FA."""
    from weeke_pipeline.reading.importer import import_cases
    from weeke_pipeline.reading.models import Case

    users = {name: make_user(name, role) for name, role in (
        ("reader1", "reader"), ("reader2", "reader"), ("adj", "adjudicator"),
        ("coord", "coordinator"))}
    root = write_study(tmp_path / "study", ("FASUBJ01",))
    add_fa(root, "FASUBJ01")
    codes, _ = import_cases(root)
    return {"users": users, "case": Case.objects.get(code=codes[0])}


def client_for(user):  # type: ignore[no-untyped-def]
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def page_images(client, code: str) -> list[dict]:  # type: ignore[no-untyped-def]
    r = client.get(f"/case/{code}/")
    assert r.status_code == 200
    text = r.content.decode()
    config = json.loads(text.split('id="weeke-config" type="application/json">')[1]
                        .split("</script>")[0])
    canvases = text.count('<canvas id="gl-')
    assert canvases == len(config["images"])
    return config["images"]


def test_import_picks_up_fa_on_the_t2w_grid_deidentified(fa_study, reading_app) -> None:
    case = fa_study["case"]
    assert case.sequences == ["T1w", "T2w", "ADC", "FA"]
    assert case.images["FA"] == f"images/{case.code}/FA.nii.gz"
    img = nib.load(str(reading_app / case.images["FA"]))
    assert img.shape == (12, 14, 10)  # space-T2w beat space-dwi
    for key in ("descrip", "aux_file", "intent_name"):
        assert img.header[key].item() == b"", key


def test_subject_with_only_fa_is_not_imported(db, tmp_path: Path) -> None:
    from weeke_pipeline.reading.importer import import_cases

    root = write_study(tmp_path / "s", ("CLIN1",))
    add_fa(root, "ONLYFA")
    codes, warnings = import_cases(root)
    assert len(codes) == 1
    assert any("sub-ONLYFA" in w and "not imported" in w for w in warnings)


def test_default_hides_fa_from_readers(fa_study) -> None:
    from weeke_pipeline.reading import study

    u, code = fa_study["users"], fa_study["case"].code
    assert study.reader_sequences() == ["T1w", "T2w", "ADC"]
    reader = client_for(u["reader1"])
    # in the hanging protocol's viewer order
    assert [i["sequence"] for i in page_images(reader, code)] == ["T2w", "T1w", "ADC"]
    page = reader.get(f"/case/{code}/").content.decode()
    assert "gl-FA" not in page and "FA.nii.gz" not in page and "ADC, FA" not in page
    assert "<td>T1w, T2w, ADC</td>" in reader.get("/worklist/").content.decode()
    assert reader.get(f"/case/{code}/image/FA.nii.gz").status_code == 404
    assert reader.get(f"/case/{code}/image/T2w.nii.gz").status_code == 200
    # the coordinator (who also sees the subject link) may fetch every imported image
    assert client_for(u["coord"]).get(f"/case/{code}/image/FA.nii.gz").status_code == 200


def test_enabling_fa_shows_fourth_panel_and_serves_it(fa_study) -> None:
    from weeke_pipeline.reading import study
    from weeke_pipeline.reading.models import AuditEntry

    u, code = fa_study["users"], fa_study["case"].code
    study.set_reader_sequences(u["coord"], "T1w,T2w,ADC,FA", "protocol amendment 2: FA read")
    reader = client_for(u["reader1"])
    images = page_images(reader, code)
    assert [i["sequence"] for i in images] == ["T2w", "T1w", "ADC", "FA"]
    fa = images[3]
    assert fa["colormap"] == "inferno"
    assert all(i["colormap"] == "gray" for i in images[:3])
    from weeke_pipeline.reading.hanging import load_protocol

    fa_windows = load_protocol()["windows"]["FA"]  # FA is dimensionless: fixed 0-1 windows
    assert fa_windows[0]["range"] == [0, 1] and fa_windows[0]["mode"] == "absolute"
    r = reader.get(f"/case/{code}/image/FA.nii.gz")
    assert r.status_code == 200
    raw = gzip.decompress(b"".join(r.streaming_content))
    assert b"MRN4471" not in raw and IDENTIFIER.encode() not in raw
    assert "<td>T1w, T2w, ADC, FA</td>" in reader.get("/worklist/").content.decode()
    assert "sequences T1w, T2w, ADC, FA" in reader.get(f"/case/{code}/").content.decode()
    entry = AuditEntry.objects.filter(action="study.setting").last()
    assert entry.actor == "coord" and entry.reason == "protocol amendment 2: FA read"
    assert entry.old == {"reader_sequences": ["T1w", "T2w", "ADC"]}
    assert entry.new == {"reader_sequences": ["T1w", "T2w", "ADC", "FA"]}
    # switched off again: gone from the page and refused by the image endpoint
    study.set_reader_sequences(u["coord"], ["T1w", "T2w", "ADC"], "back to clinical")
    assert len(page_images(reader, code)) == 3
    assert reader.get(f"/case/{code}/image/FA.nii.gz").status_code == 404


def test_signed_read_records_the_sequences_shown(fa_study) -> None:
    from conftest import PASSWORD
    from helpers import complete_items

    from weeke_pipeline.reading import services, study
    from weeke_pipeline.reading.models import AuditEntry

    u, case = fa_study["users"], fa_study["case"]
    study.set_reader_sequences(u["coord"], "T1w,T2w,ADC,FA", "FA read")
    read = services.get_or_create_read(case, u["reader1"])
    services.save_draft(read, u["reader1"], complete_items(), read.version)
    services.sign(read, u["reader1"], PASSWORD, read.version)
    entry = AuditEntry.objects.filter(action="read.sign").last()
    assert entry.new["sequences_shown"] == ["T1w", "T2w", "ADC", "FA"]


def test_setting_changes_are_checked(fa_study) -> None:
    from weeke_pipeline.reading import services, study

    coord = fa_study["users"]["coord"]
    for value, reason, message in (
            ("T1w,T2w,ADC,FA", " ", "needs a reason"),
            ("T1w,SWI", "x", "unknown sequence.*SWI.*choose from T1w, T2w, ADC, FA"),
            (" , ", "x", "at least one sequence"),
            ("ADC,T2w,T1w", "x", "already")):  # same set in another order: unchanged
        with pytest.raises(services.ReadingError, match=message):
            study.set_reader_sequences(coord, value, reason)
    services.set_lock(coord, True, "final")
    with pytest.raises(services.Locked):
        study.set_reader_sequences(coord, "T1w,T2w,ADC,FA", "too late")
    assert study.reader_sequences() == ["T1w", "T2w", "ADC"]


def test_coordinator_page_changes_the_setting_readers_cannot(fa_study) -> None:
    from weeke_pipeline.reading import study

    u = fa_study["users"]
    body = {"sequence": ["T1w", "T2w", "ADC", "FA"], "reason": "amendment"}
    for name in ("reader1", "adj"):
        assert client_for(u[name]).post("/coordinator/settings", body).status_code == 403
    assert study.reader_sequences() == ["T1w", "T2w", "ADC"]
    coord = client_for(u["coord"])
    page = coord.get("/coordinator/").content.decode()
    assert 'value="FA"' in page and 'value="FA" checked' not in page
    r = coord.post("/coordinator/settings", body, follow=True)
    assert "Readers now see: T1w, T2w, ADC, FA." in r.content.decode()
    assert study.reader_sequences() == ["T1w", "T2w", "ADC", "FA"]
    r = coord.post("/coordinator/settings", {"sequence": ["T2w"], "reason": ""}, follow=True)
    assert "needs a reason" in r.content.decode()


def test_cli_show_and_set(tmp_path: Path) -> None:
    d = ["--data", str(tmp_path / "data")]
    out = weeke(["study", "show", *d],
                ["study", "set", "--reader-sequences", "T1w,T2w,ADC,FA", "--reason", "FA read",
                 *d],
                ["study", "show", *d], env=cli_env())
    assert "hanging-protocol\tneonatal-hie@1.0.0 (default)" in out.splitlines()
    assert "read-sessions\tall (default)" in out.splitlines()
    lines = [ln for ln in out.splitlines() if "reader-sequences" in ln]  # one setting of several
    assert lines[0] == "reader-sequences\tT1w,T2w,ADC (default)"
    assert lines[1] == "reader-sequences T1w,T2w,ADC,FA"
    assert lines[2] == "reader-sequences\tT1w,T2w,ADC,FA (default T1w,T2w,ADC)"
    assert lines[3].endswith("reader-sequences=T1w,T2w,ADC,FA by cli: FA read")
    with pytest.raises(RuntimeError, match="unknown sequence"):
        weeke(["study", "set", "--reader-sequences", "T1w,DTI", "--reason", "x", *d],
              env=cli_env())
