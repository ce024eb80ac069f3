"""A seeded fuzz corpus of broken and hostile DICOM exports (issue 15), built at test time.

``build_corpus(root, seed)`` writes one folder (or file) per case under ``root`` from copies of
the shipped synthetic sample (patient sub-01 of ``sample_data``, fake identities in every header)
and, when ``../shared/data/dicom`` is present, of the real Siemens Prisma mosaic DWI. Each
:class:`Case` says which issue item it covers, what the ingest must do with it and where (the
file or series label the report must name, relative to the input folder):

* ``file``: the file is skipped, named, with ``reason`` in its message;
* ``series``: the series is refused, named, with ``reason`` in its message;
* ``convert``: the series converts (de-identification leftovers, two infants without Patient ID,
  diffusion notes) and nothing planted survives;
* ``any``: random header mutations: converted, or the file/series is named; never a crash.

Every case plants identifying tokens (:data:`TOKENS` and the sample's identities) that must not
reach any output. The corpus is small (~450 files, a few seconds to build) and deterministic for
a seed: UIDs come from ``generate_uid(entropy_srcs=...)``, mutations from ``random.Random(seed)``.
Raw byte edits (invalid VR codes, wrong value lengths, nested sequences 3,000 deep) are made on
the encoded files, since pydicom refuses to write them.
"""

from __future__ import annotations

import io
import os
import random
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from weeke_pipeline.resources import data_dir

SAMPLE = data_dir("sample_data")
BAD_T2W = SAMPLE / "sub-01" / "dicom" / "03_T2_TSE_AX"  # 52 files, 118x100, RLE
BAD_T1W = SAMPLE / "sub-01" / "dicom" / "02_T1_IR_GRE_AX"
BAD_DWI = SAMPLE / "sub-01" / "dicom" / "05_DWI_6DIR_B1000"  # 35 positions x 7 volumes
SHARED_DICOM = Path(os.environ.get("WEEKE_SHARED_DATA", Path(__file__).resolve().parents[1].parent
                                  / "shared" / "data")) / "dicom"
PRISMA = SHARED_DICOM / "siemens_prisma_dwi_mosaic"
SLAB = range(14, 26)  # the 12 central T2w/T1w slices: a short series is enough for most cases

#: tokens planted where the de-identification used to miss them (issue 15 item 3)
TOKENS = {
    "meta_private": "PLANTMETAINFO7",
    "unknown_public": "PLANTUNKNOWN18",
    "unknown_un": "PLANTUNKNOWNUN",
    "code_meaning": "PLANTCODEMEANING",
    "anatomic_meaning": "PLANTANATOMYTXT",
    "sequence_name": "PLANTSEQNAME",
    "csa": "PLANTCSANAME",
    "private_text": "PLANTPRIVTEXT",
    "no_id_name_a": "PLANTBABYALPHA",
    "no_id_name_b": "PLANTBABYBRAVO",
}


@dataclass
class Case:
    name: str
    item: int
    expect: str  # file | series | convert | any
    where: str  # the label the report names (relative to the input folder)
    reason: str = ""  # a phrase the message must contain


# --------------------------------------------------------------------------- byte helpers
def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _files(src: Path) -> list[Path]:
    return sorted(src.glob("*.dcm"))


def copy_series(src: Path, dest: Path, tag: str, *, change: Callable[[int, Dataset], None]
                | None = None, keep: Callable[[int], bool] | None = None,
                study: str | None = None, series: str | None = None) -> list[Path]:
    """A copy of a sample series as a new series (deterministic UIDs from ``tag``); files
    ``SLAB`` only unless ``keep`` selects others."""
    dest.mkdir(parents=True, exist_ok=True)
    series = series or _uid(tag, "series")
    keep = keep or (lambda n: n in SLAB)
    out = []
    for n, f in enumerate(_files(src)):
        if keep is not None and not keep(n):
            continue
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = series
        if study:
            ds.StudyInstanceUID = study
        ds.SOPInstanceUID = _uid(tag, n)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if change is not None:
            change(n, ds)
        ds.save_as(dest / f.name)
        out.append(dest / f.name)
    return out


