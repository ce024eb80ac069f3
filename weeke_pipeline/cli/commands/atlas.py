"""``weeke atlas``: build, validate, list and import atlas bundles."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

HELP = "atlas bundles: fetch (dHCP via TemplateFlow), import, validate, list, build-default"

SHIPPED_MAPPINGS = {"drawem": "drawem_all_labels.tsv", "dhcp": "dhcp_vol_structures.tsv",
                    "albert": "albert_labels.tsv"}
SHIPPED_TISSUE_TABLES = {"drawem": "drawem_tissues.tsv"}
DERIVE_HELP = ("Weeke regions to add by rule where the atlas lacks them: all (default), none, or "
               "a comma list of plic, optic_radiation, perirolandic_cortex, vermis "
               "(docs/atlases.md)")


def _derive(value: str) -> tuple[str, ...]:
    from weeke_pipeline.atlas.derived import DERIVABLE

    if value == "all":
        return DERIVABLE
    if value == "none":
        return ()
    out = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in out if v not in DERIVABLE]
    if bad:
        raise argparse.ArgumentTypeError(f"no rule for {', '.join(bad)}; choose from all, none, "
                                         + ", ".join(DERIVABLE))
    return out


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
    i.add_argument("--mapping", default=None,
                   help="mapping table TSV, or a shipped one: " + ", ".join(SHIPPED_MAPPINGS)
                   + " (default: albert with --tissues, else drawem)")
    i.add_argument("--tissues", type=Path, help="Draw-EM 9-class tissue map on the same grid: "
                   "splits lobe labels that cover cortex and white matter (ALBERTs' 50 labels)")
    i.add_argument("--tissue-table", default=None,
                   help="numbering of the tissue map (TSV index/name/class; default: Draw-EM's "
                   "9 classes, atlases/mappings/drawem_tissues.tsv)")
    i.add_argument("--derive", type=_derive, default="all", help=DERIVE_HELP)
    i.add_argument("--out", type=Path, required=True, help="output bundle folder")
    i.add_argument("--name", help="atlas name, e.g. albert-01 (default: the --out folder's name)")
    i.add_argument("--pma-weeks", type=float, required=True,
                   help="postmenstrual age of the template (weeks)")
    i.add_argument("--licence", "--license", dest="licence", required=True,
                   help="licence of the source atlas, e.g. CC-BY-4.0")
    i.add_argument("--t1w", type=Path, help="T1w template on the same grid")
    i.add_argument("--brain-mask", type=Path, help="brain mask (default: from the labels)")
    i.add_argument("--resolution", default="native", metavar="MM|native",
                   help="resample all inputs to MM isotropic first (templates linear, labels "
                   "nearest neighbour); default: keep the grid")
    f = sub.add_parser("fetch", help="fetch a real neonatal atlas with the TemplateFlow client "
                       "and build one bundle per week (offline from a copied TEMPLATEFLOW_HOME)")
    f.add_argument("source", choices=["dhcp"], help="dhcp: the dHCP volumetric atlas "
                   "(tpl-dhcpVol, Schuh et al., weeks 36-44, CC BY 4.0)")
    f.add_argument("--cohort", nargs="+", default=["36..44"], metavar="WEEKS",
                   help="postmenstrual weeks: 40, 38,40 or 36..44 (default: all, 36..44)")
    f.add_argument("--out", type=Path, default=None, help="folder for the bundles "
                   "(default: $WEEKE_ATLAS_DIR or ~/.local/share/weeke/atlases; `weeke run "
                   "--atlas dhcp-vol-40w` finds them there)")
    f.add_argument("--derive", type=_derive, default="all", help=DERIVE_HELP)
    f.add_argument("--no-t1w", action="store_true", help="skip the T1w templates")
    f.add_argument("--resolution", default="1", metavar="MM|native",
                   help="resample the 0.5 mm templates to MM isotropic (default 1: the "
                   "resolution infants are registered at, 8x fewer voxels), or keep them native")


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.atlas.bundle import AtlasError, build_default, import_atlas, load_atlas
    from weeke_pipeline.errors import UsageError
    from weeke_pipeline.resources import data_dir, default_atlas_dir, user_atlas_dir

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
            user = user_atlas_dir()
            for folder in (root, user):
                if not folder.is_dir():
                    continue
                for d in sorted(p for p in folder.iterdir() if (p / "atlas.json").is_file()):
                    try:
                        b = load_atlas(d)
                    except AtlasError as exc:
                        print(f"{d.name}\tINVALID\t{d}\t{exc}")
                        continue
                    print(f"{b.name}\t{b.version}\t{d}")
            for key, fname in SHIPPED_MAPPINGS.items():
                print(f"mapping {key}\t{root / 'mappings' / fname}")
        elif args.atlas_command == "import":
            maps = data_dir("atlases") / "mappings"
            key = args.mapping or ("albert" if args.tissues else "drawem")
            mapping = maps / SHIPPED_MAPPINGS[key] if key in SHIPPED_MAPPINGS else Path(key)
            table = args.tissue_table
            table = (maps / SHIPPED_TISSUE_TABLES[table] if table in SHIPPED_TISSUE_TABLES
                     else Path(table) if table else None)
            files = {"T2w": args.t2w, "dseg": args.dseg, "T1w": args.t1w,
                     "brain_mask": args.brain_mask, "tissues": args.tissues}
            voxel = _resolution(args.resolution)
            originals = dict(files)
            with tempfile.TemporaryDirectory(prefix="weeke-import-") as tmp:
                if voxel:
                    from weeke_pipeline.atlas.fetch import resample

                    for p in files.values():
                        if p is not None and not Path(p).is_file():
                            raise UsageError(f"{p}: no such file")
                    files = {**files, **resample({k: Path(v) for k, v in files.items() if v},
                                                 voxel, Path(tmp))}
                bundle = import_atlas(t2w=files["T2w"], dseg=files["dseg"], mapping=mapping,
                                      out_dir=args.out, name=args.name or args.out.resolve().name,
                                      pma_weeks=args.pma_weeks, licence=args.licence,
                                      t1w=files["T1w"], brain_mask=files["brain_mask"],
                                      tissues=files["tissues"], tissue_table=table,
                                      derive=args.derive,
                                      extra_meta=_resampled_meta(voxel, originals, mapping,
                                                                 table) if voxel else None)
            _report(bundle, args.out, "imported")
        elif args.atlas_command == "fetch":
            from weeke_pipeline.atlas.fetch import fetch_dhcp, parse_cohorts, templateflow_home

            weeks = parse_cohorts(args.cohort)
            voxel = _resolution(args.resolution)
            out = args.out or user_atlas_dir()
            print(f"TemplateFlow home: {templateflow_home()}")
            for bundle in fetch_dhcp(weeks, out, derive=args.derive, with_t1w=not args.no_t1w,
                                     voxel_mm=voxel):
                _report(bundle, bundle.path, "built")
    except AtlasError as exc:
        raise UsageError(str(exc)) from None
    return 0


def _resolution(value: str) -> float | None:
    from weeke_pipeline.errors import UsageError

    try:
        voxel = None if value == "native" else float(value)
    except ValueError:
        raise UsageError(f"--resolution {value!r}: give millimetres (e.g. 1) or native") from None
    if voxel is not None and not 0.2 <= voxel <= 3.0:
        raise UsageError(f"--resolution {voxel}: choose 0.2-3 mm")
    return voxel


def _resampled_meta(voxel: float, originals: dict[str, Path | None], mapping: Path,
                    table: Path | None) -> dict[str, object]:
    """atlas.json keys of a resampled import: the resampling, and the hashes of the files the
    user gave (not of the resampled copies)."""
    from weeke_pipeline.atlas.bundle import sha256

    files = {**originals, "mapping": mapping, "tissue_table": table}
    return {"resampled": {"voxel_mm": voxel},
            "source_files": {role: {"file": Path(p).name, "sha256": sha256(Path(p))}
                             for role, p in files.items() if p is not None}}


def _report(bundle: object, where: Path, verb: str) -> None:
    meta = bundle.meta  # type: ignore[attr-defined]
    derived = meta.get("derived_regions", {})
    made = [r for r, d in derived.items() if not d.get("skipped")]
    missing = meta.get("missing_regions", [])
    print(f"{verb} {bundle.name} in {where}; derived by rule: "  # type: ignore[attr-defined]
          f"{', '.join(made) or 'none'}; regions this atlas lacks: {', '.join(missing) or 'none'}")
