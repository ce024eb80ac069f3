"""Thin nipype interfaces over the pure functions (.imaging: registration, metrics, QC; .dti: the
tensor fit; .bids: b=0, tensor maps to T2w, the derivatives sink)."""

from weeke_pipeline.interfaces.imaging import (
    AtlasToSubject,
    RegionMetrics,
    RegisterWithinSubject,
    SubjectQC,
)

__all__ = ["AtlasToSubject", "RegionMetrics", "RegisterWithinSubject", "SubjectQC"]
