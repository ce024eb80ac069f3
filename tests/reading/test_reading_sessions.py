"""Cases are session-aware: one case per subject AND session, each with its own images only,
from the pipeline's derivatives whether the whole output folder or only the derivatives are
imported; the study setting ``read_sessions`` limits the import to the sessions the study reads;
the session label never reaches a reader's page.

The output folder is laid out as ``weeke run`` writes it (raw BIDS under ``rawdata/``, the
pipeline's derivatives under ``derivatives/weeke/``, the names of
``weeke_pipeline/interfaces/bids.py``); every image holds one constant value that says which
file it was, so the test can tell which file each case got.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import PASSWORD

#: subject -> its sessions; A was scanned twice (the trial reads 1month), B once
SESSIONS = {"SUBJA": ("1month", "3month"), "SUBJB": ("1month",)}
RAW = {"T1w": "anat/{s}_T1w", "T2w": "anat/{s}_T2w", "ADC": "dwi/{s}_desc-scanner_ADC"}
DERIV = {"T1w": "anat/{s}_space-T2w_desc-preproc_T1w", "T2w": "anat/{s}_desc-preproc_T2w",
         "ADC": "anat/{s}_space-T2w_ADC", "FA": "dwi/{s}_space-T2w_FA"}
#: derivative files that must never be a case's image (other spaces/descriptions)
DERIV_DECOYS = {"FA": "dwi/{s}_space-dwi_FA", "T2w": "anat/{s}_space-MNI_desc-preproc_T2w"}


def write_output(out: Path) -> dict[float, tuple[str, str, str, str]]:
    """A pipeline output folder; returns image value -> (dataset, subject, session, file)."""
    tags: dict[float, tuple[str, str, str, str]] = {}
    n = 0
    for dataset, names in (("rawdata", RAW), ("derivatives/weeke", {**DERIV, **{
            f"decoy-{k}": v for k, v in DERIV_DECOYS.items()}})):
        root = out / dataset
        root.mkdir(parents=True, exist_ok=True)
        kind = "derivative" if dataset.startswith("derivatives") else "raw"
        (root / "dataset_description.json").write_text(json.dumps(
            {"Name": "test", "BIDSVersion": "1.9.0", "DatasetType": kind}))
        (root / "participants.tsv").write_text(
            "participant_id\tpma_at_scan_weeks\tpma_at_scan_days\tday_of_life_at_scan\n"
            "sub-SUBJA\t44\t2\t29\nsub-SUBJB\t45\t0\t30\n")
        for sub, sessions in SESSIONS.items():
            for ses in sessions:
                stem = f"sub-{sub}_ses-{ses}"
                for seq, pattern in names.items():
                    n += 1
                    path = root / f"sub-{sub}" / f"ses-{ses}" / (
                        pattern.format(s=stem) + ".nii.gz")
                    path.parent.mkdir(parents=True, exist_ok=True)
                    nib.save(nib.Nifti1Image(np.full((6, 7, 5), n, np.float32), np.eye(4)),
                             str(path))
                    tags[float(n)] = (kind, sub, ses, seq)
    # Nipype's work folder inside the output holds copies under BIDS names: never imported
    for seq, pattern in RAW.items():
        n += 1
        path = out / "work" / "wf" / "node" / (pattern.format(s="sub-SUBJA_ses-3month")
                                               .split("/")[1] + ".nii.gz")
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(np.full((6, 7, 5), n, np.float32), np.eye(4)), str(path))
        tags[float(n)] = ("work", "SUBJA", "3month", seq)
    # ages per session for the subject scanned twice (the pipeline's sessions table + ages)
    for dataset in ("rawdata",):
        (out / dataset / "sub-SUBJA" / "sub-SUBJA_sessions.tsv").write_text(
            "session_id\tage_days\tpma_weeks\tday_of_life\n"
            "ses-1month\t29\t44+2\t29\nses-3month\t90\t53+0\t90\n")
    return tags


def imported(root: Path) -> tuple[dict[tuple[str, str], dict[str, tuple]], list[str]]:
    """Import ``root`` inside a transaction rolled back afterwards: (subject, session) ->
    sequence -> the tag of the file each case image was copied from; and the warnings."""
    from django.conf import settings
    from django.db import transaction

    from weeke_pipeline.reading.importer import import_cases
    from weeke_pipeline.reading.models import Case

    class Undo(Exception):
        pass

    result: dict[tuple[str, str], dict[str, tuple]] = {}
    try:
        with transaction.atomic():
            _, warnings = import_cases(root)
            for case in Case.objects.all():
                result[(case.subject, case.session)] = {
                    seq: float(np.asarray(nib.load(
                        str(Path(settings.WEEKE_DATA_DIR) / rel)).dataobj).flat[0])
                    for seq, rel in case.images.items()} | {
                    "ages": (case.pma_label, case.day_of_life)}
            raise Undo
    except Undo:
        pass
    return result, warnings


@pytest.fixture()
def output(db: Path, tmp_path: Path) -> tuple[Path, dict[float, tuple[str, str, str, str]]]:
    out = tmp_path / "out"
    return out, write_output(out)


def test_two_sessions_are_two_cases_each_with_its_own_images(output) -> None:
    out, tags = output
    cases, warnings = imported(out)
    assert sorted(cases) == [("SUBJA", "1month"), ("SUBJA", "3month"), ("SUBJB", "1month")]
    for (sub, ses), case in cases.items():
        images = {k: v for k, v in case.items() if k != "ages"}
        assert sorted(images) == ["ADC", "FA", "T1w", "T2w"]
        for seq, value in images.items():
            # the pipeline's own derivative of THIS session (not raw, not another session,
            # not another space)
            assert tags[value] == ("derivative", sub, ses, seq), (sub, ses, seq, tags[value])
    # ages at scan: per session from the sessions table; B (one session) from participants
    assert cases[("SUBJA", "1month")]["ages"] == ("44+2", 29)
    assert cases[("SUBJA", "3month")]["ages"] == ("53+0", 90)
    assert cases[("SUBJB", "1month")]["ages"] == ("45+0", 30)
    assert warnings == []


def test_whole_output_or_derivatives_only_give_the_same_cases(output) -> None:
    out, _ = output
    whole, _ = imported(out)
    derivatives, _ = imported(out / "derivatives" / "weeke")
    assert whole.keys() == derivatives.keys()
    for key in whole:
        assert {k: v for k, v in whole[key].items() if k != "ages"} == {
            k: v for k, v in derivatives[key].items() if k != "ages"}, key
    # raw data alone (no derivatives yet): the same cases, each from its own raw session
    raw, _ = imported(out / "rawdata")
    assert raw.keys() == whole.keys()


def test_raw_only_cases_take_their_session_s_raw_images(output) -> None:
    out, tags = output
    cases, _ = imported(out / "rawdata")
    for (sub, ses), images in cases.items():
        images.pop("ages")
        assert sorted(images) == ["ADC", "T1w", "T2w"]
        assert all(tags[v] == ("raw", sub, ses, seq) for seq, v in images.items())


def test_the_study_reads_only_its_configured_session(output) -> None:
    from weeke_pipeline.reading import study
    from weeke_pipeline.reading.services import ReadingError

    out, tags = output
    study.set_setting(None, study.READ_SESSIONS, "ses-1month", "the trial reads the 1-month MRI")
    assert study.read_sessions() == ["1month"]
    cases, warnings = imported(out)
    assert sorted(cases) == [("SUBJA", "1month"), ("SUBJB", "1month")]
    assert cases[("SUBJA", "1month")]["ages"] == ("44+2", 29)
    assert all(tags[v][2] == "1month" for c in cases.values() for k, v in c.items()
               if k != "ages")
    assert any("ses-3month: 1 subject(s) not imported" in w for w in warnings), warnings
    with pytest.raises(ReadingError, match="letters and digits"):
        study.set_setting(None, study.READ_SESSIONS, "1 month", "typo")
    # a session nobody has: nothing imported, and it says why
    study.set_setting(None, study.READ_SESSIONS, "6month", "amendment")
    cases, warnings = imported(out)
    assert cases == {}
    assert "sub-SUBJA: no images of session(s) 6month" in warnings


def test_one_age_for_two_sessions_is_not_guessed(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_output(out)
    (out / "rawdata" / "sub-SUBJA" / "sub-SUBJA_sessions.tsv").unlink()
    cases, warnings = imported(out)
    assert cases[("SUBJA", "1month")]["ages"] == ("n/a", None)
    assert cases[("SUBJA", "3month")]["ages"] == ("n/a", None)
    assert cases[("SUBJB", "1month")]["ages"] == ("45+0", 30)
    assert sum("gives one age for the subject's 2 sessions" in w for w in warnings) == 2


def test_session_label_never_reaches_a_reader(output, make_user) -> None:
    from django.test import Client

    from weeke_pipeline.reading.importer import import_cases
    from weeke_pipeline.reading.models import Case

    out, _ = output
    make_user("r1", "reader")
    make_user("r2", "reader")
    coord = make_user("coord", "coordinator")
    import_cases(out)
    reader = Client()
    assert reader.login(username="r1", password=PASSWORD)
    pages = [reader.get("/worklist/")]
    for case in Case.objects.filter(assignments__reader__username="r1"):
        pages += [reader.get(f"/case/{case.code}/"), reader.get(f"/api/case/{case.code}/read")]
    assert len(pages) == 7  # the worklist, and page and API of the three cases
    for page in pages:
        assert page.status_code == 200
        text = page.content.decode()
        for secret in ("1month", "3month", "ses-", "SUBJ"):
            assert secret not in text, (page.request["PATH_INFO"], secret)
    coordinator = Client()
    coordinator.force_login(coord)
    text = coordinator.get("/coordinator/").content.decode()
    assert "3month" in text and "1month" in text  # the coordinator sees the link


def test_a_session_without_derivatives_takes_its_raw_images(output) -> None:
    """A session the pipeline failed on: its case comes from the raw data (whole), never from
    Nipype's copies in work/ nor from another session's derivatives."""
    import shutil

    out, tags = output
    shutil.rmtree(out / "derivatives" / "weeke" / "sub-SUBJA" / "ses-3month")
    cases, _ = imported(out)
    images = {k: v for k, v in cases[("SUBJA", "3month")].items() if k != "ages"}
    assert sorted(images) == ["ADC", "T1w", "T2w"]
    assert all(tags[v] == ("raw", "SUBJA", "3month", seq) for seq, v in images.items())
    other = {k: v for k, v in cases[("SUBJA", "1month")].items() if k != "ages"}
    assert all(tags[v] == ("derivative", "SUBJA", "1month", seq) for seq, v in other.items())


def test_a_case_from_before_sessions_is_not_imported_again(output) -> None:
    """A database upgraded from session-less cases: the old case's session is unknown, so the
    same subject's sessions are not imported next to it (the same scan twice, two codes)."""
    from weeke_pipeline.reading.models import Case

    out, _ = output
    Case.objects.create(code="WK-AAAAAA", subject="SUBJA", session="")
    cases, warnings = imported(out)
    assert sorted(k for k in cases if k[1]) == [("SUBJB", "1month")]
    assert sum("case without a session label" in w for w in warnings) == 2
