"""DICOM ingest under hostile and broken input (issue 15).

A seeded fuzz corpus (``tests/fuzz_dicom.py``: every case of the issue plus random single-element
header mutations, built from the shipped synthetic sample and the real Siemens Prisma mosaic DWI)
is discovered and checked here without conversion (fast), converted in part where a case needs
dcm2niix, and run through ``weeke inspect`` and ``weeke run`` beside a good subject (slow).
A hypothesis property test mutates one header element of a real Philips file at a time:
discovery and classification never raise.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from broken_dicom import SAMPLE, planted_identities
from fuzz_dicom import (
    BAD_T2W,
    PRISMA,
    TOKENS,
    Case,
    build_corpus,
    copy_series,
    csa_with,
    raw_element,
)

from weeke_pipeline import cli
from weeke_pipeline.ingest import deidentify as deid
from weeke_pipeline.ingest.classify import classify_series
from weeke_pipeline.ingest.convert import CONVERTED
from weeke_pipeline.ingest.discover import Source, discover, group_series, read_header
from weeke_pipeline.ingest.identity import patient_key
from weeke_pipeline.ingest.run import ingest_and_convert, inspect_dicom
from weeke_pipeline.ingest.validate import SeriesCheckError, check_series, series_label

LIMIT_MB = 4  # the size limit the corpus is built and read with


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Case]]:
    root = tmp_path_factory.mktemp("fuzz") / "export"
    return root, build_corpus(root, seed=15, size_limit=LIMIT_MB << 20)


@pytest.fixture(scope="module")
def inspected(corpus) -> dict:
    """inspect_dicom + the series checks on the corpus (no conversion); every report line."""
    root, _ = corpus
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    lg = logging.getLogger("weeke_pipeline")
    handler, old = Keep(level=logging.DEBUG), lg.level
    lg.addHandler(handler)
    lg.setLevel(logging.DEBUG)
    try:
        series, rows, skipped = inspect_dicom(root, max_file_mb=LIMIT_MB)
    finally:
        lg.removeHandler(handler)
        lg.setLevel(old)
    lines = [f"{s.source}: {s.reason}" for s in skipped]
    checked = {}
    for s, r in zip(series, rows, strict=True):
        if s.problem:
            lines.append(f"{series_label(s)}: {s.problem}")
        elif r.classification in CONVERTED:
            try:
                checked[series_label(s)] = check_series(s)
            except SeriesCheckError as exc:
                lines.append(str(exc))
    return {"series": series, "rows": rows, "skipped": skipped, "lines": lines,
            "records": records, "checked": checked}


def _named(lines: list[str], where: str, reason: str = "") -> list[str]:
    hits = [ln for ln in lines if ln.startswith(f"{where}:") or f" {where}" in ln
            or f"({where})" in ln]
    return [ln for ln in hits if reason.lower() in ln.lower()]


def _cases(corpus, item: int, expect: str | None = None) -> list[Case]:
    return [c for c in corpus[1] if c.item == item and (expect is None or c.expect == expect)]


# --------------------------------------------------------------------------- 1: isolation
def test_malformed_files_are_skipped_with_their_name(corpus, inspected) -> None:
    """Item 1: invalid VR, wrong value lengths, two-valued Rows / Transfer Syntax, a 3,000-deep
    sequence, a damaged zip member: each file skipped with a one-line reason naming it."""
    for case in _cases(corpus, 1, "file"):
        assert _named(inspected["lines"], case.where, case.reason), (case, inspected["lines"])
    for case in _cases(corpus, 1, "series") + _cases(corpus, 4):  # bad values of geometry
        assert _named(inspected["lines"], case.where, case.reason), case
    for line in inspected["lines"]:
        assert "\n" not in line and "Traceback" not in line


def test_random_header_mutations_never_stop_the_batch(corpus, inspected) -> None:
    """Item 1: each random single-element mutation is either harmless (the series passes its
    checks) or named; the other series are still found."""
    names = {series_label(s) for s in inspected["series"]}
    for case in [c for c in corpus[1] if c.expect == "any"]:
        assert _named(inspected["lines"], case.where) or case.where in inspected["checked"], (
            case, [ln for ln in inspected["lines"] if case.where in ln])
    assert {"deid_leftovers", "no_patient_id_a", "zipped_series.zip!T2"} <= names


def test_messages_never_quote_header_values(corpus, inspected) -> None:
    # the UID-based file name holds the study date inside a UID: kept on purpose (findable)
    uid_name = next(c for c in corpus[1] if c.name == "uid_file_name").where
    text = "\n".join(inspected["lines"] + [r.getMessage() for r in inspected["records"]])
    text = text.replace(uid_name, "")
    for secret in [*planted_identities(), *TOKENS.values()]:
        assert secret not in text, secret


# --------------------------------------------------------------------------- 2: merging
def test_series_sharing_uids_are_refused_not_merged(inspected) -> None:
    """Item 2: two infants under one Study/Series UID, and a T1w and a T2w under one Series UID:
    every part refused, named, never one series."""
    lines = inspected["lines"]
    for where in ("shared_uids/infant1", "shared_uids/infant2"):
        assert _named(lines, where, "files of 2 different patients"), lines
    for where in ("t1_t2_one_uid/T1", "t1_t2_one_uid/T2"):
        assert _named(lines, where, "2 different acquisitions"), lines
    parts = [s for s in inspected["series"] if series_label(s).startswith("shared_uids")]
    assert sorted(len(s.instances) for s in parts) == [12, 12]


def test_infants_without_patient_id_never_share_a_pseudonym(inspected) -> None:
    by_label = {series_label(s): s for s in inspected["series"]}
    a, b = by_label["no_patient_id_a"].first, by_label["no_patient_id_b"].first
    pseudo = deid.Pseudonymizer(key=b"project")
    assert pseudo(patient_key(a)) != pseudo(patient_key(b))
    assert pseudo(patient_key(a)) == pseudo(patient_key(by_label["no_patient_id_a"].instances[-1]
                                                       .header))
    with pytest.raises(ValueError, match="no Patient ID, Patient's Name or Birth Date"):
        patient_key(by_label["no_identity"].first)


def test_one_patient_id_with_two_birth_dates_is_refused(tmp_path: Path) -> None:
    copy_series(BAD_T2W, tmp_path / "in" / "a", "bd1", study="1.2.3.1")
    copy_series(BAD_T2W, tmp_path / "in" / "b", "bd2", study="1.2.3.2",
                change=lambda n, ds: setattr(ds, "PatientBirthDate", "20250101"))
    res = ingest_and_convert(tmp_path / "in", tmp_path / "raw", key="k", work_dir=tmp_path / "w")
    assert [s.status for s in res.series] == ["failed", "failed"]
    assert all("different birth dates" in s.message for s in res.series)
    assert not list((tmp_path / "raw").rglob("*.nii.gz"))


# --------------------------------------------------------------------------- 3: leftovers
def test_deidentification_leaves_no_planted_text(corpus, tmp_path: Path) -> None:
    """Item 3: file meta PrivateInformation, elements no dictionary knows ((0018,9999) LO,
    (0020,F00F) UN), CodeMeaning in code sequences, a free-text Sequence Name and text in an
    allow-listed private element are gone from the de-identified copies."""
    root, _ = corpus
    sources = [Source(f, None, root) for f in sorted((root / "deid_leftovers").glob("*.dcm"))]
    out = deid.write_deidentified(sources, tmp_path, pseudonym="P01", key=b"k")
    for f in out:
        data = f.read_bytes()
        for name in ("meta_private", "unknown_public", "unknown_un", "code_meaning",
                     "anatomic_meaning", "sequence_name", "private_text"):
            assert TOKENS[name].encode() not in data, (f, name)
    ds = pydicom.dcmread(out[0])
    assert ds.ProcedureCodeSequence[0].CodeValue == "RPID1"  # codes kept, their text emptied
    assert "SequenceName" not in ds and 0x00189999 not in ds and 0x0020F00F not in ds
    assert 0x00020102 not in ds.file_meta and ds.file_meta.TransferSyntaxUID
    good = pydicom.dcmread(next(BAD_T2W.glob("*.dcm")))
    deid.deidentify_dataset(good, pseudonym="P01", key=b"k")
    assert good.SequenceName == "*tse2d1_16"  # a scanner's sequence name stays


@pytest.mark.shared_data
def test_csa_header_is_rebuilt_from_its_allowed_fields(shared_data: Path) -> None:
    from nibabel.nicom import csareader

    from weeke_pipeline.ingest.csa import CSA_KEEP, rebuild_csa

    ds = pydicom.dcmread(next(PRISMA.glob("*.dcm")), stop_before_pixels=True)
    planted = csa_with(ds[0x00291010].value, b"ImaCoilString", TOKENS["csa"].encode())
    rebuilt = rebuild_csa(planted)
    assert TOKENS["csa"].encode() not in rebuilt and b"MRDiffusion" not in rebuilt
    old, new = csareader.read(planted)["tags"], csareader.read(rebuilt)["tags"]
    assert set(new) <= CSA_KEEP and {"B_value", "NumberOfImagesInMosaic",
                                     "DiffusionGradientDirection", "MosaicRefAcqTimes"} <= set(new)
    for name in new:
        assert new[name]["items"] == old[name]["items"], name
    assert rebuild_csa(b"not a CSA header") is None


# --------------------------------------------------------------------------- 4: geometry
def test_bad_geometry_is_refused_before_conversion(corpus, inspected) -> None:
    """Item 4: one file without orientation, missing/NaN positions, zero/negative/NaN/infinite/
    missing Pixel Spacing, irregular slice spacing, a one-slice T2w: refused with the reason."""
    for case in _cases(corpus, 4):
        hits = _named(inspected["lines"], case.where, case.reason)
        assert hits, (case, [ln for ln in inspected["lines"] if case.where in ln])
    irregular = _named(inspected["lines"], "irregular_spacing")[0]
    assert "1.6" in irregular and "4.4" in irregular
    assert "IM00018.dcm has no Image Orientation" in _named(inspected["lines"],
                                                            "one_file_without_iop")[0]


# --------------------------------------------------------------------------- 5: diffusion
def test_dwi_with_lost_directions_gives_no_fake_scanner_adc(corpus, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    """Item 5: dcm2niix splits the direction-less volumes off as a "derived" image: it is not
    labelled as scanner ADC, the volume count change is reported, and the ADC is fitted here."""
    root, _ = corpus
    shutil.copytree(root / "dwi_partial", tmp_path / "in" / "dwi_partial")
    caplog.set_level(logging.WARNING)
    res = ingest_and_convert(tmp_path / "in", tmp_path / "raw", key="k", work_dir=tmp_path / "w")
    [dwi] = [s for s in res.series if s.classification == "dwi"]
    assert dwi.status == "converted"
    assert "headers describe 7 volume(s)" in dwi.message and "wrote 5 into the DWI" in dwi.message
    assert "not an ADC map" in caplog.text
    assert not list((tmp_path / "raw").rglob("*desc-scanner_ADC*"))
    assert len(list((tmp_path / "raw").rglob("*desc-logfit_ADC.nii.gz"))) == 1


def test_only_a_one_volume_adc_image_counts_as_scanner_adc(tmp_path: Path) -> None:
    """Item 5: what dcm2niix splits off a DWI becomes ``desc-scanner_ADC`` only when it is one
    volume whose Image Type says ADC (Philips); derived trace signal never does."""
    import nibabel as nib

    from weeke_pipeline.ingest.convert import _is_scanner_adc

    def image(name: str, volumes: int, image_type: list[str]) -> Path:
        shape = (4, 4, 3) if volumes == 1 else (4, 4, 3, volumes)
        nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)),
                 tmp_path / f"{name}.nii.gz")
        (tmp_path / f"{name}.json").write_text(json.dumps({"ImageType": image_type}))
        return tmp_path / f"{name}.nii.gz"

    assert _is_scanner_adc(image("adc", 1, ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]))
    assert not _is_scanner_adc(image("trace", 1, ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]))
    assert not _is_scanner_adc(image("fourd", 7, ["DERIVED", "PRIMARY", "DIFFUSION", "ADC"]))


def test_dwi_without_directions_skips_only_the_tensor_fit(tmp_path: Path) -> None:
    """Item 5: b-values without gradient directions: ADC only, with a QC note (not a crash)."""
    import nibabel as nib

    from weeke_pipeline.imaging import dti

    rng = np.random.default_rng(15)
    data = np.full((12, 12, 5, 4), 100.0) * rng.uniform(0.9, 1.1, (12, 12, 5, 4))
    data[..., 1:] *= np.exp(-1000 * 1e-3)
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.eye(4)), tmp_path / "d.nii.gz")
    (tmp_path / "d.bval").write_text("0 1000 1000 1000\n")
    (tmp_path / "d.bvec").write_text("0 0 0 0\n0 0 0 0\n0 0 0 0\n")
    res = dti.run_dti(dti.load_dwi(tmp_path / "d.nii.gz"))
    assert res.mode == "adc" and res.maps is None
    assert "without gradient directions" in res.notes[0] and "tensor fit skipped" in res.notes[0]
    (tmp_path / "d.bvec").write_text("0 1 0 0\n0 0 0 0\n0 0 0 1\n")  # only some missing
    with pytest.raises(dti.DWIError, match="have no gradient direction"):
        dti.load_dwi(tmp_path / "d.nii.gz")


# --------------------------------------------------------------------------- 6: resources
def test_oversize_and_non_dicom_content_is_refused_early(corpus, inspected) -> None:
    """Item 6: a file over the size limit (sparse, never read), a zip bomb member (by its
    declared size, never inflated) and random bytes (by the missing DICM magic)."""
    lines = inspected["lines"]
    assert _named(lines, "huge_export.bin", "larger than the size limit")
    assert _named(lines, "bomb.zip!zeros.dcm", "larger than the size limit")
    assert _named(lines, "raw_junk.dat", "not a DICOM file")
    assert _named(lines, "zipped_series.zip!T2") == []  # a good zip still reads
    assert any(series_label(s) == "zipped_series.zip!T2" for s in inspected["series"])


def test_zip_members_are_streamed_not_read_whole(tmp_path: Path) -> None:
    ds = pydicom.dcmread(next(BAD_T2W.glob("*.dcm")))
    ds.decompress()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.Rows = ds.Columns = 2048
    ds.NumberOfFrames = 2
    ds.PixelData = bytes(2048 * 2048 * 2 * 2)  # 16 MiB
    blob = io.BytesIO()
    ds.save_as(blob)
    with zipfile.ZipFile(tmp_path / "big.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("IM1.dcm", blob.getvalue())
    del blob, ds
    src = Source(tmp_path / "big.zip", "IM1.dcm", tmp_path)
    tracemalloc.start()
    try:
        header, _ = read_header(src, 64 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert header.Rows == 2048
    assert peak < 4 << 20, f"peak {peak} bytes while reading a 16 MiB member's header"


# --------------------------------------------------------------------------- 7: messages
def test_messages_name_the_problem_at_the_right_level(corpus, inspected) -> None:
    """Item 7: a cut inside the header is a truncation warning (not "not an image object" at
    info); cuts of 12 and 2 bytes are found; missing Rows and a memory bomb say so; a nested zip
    is reported; file names are escaped, not over-redacted."""
    lines, records = inspected["lines"], inspected["records"]
    for case in _cases(corpus, 7, "file"):
        assert _named(lines, case.where, case.reason), (case, lines)
    cut = next(c for c in corpus[1] if c.name == "cut_in_header")
    [rec] = [r for r in records if r.getMessage().startswith(cut.where)]
    assert rec.levelno == logging.WARNING and "inside the header" in rec.getMessage()
    uid_name = next(c for c in corpus[1] if c.name == "uid_file_name").where
    assert _named(lines, uid_name) and "[removed]" not in uid_name
    text = "\n".join(lines)
    assert "\x1b" not in text and "\udcff" not in text


def test_unreadable_folder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder that cannot be listed (permissions; simulated, the tests run as root) is named,
    not dropped silently; the rest is read."""
    shutil.copytree(BAD_T2W, tmp_path / "in" / "ok")
    (tmp_path / "in" / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    images, skipped = discover(tmp_path / "in")
    assert len(images) == 52
    [s] = skipped
    assert s.source == "locked" and "folder cannot be read (Permission denied)" in s.reason


def test_weeke_inspect_on_the_corpus(corpus, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """``weeke inspect`` names every bad file and refused series, writes the table (non-UTF-8
    and control-character names escaped) and exits 1; no traceback."""
    root, cases = corpus
    rc = cli.main(["inspect", str(root), "--out", str(tmp_path / "series.tsv"),
                   "--max-file-mb", str(LIMIT_MB)])
    out = capsys.readouterr()
    assert rc == 1 and "Traceback" not in out.out + out.err
    for case in cases:
        if case.expect == "file" or (case.expect == "series" and case.item == 2):
            assert case.where in out.out, case
    (tmp_path / "series.tsv").read_text(encoding="utf-8")
    assert "\x1b" not in out.out


# --------------------------------------------------------------------------- property test
@pytest.mark.shared_data
def test_single_element_mutations_never_raise(shared_data: Path, tmp_path: Path) -> None:
    """hypothesis: any one header element of a real Philips DWI file deleted, emptied, given
    random bytes, a wrong VR code or seven values: discovery and classification never raise,
    and a file that is not kept is named."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    src = shared_data / "dicom" / "philips_ingenia_dwi" / "IM_0001.dcm"
    ref = pydicom.dcmread(src)
    tags = [e.tag for e in ref if e.tag != 0x7FE00010] + [
        e.tag for e in ref.file_meta if e.tag not in (0x00020000, 0x00020010)]
    vrs = ["US", "UL", "DS", "IS", "UI", "SQ", "OB", "LO", "CS", "ZZ", "FD", "AT", "UN", "PN"]

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(tag=st.sampled_from(tags),
           kind=st.sampled_from(["delete", "bytes", "vr", "multi", "empty"]),
           value=st.binary(max_size=40), vr=st.sampled_from(vrs))
    def mutate(tag, kind, value, vr) -> None:
        folder = tmp_path / "case"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        ds = pydicom.dcmread(src)
        holder = ds.file_meta if tag.group == 2 else ds
        if kind == "delete":
            del holder[tag]
        else:
            old = holder[tag].VR
            payload = {"bytes": value, "empty": b"", "multi": b"1\\2\\3\\4\\5\\6\\7 "}.get(
                kind, value)
            raw_element(holder, tag, vr if kind == "vr" else old, payload)
        try:
            ds.save_as(folder / "IM_0001.dcm")
        except Exception:
            return  # pydicom cannot write this mutation: nothing to read
        images, skipped = discover(folder)
        for s in group_series(images):
            classify_series(s)
        assert images or [s.source for s in skipped] == ["IM_0001.dcm"]

    mutate()


def _leaks(root: Path, secrets: list[str], texts: dict[str, str], allowed: str) -> list[str]:
    """Like :func:`broken_dicom.leaks`, with two differences: ``allowed`` (the UID-based file
    name, kept findable on purpose although it holds the study date inside a UID) is taken out
    first, and the 3-4 letter name parts (``ELI``: found by chance in megabytes of voxels) are
    searched for in NIfTI files up to their voxel offset and in DICOM files up to their pixel
    data only; every other secret everywhere (file names, decompressed contents)."""
    import gzip

    short = {s for s in secrets if len(s) < 5}
    hits = [f"{where}: {s}" for where, t in texts.items() for s in secrets
            if s in t.replace(allowed, "")]
    for f in root.rglob("*"):
        rel = str(f.relative_to(root)).replace(allowed, "")
        hits += [f"name {f}: {s}" for s in secrets if s in rel]
        if not f.is_file() or f.name == "key":
            continue
        data = f.read_bytes()
        if data[:2] == b"\x1f\x8b":
            with contextlib.suppress(OSError, EOFError):
                data = gzip.decompress(data)
        data = data.replace(allowed.encode(), b"")
        head = data
        if f.name.endswith((".nii", ".nii.gz")):
            head = data[:int(np.frombuffer(data[108:112], "<f4")[0])]
        elif f.suffix == ".dcm" and data.rfind(b"\xe0\x7f\x10\x00") > 0:
            head = data[:data.rfind(b"\xe0\x7f\x10\x00")]
        elif f.suffix in (".png", ".pklz", ".npy", ".npz"):
            head = b""
        hits += [f"{f}: {s}" for s in secrets
                 if s.encode() in (head if s in short else data)]
    return hits


# --------------------------------------------------------------------------- weeke run
@pytest.mark.slow
def test_weeke_run_on_the_corpus_beside_a_good_subject(tmp_path_factory: pytest.TempPathFactory
                                                       ) -> None:
    """The good subject (sub-02: T2w, and a DWI with b-values but no directions) completes; each
    bad file and series is in the end table with its name; no traceback; no planted token
    anywhere under OUTPUT (work folder included); nothing written outside OUTPUT; exit 1."""
    top = tmp_path_factory.mktemp("runfuzz")
    exp = top / "export"
    cases = build_corpus(exp, seed=15, n_random=4, size_limit=LIMIT_MB << 20)
    good = exp / "good_subject"
    shutil.copytree(SAMPLE / "sub-02" / "dicom" / "03_T2_TSE_AX", good / "T2")

    def no_directions(n: int, ds: pydicom.Dataset) -> None:
        if "DiffusionGradientOrientation" in ds:
            del ds.DiffusionGradientOrientation
        ds.DiffusionDirectionality = "ISOTROPIC" if float(ds.DiffusionBValue) > 50 else "NONE"
    copy_series(SAMPLE / "sub-02" / "dicom" / "05_DWI_6DIR_B1000", good / "DWI", "gooddwi",
                change=no_directions, keep=lambda n: True)
    lines = (SAMPLE / "participants.tsv").read_text().splitlines()
    (top / "participants.tsv").write_text("\n".join([lines[0], lines[2]]) + "\n")
    (top / "key").write_text("fuzz-key")
    before = {p: p.stat().st_mtime_ns for p in top.rglob("*") if not p.is_symlink()}
    out = top / "out"
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler, rootlog = Keep(level=logging.DEBUG), logging.getLogger()
    old = rootlog.level
    rootlog.addHandler(handler)
    rootlog.setLevel(logging.INFO)
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            rc = cli.main(["run", str(exp), str(out), "--participants",
                           str(top / "participants.tsv"), "--key-file", str(top / "key"),
                           "--participant-label", "02", "--sloppy", "--no-progress",
                           "--max-file-mb", str(LIMIT_MB)])
    finally:
        rootlog.removeHandler(handler)
        rootlog.setLevel(old)
    text = {"stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "logs": "\n".join(records)}
    assert rc == 1, text["stdout"]
    assert "Traceback" not in text["stderr"] + text["logs"]
    table = text["stdout"]
    row = next(ln for ln in table.splitlines() if ln.startswith("sub-02_ses-01"))
    assert row.split()[1] in ("pass", "warn"), row
    summary = json.loads((out / "derivatives/weeke/run_summary.json").read_text())
    report = summary["ingest_failures"] + summary["skipped_files"]
    for case in cases:  # stray non-DICOM files are not problems (inspect lists them)
        if case.expect in ("file", "series") and case.reason != "not a DICOM file":
            assert any(case.where in ln and case.reason.lower() in ln.lower() for ln in report), (
                case, report)
    dti_qc = list((out / "derivatives/weeke/sub-02").rglob("*_dti_qc.json"))
    assert dti_qc, sorted(p.name for p in (out / "derivatives/weeke/sub-02").rglob("*"))
    assert any("without gradient directions" in n and "tensor fit skipped" in n
               for n in json.loads(dti_qc[0].read_text())["notes"])
    assert "good_subject/DWI: DWI with b-values but no gradient directions" in text["logs"]
    secrets = [*planted_identities(), *TOKENS.values()]
    uid_name = next(c.where for c in cases if c.name == "uid_file_name")  # kept on purpose
    assert _leaks(out, secrets, text, allowed=uid_name) == []
    after = {p for p in top.rglob("*") if not p.is_symlink()}
    assert {p for p in after - set(before) if out not in p.parents and p != out} == set()
    assert all(p.stat().st_mtime_ns == t for p, t in before.items() if p.exists())
