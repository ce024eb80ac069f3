"""The image sequences of a reading case (imported, shown to readers)."""

from __future__ import annotations

#: the sequences readers may be shown by default (a case needs at least one of them)
CLINICAL_SEQUENCES = ("T1w", "T2w", "ADC")
#: every sequence imported, in the viewer's order
SEQUENCES = (*CLINICAL_SEQUENCES, "FA")
