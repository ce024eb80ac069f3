"""Thin nipype interfaces over the pure functions (registration, labels, metrics, QC)."""

from weeke_pipeline.interfaces.imaging import (
    AtlasToSubject,
    RegionMetrics,
    RegisterWithinSubject,
    SubjectQC,
    WarpLabels,
)

__all__ = ["AtlasToSubject", "RegionMetrics", "RegisterWithinSubject", "SubjectQC", "WarpLabels"]
