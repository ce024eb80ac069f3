"""``weeke demo``: the whole path on the embedded defaults (sample study, shipped atlas, form)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("run the end-to-end demo on the shipped sample study, atlas and Weeke form, "
        "and say where the outputs are")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("weeke-demo-output"),
                   help="output folder (default: ./weeke-demo-output)")


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.cli.demo import run_demo, serve_hint

    outputs = run_demo(args.out)
    print("\nweeke demo finished. Outputs:")
    for label, path in outputs.items():
        print(f"  {label:<30} {path}")
    print(serve_hint(args.out))
    return 0
