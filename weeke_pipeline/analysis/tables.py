"""Analyst tables that need no database: reads long <-> wide, consensus, data dictionaries,
REDCap export, unblinding summary (issue 6). Conventions: ``docs/tables.md``. One namespace
over the modules that hold them: :mod:`.reads`, :mod:`.consensus`, :mod:`.dictionaries`,
:mod:`.export`, :mod:`.redcap`, :mod:`.unblinding`.

**reads long** (:data:`READS_LONG_COLUMNS`), one row per read x form item:

=================  ==========================================================================
reading_code       case pseudonym (string)
reader             reader pseudonym (string; never a name)
read_number        1, 2, ... order of the independent reads of the case (adjudication: 0)
kind               ``read`` (independent read) or ``adjudication``
form_id            scoring form id, e.g. ``weeke-consensus-2025``
form_version       form version, e.g. ``1.0.0``
status             ``signed`` or ``draft``
signed_at          ISO 8601 time of signature, or NA
opened_at          ISO 8601 time the reader first opened the case, or NA
reading_seconds    signed_at - opened_at in seconds (wall time, breaks included), or NA
active_seconds     active reading time in seconds (idle gaps over the threshold left out)
item               form item id
item_state         ``scored``, ``not_assessable`` or ``missing``
extent             0..n (nullable integer)
laterality         0 (none), 1 (unilateral), 2 (bilateral); NA on non-lateralised/unscored
item_score         extent + laterality (nullable integer), as the score engine computes it
assessable         True / False / NA (missing)
reason             why not assessable, else NA
item_seconds       active seconds spent on this item, or NA (read made before timing existed)
=================  ==========================================================================

**reads wide**: one row per read: the identifying columns above (without item columns), then per
item ``<item>_ext``, ``<item>_lat``, ``<item>_score``, ``<item>_assess``, ``<item>_reason``,
``<item>_seconds``; per
subscore ``<sub>`` and ``<sub>_complete``; ``total``, ``complete``. Scores come from the score
engine (:func:`weeke_pipeline.scoring.score_items`), never re-added by hand.

**consensus**: one row per case, the wide columns of the chosen read plus ``consensus_source``
(``adjudicated``, ``agreed`` or ``unresolved``) and ``n_reads``.
"""

from __future__ import annotations

from weeke_pipeline.analysis.consensus import consensus
from weeke_pipeline.analysis.dictionaries import (
    SUBJECT_ENTRY,
    agreement_items_dictionary,
    agreement_scores_dictionary,
    reads_long_dictionary,
    reads_wide_dictionary,
    unblinding_comparison_dictionary,
    unblinding_summary_dictionary,
    with_subject_entry,
)
from weeke_pipeline.analysis.export import insert_subjects, neutralise_formulas, write_table
from weeke_pipeline.analysis.reads import (
    ITEM_COLUMNS,
    ITEM_SUFFIXES,
    READ_ID_COLUMNS,
    READS_LONG_COLUMNS,
    TIME_COLUMNS,
    long_to_records,
    reads_long_from_records,
    reads_wide,
    wide_columns,
    wide_to_long,
)
from weeke_pipeline.analysis.redcap import (
    REDCAP_DD_COLUMNS,
    redcap_data_dictionary,
    redcap_instrument_name,
    redcap_records,
    validate_redcap,
)
from weeke_pipeline.analysis.unblinding import (
    join_allocation,
    median_difference_ci,
    read_allocation,
    unblinding_plots,
    unblinding_summary,
)
from weeke_pipeline.constants import DEFAULT_SEED

__all__ = [
    "DEFAULT_SEED",
    "ITEM_COLUMNS",
    "ITEM_SUFFIXES",
    "READS_LONG_COLUMNS",
    "READ_ID_COLUMNS",
    "REDCAP_DD_COLUMNS",
    "SUBJECT_ENTRY",
    "TIME_COLUMNS",
    "agreement_items_dictionary",
    "agreement_scores_dictionary",
    "consensus",
    "insert_subjects",
    "join_allocation",
    "long_to_records",
    "median_difference_ci",
    "neutralise_formulas",
    "read_allocation",
    "reads_long_dictionary",
    "reads_long_from_records",
    "reads_wide",
    "reads_wide_dictionary",
    "redcap_data_dictionary",
    "redcap_instrument_name",
    "redcap_records",
    "unblinding_comparison_dictionary",
    "unblinding_plots",
    "unblinding_summary",
    "unblinding_summary_dictionary",
    "validate_redcap",
    "wide_columns",
    "wide_to_long",
    "with_subject_entry",
    "write_table",
]
