"""``weeke users``: add reading-app accounts with a role."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from weeke_pipeline.cli.commands._reading import add_db_arguments, setup

HELP = "manage reading-app accounts (add USERNAME --role reader|adjudicator|coordinator|analyst)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="add an account (password from a prompt, "
                         "--password-file or $WEEKE_PASSWORD)")
    add.add_argument("username")
    add.add_argument("--role", required=True,
                     choices=["reader", "adjudicator", "coordinator", "analyst"])
    add.add_argument("--password-file", type=Path, default=None,
                     help="file whose first line is the password")
    add_db_arguments(add)
    lst = sub.add_parser("list", help="list accounts and roles")
    add_db_arguments(lst)


def _password(args: argparse.Namespace) -> str:
    from weeke_pipeline.errors import UsageError

    if args.password_file is not None:
        try:
            return args.password_file.read_text().splitlines()[0]
        except (OSError, IndexError) as exc:
            raise UsageError(f"{args.password_file}: cannot read a password ({exc})") from exc
    if os.environ.get("WEEKE_PASSWORD"):
        return os.environ["WEEKE_PASSWORD"]
    if not sys.stdin.isatty():
        raise UsageError("no password: use --password-file, $WEEKE_PASSWORD or a terminal")
    first = getpass.getpass(f"password for {args.username}: ")
    if first != getpass.getpass("again: "):
        raise UsageError("the two passwords differ")
    return first




def run(args: argparse.Namespace) -> int:
    from weeke_pipeline.errors import UsageError

    setup(args)
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    User = get_user_model()
    if args.action == "list":
        for user in User.objects.order_by("username"):
            groups = ",".join(user.groups.values_list("name", flat=True))
            print(f"{user.username}\t{groups}\t{'active' if user.is_active else 'inactive'}")
        return 0

    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError
    from django.db import transaction

    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.services import ReadingError, assign_cases, ensure_unlocked

    try:
        ensure_unlocked()
    except ReadingError as exc:
        raise UsageError(f"{exc}: no account added") from exc
    from weeke_pipeline.reading.accounts import USERNAME_VALIDATOR

    try:
        USERNAME_VALIDATOR(args.username)
    except ValidationError as exc:
        raise UsageError(f"user name {args.username!r} refused: " + " ".join(exc.messages)
                         ) from exc
    if User.objects.filter(username=args.username).exists():
        raise UsageError(f"user {args.username!r} exists already")
    password = _password(args)
    user = User(username=args.username)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise UsageError("password refused: " + " ".join(exc.messages)) from exc
    with transaction.atomic():
        user.set_password(password)
        # the coordinator administers the app (Django admin site)
        user.is_staff = user.is_superuser = args.role == "coordinator"
        user.save()
        user.groups.add(Group.objects.get(name=args.role))
        audit.record("cli", "user.create", object_type="user", object_id=user.username,
                     new={"role": args.role})
    n = assign_cases() if args.role == "reader" else 0
    print(f"added {args.role} {args.username}" + (f" ({n} case(s) assigned)" if n else ""))
    return 0
