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
import os
import struct
import warnings
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pydicom.config
from pydicom.dataset import Dataset
from pydicom.uid import UID

from weeke_pipeline.ingest.deidentify import identifying_values, identity_key, scrubber
from weeke_pipeline.ingest.guards import (
    BadFile,
    check_header,
    check_pixel_data,
    check_size,
    error_kind,
    max_bytes,
    safe_text,
    sniff,
)
from weeke_pipeline.ingest.identity import split_conflicts

log = logging.getLogger(__name__)

# pydicom reports invalid values verbatim, as log records and warnings ("Invalid value for VR
# PN: '<name>'"): header values of untrusted files must not reach logs or the terminal. Values
# are not validated on reading (the guards check what the ingest uses) and pydicom's records
# are not passed on; the ingest reports its own, value-free reasons.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
logging.getLogger("pydicom").addFilter(lambda record: record.levelno >= logging.CRITICAL)

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
        """The location relative to the input folder (for messages and tables), with control
        characters and undecodable bytes of the name escaped (``\\xNN``)."""
        base = self.path
        if self.root is not None:
            with contextlib.suppress(ValueError):
                base = self.path.relative_to(self.root)
        return safe_text(f"{base}!{self.member}" if self.member else str(base))

    @property
    def size(self) -> int:
        """Bytes of the object (a zip member's declared uncompressed size)."""
        if self.member is None:
            return self.path.stat().st_size
        with zipfile.ZipFile(self.path) as zf:
            return zf.getinfo(self.member).file_size

    @contextlib.contextmanager
    def stream(self) -> Iterator[io.BufferedIOBase]:
        """The object as a seekable binary stream; zip members are decompressed as read,
        never whole into memory."""
        if self.member is None:
            with open(self.path, "rb") as fh:
                yield fh
            return
        with zipfile.ZipFile(self.path) as zf, zf.open(self.member) as fh:
            yield fh  # type: ignore[misc]

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
    damaged: bool = True  # a damaged or refused object (warning); False: not DICOM / no image


@dataclass
class Series:
    """The image objects of one series of one study."""

    study_uid: str
    series_uid: str
    instances: list[Instance] = field(default_factory=list)
    problem: str = ""  # why the series is refused before any check (identity conflicts)
    part: int = 0  # > 0: one part of a (study, series) group split by identity

    @property
    def first(self) -> Dataset:
        return self.instances[0].header

    @property
    def path(self) -> str:
        """The series' folder (or zip file, or single file) as shown in the series table
        (control characters and undecodable bytes escaped)."""
        return safe_text(self._path())

    def _path(self) -> str:
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


