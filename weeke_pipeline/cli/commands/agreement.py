"""``weeke agreement``: inter-rater agreement of the signed reads (per item kappa with CI,
Gwet's AC2, percent agreement; ICC and Bland-Altman for subscores and total; HTML report), and
with ``--metrics`` the automated injury index against the readers' consensus (analysts only:
the reading application never shows the index)."""

from __future__ import annotations

import argparse
from pathlib import Path

from weeke_pipeline.cli.commands._analyst import N_BOOT, SEED, add_common

HELP = ("reader agreement report over the signed reads (kappa, AC2, ICC, Bland-Altman, HTML); "
        "with --metrics also the injury index vs the consensus")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, out_help="folder to write (new, empty, or an earlier agreement report)")
    parser.add_argument("--metrics", type=Path, default=None, metavar="PIPELINE_OUTPUT",
                        help="`weeke run` output folder: add the automated injury index's "
                        "agreement with the consensus (analysts only)")
    parser.add_argument("--index-reference", default="atlas", metavar="atlas|FILE",
                        help="normative reference of the injury index: 'atlas' (the atlas "
                        "templates, default), a TSV of normal subjects' long metrics, or a "
                        "saved reference TSV (docs/injury_index.md)")
    parser.add_argument("--atlas", type=Path, default=None, metavar="DIR",
                        help="atlas bundle for --index-reference atlas (default: shipped)")
    parser.add_argument("--n-boot", type=int, default=N_BOOT,
                        help=f"bootstrap resamples (default {N_BOOT})")
    parser.add_argument("--seed", type=int, default=SEED,
                        help=f"bootstrap seed (default {SEED})")


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.cli.commands import _analyst as an
    from weeke_pipeline.errors import UsageError

    if args.n_boot < 100:
        raise UsageError("--n-boot must be at least 100")
    user = an.start(args)
    from weeke_pipeline.analysis import agreement as ag
    from weeke_pipeline.analysis.export import prepare_out, write_manifest
    from weeke_pipeline.analysis.reads import reads_long_from_records
    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.exports import case_keys, read_records

    long = reads_long_from_records([r for r in read_records() if r["status"] == "signed"])
    n_pairs = ag.cases_with_two_reads(long)
    if not n_pairs:
        raise UsageError("no case has two signed reads yet: nothing to compare")
    index = None
    warnings: list[str] = []
    if args.metrics is not None:
        index, warnings = ag.injury_index_agreement(
            args.metrics, long, case_keys(), reference=args.index_reference,
            atlas_dir=args.atlas, n_boot=args.n_boot, seed=args.seed)
    prepare_out(args.out, "agreement")
    try:
        paths = ag.write_agreement_report(long, args.out, n_boot=args.n_boot, seed=args.seed,
                                          index_agreement=index["agreement"] if index else None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    files = [p for p in paths.values()]
    files += [p.with_suffix(".json") for p in files if p.suffix == ".tsv"]
    form = index["form"] if index else None
    if index:
        files += ag.write_injury_index_tables(index, args.out)
    audit.record(an.actor(user), "analysis.agreement", object_type="analysis",
                 new={"cases_with_two_signed_reads": n_pairs,
                      "injury_index": index is not None, "n_boot": args.n_boot,
                      "seed": args.seed})
    write_manifest(args.out, "agreement", files, cases_with_two_signed_reads=n_pairs,
                   injury_index=index is not None, warnings=warnings,
                   form={"id": form.id, "version": form.version} if form else None)
    for w in warnings:
        print(f"warning: {w}")
    print(f"agreement report for {n_pairs} case(s): {paths['html']}")
    return 0
