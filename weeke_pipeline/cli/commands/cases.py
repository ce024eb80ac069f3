"""``weeke cases``: import cases for blinded reading, list them (coordinator view)."""

from __future__ import annotations

import argparse
from pathlib import Path

from weeke_pipeline.cli.commands._reading import add_db_arguments, setup

HELP = "import cases for reading (import OUTPUT) or list them with their reading codes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="import T1w/T2w/ADC(/FA) NIfTI images, one case per "
                         "subject and session (pipeline output or derivatives, or "
                         "sub-*/**/*_{T1w,T2w,ADC}.nii.gz + participants.tsv), of the sessions "
                         "the study reads (weeke study set --read-sessions), under random "
                         "reading codes")
    imp.add_argument("output", type=Path, help="folder to import from")
    imp.add_argument("--crop-margin-mm", type=float, default=15.0, metavar="MM",
                     help="crop images to the pipeline's brain mask plus this margin (default "
                     "15 mm: keeps subdural spaces and venous sinuses); smaller downloads")
    imp.add_argument("--no-crop", action="store_true", help="store the images whole")
    add_db_arguments(imp)
    lst = sub.add_parser("list", help="list cases: code, subject, session, age, sequences "
                         "(coordinator)")
    add_db_arguments(lst)


def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.errors import UsageError

    setup(args)
    from weeke_pipeline.reading.models import Case

    if args.action == "list":
        for c in Case.objects.order_by("code"):
            print(f"{c.code}\tsub-{c.subject}\t{'ses-' + c.session if c.session else '-'}\t"
                  f"{c.pma_label}\t{c.day_of_life}\t" + ",".join(c.sequences))
        return 0
    from weeke_pipeline.reading.importer import ImportProblem, import_cases
    from weeke_pipeline.reading.services import ReadingError

    try:
        if args.crop_margin_mm < 0:
            raise UsageError("--crop-margin-mm must not be negative")
        created, warnings = import_cases(
            args.output, crop_margin_mm=None if args.no_crop else args.crop_margin_mm)
    except ImportProblem as exc:
        raise UsageError(str(exc)) from exc
    except ReadingError as exc:  # the database is locked
        raise UsageError(f"{exc}: nothing imported") from exc
    for w in warnings:
        print(f"warning: {w}")
    print(f"imported {len(created)} case(s): {', '.join(created) or '-'}")
    return 0
