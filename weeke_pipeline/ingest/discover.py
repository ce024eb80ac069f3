"""Find DICOM objects in a folder tree (and inside zip files) and group them into series.

pydicom reads the headers (pixel data skipped); no library walks folders *and* zip members and
separates image objects from presentation states / vendor private objects, so this module does
that small job itself.

Skipped inputs are reported, never fatal:

* non-DICOM files (warning),
* DICOM objects that are not images (presentation states, Philips private SOP classes, raw
  data, structured reports: their SOP Class UID is not an "... Image Storage" class) (info),
* truncated files: uncompressed pixel data shorter than Rows x Columns x Frames x Bits/8, or
  compressed (encapsulated) pixel data ending before its sequence delimiter (warning).

Messages name the file relative to the input folder and never print header values; identifying
values found in any header (a folder named after the patient) are scrubbed from them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from weeke_pipeline.ingest.deidentify import identifying_values, identity_key, scrubber

log = logging.getLogger(__name__)

#: file names that are never DICOM (saves reading them)
_IGNORED_NAMES = {"DICOMDIR", ".DS_Store", "Thumbs.db", "LOCKFILE", "VERSION"}


@dataclass(frozen=True)
class Source:
    """One DICOM object on disk: a file, or a member of a zip file."""

    path: Path
    member: str | None = None
    root: Path | None = None

    @property
    def label(self) -> str:
        """The location relative to the input folder (for messages and tables)."""
        base = self.path
        if self.root is not None:
            with contextlib.suppress(ValueError):
                base = self.path.relative_to(self.root)
        return f"{base}!{self.member}" if self.member else str(base)

    def open(self) -> io.BufferedIOBase:
        if self.member is None:
            return open(self.path, "rb")
        with zipfile.ZipFile(self.path) as zf:
            return io.BytesIO(zf.read(self.member))

    def read_bytes(self) -> bytes:
        with self.open() as fh:
            return fh.read()


@dataclass
class Instance:
    """A DICOM image object: where it is and its header (no pixel data)."""

    source: Source
    header: Dataset


@dataclass
class Skipped:
    source: str
    reason: str


@dataclass
class Series:
    """The image objects of one series of one study."""

    study_uid: str
    series_uid: str
    instances: list[Instance] = field(default_factory=list)

    @property
    def first(self) -> Dataset:
        return self.instances[0].header

    @property
    def path(self) -> str:
        """The series' folder (or zip file, or single file) as shown in the series table."""
        srcs = [i.source for i in self.instances]
        if len(srcs) == 1:
            return str(srcs[0].path) + (f"!{srcs[0].member}" if srcs[0].member else "")
        if any(s.member for s in srcs):
            return str(srcs[0].path)
        parents = {s.path.parent for s in srcs}
        if len(parents) == 1:
            return str(parents.pop())
        return str(Path(*_common_parts([s.path.parent.parts for s in srcs])))


def _common_parts(parts: list[tuple[str, ...]]) -> tuple[str, ...]:
    out: list[str] = []
    for items in zip(*parts, strict=False):
        if len(set(items)) != 1:
            break
        out.append(items[0])
    return tuple(out) or ("/",)


def iter_sources(root: str | Path) -> Iterator[Source]:
    """Every file under ``root`` (or ``root`` itself), expanding zip files into their members."""
    root = Path(root)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    base = root.parent if root.is_file() else root
    for path in files:
        if path.name in _IGNORED_NAMES or path.name.startswith("._"):
            continue
        if zipfile.is_zipfile(path):
            try:
                with zipfile.ZipFile(path) as zf:
                    names = sorted(n for n in zf.namelist() if not n.endswith("/"))
            except (zipfile.BadZipFile, OSError) as exc:
                log.warning("%s: unreadable zip file (%s); skipped", path.relative_to(base), exc)
                continue
            for name in names:
                if Path(name).name not in _IGNORED_NAMES:
                    yield Source(path, name, base)
        else:
            yield Source(path, None, base)


def is_image_sop_class(sop_class_uid: str) -> bool:
    """True for the storage SOP classes that carry images (MR, Enhanced MR, CT, SC ...)."""
    return UID(sop_class_uid).name.endswith("Image Storage")


def read_header(source: Source) -> tuple[Dataset, int]:
    """Read the header of one object and the byte count after it (pixel data room).

    Raises InvalidDicomError for a non-DICOM file."""
    with source.open() as fh:
        try:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
        except InvalidDicomError:
            fh.seek(0)
            # files without the 128-byte preamble: accept only when they parse as DICOM
            ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
            if "SOPClassUID" not in ds:
                raise InvalidDicomError("no DICOM preamble and no SOP Class UID") from None
        pixel_offset = fh.tell()
        fh.seek(0, io.SEEK_END)
        size = fh.tell()
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if ts is not None and ts.is_compressed and size > pixel_offset:
            fh.seek(pixel_offset)
            problem = encapsulated_problem(fh, size)
            if problem:
                raise TruncatedError(f"truncated: {problem}", ds)
    return ds, size - pixel_offset


class TruncatedError(ValueError):
    """A file that ends early (its header is kept for scrubbing messages)."""

    def __init__(self, message: str, header: Dataset) -> None:
        super().__init__(message)
        self.header = header


