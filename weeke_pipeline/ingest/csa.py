"""The Siemens CSA image header (0029,xx10) rebuilt from an allow-list of its fields.

The CSA header is a private binary blob ("SV10" format: a tag count, then per tag a 64-byte name,
VM, VR, SyngoDT, item count, and the items as length-prefixed strings). Among the fields dcm2niix
reads there are free-text ones (coil strings, image history, an embedded base64 DICOM in
``MRDiffusion``), and the blob held a planted patient name verbatim through de-identification.
So it is rebuilt keeping only the fields dcm2niix reads for the image geometry, mosaic layout,
diffusion and timing (nii_dicom.cpp ``readCSAImageHeader``), each value checked to be numbers
or one of a few code words; names and padding are zero-filled. nibabel.nicom.csareader reads
CSA headers but does not write them, hence this small writer (the format is the reader's).
"""

from __future__ import annotations

import re
import struct

#: CSA image header fields kept (what dcm2niix reads, plus B_matrix/DiffusionDirectionality)
CSA_KEEP = frozenset({
    "NumberOfImagesInMosaic", "B_value", "B_matrix", "DiffusionGradientDirection",
    "DiffusionDirectionality", "SliceNormalVector", "SliceMeasurementDuration",
    "BandwidthPerPixelPhaseEncode", "MosaicRefAcqTimes", "ProtocolSliceNumber",
    "PhaseEncodingDirectionPositive", "ICE_Dims", "RealDwellTime",
})
_NUMBERS = re.compile(rb"[-+0-9.eE \\_X]*")
_CODES = {b"DIRECTIONAL", b"NONE", b"ISOTROPIC"}


def _safe_item(value: bytes) -> bool:
    text = value.split(b"\x00", 1)[0].strip()
    return bool(_NUMBERS.fullmatch(text)) or text in _CODES


def rebuild_csa(blob: bytes) -> bytes | None:
    """The CSA2 (``SV10``) header ``blob`` with only the :data:`CSA_KEEP` fields whose items
    are all numbers or code words; None when the blob is not a readable CSA2 header (then it is
    dropped)."""
    try:
        if blob[:4] != b"SV10" or len(blob) < 16:
            return None
        n_tags = struct.unpack_from("<I", blob, 8)[0]
        if not 0 < n_tags <= 128:
            return None
        pos, kept = 16, []
        for _ in range(n_tags):
            name = blob[pos:pos + 64].split(b"\x00", 1)[0]
            vm, vr, syngodt, n_items, xx = struct.unpack_from("<i4sii I", blob, pos + 64)
            pos += 84
            if not 0 <= n_items <= 1024:
                return None
            items = []
            for _ in range(n_items):
                head = blob[pos:pos + 16]
                if len(head) < 16:
                    return None
                length = struct.unpack_from("<i", head, 4)[0]  # xx[1]: the item length
                if length < 0 or pos + 16 + length > len(blob):
                    return None
                items.append((head, blob[pos + 16:pos + 16 + length]))
                pos += 16 + (length + 3) // 4 * 4
            if name.decode("ascii", "replace") in CSA_KEEP and all(
                    _safe_item(v) for _, v in items):
                out = bytearray(name.ljust(64, b"\x00")[:64])
                out += struct.pack("<i4sii I", vm, vr.split(b"\x00")[0].ljust(4, b"\x00"),
                                   syngodt, n_items, xx)
                for head, value in items:
                    out += head + value + b"\x00" * ((-len(value)) % 4)
                kept.append(bytes(out))
        return b"SV10\x04\x03\x02\x01" + struct.pack("<I", len(kept)) + b"M\x00\x00\x00" + \
            b"".join(kept)
    except (struct.error, IndexError, ValueError):
        return None
