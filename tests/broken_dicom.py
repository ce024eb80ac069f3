"""Broken copies of the shipped sample DICOM for the bad-input and partial-study tests."""

from __future__ import annotations

import contextlib
import gzip
from collections.abc import Callable, Iterable
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from weeke_pipeline.resources import data_dir

SAMPLE = data_dir("sample_data")
T2W = SAMPLE / "sub-02" / "dicom" / "03_T2_TSE_AX"
T1W = SAMPLE / "sub-02" / "dicom" / "02_T1_IR_GRE_AX"
DWI = SAMPLE / "sub-02" / "dicom" / "05_DWI_6DIR_B1000"


def planted_identities() -> list[str]:
    """The fake identifying values in the sample headers (every sample subject)."""
    out: list[str] = []
    for sub in ("sub-01", "sub-02", "sub-03"):
        ds = pydicom.dcmread(next((SAMPLE / sub / "dicom" / "03_T2_TSE_AX").glob("*.dcm")))
        name = str(ds.PatientName)
        out += [name, *name.split("^"), str(ds.PatientID), ds.PatientBirthDate,
                ds.AccessionNumber, ds.InstitutionName, ds.InstitutionAddress,
                ds.DeviceSerialNumber, ds.StudyDate, ds.StationName, str(ds.OperatorsName),
                str(ds.ReferringPhysicianName), str(ds.ImageComments)]
    return sorted({v for v in out if len(v) >= 3})


def copy_series(src: Path, dest: Path, *, change: Callable[[int, pydicom.Dataset], None]
                | None = None, new_series: bool = True, study: dict | None = None,
                keep: Callable[[int], bool] | None = None) -> list[Path]:
    """Copy a sample series, optionally as a new series (and study) and with header changes
    (``keep(n)`` selects files by their index)."""
    dest.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    out = []
    for n, f in enumerate(sorted(src.glob("*.dcm"))):
        if keep is not None and not keep(n):
            continue
        ds = pydicom.dcmread(f)
        if new_series:
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        for key, value in (study or {}).items():
            setattr(ds, key, value)
        if change is not None:
            change(n, ds)
        ds.save_as(dest / f.name)
        out.append(dest / f.name)
    return out


def strip_bvalues(n: int, ds: pydicom.Dataset) -> None:
    for key in ("DiffusionBValue", "DiffusionGradientOrientation", "DiffusionDirectionality"):
        if key in ds:
            delattr(ds, key)


def first_volumes(n: int) -> bool:
    """The sample DWI is stored slice by slice, 7 volumes each: keep 3 volumes."""
    return n % 7 < 3


def blobs(path: Path) -> bytes:
    """A file's bytes, gz-decompressed (.nii.gz, .pklz) so header text can be grepped."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        with contextlib.suppress(OSError, EOFError):
            data = gzip.decompress(data)
    return data


def leaks(root: Path, secrets: Iterable[str], texts: dict[str, str] | None = None,
          skip: Iterable[str] = ()) -> list[str]:
    """Where any of ``secrets`` appears: in ``texts`` (logs, messages...), in the names or the
    (decompressed) contents of every file under ``root`` (except names in ``skip``)."""
    secrets = list(secrets)
    hits = [f"{where}: {s}" for where, t in (texts or {}).items() for s in secrets if s in t]
    for f in root.rglob("*"):
        if f.name in set(skip):
            continue
        hits += [f"name {f}: {s}" for s in secrets if s in str(f.relative_to(root))]
        if f.is_file():
            blob = blobs(f)
            hits += [f"{f}: {s}" for s in secrets if s.encode() in blob]
    return hits
