"""Scoring forms and the score engine (contract: docs/scoring.md, "Python API").

    from weeke_pipeline.scoring import load_form, list_forms, score_items, ScoringError, FormError
"""

from weeke_pipeline.scoring.engine import (
    ItemScore,
    ScoreResult,
    ScoringError,
    item_score,
    score_items,
)
from weeke_pipeline.scoring.forms import (
    LATERALITY,
    Extent,
    Form,
    FormError,
    Item,
    Subscore,
    file_sha256,
    freeze,
    list_forms,
    load_form,
    load_form_file,
    load_frozen,
)

__all__ = [
    "LATERALITY", "Extent", "Form", "FormError", "Item", "ItemScore", "ScoreResult",
    "ScoringError", "Subscore", "file_sha256", "freeze", "item_score", "list_forms",
    "load_form", "load_form_file", "load_frozen", "score_items",
]
