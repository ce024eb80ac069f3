"""Guards between untrusted files and pydicom / dcm2niix: size limits, DICOM magic, header
sanity, truncation, and file names made safe for terminals and tables.

Every check here turns a hostile or broken file into a :class:`BadFile` with a one-line reason
that never quotes a header value (pydicom's own exception texts can, so they are not used).
Written here because no library offers them as functions: pydicom parses what it is given
(``force=True`` reads any bytes as a dataset, slowly), and dcm2niix reports problems as free text.

* **Size**: an object larger than :func:`max_bytes` (default 2 GiB, ``WEEKE_DICOM_MAX_MB`` or
  the ``max_file_mb`` argument of the ingest) is refused before reading; a zip member by its
  declared size, so a zip bomb is never inflated (``zipfile`` stops at the declared size).
* **Magic**: a file is read as DICOM only with ``DICM`` at byte 128 (PS3.10 preamble) or, for
  preamble-less files, when it starts with a group 0x0002/0x0008 element; anything else is "not a
  DICOM file" after reading 132 bytes (a 300 MB non-DICOM file used to be force-parsed for 110 s).
* **Header**: every top-level element must decode (an invalid VR code, a value of the wrong
  byte length, a 3,000-deep nested sequence are caught here, per file), and the elements every
  image needs must have one sane value: Transfer Syntax, SOP Class, Series UID, Rows, Columns,
  Bits Allocated, Samples per Pixel, Number of Frames.
* **Truncation**: the Pixel Data element's header is read; its declared length must fit in the
  file and hold Rows x Columns x Frames x Samples x Bits/8 (a cut of a few bytes, or a "memory
  bomb" header claiming 65535 x 65535 x 999999, is named as such).
"""

from __future__ import annotations

import io
import os
import re
import unicodedata
from collections.abc import Iterable

from pydicom.dataset import Dataset
from pydicom.uid import UID

#: default per-object size limit (bytes): an enhanced multi-frame DWI of 100 directions at
#: 128x128x72 is ~240 MB; nothing an MR export holds comes near 2 GiB
DEFAULT_MAX_BYTES = 2 << 30
#: the largest uncompressed image the ingest accepts, as a multiple of the size limit
UNCOMPRESSED_FACTOR = 4


class BadFile(ValueError):
    """A file that is skipped; ``str()`` is the one-line reason (no header value in it)."""

    def __init__(self, reason: str, *, warning: bool = True) -> None:
        super().__init__(reason)
        self.warning = warning


def max_bytes(limit_mb: float | None = None) -> int:
    """The per-object size limit in bytes: ``limit_mb``, else ``WEEKE_DICOM_MAX_MB``, else 2 GiB."""
    if limit_mb is None and os.environ.get("WEEKE_DICOM_MAX_MB"):
        try:
            limit_mb = float(os.environ["WEEKE_DICOM_MAX_MB"])
        except ValueError:
            limit_mb = None
    return DEFAULT_MAX_BYTES if not limit_mb or limit_mb <= 0 else int(limit_mb * (1 << 20))