def raw_element(ds: Dataset, tag: int, vr: str, value: bytes) -> None:
    """Put an element with any VR code and any value bytes (written as given)."""
    t = Tag(tag)
    # into the element dictionary directly: Dataset.__setitem__ parses private elements
    ds._dict[t] = RawDataElement(t, vr, len(value), value, 0, False, True)


def patch_meta(path: Path, tag: int, vr: bytes, value: bytes) -> None:
    """Replace a short-VR file meta element in the encoded file (group length updated)."""
    data = bytearray(path.read_bytes())
    key = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    at = data.index(key, 132)
    old = 8 + struct.unpack("<H", data[at + 6:at + 8])[0]
    new = key + vr + struct.pack("<H", len(value)) + value
    data[at:at + old] = new
    glen = struct.unpack("<I", data[140:144])[0] + len(new) - old  # (0002,0000) UL value
    data[140:144] = struct.pack("<I", glen)
    path.write_bytes(bytes(data))


def csa_with(blob: bytes, field: bytes, value: bytes) -> bytes:
    """A Siemens CSA2 header with the first item of ``field`` replaced by ``value`` (item
    lengths and padding re-encoded, so the header stays readable)."""
    n_tags = struct.unpack_from("<I", blob, 8)[0]
    out, pos = bytearray(blob[:16]), 16
    for _ in range(n_tags):
        name = blob[pos:pos + 64].split(b"\x00", 1)[0]
        n_items = struct.unpack_from("<i", blob, pos + 76)[0]
        out += blob[pos:pos + 84]
        pos += 84
        for k in range(n_items):
            length = struct.unpack_from("<i", blob, pos + 4)[0]
            item = blob[pos + 16:pos + 16 + length]
            if name == field and k == 0:
                item = value + b"\x00"
            out += struct.pack("<4i", len(item), len(item), 77, len(item)) + item
            out += b"\x00" * ((-len(item)) % 4)
            pos += 16 + (length + 3) // 4 * 4
    assert field in out and value in out
    return bytes(out)


def nested_sequence(depth: int) -> bytes:
    """(0040,A730) Content Sequence nested ``depth`` deep, undefined lengths (explicit VR LE)."""
    opening = b"\x40\x00\x30\xa7SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    closing = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    return opening * depth + closing * depth


def splice_before_pixels(path: Path, blob: bytes) -> None:
    data = path.read_bytes()
    at = data.rfind(b"\xe0\x7f\x10\x00")
    path.write_bytes(data[:at] + blob + data[at:])


