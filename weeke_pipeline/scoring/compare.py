"""When two reads of a case agree: the one rule the reading app (which cases go to
adjudication) and the analysts' consensus share.

Two reads agree when every item has the same assessability, extent and laterality. The free-text
reason of a not-assessable item is not compared (the app never sends such a case to
adjudication). Items are the ``{item_id: {"assessable", "extent", "laterality", ...}}`` mapping
of a read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def comparable(items: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """item id -> (assessable, extent, laterality), the values two reads must share."""
    return {k: (v.get("assessable", True), v.get("extent"), v.get("laterality"))
            for k, v in items.items()}


def differing_items(a: Mapping[str, Mapping[str, Any]],
                    b: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The item ids on which two reads differ (an item missing from one read differs)."""
    ca, cb = comparable(a), comparable(b)
    return sorted(k for k in set(ca) | set(cb) if ca.get(k) != cb.get(k))


def same_items(a: Mapping[str, Mapping[str, Any]], b: Mapping[str, Mapping[str, Any]]) -> bool:
    """True when the reads agree on every item."""
    return not differing_items(a, b)
