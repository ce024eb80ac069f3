"""Benchmark (issue 6): `weeke agreement` for 200 cases (target < 10 s) and `weeke export` of
1,000 cases x 3 reads (two reads + adjudication; target < 5 s), through the CLI entry point on
a fresh SQLite reading database in a temporary folder.

Each timing covers the whole command as run in a Python session with Django already set up
(database queries, score engine, tables, dictionaries, files, audit entry); the one-off
imports (Django, pandas, pingouin, matplotlib) are timed separately by a warm-up run. Prints
the time, the target and their ratio.
Run: python benchmarks/bench_analyst.py [--cases 1000] [--agreement-cases 200]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import numpy as np


def _items(form, rng: np.random.Generator, p_abnormal: float = 0.15) -> dict:  # type: ignore[no-untyped-def]
    items = {}
    for it in form.items:
        e = int(rng.integers(1, it.max_extent + 1)) if rng.random() < p_abnormal else 0
        items[it.id] = {"extent": e, **({"laterality": int(rng.integers(1, 3))}
                                        if it.lateralised and e > 0 else {})}
    return items


def populate(start: int, n: int, users: dict, rng: np.random.Generator) -> None:  # type: ignore[type-arg]
    """n cases, each with two signed reads (read 2 differs on ~2 items) and an adjudication."""
    from django.utils import timezone

    from weeke_pipeline.reading.models import Adjudication, Case, Read
    from weeke_pipeline.scoring import load_form

    form = load_form("weeke-consensus-2025")
    now = timezone.now()
    cases = Case.objects.bulk_create([Case(code=f"B{i:05d}", subject=f"BENCH{i:05d}")
                                      for i in range(start, start + n)])
    reads, adjs = [], []
    common = {"form_id": form.id, "form_version": form.version, "form_sha256": form.sha256,
              "status": "signed", "signed_at": now}
    for case in cases:
        a = _items(form, rng)
        b = dict(a)
        for item_id in rng.choice([it.id for it in form.items], size=2, replace=False):
            b[item_id] = _items(form, rng, 0.5)[item_id]
        reads += [Read(case=case, reader=users["r1"], items={"items": a}, **common),
                  Read(case=case, reader=users["r2"], items={"items": b}, **common)]
        adjs.append(Adjudication(case=case, adjudicator=users["adj"], items={"items": a},
                                 **common))
    Read.objects.bulk_create(reads)
    Adjudication.objects.bulk_create(adjs)


def timed(argv: list[str]) -> float:
    from weeke_pipeline.cli import main

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    dt = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"weeke {' '.join(argv)} failed ({rc})")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--agreement-cases", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "data"
        t0 = time.perf_counter()
        from weeke_pipeline.reading import setup

        setup(data, None, migrate=True)
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        users = {}
        for name, role in (("r1", "reader"), ("r2", "reader"), ("adj", "adjudicator"),
                           ("stat", "analyst")):
            users[name] = get_user_model().objects.create_user(name, password="x" * 12)
            users[name].groups.add(Group.objects.get(name=role))
        rng = np.random.default_rng(0)
        populate(0, 5, users, rng)
        db = ["--data", str(data), "--as-user", "stat"]
        warm = timed(["agreement", "--out", str(root / "warm"), "--n-boot", "100", *db])
        timed(["export", "--out", str(root / "warm-export"), *db])
        print(f"set-up + warm-up (imports, migrations, 5 cases): "
              f"{time.perf_counter() - t0:.1f} s (agreement warm-up {warm:.1f} s)")
        populate(5, args.agreement_cases - 5, users, rng)
        t = timed(["agreement", "--out", str(root / "agreement"), *db])
        print(f"weeke agreement, {args.agreement_cases} cases (2000 bootstrap resamples): "
              f"{t:.2f} s; target 10 s; ratio {t / 10:.2f}")
        populate(args.agreement_cases, args.cases - args.agreement_cases, users, rng)
        for fmt in ("tsv", "csv"):
            t = timed(["export", "--out", str(root / f"export-{fmt}"), "--format", fmt, *db])
            print(f"weeke export --format {fmt}, {args.cases} cases x 3 reads: {t:.2f} s; "
                  f"target 5 s; ratio {t / 5:.2f}")


if __name__ == "__main__":
    main()
