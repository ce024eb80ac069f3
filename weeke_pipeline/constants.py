"""Values the whole package agrees on, in one place."""

from __future__ import annotations

#: the random seed of every seeded step by default: registrations (``[registration] seed``,
#: the presets' ``random_seed``), synthetic studies, bootstrap intervals
DEFAULT_SEED = 20240601
#: the scoring form used when none is named (scoring_forms/weeke-consensus-2025/)
DEFAULT_FORM = "weeke-consensus-2025"
