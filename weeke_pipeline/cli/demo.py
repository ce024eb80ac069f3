"""The demo: the whole path on the shipped sample study, atlas and form, DICOM to scores.

1. the batch pipeline (:mod:`weeke_pipeline.workflows.pipeline`) on ``sample_data/``:
   de-identified BIDS, atlas labels, region metrics (T1w, T2w, ADC, FA/MD), QC;
2. the reading application's database: demo accounts, the cases imported under random reading
   codes, two blinded reads per case and an adjudication where they differ. The demo readers
   are simulated: they score what a perfect reader would (the planted truth), the second reader
   disagreeing on one item of one case, so the adjudication path runs too;
3. the analysts' exports (reads, consensus, metrics and QC keyed by reading code, with data
   dictionaries and a REDCap import) and the agreement report with the automated injury index;
4. the reference scores of the sample study.

Re-running reuses what exists (pipeline cache, accounts, cases, reads): nothing is overwritten.
"""

from __future__ import annotations

import copy
import csv
import json
import logging
from pathlib import Path

from weeke_pipeline.atlas.bundle import load_atlas
from weeke_pipeline.constants import DEFAULT_FORM
from weeke_pipeline.resources import data_dir, default_atlas_dir
from weeke_pipeline.scoring import load_form, score_items

DEMO_FORM = DEFAULT_FORM
#: demo accounts (role, username); the demo password is printed, for trying the web app
DEMO_USERS = (("coordinator", "coordinator"), ("reader", "reader1"), ("reader", "reader2"),
              ("adjudicator", "adjudicator"), ("analyst", "analyst"))
DEMO_PASSWORD = "weeke-demo-Reading-2026"


def _say(msg: str) -> None:
    print(f"[weeke demo] {msg}", flush=True)


def _reference_scores(sample: Path, out: Path) -> Path:
    """What a perfect reader would score for each sample subject (from the planted truth)."""
    form = load_form(DEMO_FORM)
    rows = []
    for sub in sorted(p.name for p in sample.glob("sub-*") if p.is_dir()):
        truth = json.loads((sample / sub / "truth" / f"{sub}_truth.json").read_text())
        result = score_items(form, truth["weeke"])
        rows.append({"participant_id": sub, "pattern": truth["pattern"],
                     **dict(result.subscores), "total": result.total,
                     "complete": result.complete})
    path = out / "reference_scores.tsv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return path


def _pipeline(sample: Path, out: Path) -> Path:
    from weeke_pipeline.config import RunConfig
    from weeke_pipeline.workflows.pipeline import run_pipeline

    cfg = RunConfig(input_dir=str(sample), output_dir=str(out),
                    participants=str(sample / "participants.tsv"),
                    key_file=str(_demo_key(out)))
    summary = run_pipeline(cfg)
    for sub, status in summary.subjects.items():
        _say(f"pipeline {sub}: QC {status}")
    for sub, err in summary.errors.items():
        _say(f"pipeline {sub} FAILED: {err}")
    return Path(summary.qc_index)


