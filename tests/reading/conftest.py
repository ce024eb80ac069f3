"""Fixtures for the reading-app tests: Django configured once per session on SQLite (or on
PostgreSQL when WEEKE_READING_BACKEND=postgres, see test_reading_postgres.py), each test inside
a transaction rolled back at its end, users per role and small NIfTI cases.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import numpy as np
import pytest

# --------------------------------------------------------------------------------------------

IDENTIFIER = "DOE^JANE-MRN4471"  # planted in image headers: must never reach a page


def _database_url(tmp: Path) -> tuple[str | None, str | None]:
    """(url, name of a throwaway PostgreSQL database to drop) for the chosen backend."""
    if os.environ.get("WEEKE_READING_BACKEND") != "postgres":
        return None, None
    base = os.environ["WEEKE_TEST_POSTGRES_URL"]
    import psycopg

    name = "weeke_test_" + secrets.token_hex(4)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base)
    return urlunsplit(parts._replace(path="/" + name)), name


@pytest.fixture(scope="session")
def reading_app(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Django configured for the reading app with a migrated, empty database."""
    from django.test.utils import setup_test_environment

    from weeke_pipeline.reading import setup

    data = tmp_path_factory.mktemp("reading-data")
    url, pg_name = _database_url(data)
    setup(
        data, url, migrate=True, PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]
    )
    setup_test_environment()
    yield data
    if pg_name:
        from django.db import connections

        connections.close_all()
        import psycopg

        with psycopg.connect(os.environ["WEEKE_TEST_POSTGRES_URL"], autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


@pytest.fixture()
def db(reading_app: Path):  # type: ignore[no-untyped-def]
    """Run the test inside a transaction that is rolled back afterwards."""
    from django.db import transaction

    class Rollback(Exception):
        pass

    try:
        with transaction.atomic():
            yield reading_app
            raise Rollback
    except Rollback:
        pass


PASSWORD = "correct-horse-battery"


@pytest.fixture()
def make_user(db: Path):  # type: ignore[no-untyped-def]
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    def make(username: str, role: str):  # type: ignore[no-untyped-def]
        user = get_user_model().objects.create_user(username, password=PASSWORD)
        user.groups.add(Group.objects.get(name=role))
        if role == "coordinator":
            user.is_staff = user.is_superuser = True
            user.save()
        return user

    return make


def write_study(root: Path, subjects: tuple[str, ...] = ("TESTID1234", "TESTID5678")) -> Path:
    """A tiny study in the documented import layout, with identifiers planted in headers."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    lines = ["participant_id\tpma_weeks\tday_of_life"]
    for n, sub in enumerate(subjects):
        anat = root / f"sub-{sub}" / "anat"
        anat.mkdir(parents=True)
        for seq in ("T1w", "T2w", "ADC"):
            img = nib.Nifti1Image(rng.random((12, 14, 10), dtype=np.float32) * 100, np.eye(4))
            img.header["descrip"] = IDENTIFIER.encode()
            img.header["aux_file"] = b"MRN4471"
            img.header["intent_name"] = b"JANE"
            nib.save(img, str(anat / f"sub-{sub}_{seq}.nii.gz"))
        lines.append(f"sub-{sub}\t{44 + n}+{n + 1}\t{28 + n}")
    (root / "participants.tsv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture()
def study(db: Path, make_user, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Two readers, an adjudicator, a coordinator, an analyst and two imported cases."""
    from weeke_pipeline.reading.importer import import_cases

    users = {
        name: make_user(name, role)
        for name, role in (
            ("reader1", "reader"),
            ("reader2", "reader"),
            ("reader3", "reader"),
            ("adj", "adjudicator"),
            ("coord", "coordinator"),
            ("analyst", "analyst"),
        )
    }
    codes, warnings = import_cases(write_study(tmp_path / "study"))
    # two readers per case, fewest cases first: reader1 reads both, reader2 and reader3 one each
    from weeke_pipeline.reading.models import Case

    shared = Case.objects.get(assignments__reader=users["reader2"])
    other = Case.objects.get(assignments__reader=users["reader3"])
    return {"users": users, "codes": codes, "warnings": warnings, "shared": shared, "other": other}
