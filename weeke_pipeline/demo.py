"""The demo: every stage that exists, run on the shipped sample study, atlas and form."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from weeke_pipeline.atlas.bundle import load_atlas
from weeke_pipeline.resources import data_dir, default_atlas_dir
from weeke_pipeline.scoring import load_form, score_items

DEMO_FORM = "weeke-consensus-2025"


def _say(msg: str) -> None:
    print(f"[weeke demo] {msg}", flush=True)


def run_demo(out: Path) -> dict[str, Path]:
    """Run the demo into ``out``; returns a label -> path map of what it wrote."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    sample = data_dir("sample_data")
    atlas = load_atlas(default_atlas_dir())
    form = load_form(DEMO_FORM)
    subjects = sorted(p.name for p in sample.glob("sub-*") if p.is_dir())
    _say(f"sample study {sample}: {len(subjects)} subjects; atlas {atlas.name} {atlas.version}; "
         f"form {form.id} {form.version}")

    # reference scores: what a perfect reader would score from the planted injuries
    rows = []
    for sub in subjects:
        truth = json.loads((sample / sub / "truth" / f"{sub}_truth.json").read_text())
        result = score_items(form, truth["weeke"])
        rows.append({"participant_id": sub, "pattern": truth["pattern"],
                     **{k: v for k, v in result.subscores.items()},
                     "total": result.total, "complete": result.complete})
        _say(f"{sub}: planted pattern {truth['pattern']}, reference Weeke total {result.total}")
    truth_tsv = out / "reference_scores.tsv"
    with truth_tsv.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return {"reference Weeke scores": truth_tsv}
