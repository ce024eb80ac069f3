"""Write image volumes as classic MR DICOM series, the way a scanner exports them.

Used by :mod:`weeke_pipeline.synth.study`. One file per slice (and per diffusion volume), axial
acquisition geometry in the patient (LPS) frame, standard diffusion attributes
(DiffusionBValue (0018,9087), DiffusionGradientOrientation (0018,9089), DiffusionDirectionality
(0018,9075)), series and instance UIDs derived deterministically from the seed, and realistic
identifying attributes filled with fake values (plus a private block and free text) so that
de-identification has something to remove. RLE Lossless compression is written with pydicom
(pylibjpeg-rle's encoder when installed, pydicom's native one otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    MRImageStorage,
    RLELossless,
    generate_uid,
)

from weeke_pipeline.atlas.honesty import SYNTH_MANUFACTURER, SYNTH_MODEL, SYNTH_SOFTWARE

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class AxialGrid:
    """An axial slice stack: ``rows`` run anterior->posterior, ``cols`` right->left (LPS +x)."""

    rows: int
    cols: int
    n_slices: int
    pixel_mm: tuple[float, float]  # (row spacing, column spacing)
    slice_mm: float
    centre_ras: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def slice_origin_lps(self, k: int) -> np.ndarray:
        """ImagePositionPatient (LPS) of the first pixel of slice ``k`` (inferior first)."""
        c = LPS_FROM_RAS @ np.asarray(self.centre_ras, dtype=float)
        dr, dc = self.pixel_mm
        return c + np.array([-(self.cols - 1) / 2 * dc, -(self.rows - 1) / 2 * dr,
                             (k - (self.n_slices - 1) / 2) * self.slice_mm])

    def world_ras(self) -> np.ndarray:
        """RAS coordinates (mm) of every voxel, shape ``(n_slices, rows, cols, 3)``."""
        k, r, c = np.meshgrid(np.arange(self.n_slices), np.arange(self.rows),
                              np.arange(self.cols), indexing="ij")
        o = self.slice_origin_lps(0)
        dr, dc = self.pixel_mm
        lps = np.stack([o[0] + c * dc, o[1] + r * dr, o[2] + k * self.slice_mm], axis=-1)
        return lps * np.array([-1.0, -1.0, 1.0])

    def affine_ras(self) -> np.ndarray:
        """Voxel (col, row, slice) -> RAS affine of this grid (what a converter would report)."""
        dr, dc = self.pixel_mm
        aff = np.eye(4)
        aff[:3, 0] = LPS_FROM_RAS @ np.array([dc, 0.0, 0.0])
        aff[:3, 1] = LPS_FROM_RAS @ np.array([0.0, dr, 0.0])
        aff[:3, 2] = np.array([0.0, 0.0, self.slice_mm])
        aff[:3, 3] = LPS_FROM_RAS @ self.slice_origin_lps(0)
        return aff


@dataclass(frozen=True)
class PatientInfo:
    """Fake identifying values, the study they belong to, and the age at scan."""

    name: str
    patient_id: str
    birth_date: str  # YYYYMMDD
    study_date: str  # YYYYMMDD
    sex: str
    age_days: int
    weight_kg: float
    accession: str
    institution: str = "St Elsewhere Children's Hospital"
    institution_address: str = "1 Fake Street, Springfield"
    referring_physician: str = "HOUSE^GREGORY"
    operator: str = "SMITH^JANE"
    station: str = "NICU-MR01"
    device_serial: str = "SN-48213-XQ"


@dataclass(frozen=True)
class SeriesSpec:
    """What a scanner writes for one series."""

    number: int
    description: str
    image_type: tuple[str, ...]
    scanning_sequence: str
    sequence_variant: str
    sequence_name: str
    tr_ms: float
    te_ms: float
    ti_ms: float | None = None
    flip_deg: float = 90.0
    echo_train: int = 1
    acquisition_type: str = "2D"
    bvals: Sequence[float] | None = None  # per volume, diffusion series only
    bvecs_lps: Sequence[Sequence[float]] | None = None  # per volume, unit vectors (LPS)
    extra: dict[str, object] = field(default_factory=dict)


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _base_dataset(patient: PatientInfo, spec: SeriesSpec, grid: AxialGrid, *, study_uid: str,
                  series_uid: str, frame_uid: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.Manufacturer = SYNTH_MANUFACTURER
    ds.ManufacturerModelName = SYNTH_MODEL
    ds.SoftwareVersions = SYNTH_SOFTWARE
    ds.MagneticFieldStrength = 3.0
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = (
        study_uid, series_uid, frame_uid)
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.PatientAge = f"{patient.age_days // 7:03d}W"
    ds.PatientWeight = f"{patient.weight_kg:.1f}"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = patient.study_date
    ds.StudyTime = "093012"
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = f"{93012 + spec.number * 300:06d}"
    ds.AccessionNumber = patient.accession
    ds.StudyID = patient.accession[-4:]
    ds.StudyDescription = "MRI BRAIN NEONATE"
    ds.InstitutionName = patient.institution
    ds.InstitutionAddress = patient.institution_address
    ds.ReferringPhysicianName = patient.referring_physician
    ds.OperatorsName = patient.operator
    ds.StationName = patient.station
    ds.DeviceSerialNumber = patient.device_serial
    ds.BodyPartExamined = "BRAIN"
    ds.PatientPosition = "HFS"
    ds.SeriesNumber = spec.number
    ds.SeriesDescription = ds.ProtocolName = spec.description
    ds.ImageType = list(spec.image_type)
    ds.ScanningSequence = spec.scanning_sequence
    ds.SequenceVariant = spec.sequence_variant
    ds.SequenceName = spec.sequence_name
    ds.MRAcquisitionType = spec.acquisition_type
    ds.RepetitionTime = spec.tr_ms
    ds.EchoTime = spec.te_ms
    if spec.ti_ms is not None:
        ds.InversionTime = spec.ti_ms
    ds.FlipAngle = spec.flip_deg
    ds.EchoTrainLength = spec.echo_train
    ds.SliceThickness = grid.slice_mm
    ds.SpacingBetweenSlices = grid.slice_mm
    ds.PixelSpacing = [float(grid.pixel_mm[0]), float(grid.pixel_mm[1])]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.Rows, ds.Columns = grid.rows, grid.cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.ImageComments = f"Transferred from NICU bed 4, mother {patient.name.split('^')[0]} consented"
    # a private block as vendors write them, holding identifying text de-identification must drop
    block = ds.private_block(0x0029, "WEEKESYNTH PRIVATE", create=True)
    block.add_new(0x10, "LO", f"{patient.patient_id} {patient.name}")
    for keyword, value in spec.extra.items():
        setattr(ds, keyword, value)
    return ds


def write_series(volume: np.ndarray, grid: AxialGrid, spec: SeriesSpec, patient: PatientInfo,
                 out_dir: Path, *, study_uid: str, uid_seed: str, compress: bool = True) -> int:
    """Write ``volume`` (``(slices, rows, cols)`` or ``(volumes, slices, rows, cols)``) as one
    DICOM series of classic MR images into ``out_dir``; returns the number of files written.

    Pixel values are rounded and clipped to uint16. Diffusion series carry per-file b-value and
    gradient direction; volume order is interleaved per slice position the way many scanners
    number instances (slice-major) so converters must sort by position and volume.
    """
    vol = np.asarray(volume)
    if vol.ndim == 3:
        vol = vol[None]
    n_vol = vol.shape[0]
    if vol.shape[1:] != (grid.n_slices, grid.rows, grid.cols):
        raise ValueError(f"volume shape {vol.shape[1:]} does not match grid "
                         f"{(grid.n_slices, grid.rows, grid.cols)} for series {spec.description}")
    if spec.bvals is not None and len(spec.bvals) != n_vol:
        raise ValueError(f"{len(spec.bvals)} b-values for {n_vol} volumes in {spec.description}")
    out_dir.mkdir(parents=True, exist_ok=True)
    series_uid = _uid(uid_seed, "series", spec.number)
    frame_uid = _uid(uid_seed, "frame")
    pixels = np.clip(np.rint(vol), 0, 65535).astype(np.uint16)
    template = _base_dataset(patient, spec, grid, study_uid=study_uid, series_uid=series_uid,
                             frame_uid=frame_uid)
    count = 0
    for k in range(grid.n_slices):
        for v in range(n_vol):
            instance = k * n_vol + v + 1
            ds = template.copy()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
            ds.SOPInstanceUID = _uid(uid_seed, "instance", spec.number, instance)
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
            ds.InstanceNumber = instance
            ds.AcquisitionNumber = v + 1
            origin = grid.slice_origin_lps(k)
            ds.ImagePositionPatient = [round(float(c), 4) for c in origin]
            ds.SliceLocation = round(float(origin[2]), 4)
            if spec.bvals is not None:
                b = float(spec.bvals[v])
                ds.DiffusionBValue = b
                if b > 0 and spec.bvecs_lps is not None:
                    ds.DiffusionDirectionality = "DIRECTIONAL"
                    ds.DiffusionGradientOrientation = [round(float(g), 6)
                                                       for g in spec.bvecs_lps[v]]
                else:
                    ds.DiffusionDirectionality = "NONE"
            frame = pixels[v, k]
            if compress:
                # keep our deterministic SOP Instance UID (pydicom would draw a random one)
                ds.compress(RLELossless, frame, generate_instance_uid=False)
            else:
                ds.PixelData = frame.tobytes()
            ds.save_as(out_dir / f"IM{instance:05d}.dcm", enforce_file_format=True)
            count += 1
    return count