def _demo_key(out: Path) -> Path:
    """The demo's project key (fixed: synthetic data; a real study keeps its own secret)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "demo_project_key.txt"
    if not path.exists():
        path.write_text("weeke-demo-project-key: synthetic data only\n")
    return path


def _simulated_items(truth: dict, disagree: bool) -> dict:
    items = copy.deepcopy(truth["weeke"]["items"])
    if disagree:
        # the second reader misses part of the most severe finding (a typical disagreement)
        worst = max(items, key=lambda k: items[k]["extent"])
        if items[worst]["extent"] > 0:
            items[worst]["extent"] -= 1
            if items[worst]["extent"] == 0:
                items[worst].pop("laterality", None)
        else:
            items[worst] = {"extent": 1, **({"laterality": 1} if worst not in
                            ("wm_corpus_callosum", "add_ivh", "add_sdh", "add_csvt") else {})}
    return {"items": items}


def _reading(pipeline_out: Path, sample: Path, data: Path) -> dict[str, int]:
    """Accounts, case import, simulated double reads and adjudication in the reading database."""
    from weeke_pipeline.reading import setup

    setup(data, None, migrate=True)
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from weeke_pipeline.reading import services
    from weeke_pipeline.reading.importer import import_cases
    from weeke_pipeline.reading.models import Adjudication, Case, Read, ReadBase

    user_model = get_user_model()
    users = {}
    for role, name in DEMO_USERS:
        user = user_model.objects.filter(username=name).first()
        if user is None:
            user = user_model(username=name, is_staff=role == "coordinator",
                              is_superuser=role == "coordinator")
            user.set_password(DEMO_PASSWORD)
            user.save()
            user.groups.add(Group.objects.get(name=role))
        users[name] = user
    created, warnings = import_cases(pipeline_out / "derivatives" / "weeke", user="demo")
    for w in warnings:
        if "already imported" not in w:
            _say(f"import: {w}")
    cases = list(Case.objects.order_by("subject"))
    disagree_on = cases[-1].subject if cases else None
    for case in cases:
        truth_file = sample / f"sub-{case.subject}" / "truth" / f"sub-{case.subject}_truth.json"
        if not truth_file.is_file():
            continue
        truth = json.loads(truth_file.read_text())
        for name in ("reader1", "reader2"):
            read = services.get_or_create_read(case, users[name])
            if read.status == ReadBase.DRAFT:
                payload = _simulated_items(truth, name == "reader2"
                                           and case.subject == disagree_on)
                services.save_draft(read, users[name], payload, read.version)
                read.refresh_from_db()
                services.sign(read, users[name], DEMO_PASSWORD, read.version)
        if services.needs_adjudication(case):
            adj = services.get_or_create_adjudication(case, users["adjudicator"])
            if adj.status == ReadBase.DRAFT:
                services.save_draft(adj, users["adjudicator"], {"items": truth["weeke"]["items"]},
                                    adj.version)
                adj.refresh_from_db()
                services.sign(adj, users["adjudicator"], DEMO_PASSWORD, adj.version)
    return {"cases": Case.objects.count(), "new cases": len(created),
            "signed reads": Read.objects.filter(status=ReadBase.SIGNED).count(),
            "adjudications": Adjudication.objects.filter(status=ReadBase.SIGNED).count()}


def run_demo(out: Path) -> dict[str, Path]:
    """Run the demo into ``out``; returns a label -> path map of what it wrote."""
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    logging.getLogger("nipype.workflow").setLevel(logging.WARNING)
    sample = data_dir("sample_data")
    atlas = load_atlas(default_atlas_dir())
    form = load_form(DEMO_FORM)
    subjects = sorted(p.name for p in sample.glob("sub-*") if p.is_dir())
    _say(f"sample study {sample}: {len(subjects)} subjects; atlas {atlas.name} {atlas.version}; "
         f"form {form.id} {form.version}")

    _say("1/4 batch pipeline: de-identify, convert, register, measure, QC (a few minutes)")
    pipeline_out = out / "pipeline"
    qc_index = _pipeline(sample, pipeline_out)

    _say("2/4 reading database: accounts, cases under reading codes, double reads, adjudication")
    reading = out / "reading"
    counts = _reading(pipeline_out, sample, reading)
    _say("reading: " + ", ".join(f"{k} {v}" for k, v in counts.items()))

    _say("3/4 analyst tables: exports with data dictionaries, agreement report, injury index")
    tables, agreement = out / "tables", out / "agreement"
    import argparse

    from weeke_pipeline.cli.commands import agreement as agreement_cmd
    from weeke_pipeline.cli.commands import export as export_cmd

    common = ["--data", str(reading), "--metrics", str(pipeline_out), "--as-user", "analyst"]
    for name, command, argv in (("export", export_cmd, ["--out", str(tables), *common]),
                                ("agreement", agreement_cmd, ["--out", str(agreement), *common])):
        parser = argparse.ArgumentParser(prog=f"weeke {name}")
        command.add_arguments(parser)
        if command.run(parser.parse_args(argv)) != 0:
            raise RuntimeError(f"weeke {name} failed in the demo")

    _say("4/4 reference scores of the sample study")
    reference = _reference_scores(sample, out)
    return {
        "BIDS raw (de-identified)": pipeline_out / "rawdata",
        "derivatives (labels, metrics)": pipeline_out / "derivatives" / "weeke",
        "group metrics table": pipeline_out / "derivatives" / "weeke" / "group_metrics.tsv",
        "QC report index": qc_index,
        "reading database folder": reading,
        "analyst tables (export)": tables,
        "agreement report": agreement / "agreement_report.html",
        "reference Weeke scores": reference,
    }


def serve_hint(out: Path) -> str:
    data = out.resolve() / "reading"
    return (f"try the reading app: weeke serve --data {data}  "
            f"(users: {', '.join(n for _, n in DEMO_USERS)}; password {DEMO_PASSWORD}); "
            f"FA is imported but hidden from readers until: weeke study set --data {data} "
            "--reader-sequences T1w,T2w,ADC,FA --reason 'FA allowed by protocol'")