def encapsulated_problem(fh: io.BufferedIOBase, size: int) -> str | None:
    """Walk encapsulated (compressed) Pixel Data from its element tag to the sequence delimiter
    (PS3.5 A.4) by item headers only; return what is wrong, or None when it is complete.

    pydicom only warns ("End of file reached before delimiter") on such files, and dcm2niix
    converts them with a hole, so discovery checks the item structure itself."""
    head = fh.read(12)  # (7FE0,0010) OB 0000 FFFFFFFF (explicit VR; compressed is explicit)
    if len(head) < 12 or head[:4] != b"\xe0\x7f\x10\x00":
        return None  # not at the pixel data element (e.g. trailing elements): nothing to check
    if head[8:12] != b"\xff\xff\xff\xff":
        length = int.from_bytes(head[8:12], "little")
        return None if fh.tell() + length <= size else "pixel data shorter than its length"
    while True:
        item = fh.read(8)
        if len(item) < 8:
            return "compressed pixel data ends before its sequence delimiter"
        tag, length = item[:4], int.from_bytes(item[4:], "little")
        if tag == b"\xfe\xff\xdd\xe0":  # (FFFE,E0DD) sequence delimiter
            return None
        if tag != b"\xfe\xff\x00\xe0":  # (FFFE,E000) item
            return "compressed pixel data has a damaged fragment"
        if fh.tell() + length > size:
            return "compressed pixel data ends inside a fragment"
        fh.seek(length, io.SEEK_CUR)


def check_not_truncated(ds: Dataset, remaining: int) -> None:
    """Raise ValueError when uncompressed pixel data cannot fit in the rest of the file."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts is not None and ts.is_compressed:
        return
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        return
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    expected = rows * cols * frames * spp * bits // 8
    if remaining < expected:
        raise ValueError(
            f"truncated: pixel data needs {expected} bytes, file holds at most {remaining}"
        )


def discover(root: str | Path) -> tuple[list[Instance], list[Skipped]]:
    """Read every DICOM image header under ``root``; return (images, skipped inputs)."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    images: list[Instance] = []
    skipped: list[Skipped] = []
    identities: set[str] = set()
    seen: set[tuple[object, ...]] = set()
    notes: list[tuple[int, Source, str]] = []  # logged at the end, scrubbed of identities
    for source in iter_sources(root):
        try:
            ds, remaining = read_header(source)
        except TruncatedError as exc:
            identities.update(identifying_values(exc.header))
            notes.append((logging.WARNING, source, str(exc)))
            continue
        except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
            reason = "not a DICOM file" if isinstance(exc, InvalidDicomError) else str(exc)
            if not isinstance(exc, InvalidDicomError) and "truncated" not in reason:
                reason = f"unreadable DICOM ({type(exc).__name__})"
            # one summary warning for stray non-DICOM files (READMEs, spreadsheets, NIfTI)
            level = logging.INFO if isinstance(exc, InvalidDicomError) else logging.WARNING
            notes.append((level, source, reason))
            continue
        key = identity_key(ds)
        if key not in seen:  # the files of a series mostly share them: worked out once
            seen.add(key)
            identities.update(identifying_values(ds))
        sop = str(ds.get("SOPClassUID", ""))
        if not is_image_sop_class(sop):
            reason = f"not an image object (SOP class {UID(sop).name or 'missing'})"
            notes.append((logging.INFO, source, reason))
            continue
        try:
            check_not_truncated(ds, remaining)
        except ValueError as exc:
            notes.append((logging.WARNING, source, str(exc)))
            continue
        if "SeriesInstanceUID" not in ds:
            notes.append((logging.WARNING, source, "no Series Instance UID"))
            continue
        images.append(Instance(source, ds))
    # labels can hold identities (export folders named after the patient): scrub them with the
    # identifying values of every header read, before anything is logged or returned
    scrub = scrubber(sorted(identities))
    for level, source, reason in notes:
        label = scrub(source.label)
        log.log(level, "%s: %s; skipped", label, scrub(reason))
        skipped.append(Skipped(label, scrub(reason)))
    stray = [s.source for s in skipped if s.reason == "not a DICOM file"]
    if stray:
        log.warning("%d non-DICOM file(s) skipped (e.g. %s); `weeke inspect` lists them",
                    len(stray), ", ".join(stray[:3]))
    return images, skipped


def group_series(images: list[Instance]) -> list[Series]:
    """Group images by (StudyInstanceUID, SeriesInstanceUID); order by study, series number."""
    groups: dict[tuple[str, str], Series] = {}
    for inst in images:
        key = (str(inst.header.get("StudyInstanceUID", "")), str(inst.header.SeriesInstanceUID))
        groups.setdefault(key, Series(*key)).instances.append(inst)
    for s in groups.values():
        s.instances.sort(key=lambda i: (_int(i.header.get("InstanceNumber")), i.source.label))
    order: dict[str, list[Series]] = defaultdict(list)
    for s in groups.values():
        order[s.study_uid].append(s)
    out: list[Series] = []
    for study in order.values():
        out.extend(sorted(study, key=lambda s: (_int(s.first.get("SeriesNumber")), s.series_uid)))
    return out


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