def human_bytes(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"


def check_size(size: int, limit: int) -> None:
    if size > limit:
        sizes = (f"{human_bytes(size)} > {human_bytes(limit)}" if size > limit * 1.01 else
                 f"{size} > {limit} bytes")
        raise BadFile(f"larger than the size limit ({sizes};"
                      " raise it with WEEKE_DICOM_MAX_MB if this is a real DICOM object)")


#: VR codes a preamble-less explicit-VR file can start with (group 0002/0008 elements)
_START_VRS = {b"UL", b"OB", b"UI", b"SH", b"AE", b"CS", b"DA", b"TM", b"LO", b"PN", b"SQ",
              b"US", b"IS", b"DS", b"ST", b"LT", b"UN"}


def sniff(head: bytes) -> bool:
    """True when ``head`` (the first 132 bytes) looks like DICOM: ``DICM`` at byte 128, or a
    preamble-less dataset starting with a (0002,xxxx) or (0008,xxxx) element."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8 or head[:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    if head[4:6] in _START_VRS:
        return True
    length = int.from_bytes(head[4:8], "little")  # implicit VR: a plausible value length
    return length < 1 << 16


def _one(ds: Dataset, keyword: str, what: str) -> object:
    """The single value of ``keyword``; BadFile naming the element when it has several."""
    value = ds.get(keyword)
    if value is None:
        return None
    if isinstance(value, list | tuple) or (hasattr(value, "__len__") and hasattr(value, "append")):
        raise BadFile(f"{what} has {len(value)} values where one is allowed")
    return value


def _positive_int(ds: Dataset, keyword: str, what: str, *, required: bool) -> int | None:
    value = _one(ds, keyword, what)
    if value is None or value == "":
        if required:
            raise BadFile(f"no {what}: the image size is unknown")
        return None
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise BadFile(f"{what} is not a number") from None
    if number <= 0:
        raise BadFile(f"{what} is {number}")
    return number


#: byte width of the binary VRs: a value length that is not a multiple is unreadable
_WIDTH = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "AT": 4, "SV": 8, "UV": 8,
          "OW": 2, "OF": 4, "OD": 8, "OL": 4, "OV": 8}


def decode_all(ds: Dataset, depth: int = 0) -> None:
    """Check every element (sequence items too, to 16 levels) without converting values: a
    known VR code, and a value length that fits the VR's byte width; BadFile naming the first
    bad element (an invalid VR code, a 3-byte US...). Converting every value instead made
    discovery 2-3 times slower; the values the ingest reads are converted where they are used,
    inside per-file and per-series error handling."""
    from pydicom.datadict import dictionary_VR
    from pydicom.dataelem import RawDataElement
    from pydicom.valuerep import VR

    if depth > 16:
        raise BadFile("sequences nested more than 16 levels deep")
    for tag, elem in ds._dict.items():
        if isinstance(elem, RawDataElement):
            vr, length = elem.VR, elem.length
            if vr is None:
                try:
                    vr = dictionary_VR(tag)
                except KeyError:
                    continue  # unknown implicit-VR element: bytes, never converted
                if " or " in vr:
                    continue  # "US or SS", "OB or OW": resolved by pydicom when converted
            if vr not in VR.__members__:
                raise BadFile(f"element {_tag_name(tag)} cannot be read (invalid value "
                              "representation)")
            width = _WIDTH.get(vr)
            if width and length not in (0, 0xFFFFFFFF) and length % width:
                raise BadFile(f"element {_tag_name(tag)} cannot be read (value of the wrong "
                              "length)")
        elif getattr(elem, "VR", None) == "SQ" and elem.value is not None:
            for item in elem.value:
                decode_all(item, depth + 1)


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, NotImplementedError) or "Value Representation" in str(exc):
        return "invalid value representation"
    if type(exc).__name__ in ("BytesLengthException", "error"):
        return "value of the wrong length"
    return type(exc).__name__


def _tag_name(tag: int) -> str:
    from pydicom.datadict import keyword_for_tag
    from pydicom.tag import Tag

    t = Tag(tag)
    kw = keyword_for_tag(t)
    return f"{kw} {t}" if kw else str(t)


def check_header(ds: Dataset, *, image: bool) -> None:
    """Elements every image object needs, each with one sane value (BadFile otherwise)."""
    decode_all(ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        decode_all(meta)
        ts = _one(meta, "TransferSyntaxUID", "Transfer Syntax UID (0002,0010)")
        if ts is not None and not re.fullmatch(r"[0-9.]{1,64}", str(ts)):
            raise BadFile("Transfer Syntax UID (0002,0010) is not a UID")
    sop = _one(ds, "SOPClassUID", "SOP Class UID (0008,0016)")
    if sop is not None and not re.fullmatch(r"[0-9.]{1,64}", str(sop)):
        raise BadFile("SOP Class UID (0008,0016) is not a UID")
    if not image:
        return
    for kw, what in (("SeriesInstanceUID", "Series Instance UID (0020,000E)"),
                     ("StudyInstanceUID", "Study Instance UID (0020,000D)")):
        value = _one(ds, kw, what)
        if value is not None and not re.fullmatch(r"[0-9.]{0,64}", str(value).strip()):
            raise BadFile(f"{what} is not a UID")
    _positive_int(ds, "Rows", "Rows (0028,0010)", required=True)
    _positive_int(ds, "Columns", "Columns (0028,0011)", required=True)
    bits = _positive_int(ds, "BitsAllocated", "Bits Allocated (0028,0100)", required=False)
    if bits is not None and bits not in (1, 8, 16, 32, 64):
        raise BadFile(f"Bits Allocated (0028,0100) is {bits}")
    _positive_int(ds, "SamplesPerPixel", "Samples per Pixel (0028,0002)", required=False)
    _positive_int(ds, "NumberOfFrames", "Number of Frames (0028,0008)", required=False)


def expected_pixel_bytes(ds: Dataset) -> int:
    """Rows x Columns x Frames x Samples x Bits/8 (after :func:`check_header`)."""
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    return int(ds.Rows) * int(ds.Columns) * frames * spp * max(bits, 8) // 8


def check_pixel_data(fh: io.BufferedIOBase, ds: Dataset, offset: int, size: int,
                     limit: int) -> None:
    """Check the Pixel Data element at ``offset`` (where pydicom stopped) against the file size
    and the image size in the header; BadFile naming what is wrong."""
    expected = expected_pixel_bytes(ds)
    if expected > UNCOMPRESSED_FACTOR * limit:
        raise BadFile(f"image of {ds.Rows} x {ds.Columns} x {ds.get('NumberOfFrames', 1) or 1}"
                      f" would need {human_bytes(expected)} of pixel data, over the limit")
    if offset >= size:
        raise BadFile("truncated: the file ends before the pixel data")
    meta = getattr(ds, "file_meta", None)
    ts = UID(str(getattr(meta, "TransferSyntaxUID", "") or "1.2.840.10008.1.2"))
    fh.seek(offset)
    head = fh.read(12)
    if head[:4] != b"\xe0\x7f\x10\x00":
        # pydicom stopped at another element (e.g. float pixel data): leave it to the reader
        return
    implicit = ts == "1.2.840.10008.1.2"
    if implicit:
        length, start = int.from_bytes(head[4:8], "little"), offset + 8
    else:
        length, start = int.from_bytes(head[8:12], "little"), offset + 12
    if len(head) < (8 if implicit else 12):
        raise BadFile("truncated: the file ends inside the pixel data element")
    if length == 0xFFFFFFFF:
        return  # encapsulated: the fragments are walked by the caller
    if start + length > size:
        raise BadFile(f"truncated: pixel data is {start + length - size} byte(s) short "
                      f"({size - start} of {length})")
    if not ts.is_compressed and length < expected:
        raise BadFile(f"pixel data holds {length} bytes where the header's image size needs "
                      f"{expected}")


# --------------------------------------------------------------------------- names
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe_text(text: str) -> str:
    """``text`` printable on a terminal and writable as UTF-8: control characters and bytes of
    undecodable (non-UTF-8) file names as ``\\xNN``, other unprintable characters as ``\\uNNNN``.
    """
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogateescape of a non-UTF-8 byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif _CONTROL.match(ch):
            out.append(f"\\x{code:02x}")
        elif unicodedata.category(ch) in ("Cs", "Co", "Cn"):
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def examples(items: Iterable[str], n: int = 3) -> str:
    items = list(items)
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more