def _walk(root: Path, problems: list[tuple[Path, str]]) -> list[Path]:
    """Every file under ``root`` (symlinked folders followed once: a symlink loop is walked
    once), sorted; folders that cannot be listed and broken links go to ``problems``."""
    seen: set[str] = set()
    files: list[Path] = []

    def failed(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        problems.append((where, f"folder cannot be read ({exc.strerror or type(exc).__name__})"
                                "; its files were not looked at"))

    for folder, dirs, names in os.walk(root, onerror=failed, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in names:
            path = Path(folder) / name
            if path.is_file():
                files.append(path)
            elif path.is_symlink():
                problems.append((path, "broken link; skipped"))
    return sorted(files)


def iter_sources(root: str | Path, problems: list[tuple[Source, str]] | None = None
                 ) -> Iterator[Source]:
    """Every file under ``root`` (or ``root`` itself), expanding zip files into their members.

    Zip files inside zip files, damaged zip files and unreadable folders are not read; each is
    added to ``problems`` (when given) as (source, reason)."""
    root = Path(root)
    problems = problems if problems is not None else []
    base = root.parent if root.is_file() else root
    walk_problems: list[tuple[Path, str]] = []
    files = [root] if root.is_file() else _walk(root, walk_problems)
    for path, reason in walk_problems:
        problems.append((Source(path, None, base), reason))
    for path in files:
        if path.name in _IGNORED_NAMES or path.name.startswith("._"):
            continue
        try:
            is_zip = zipfile.is_zipfile(path)
        except OSError:
            is_zip = False
        if not is_zip:
            yield Source(path, None, base)
            continue
        try:
            with zipfile.ZipFile(path) as zf:
                infos = sorted((i for i in zf.infolist() if not i.is_dir()),
                               key=lambda i: i.filename)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            problems.append((Source(path, None, base),
                             f"unreadable zip file ({type(exc).__name__}); skipped"))
            continue
        for info in infos:
            name = info.filename
            if Path(name).name in _IGNORED_NAMES or Path(name).name.startswith("._"):
                continue
            if name.lower().endswith(".zip"):
                problems.append((Source(path, name, base),
                                 "zip file inside a zip file: not read (unzip it first)"))
                continue
            yield Source(path, name, base)


def is_image_sop_class(sop_class_uid: str) -> bool:
    """True for the storage SOP classes that carry images (MR, Enhanced MR, CT, SC ...)."""
    try:
        return UID(str(sop_class_uid)).name.endswith("Image Storage")
    except Exception:  # a damaged value is not an image class
        return False


def read_header(source: Source, limit: int | None = None) -> tuple[Dataset, int]:
    """Read and check the header of one object; return it and the byte count after it.

    Raises :class:`~weeke_pipeline.ingest.guards.BadFile` (oversize, not DICOM, undecodable
    or insane header, truncated), or :class:`TruncatedError` when the header could be read
    (kept for scrubbing messages)."""
    limit = limit or max_bytes()
    size = source.size
    check_size(size, limit)
    with source.stream() as fh:
        if not sniff(fh.read(132)):
            raise BadFile("not a DICOM file", warning=False)
        fh.seek(0)
        try:
            ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
        except RecursionError:
            raise BadFile("unreadable DICOM header (sequences nested too deep)") from None
        except (EOFError, struct.error):
            raise BadFile("truncated: the file ends inside the header") from None
        except Exception as exc:  # its text may quote header values: only the type is shown
            raise BadFile(f"unreadable DICOM header ({error_kind(exc)})") from None
        pixel_offset = fh.tell()
        sop = ds.get("SOPClassUID")
        image = is_image_sop_class(str(sop)) if sop is not None else False
        try:
            check_header(ds, image=image)
        except BadFile as exc:
            raise TruncatedError(str(exc), ds) from None
        if sop is None and "PixelData" not in ds and pixel_offset >= size:
            raise TruncatedError("truncated: the file ends inside the header (no SOP Class UID,"
                                 " no pixel data)", ds)
        if not image:
            return ds, size - pixel_offset
        try:
            check_pixel_data(fh, ds, pixel_offset, size, limit)
        except BadFile as exc:
            raise TruncatedError(str(exc), ds) from None
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if ts is not None and UID(str(ts)).is_compressed and size > pixel_offset:
            fh.seek(pixel_offset)
            problem = encapsulated_problem(fh, size)
            if problem:
                raise TruncatedError(f"truncated: {problem}", ds)
    return ds, size - pixel_offset


class TruncatedError(ValueError):
    """A file whose header was read but that cannot be used (truncated, insane header); the
    header is kept for scrubbing messages."""

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


def discover(root: str | Path, *, max_file_mb: float | None = None
             ) -> tuple[list[Instance], list[Skipped]]:
    """Read every DICOM image header under ``root``; return (images, skipped inputs).

    One bad file never stops the others: whatever goes wrong with it (see
    :mod:`weeke_pipeline.ingest.guards`) becomes a :class:`Skipped` with a one-line reason."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder")
    limit = max_bytes(max_file_mb)
    images: list[Instance] = []
    skipped: list[Skipped] = []
    identities: set[str] = set()
    seen: set[tuple[object, ...]] = set()
    notes: list[tuple[int, Source, str]] = []  # logged at the end, scrubbed of identities
    problems: list[tuple[Source, str]] = []
    with quiet_pydicom():
        for source in iter_sources(root, problems):
            try:
                ds, _ = read_header(source, limit)
            except TruncatedError as exc:
                with contextlib.suppress(Exception):
                    identities.update(identifying_values(exc.header))
                notes.append((logging.WARNING, source, str(exc)))
                continue
            except BadFile as exc:
                notes.append((logging.WARNING if exc.warning else logging.INFO, source,
                              str(exc)))
                continue
            except Exception as exc:  # anything else about this one file: skip it, go on
                what = ("cannot be read" if isinstance(exc, OSError)
                        else "unreadable DICOM")
                notes.append((logging.WARNING, source, f"{what} ({type(exc).__name__})"))
                continue
            try:
                key = identity_key(ds)
                if key not in seen:  # the files of a series mostly share them: worked out once
                    seen.add(key)
                    identities.update(identifying_values(ds))
            except Exception:
                identities.update(identifying_values(ds))
            sop = str(ds.get("SOPClassUID", ""))
            if not is_image_sop_class(sop):
                name = UID(sop).name if sop else "missing"
                notes.append((logging.INFO, source,
                              f"not an image object (SOP class {safe_text(name)})"))
                continue
            if not str(ds.get("SeriesInstanceUID", "") or "").strip():
                notes.append((logging.WARNING, source, "no Series Instance UID"))
                continue
            images.append(Instance(source, ds))
    # labels can hold identities (export folders named after the patient): scrub them with the
    # identifying values of every header read, before anything is logged or returned
    scrub = scrubber(sorted(identities))
    for source, reason in problems:
        notes.append((logging.WARNING, source, reason.removesuffix("; skipped")))
    for level, source, reason in notes:
        label = scrub(source.label)
        log.log(level, "%s: %s; skipped", label, scrub(reason))
        skipped.append(Skipped(label, scrub(reason), level >= logging.WARNING))
    stray = [s.source for s in skipped if s.reason == "not a DICOM file"]
    if stray:
        log.warning("%d non-DICOM file(s) skipped (e.g. %s); `weeke inspect` lists them",
                    len(stray), ", ".join(stray[:3]))
    return images, skipped


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """pydicom's warnings quote header values ("Invalid value for VR IS: '<value>'"): while
    untrusted headers are read they are not shown (the ingest reports its own reasons)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def group_series(images: list[Instance]) -> list[Series]:
    """Group images by (StudyInstanceUID, SeriesInstanceUID), split by patient and acquisition
    (:func:`weeke_pipeline.ingest.identity.split_conflicts`); order by study, series number."""
    groups: dict[tuple[str, str], Series] = {}
    for inst in images:
        key = (str(inst.header.get("StudyInstanceUID", "")), str(inst.header.SeriesInstanceUID))
        groups.setdefault(key, Series(*key)).instances.append(inst)
    for s in groups.values():
        s.instances.sort(key=lambda i: (_int(i.header.get("InstanceNumber")), i.source.label))
    order: dict[str, list[Series]] = defaultdict(list)
    for group in groups.values():
        parts = split_conflicts(group.instances)  # two infants / acquisitions under one UID
        if len(parts) == 1:
            order[group.study_uid].append(group)
            continue
        for n, (items, problem) in enumerate(parts, start=1):  # each part refused
            order[group.study_uid].append(Series(group.study_uid, group.series_uid, items,
                                                 problem=problem, part=n))
    out: list[Series] = []
    for study in order.values():
        out.extend(sorted(study, key=lambda s: (_int(s.first.get("SeriesNumber")), s.series_uid,
                                                s.part)))
    return out


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