def uncompressed(ds: Dataset) -> Dataset:
    ds.decompress()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def zip_of(path: Path, members: dict[str, bytes], *, level: int = zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", compression=level) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


# --------------------------------------------------------------------------- the cases
def _item1(exp: Path, cases: list[Case]) -> None:
    """Malformed files that used to abort the whole batch."""
    def one_file(name: str, reason: str, edit: Callable[[Dataset], None] | None = None,
                 raw: Callable[[Path], None] | None = None, n: int = 6) -> None:
        files = copy_series(BAD_T2W, exp / name, name)
        f = files[n]
        if edit is not None:
            ds = pydicom.dcmread(f)
            edit(ds)
            ds.save_as(f)
        if raw is not None:
            raw(f)
        cases.append(Case(name, 1, "file", f"{name}/{f.name}", reason))

    one_file("deep_sequence", "nested",
             raw=lambda f: splice_before_pixels(f, nested_sequence(3000)))
    one_file("invalid_vr", "", edit=lambda ds: raw_element(ds, 0x00280030, "ZZ", b"1.2\\1.2 "))
    one_file("two_transfer_syntaxes", "Transfer Syntax", raw=lambda f: patch_meta(
        f, 0x00020010, b"UI", b"1.2.840.10008.1.2.1\\1.2.840.10008.1.2.5\x00"))
    one_file("two_rows", "Rows", edit=lambda ds: raw_element(ds, 0x00280010, "US",
                                                             struct.pack("<HH", 118, 118)))
    one_file("rows_three_bytes", "Rows", edit=lambda ds: raw_element(ds, 0x00280010, "US",
                                                                     b"\x76\x00\x00\x00"[:3]))
    one_file("text_in_numeric", "Image Position", edit=lambda ds: raw_element(
        ds, 0x00200032, "DS", b"left\\back\\up "))
    one_file("iop_five_values", "Image Orientation", edit=lambda ds: raw_element(
        ds, 0x00200037, "DS", b"1\\0\\0\\0\\1 "))
    one_file("sop_class_garbage", "", edit=lambda ds: raw_element(ds, 0x00080016, "UI",
                                                                  b"\xff\xfe\x00\x01"))
    name = "image_type_sequence"  # Image Type as a sequence of junk: harmless or named
    files = copy_series(BAD_T2W, exp / name, name)
    ds = pydicom.dcmread(files[6])
    raw_element(ds, 0x00080008, "SQ", b"\xfe\xff\x00\xe0\x04\x00\x00\x00abcd")
    ds.save_as(files[6])
    cases.append(Case(name, 1, "any", name, ""))
    # a zip file whose member data is damaged (zipfile: BadZipFile on reading it)
    good = _files(BAD_T2W)[0].read_bytes()
    bad_zip = exp / "damaged.zip"
    zip_of(bad_zip, {"IM00001.dcm": good}, level=zipfile.ZIP_STORED)
    data = bytearray(bad_zip.read_bytes())
    data[40:60] = b"\x00" * 20  # inside the member: CRC mismatch
    bad_zip.write_bytes(bytes(data))
    cases.append(Case("damaged_zip", 1, "file", "damaged.zip!IM00001.dcm", ""))


def _item2(exp: Path, cases: list[Case]) -> None:
    """Series and patients that must not merge silently."""
    study, series = _uid("shared", "study"), _uid("shared", "series")

    def other_infant(n: int, ds: Dataset) -> None:
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = "OTHER^INFANT", "HN9990001", "20260801"
    copy_series(BAD_T2W, exp / "shared_uids" / "infant1", "shared1", study=study, series=series)
    copy_series(BAD_T2W, exp / "shared_uids" / "infant2", "shared2", study=study, series=series,
                change=other_infant)
    cases.append(Case("shared_uids", 2, "series", "shared_uids/infant2", "different patients"))

    study2, series2 = _uid("t1t2", "study"), _uid("t1t2", "series")
    copy_series(BAD_T2W, exp / "t1_t2_one_uid" / "T2", "t1t2a", study=study2, series=series2)
    copy_series(BAD_T1W, exp / "t1_t2_one_uid" / "T1", "t1t2b", study=study2, series=series2)
    cases.append(Case("t1_t2_one_uid", 2, "series", "t1_t2_one_uid/T1", "different acquisitions"))

    for who, name, birth in (("a", TOKENS["no_id_name_a"], "20260701"),
                             ("b", TOKENS["no_id_name_b"], "20260705")):
        def anonymous(n: int, ds: Dataset, name: str = name, birth: str = birth) -> None:
            ds.PatientID, ds.PatientName, ds.PatientBirthDate = "", f"{name}^BABY", birth
        copy_series(BAD_T2W, exp / f"no_patient_id_{who}", f"noid{who}",
                    study=_uid("noid", who), change=anonymous, keep=lambda n: 10 <= n < 16)
        cases.append(Case(f"no_patient_id_{who}", 2, "convert", f"no_patient_id_{who}"))

    def nobody(n: int, ds: Dataset) -> None:
        ds.PatientID, ds.PatientName = "", ""
        del ds.PatientBirthDate
    copy_series(BAD_T2W, exp / "no_identity", "noident", study=_uid("noident"), change=nobody,
                keep=lambda n: 10 <= n < 16)
    cases.append(Case("no_identity", 2, "series", "no_identity", "Patient ID"))


def _item3(exp: Path, cases: list[Case]) -> None:
    """Identifying text where the de-identification used to miss it."""
    def plant(n: int, ds: Dataset) -> None:
        ds.file_meta.PrivateInformationCreatorUID = "1.2.3.4"
        raw_element(ds.file_meta, 0x00020102, "OB", TOKENS["meta_private"].encode())
        raw_element(ds, 0x00189999, "LO", TOKENS["unknown_public"].encode())
        raw_element(ds, 0x0020F00F, "UN", TOKENS["unknown_un"].encode())
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator = "RPID1", "RADLEX"
        code.CodeMeaning = TOKENS["code_meaning"]
        ds.ProcedureCodeSequence = Sequence([code])
        region = Dataset()
        region.CodeValue, region.CodingSchemeDesignator = "T-A0100", "SRT"
        region.CodeMeaning = TOKENS["anatomic_meaning"]
        ds.AnatomicRegionSequence = Sequence([region])
        ds.SequenceName = TOKENS["sequence_name"]
        ds.add_new(0x20010010, "LO", "Philips Imaging DD 001")  # an allow-listed private block
        ds.add_new(0x20011004, "CS", TOKENS["private_text"])
    copy_series(BAD_T2W, exp / "deid_leftovers", "deid", change=plant, keep=lambda n: n % 4 == 0)
    cases.append(Case("deid_leftovers", 3, "convert", "deid_leftovers"))
    if PRISMA.is_dir():  # a name planted inside the Siemens CSA image header
        dest = exp / "csa_planted"
        dest.mkdir()
        for f in sorted(PRISMA.glob("*.dcm")):
            ds = pydicom.dcmread(f)
            ds.PatientName, ds.PatientID = "TANAKA^ELI", "HN4017448"
            ds[0x00291010].value = csa_with(ds[0x00291010].value, b"ImaCoilString",
                                            TOKENS["csa"].encode())
            ds.save_as(dest / f.name)
        cases.append(Case("csa_planted", 3, "convert", "csa_planted"))


def _item4(exp: Path, cases: list[Case]) -> None:
    """Geometry that must be refused before conversion, with the reason."""
    def series_case(name: str, reason: str, change: Callable[[int, Dataset], None],
                    keep: Callable[[int], bool] | None = None) -> None:
        copy_series(BAD_T2W, exp / name, name, change=change, keep=keep)
        cases.append(Case(name, 4, "series", name, reason))

    def at(k: int, edit: Callable[[Dataset], None]) -> Callable[[int, Dataset], None]:
        return lambda n, ds: edit(ds) if n == k else None

    series_case("one_file_without_iop", "no Image Orientation",
                at(17, lambda ds: delattr(ds, "ImageOrientationPatient")))
    series_case("missing_position", "no Image Position",
                at(17, lambda ds: delattr(ds, "ImagePositionPatient")))
    series_case("nan_position", "Image Position", at(17, lambda ds: raw_element(
        ds, 0x00200032, "DS", b"-59.4\\nan\\-21.0 ")))
    for label, value in (("zero", b"0\\0 "), ("negative", b"-1.2\\1.2 "), ("nan", b"nan\\nan "),
                         ("inf", b"inf\\1.2 ")):
        series_case(f"pixel_spacing_{label}", "Pixel Spacing",
                    lambda n, ds, v=value: raw_element(ds, 0x00280030, "DS", v))
    series_case("pixel_spacing_missing", "Pixel Spacing",
                lambda n, ds: delattr(ds, "PixelSpacing"))

    def irregular(n: int, ds: Dataset) -> None:  # steps of 4.4 and 1.6 mm (mean 3 mm)
        z = -55.0 + 6.0 * (n // 2) + (4.4 if n % 2 else 0.0)
        ds.ImagePositionPatient = [-59.4, -70.2, round(z, 2)]
        ds.SliceLocation = round(z, 2)
    series_case("irregular_spacing", "irregular slice spacing", irregular)
    copy_series(BAD_T2W, exp / "one_slice", "one_slice", keep=lambda n: n == 25)
    cases.append(Case("one_slice", 4, "series", "one_slice/IM00026.dcm", "only one slice"))


def _item5(exp: Path, cases: list[Case]) -> None:
    """Diffusion: directions missing, b-values without directions."""
    # the sample DWI stores 7 volumes per position (b0 + 6 directions): directions 3 and 4 lose
    # their gradient direction (dcm2niix then splits them off as a "derived" image)
    def lost_directions(n: int, ds: Dataset) -> None:
        if n % 7 in (3, 4) and "DiffusionGradientOrientation" in ds:
            del ds.DiffusionGradientOrientation
    copy_series(BAD_DWI, exp / "dwi_partial", "dwipart", change=lost_directions,
                keep=lambda n: n // 7 in SLAB)
    cases.append(Case("dwi_partial", 5, "convert", "dwi_partial", "describe 7 volume(s)"))

    def no_directions(n: int, ds: Dataset) -> None:
        if "DiffusionGradientOrientation" in ds:
            del ds.DiffusionGradientOrientation
        ds.DiffusionDirectionality = "ISOTROPIC" if float(ds.DiffusionBValue) > 50 else "NONE"
    copy_series(BAD_DWI, exp / "dwi_no_directions", "dwinodir", change=no_directions,
                keep=lambda n: n // 7 in SLAB)
    cases.append(Case("dwi_no_directions", 5, "convert", "dwi_no_directions"))


def _item6(exp: Path, cases: list[Case], limit: int) -> None:
    """Resources: oversize and non-DICOM content refused early; zip members streamed."""
    big = exp / "huge_export.bin"
    with open(big, "wb") as fh:  # a non-DICOM file over the size limit (sparse: no disk used)
        fh.truncate(limit + 1)
    cases.append(Case("oversize_file", 6, "file", "huge_export.bin", "larger than"))
    junk = exp / "raw_junk.dat"
    junk.write_bytes(random.Random(6).randbytes(limit // 2))
    cases.append(Case("non_dicom_junk", 6, "file", "raw_junk.dat", "not a DICOM file"))
    zip_of(exp / "bomb.zip", {"zeros.dcm": b"\x00" * (limit * 4)})
    cases.append(Case("zip_bomb", 6, "file", "bomb.zip!zeros.dcm", "larger than"))
    zip_of(exp / "zipped_series.zip", {f"T2/{f.name}": f.read_bytes()
                                       for f in copy_series(BAD_T2W, exp / ".tmp_zip", "zip",
                                                            keep=lambda n: 10 <= n < 14)})
    for f in sorted((exp / ".tmp_zip").iterdir()):
        f.unlink()
    (exp / ".tmp_zip").rmdir()
    cases.append(Case("zipped_series", 6, "convert", "zipped_series.zip"))


def _item7(exp: Path, cases: list[Case]) -> None:
    """Messages: truncation, missing elements, names that must reach the terminal safely."""
    name = "truncation"
    files = copy_series(BAD_T2W, exp / name, name, change=lambda n, ds: uncompressed(ds),
                        keep=lambda n: n < 8)
    data = files[2].read_bytes()
    files[2].write_bytes(data[:400])  # cut inside the header
    cases.append(Case("cut_in_header", 7, "file", f"{name}/{files[2].name}", "truncated"))
    for k, cut in ((4, 12), (5, 2)):  # pixel data short by a few bytes
        data = files[k].read_bytes()
        files[k].write_bytes(data[:-cut])
        cases.append(Case(f"cut_{cut}_bytes", 7, "file", f"{name}/{files[k].name}", "truncated"))
    cases.append(Case("truncation_series", 7, "series", name, "missing slices"))

    def no_rows(n: int, ds: Dataset) -> None:
        del ds.Rows
    files = copy_series(BAD_T2W, exp / "missing_rows", "norows", keep=lambda n: n == 3)
    ds = pydicom.dcmread(files[0])
    no_rows(0, ds)
    ds.save_as(files[0])
    cases.append(Case("missing_rows", 7, "file", f"missing_rows/{files[0].name}", "Rows"))

    files = copy_series(BAD_T2W, exp / "memory_bomb", "bomb", keep=lambda n: n == 3)
    ds = pydicom.dcmread(files[0])
    ds.Rows, ds.Columns, ds.NumberOfFrames = 65535, 65535, 999999
    ds.save_as(files[0])
    cases.append(Case("memory_bomb", 7, "file", f"memory_bomb/{files[0].name}", "pixel data"))

    files = copy_series(BAD_T2W, exp / "corrupt_rle", "rle", keep=lambda n: 5 <= n < 10)
    for f in files:  # every RLE header says 15 segments: undecodable
        data = bytearray(f.read_bytes())
        at = data.rfind(b"\xfe\xff\x00\xe0")  # the (only) fragment item
        data[at + 8:at + 12] = struct.pack("<I", 15)
        f.write_bytes(bytes(data))
    cases.append(Case("corrupt_rle", 7, "series", "corrupt_rle", "dcm2niix"))

    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("IM1.dcm", _files(BAD_T2W)[0].read_bytes())
    zip_of(exp / "outer.zip", {"inner.zip": inner.getvalue()})
    cases.append(Case("nested_zip", 7, "file", "outer.zip!inner.zip", "zip file inside"))

    odd = exp / "odd_names"
    odd.mkdir()
    broken = _files(BAD_T2W)[1].read_bytes()[:300]
    (odd / "IM\x1b[31mRED.dcm").write_bytes(broken)
    cases.append(Case("control_characters", 7, "file", "odd_names/IM\\x1b[31mRED.dcm",
                      "truncated"))
    os.close(os.open(os.fsencode(odd) + b"/IM\xff\xfe.dcm", os.O_CREAT | os.O_WRONLY, 0o644))
    with open(os.fsencode(odd) + b"/IM\xff\xfe.dcm", "wb") as fh:
        fh.write(broken)
    cases.append(Case("non_utf8_name", 7, "file", "odd_names/IM\\xff\\xfe.dcm", "truncated"))
    ref = pydicom.dcmread(_files(BAD_T2W)[0], stop_before_pixels=True)
    uid_name = f"1.3.12.2.1107.5.2.43.{ref.StudyDate}{ref.StudyTime}.1.dcm"
    (odd / uid_name).write_bytes(broken)
    cases.append(Case("uid_file_name", 7, "file", f"odd_names/{uid_name}", "truncated"))
    (odd / "loop").symlink_to(odd, target_is_directory=True)  # a symlink loop: walked once


def _random_mutations(exp: Path, cases: list[Case], rng: random.Random, n: int) -> None:
    """``n`` 3-file series, each with one random change to one header element of its middle
    file (the change, its tag and VR drawn from ``rng``)."""
    ref = pydicom.dcmread(_files(BAD_T2W)[20])
    tags = [e.tag for e in ref if e.tag != 0x7FE00010] + [
        e.tag for e in ref.file_meta if e.tag not in (0x00020000, 0x00020010)]
    vrs = ["US", "DS", "IS", "UI", "SQ", "OB", "LO", "CS", "ZZ", "FD", "AT", "UN"]
    for k in range(n):
        name = f"random_{k:02d}"
        tag = rng.choice(tags)
        kind = rng.choice(["delete", "bytes", "vr", "multi", "empty", "text"])
        value = rng.randbytes(rng.randint(0, 24))
        vr = rng.choice(vrs)

        def mutate(i: int, ds: Dataset, tag=tag, kind=kind, value=value, vr=vr) -> None:
            if i != 21:
                return
            holder = ds.file_meta if Tag(tag).group == 2 else ds
            if kind == "delete":
                del holder[tag]
            elif kind == "bytes":
                raw_element(holder, tag, holder[tag].VR, value)
            elif kind == "vr":
                raw_element(holder, tag, vr, value)
            elif kind == "multi":
                raw_element(holder, tag, holder[tag].VR, b"1\\2\\3\\4\\5\\6\\7 ")
            elif kind == "empty":
                raw_element(holder, tag, holder[tag].VR, b"")
            else:
                raw_element(holder, tag, holder[tag].VR, b"nan\\-inf\\abc ")
        copy_series(BAD_T2W, exp / name, name, change=mutate, keep=lambda i: 20 <= i < 23)
        cases.append(Case(name, 1, "any", name, f"{kind} {Tag(tag)} {vr}"))


def build_corpus(root: Path, seed: int = 15, *, n_random: int = 12,
                 size_limit: int = 4 << 20) -> list[Case]:
    """Write the corpus under ``root`` (an export folder); return its cases.

    ``size_limit``: the per-object byte limit the ingest is run with (the oversize cases are
    just above it)."""
    root.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []
    _item1(root, cases)
    _item2(root, cases)
    _item3(root, cases)
    _item4(root, cases)
    _item5(root, cases)
    _item6(root, cases, size_limit)
    _item7(root, cases)
    _random_mutations(root, cases, random.Random(seed), n_random)
    return cases
