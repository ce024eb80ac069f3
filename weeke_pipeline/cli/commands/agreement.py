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
    from weeke_pipeline.analysis import tables as tb
    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.exports import read_records

    records = [r for r in read_records() if r["status"] == "signed"]
    long = tb.reads_long_from_records(records)
    pairs = ag.paired_reads(long)
    if pairs.empty or not pairs.groupby("reading_code")["read_number"].nunique().eq(2).any():
        raise UsageError("no case has two signed reads yet: nothing to compare")
    index = None
    warnings: list[str] = []
    if args.metrics is not None:
        index, warnings = _index(args, long)
    an.prepare_out(args.out, "agreement")
    try:
        paths = ag.write_agreement_report(long, args.out, n_boot=args.n_boot, seed=args.seed,
                                          index_agreement=index["agreement"] if index else None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    files = [p for p in paths.values()]
    files += [p.with_suffix(".json") for p in files if p.suffix == ".tsv"]
    if index:
        form = index["form"]
        for name, table, dictionary in (
                ("injury_index_agreement", index["agreement"], tb.agreement_items_dictionary()),
                ("injury_index_suggested", index["suggested"], index["suggested_dict"]),
                ("injury_index_regions", index["regions"], index["regions_dict"])):
            p = tb.write_table(table, args.out / f"{name}.tsv", dictionary)
            files += [p, p.with_suffix(".json")]
    else:
        form = None
    n_pairs = int(pairs.groupby("reading_code")["read_number"].nunique().eq(2).sum())
    audit.record(an.actor(user), "analysis.agreement", object_type="analysis",
                 new={"cases_with_two_signed_reads": n_pairs,
                      "injury_index": index is not None, "n_boot": args.n_boot,
                      "seed": args.seed})
    an.write_manifest(args.out, "agreement", files, cases_with_two_signed_reads=n_pairs,
                      injury_index=index is not None, warnings=warnings,
                      form={"id": form.id, "version": form.version} if form else None)
    for w in warnings:
        print(f"warning: {w}")
    print(f"agreement report for {n_pairs} case(s): {paths['html']}")
    return 0


def _index(args: argparse.Namespace, long: object) -> tuple[dict[str, object], list[str]]:
    """Injury index of each case with one pipeline session, and its agreement with the
    consensus (computed here, written to the analyst's folder only: never to the database)."""
    import pandas as pd

    from weeke_pipeline.analysis import derivative_tables as dt
    from weeke_pipeline.analysis import injury_index as ii
    from weeke_pipeline.analysis import tables as tb
    from weeke_pipeline.analysis.agreement import index_vs_consensus
    from weeke_pipeline.errors import UsageError
    from weeke_pipeline.reading.exports import case_keys

    try:
        der = dt.load(args.metrics, case_keys())
        ref = ii.load_reference(args.index_reference, atlas_dir=args.atlas)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    warnings = list(der.warnings)
    m = der.metrics
    sessions = m.groupby("reading_code")["session"].nunique()
    multi = sorted(sessions[sessions > 1].index)
    if multi:
        warnings.append(f"{len(multi)} case(s) have several pipeline sessions (the case does "
                        "not say which was read): left out of the injury index: "
                        + ", ".join(multi))
    m = m[~m["reading_code"].isin(multi)].rename(columns={"reading_code": "subject"})
    if m.empty:
        raise UsageError(f"{args.metrics}: no region metrics of any case for the injury index")
    from weeke_pipeline.reading.services import get_form

    cons = tb.consensus(long)
    versions = cons[["form_id", "form_version"]].dropna().drop_duplicates()
    form = get_form(*versions.iloc[0]) if len(versions) else get_form()
    regions, suggested = ii.injury_index(m, ref, form_id=form.id)
    regions = regions.rename(columns={"subject": "reading_code"})
    suggested = suggested.rename(columns={"subject": "reading_code"})
    resolved = cons[cons["consensus_source"] != "unresolved"]
    agreement = index_vs_consensus(resolved, suggested, form, n_boot=args.n_boot,
                                   seed=args.seed) if len(resolved) else pd.DataFrame()
    return ({"agreement": agreement, "suggested": suggested, "regions": regions, "form": form,
             "suggested_dict": ii.suggested_dictionary(form),
             "regions_dict": ii.regions_dictionary()}, warnings)
