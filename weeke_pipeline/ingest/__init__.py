"""DICOM ingest: discovery, classification, de-identification, conversion to BIDS, ADC.

Entry point without nipype workflows: :func:`weeke_pipeline.ingest.run.ingest_and_convert`.
"""

from weeke_pipeline.ingest.run import ingest_and_convert, inspect_dicom

__all__ = ["ingest_and_convert", "inspect_dicom"]
