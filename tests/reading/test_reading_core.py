"""Reading workflow rules without HTTP: audit chain, lock, assignment order, import, signing."""

from __future__ import annotations

import nibabel as nib
import pytest
from conftest import IDENTIFIER, PASSWORD
from helpers import complete_items


def test_import_gives_random_codes_deidentified_images_and_ages(study, reading_app) -> None:
    from weeke_pipeline.reading.models import Case

    cases = list(Case.objects.order_by("subject"))
    assert [c.subject for c in cases] == ["TESTID1234", "TESTID5678"]
    for case in cases:
        assert case.subject not in case.code and case.code.startswith("WK-")
        assert case.sequences == ["T1w", "T2w", "ADC"]
        for rel in case.images.values():
            assert case.subject not in rel
            hdr = nib.load(str(reading_app / rel)).header
            for key in ("descrip", "aux_file", "intent_name"):
                assert hdr[key].item() == b"", key
    assert (cases[0].pma_weeks, cases[0].pma_days, cases[0].day_of_life) == (44, 1, 28)
    assert cases[1].pma_label == "45+2"


def test_import_bad_participants_table_names_file_and_line(db, tmp_path) -> None:
    from conftest import write_study

    from weeke_pipeline.reading.importer import ImportProblem, import_cases

    root = write_study(tmp_path / "s", ("X1",))
    (root / "participants.tsv").write_text("participant_id\tpma_weeks\nsub-X1\tforty\n")
    with pytest.raises(ImportProblem, match=r"participants.tsv line 2.*'forty'"):
        import_cases(root)


def test_import_reads_synth_participants_columns_and_truth_t2w(db, tmp_path) -> None:
    import numpy as np

    from weeke_pipeline.reading.importer import import_cases
    from weeke_pipeline.reading.models import Case

    truth = tmp_path / "s" / "sub-01" / "truth"
    truth.mkdir(parents=True)
    img = nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4))
    nib.save(img, str(truth / "sub-01_T2w.nii.gz"))
    nib.save(img, str(truth / "sub-01_dseg.nii.gz"))  # not a reading sequence
    (tmp_path / "s" / "participants.tsv").write_text(
        "participant_id\tsex\tday_of_life_at_scan\tpma_at_scan_weeks\tpma_at_scan_days\n"
        "sub-01\tF\t30\t44\t5\n")
    codes, warnings = import_cases(tmp_path / "s")
    case = Case.objects.get(code=codes[0])
    assert (case.pma_label, case.day_of_life, case.sequences) == ("44+5", 30, ["T2w"])
    assert warnings == []


def test_each_reader_has_own_stored_shuffled_order(db, make_user, tmp_path) -> None:
    import random

    from conftest import write_study

    from weeke_pipeline.reading.importer import import_cases
    from weeke_pipeline.reading.models import ReaderAssignment

    a, b = make_user("ra", "reader"), make_user("rb", "reader")
    import_cases(write_study(tmp_path / "s", tuple(f"S{i:02d}" for i in range(8))))
    orders = {}
    for reader in (a, b):
        rows = list(ReaderAssignment.objects.filter(reader=reader).order_by("position"))
        assert len(rows) == 8 and len({r.seed for r in rows}) == 1
        codes = sorted(r.case.code for r in rows)
        random.Random(f"{rows[0].seed}:0").shuffle(codes)  # reproducible from the stored seed
        assert codes == [r.case.code for r in rows]
        orders[reader.username] = codes
    assert orders["ra"] != orders["rb"]


def test_draft_sign_revise_and_audit_chain(study) -> None:
    from weeke_pipeline.reading import audit, services
    from weeke_pipeline.reading.models import AuditEntry, ReadRevision

    reader = study["users"]["reader2"]
    read = services.get_or_create_read(study["shared"], reader)
    out = services.save_draft(read, reader, {"items": {"gm_thalamus": {"extent": 2}}}, 1)
    assert out["pending"] == ["gm_thalamus"]  # laterality still to come: kept, not scored
    with pytest.raises(services.ReadingError, match="laterality"):
        services.sign(read, reader, PASSWORD, read.version)  # incomplete: refused
    services.save_draft(read, reader, {"items": {"gm_plic": {"extent": 0}}}, read.version)
    with pytest.raises(services.ReadingError, match="16 item"):
        services.sign(read, reader, PASSWORD, read.version)
    payload = complete_items(gm_thalamus={"extent": 2, "laterality": 2})
    out = services.save_draft(read, reader, payload, read.version)
    assert out["score"]["total"] == 4 and out["score"]["subscores"]["grey_matter"] == 4
    with pytest.raises(services.Forbidden):
        services.sign(read, reader, "wrong password", read.version)
    services.sign(read, reader, PASSWORD, read.version)
    assert read.status == "signed" and read.signed_at is not None
    with pytest.raises(services.Conflict):
        services.save_draft(read, reader, payload, read.version)
    with pytest.raises(services.ReadingError, match="reason"):
        services.revise(read, reader, payload, "  ", PASSWORD, read.version)
    new = complete_items(gm_thalamus={"extent": 1, "laterality": 2})
    services.revise(read, reader, new, "misread the extent", PASSWORD, read.version)
    rev = ReadRevision.objects.get(read=read)
    assert rev.old_items == payload and rev.new_items == new and rev.reason == "misread the extent"
    actions = list(AuditEntry.objects.values_list("action", flat=True))
    for action in ("case.import", "read.create", "read.update", "read.sign", "read.revise"):
        assert action in actions
    assert audit.verify().ok


