"""Shared helpers for the reading tests (not fixtures)."""

from __future__ import annotations

from typing import Any


def complete_items(**changes: dict[str, Any]) -> dict[str, Any]:
    """Every item of the Weeke form scored normal (extent 0), with ``changes`` applied."""
    from weeke_pipeline.scoring import load_form

    form = load_form("weeke-consensus-2025")
    items: dict[str, Any] = {item.id: {"extent": 0} for item in form.items}
    items.update(changes)
    return {"items": items}
