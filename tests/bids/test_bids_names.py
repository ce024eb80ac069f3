"""The one BIDS naming module: names to entities and back, and the site tables' columns."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weeke_pipeline.bids import names
from weeke_pipeline.bids.tables import TableError, read_table

LABEL = st.text(alphabet="abcXYZ0129", min_size=1, max_size=6)
SUFFIX = st.sampled_from(["T1w", "T2w", "dwi", "ADC", "FA", "dseg", "mask", "metrics"])


@given(sub=LABEL, ses=st.none() | LABEL, acq=st.none() | LABEL, run=st.none() | LABEL,
       space=st.none() | LABEL, desc=st.none() | LABEL, suffix=SUFFIX,
       ext=st.sampled_from([".nii.gz", ".json", ".tsv", ".bval"]),
       datatype=st.none() | st.sampled_from(["anat", "dwi"]))
def test_build_then_parse_gives_the_entities_back(sub, ses, acq, run, space, desc, suffix, ext,
                                                  datatype):
    given_ = {"sub": sub, "ses": ses, "acq": acq, "run": run, "space": space, "desc": desc,
              "suffix": suffix, "extension": ext, "datatype": datatype}
    entities = {k: v for k, v in given_.items() if v is not None}
    path = names.build(entities)
    assert names.parse(path) == entities
    assert names.build(names.parse(path)) == path


@pytest.mark.parametrize("path", [
    "sub-01/ses-01/anat/sub-01_ses-01_T2w.nii.gz",
    "sub-01/ses-01/anat/sub-01_ses-01_acq-swi_T2starw.nii.gz",
    "sub-01/ses-01/dwi/sub-01_ses-01_desc-scanner_ADC.nii.gz",
    "sub-01/ses-1month/anat/sub-01_ses-1month_space-T2w_desc-atlas_dseg.tsv",
    "sub-01/ses-01/sub-01_ses-01_scans.tsv",
    "sub-01/sub-01_sessions.tsv",
])
def test_the_names_the_pipeline_writes_are_canonical(path):
    assert names.build(names.parse(path)) == path


def test_entities_are_written_in_the_order_of_the_specification():
    """acq before run before space before desc, whatever order they are given in."""
    e = {"desc": "preproc", "space": "T2w", "run": "2", "acq": "fast", "ses": "01", "sub": "7",
         "suffix": "T2w", "extension": ".nii.gz"}
    assert names.name(e) == "sub-7_ses-01_acq-fast_run-2_space-T2w_desc-preproc_T2w.nii.gz"


def test_the_subject_comes_from_a_parent_folder_when_the_name_has_none():
    e = names.parse(Path("/study/sub-P12/ses-02/anat/scan_T1w.nii"))
    assert (e["sub"], e["ses"], e["suffix"], e["extension"], e["datatype"]) == (
        "P12", "02", "T1w", ".nii", "anat")
    assert names.parse("sub-03/sub-09_T2w.nii.gz")["sub"] == "09"  # the name wins
    assert "suffix" not in names.parse("sub-01/T1w.nii.gz")  # no entity: not a BIDS name


def test_labels():
    assert names.label(" sub-P 001 ") == "P001"
    assert names.session_label("ses-1month") == "1month"
    assert names.session_label("1 month") is None


def test_session_folders_lists_sub_ses_folders_only(tmp_path):
    for d in ("sub-01/ses-01", "sub-01/ses-02", "sub-02/ses-x", "sub-03/anat", "sub-0_1/ses-1"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "sub-02" / "ses-file").write_text("")
    assert [(s, e) for s, e, _ in names.session_folders(tmp_path)] == [
        ("01", "01"), ("01", "02"), ("02", "x")]


def test_select_picks_by_entities(tmp_path):
    files = [tmp_path / "dwi" / n for n in (
        "sub-1_ses-1_desc-logfit_ADC.nii.gz", "sub-1_ses-1_desc-scanner_ADC.nii.gz",
        "sub-1_ses-1_dwi.nii.gz", "sub-1_ses-1_dwi.bval")]
    assert [p.name for p in names.select(files, suffix="ADC", desc="scanner")] == [
        "sub-1_ses-1_desc-scanner_ADC.nii.gz"]
    assert [p.name for p in names.select(files, suffix="dwi", extension=".nii.gz")] == [
        "sub-1_ses-1_dwi.nii.gz"]


def test_table_columns_and_aliases(tmp_path):
    t = tmp_path / "participants.tsv"
    t.write_text(" patient_id \tparticipant_id\tpma_at_scan_weeks\nPID1\tsub-01\t40\n")
    table = read_table(t)
    assert (table.patient_column, table.pseudonym_column) == ("patient_id", "participant_id")
    assert table.by_participant()["01"]["pma_at_scan_weeks"] == "40"
    t.write_text("participant_id\tpseudonym\nPID1\tA01\n")
    table = read_table(t)  # a pseudonym column makes participant_id a Patient ID alias
    assert (table.patient_column, table.pseudonym_column) == ("participant_id", "pseudonym")
    t.write_text("source_id\tparticipant_id\nPID1\t01\n")
    assert read_table(t).patient_column == "source_id"
    t.write_bytes(b"participant_id\n\xff\xfe\n")
    with pytest.raises(TableError, match=r"participants\.tsv: cannot read the table"):
        read_table(t)
