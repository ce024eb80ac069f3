"""Synthetic studies for demos and tests: planted-truth phantom subjects written as DICOM."""
