"""``weeke atlas``: build, validate, list and import atlas bundles."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "atlas bundles: build-default, validate, list, import (dHCP / Draw-EM)"

SHIPPED_MAPPINGS = {"drawem": "drawem_all_labels.tsv", "dhcp": "dhcp_vol_structures.tsv"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="atlas_command", metavar="ACTION", required=True)
    b = sub.add_parser("build-default", help="regenerate the default phantom atlas bundle "
                       "(byte-identical on every run)")
    b.add_argument("--out", type=Path, default=None,
                   help="output folder (default: the shipped atlases/weeke-phantom)")
    v = sub.add_parser("validate", help="validate an atlas bundle folder")
    v.add_argument("path", type=Path)
    sub.add_parser("list", help="list the shipped atlas bundles and mapping tables")
    i = sub.add_parser("import", help="make a bundle from a real atlas: T2w template + label "
                       "map + mapping table")
    i.add_argument("--t2w", type=Path, required=True, help="T2w template (NIfTI)")
    i.add_argument("--dseg", type=Path, required=True, help="label map on the template's grid")
    i.add_argument("--mapping", required=True,
                   help="mapping table TSV, or a shipped one: " + ", ".join(SHIPPED_MAPPINGS))
    i.add_argument("--out", type=Path, required=True, help="output bundle folder")
    i.add_argument("--name", required=True, help="atlas name, e.g. dhcp-vol-40w")
    i.add_argument("--pma-weeks", type=float, required=True,
                   help="postmenstrual age of the template (weeks)")
    i.add_argument("--licence", required=True, help="licence of the source atlas, e.g. CC-BY-4.0")
    i.add_argument("--t1w", type=Path, help="T1w template on the same grid")
    i.add_argument("--brain-mask", type=Path, help="brain mask (default: from the labels)")


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.atlas.bundle import AtlasError, build_default, import_atlas, load_atlas
    from weeke_pipeline.errors import UsageError
    from weeke_pipeline.resources import data_dir, default_atlas_dir

    try:
        if args.atlas_command == "build-default":
            out = args.out or default_atlas_dir()
            bundle = build_default(out)
            print(f"built {bundle.name} {bundle.version} in {out}")
        elif args.atlas_command == "validate":
            bundle = load_atlas(args.path)
            print(f"ok: {bundle.name} {bundle.version}, {len(bundle.labels)} labels, "
                  f"missing regions: {', '.join(bundle.meta.get('missing_regions', [])) or 'none'}")
        elif args.atlas_command == "list":
            root = data_dir("atlases")
            for d in sorted(p for p in root.iterdir() if (p / "atlas.json").is_file()):
                b = load_atlas(d)
                print(f"{b.name}\t{b.version}\t{d}")
            for key, fname in SHIPPED_MAPPINGS.items():
                print(f"mapping {key}\t{root / 'mappings' / fname}")
        elif args.atlas_command == "import":
            mapping = (data_dir("atlases") / "mappings" / SHIPPED_MAPPINGS[args.mapping]
                       if args.mapping in SHIPPED_MAPPINGS else Path(args.mapping))
            for p in (args.t2w, args.dseg, mapping, args.t1w, args.brain_mask):
                if p is not None and not Path(p).is_file():
                    raise UsageError(f"{p}: no such file")
            bundle = import_atlas(t2w=args.t2w, dseg=args.dseg, mapping=mapping, out_dir=args.out,
                                  name=args.name, pma_weeks=args.pma_weeks, licence=args.licence,
                                  t1w=args.t1w, brain_mask=args.brain_mask)
            missing = bundle.meta.get("missing_regions", [])
            print(f"imported {bundle.name} into {args.out}; regions this atlas lacks: "
                  f"{', '.join(missing) or 'none'}")
    except AtlasError as exc:
        raise UsageError(str(exc)) from None
    return 0