def test_audit_is_append_only_and_tampering_is_detected(study) -> None:
    from django.db import connection

    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.models import AuditEntry

    entry = AuditEntry.objects.order_by("id")[1]
    entry.reason = "edited"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.filter(pk=entry.pk).update(reason="x")
    with pytest.raises(PermissionError):
        AuditEntry.objects.all().delete()
    assert audit.verify().ok
    table = AuditEntry._meta.db_table
    with connection.cursor() as cur:  # behind Django's back, as a tamperer would
        cur.execute(f"UPDATE {table} SET actor = %s WHERE id = %s", ["mallory", entry.pk])
    result = audit.verify()
    assert not result.ok and result.entry_id == entry.pk and "altered" in result.problem
    with connection.cursor() as cur:
        cur.execute(f"DELETE FROM {table} WHERE id = %s", [entry.pk])
    result = audit.verify()
    assert not result.ok and "link" in result.problem


def test_lock_blocks_every_edit_and_unlock_needs_reason(study) -> None:
    from weeke_pipeline.reading import services
    from weeke_pipeline.reading.models import AuditEntry, DatabaseLock

    coord, reader = study["users"]["coord"], study["users"]["reader2"]
    read = services.get_or_create_read(study["shared"], reader)
    services.set_lock(coord, True, "primary analysis")
    with pytest.raises(services.Locked):
        services.save_draft(read, reader, complete_items(), read.version)
    with pytest.raises(services.Locked):
        services.get_or_create_read(study["other"], study["users"]["reader3"])
    with pytest.raises(services.ReadingError, match="reason"):
        services.set_lock(coord, False, "")
    services.set_lock(coord, False, "query from monitor on case")
    assert not DatabaseLock.is_locked()
    last = AuditEntry.objects.order_by("-id").first()
    assert last.action == "database.unlock" and last.reason == "query from monitor on case"
    services.save_draft(read, reader, complete_items(), read.version)


def test_stale_version_is_refused(study) -> None:
    from weeke_pipeline.reading import services

    reader = study["users"]["reader2"]
    read = services.get_or_create_read(study["shared"], reader)
    services.save_draft(read, reader, complete_items(), 1)  # tab 1
    with pytest.raises(services.Conflict, match="another tab"):
        services.save_draft(read, reader, {"items": {}}, 1)  # tab 2, opened before the save


def test_differing_signed_reads_go_to_adjudication(study) -> None:
    from weeke_pipeline.reading import services

    case = study["shared"]
    for name, lat in (("reader1", 1), ("reader2", 2)):
        user = study["users"][name]
        read = services.get_or_create_read(case, user)
        services.save_draft(read, user, complete_items(
            gm_thalamus={"extent": 2, "laterality": lat}), read.version)
        assert not services.needs_adjudication(case)
        services.sign(read, user, PASSWORD, read.version)
    assert services.needs_adjudication(case)
    adj = services.get_or_create_adjudication(case, study["users"]["adj"])
    assert "gm_thalamus" not in adj.items["items"] and "gm_plic" in adj.items["items"]
    services.save_draft(adj, study["users"]["adj"], complete_items(
        gm_thalamus={"extent": 2, "laterality": 2}), adj.version)
    services.sign(adj, study["users"]["adj"], PASSWORD, adj.version)
    assert adj.status == "signed"


def test_identifier_never_stored_outside_case_subject(study) -> None:
    from django.core import serializers

    from weeke_pipeline.reading import models

    for model in (models.AuditEntry, models.ReaderAssignment, models.Read):
        assert IDENTIFIER not in serializers.serialize("json", model.objects.all())
