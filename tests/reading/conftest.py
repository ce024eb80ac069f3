"""Fixtures for the reading-app tests: Django configured once per session on SQLite (or on
PostgreSQL when WEEKE_READING_BACKEND=postgres, see test_reading_postgres.py), each test inside
a transaction rolled back at its end, users per role and small NIfTI cases.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import numpy as np
import pytest

# --------------------------------------------------------------------------------------------
# TEMPORARY score engine stand-in, used ONLY while weeke_pipeline.scoring has not landed on main.
# It follows /work/SCORING_CONTRACT.md (form weeke-consensus-2025, item table of
# shared/reference/weeke_score.md). Delete this block once the real engine is merged.
try:
    import weeke_pipeline.scoring  # noqa: F401
except ImportError:  # pragma: no cover - goes away with the real engine
    import hashlib
    import json
    import types
    from dataclasses import dataclass, field

    class FormError(ValueError):
        pass

    class ScoringError(ValueError):
        def __init__(self, msg: str, item: str | None = None) -> None:
            super().__init__(msg)
            self.item = item

    @dataclass(frozen=True)
    class Extent:
        value: int
        label: str

    @dataclass(frozen=True)
    class Subscore:
        id: str
        label: str
        max: int

    @dataclass(frozen=True)
    class Item:
        id: str
        subscore: str
        label: str
        lateralised: bool
        extents: tuple
        max_extent: int
        max_score: int
        sequences: tuple = ()
        help: str = ""

    _T = [
        ("gm_thalamus", "grey_matter", "Thalamus", 1, 2),
        ("gm_basal_ganglia", "grey_matter", "Basal ganglia", 1, 2),
        ("gm_plic", "grey_matter", "PLIC", 1, 2),
        ("gm_brainstem", "grey_matter", "Brainstem", 1, 2),
        ("gm_perirolandic", "grey_matter", "Perirolandic cortex", 1, 2),
        ("gm_hippocampus", "grey_matter", "Hippocampus", 1, 1),
        ("wm_cortex", "white_matter_cortex", "Cortex", 1, 2),
        ("wm_white_matter", "white_matter_cortex", "White matter", 1, 2),
        ("wm_pwml", "white_matter_cortex", "PWML", 1, 2),
        ("wm_haemorrhage", "white_matter_cortex", "Haemorrhage", 1, 2),
        ("wm_optic_radiation", "white_matter_cortex", "Optic radiation", 1, 2),
        ("wm_corpus_callosum", "white_matter_cortex", "Corpus callosum", 0, 1),
        ("cb_cerebellum", "cerebellum", "Cerebellum", 1, 2),
        ("cb_haemorrhage", "cerebellum", "Cerebellar haemorrhage", 1, 2),
        ("add_ivh", "additional", "IVH", 0, 1),
        ("add_sdh", "additional", "Subdural haemorrhage", 0, 1),
        ("add_csvt", "additional", "CSVT", 0, 2),
    ]

    @dataclass(frozen=True)
    class Form:
        id: str
        version: str
        title: str
        total_max: int
        subscores: tuple
        items: tuple
        sha256: str = ""
        _d: dict = field(default_factory=dict, repr=False)

        def item(self, item_id: str) -> Item:
            for i in self.items:
                if i.id == item_id:
                    return i
            raise KeyError(item_id)

        def as_dict(self) -> dict:
            return self._d

    def _form() -> Form:
        items = tuple(
            Item(
                i,
                s,
                lab,
                bool(lat),
                tuple(Extent(v, ("none", "focal", "extensive")[v]) for v in range(mx + 1)),
                mx,
                mx + (2 if lat else 0),
                ("T1w", "T2w"),
            )
            for i, s, lab, lat, mx in _T
        )
        subs = tuple(
            Subscore(s, s.replace("_", " "), sum(i.max_score for i in items if i.subscore == s))
            for s in ("grey_matter", "white_matter_cortex", "cerebellum", "additional")
        )
        d = {"id": "weeke-consensus-2025", "version": "1.0.0", "items": [i.id for i in items]}
        sha = hashlib.sha256(json.dumps(d).encode()).hexdigest()
        return Form("weeke-consensus-2025", "1.0.0", "Weeke (stub)", 56, subs, items, sha, d)

    def load_form(form_id: str, version: str | None = None) -> Form:
        if form_id != "weeke-consensus-2025" or version not in (None, "1.0.0"):
            raise FormError(f"unknown form {form_id} {version}")
        return _form()

    @dataclass
    class ScoreResult:
        items: dict
        subscores: dict
        subscores_complete: dict
        total: int
        complete: bool
        missing: list
        not_assessable: list
        form: tuple

        def as_dict(self) -> dict:
            return {
                "form": {"id": self.form[0], "version": self.form[1]},
                "items": self.items,
                "subscores": self.subscores,
                "subscores_complete": self.subscores_complete,
                "total": self.total,
                "complete": self.complete,
                "missing": self.missing,
                "not_assessable": self.not_assessable,
            }

    def score_items(form: Form, payload: dict) -> ScoreResult:
        out, na = {}, []
        for iid, v in payload.get("items", {}).items():
            try:
                it = form.item(iid)
            except KeyError:
                raise ScoringError(f"unknown item {iid}", None) from None
            if v.get("assessable", True) is False:
                if not v.get("reason"):
                    raise ScoringError(f"{iid}: reason required", iid)
                out[iid] = {
                    "extent": None,
                    "laterality": None,
                    "score": None,
                    "assessable": False,
                    "reason": v["reason"],
                }
                na.append({"item": iid, "reason": v["reason"]})
                continue
            e, lat = v.get("extent"), v.get("laterality")
            if not isinstance(e, int) or isinstance(e, bool) or not 0 <= e <= it.max_extent:
                raise ScoringError(f"{iid}: extent out of range", iid)
            if it.lateralised and e > 0 and lat not in (1, 2):
                raise ScoringError(f"{iid}: laterality missing or not 1/2", iid)
            if lat is not None and (e == 0 or not it.lateralised):
                raise ScoringError(f"{iid}: laterality not allowed", iid)
            out[iid] = {
                "extent": e,
                "laterality": lat or 0,
                "score": e + (lat or 0),
                "assessable": True,
                "reason": None,
            }
        missing = [i.id for i in form.items if i.id not in out]
        subs = {
            s.id: sum(
                out[i.id]["score"] or 0 for i in form.items if i.subscore == s.id and i.id in out
            )
            for s in form.subscores
        }
        comp = {
            s.id: all(
                i.id in out and out[i.id]["assessable"] for i in form.items if i.subscore == s.id
            )
            for s in form.subscores
        }
        return ScoreResult(
            out,
            subs,
            comp,
            sum(subs.values()),
            all(comp.values()),
            missing,
            na,
            (form.id, form.version),
        )

    _mod = types.ModuleType("weeke_pipeline.scoring")
    _mod.__dict__.update(
        load_form=load_form,
        score_items=score_items,
        ScoringError=ScoringError,
        FormError=FormError,
        list_forms=lambda: [("weeke-consensus-2025", "1.0.0")],
    )
    sys.modules["weeke_pipeline.scoring"] = _mod
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
