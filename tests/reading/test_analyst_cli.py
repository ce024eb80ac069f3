"""`weeke export`, `weeke agreement` and `weeke unblind` over the reading database (issue 6).

Run in-process (Django is configured once per test session, each test rolled back), so they
also run in the PostgreSQL rerun of tests/reading.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PASSWORD
from helpers import complete_items

TEXT_SUFFIXES = (".tsv", ".csv", ".json", ".html", ".svg")


# ------------------------------------------------------------------------------ helpers
def weeke(capsys, data: Path, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    from weeke_pipeline.cli import main

    capsys.readouterr()
    rc = main([*args, "--data", str(data)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def sign_read(case, user, items):  # type: ignore[no-untyped-def]
    from weeke_pipeline.reading import services

    read = services.get_or_create_read(case, user)
    services.save_draft(read, user, items, read.version)
    read.refresh_from_db()
    services.sign(read, user, PASSWORD, read.version)
    read.refresh_from_db()
    return read


BGT = {"gm_thalamus": {"extent": 2, "laterality": 2}, "gm_plic": {"extent": 1, "laterality": 1}}


@pytest.fixture()
def scored(study):  # type: ignore[no-untyped-def]
    """`shared`: reader1 and reader2 disagree, the adjudicator signs a consensus; `other`:
    reader1 and reader3 agree (one item not assessable, different free-text reasons)."""
    from weeke_pipeline.reading import services

    u, shared, other = study["users"], study["shared"], study["other"]
    sign_read(shared, u["reader1"], complete_items(**BGT))
    sign_read(shared, u["reader2"], complete_items())
    adj = services.get_or_create_adjudication(shared, u["adj"])
    services.save_draft(adj, u["adj"], complete_items(
        gm_thalamus={"extent": 1, "laterality": 2}), adj.version)
    adj.refresh_from_db()
    services.sign(adj, u["adj"], PASSWORD, adj.version)
    na = {"assessable": False, "reason": "motion"}
    sign_read(other, u["reader1"], complete_items(gm_hippocampus=na))
    sign_read(other, u["reader3"], complete_items(
        gm_hippocampus={"assessable": False, "reason": "movement artefact"}))
    return study


def audit_entries(action: str) -> list:  # type: ignore[type-arg]
    from weeke_pipeline.reading.models import AuditEntry

    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def all_text(folder: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(folder.iterdir())
                     if p.suffix in TEXT_SUFFIXES)


def read_tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)


def write_pipeline_output(root: Path, subjects: dict[str, dict], *,  # type: ignore[type-arg]
                          seed: int = 0) -> Path:
    """A `weeke run` output layout: per subject/session metrics TSV (+ sidecar) and QC JSON.
    ``subjects``: label -> {(region, hemisphere, metric): factor} injuries."""
    from weeke_pipeline.atlas.regions import REGIONS
    from weeke_pipeline.imaging import metrics

    base = {"t2w_norm": 1.0, "t1w_norm": 1.0, "adc_median": 1100.0, "adc_p10": 900.0,
            "t1w_p25_norm": 0.9, "t1w_p75_norm": 1.1, "t2w_p25_norm": 0.9,
            "t2w_p75_norm": 1.1, "volume_mm3": 1000.0}
    rng = np.random.default_rng(seed)
    for label, changes in subjects.items():
        rows = [{"subject": label, "region": r.region, "hemisphere": r.hemisphere,
                 "label": str(r.index), "metric": m,
                 "value": v * changes.get((r.region, r.hemisphere, m), 1.0)
                 * float(np.exp(rng.normal(0, 0.01)))}
                for r in REGIONS for m, v in base.items()]
        ses = root / "derivatives" / "weeke" / f"sub-{label}" / "ses-1m"
        metrics.write_metrics(pd.DataFrame(rows), ses / f"sub-{label}_ses-1m_metrics.tsv")
        (ses / "qc").mkdir(parents=True)
        doc = {"subject": f"sub-{label}_ses-1m", "status": "warn",
               "reasons": [f"snr 8.1 < 10 in sub-{label}_ses-1m", "figure of sub_"
                           f"{label}_ses_1m_wf failed"],
               "error": None, "numbers": {
                   "brain_volume_ml": 480.5, "label_coverage": 1.0, "missing_regions": [],
                   "has_t1w": True, "registration": {"to_atlas": {
                       "similarity_before": {"nmi": 1.1}, "similarity_after": {"nmi": 1.3},
                       "seconds": 12.0}}},
               "figures": {}}
        (ses / "qc" / f"sub-{label}_ses-1m_qc.json").write_text(json.dumps(doc))
    return root


# ------------------------------------------------------------------------------ export
def test_export_tables_dictionaries_consensus_redcap_and_audit(scored, tmp_path, capsys):
    from weeke_pipeline.analysis import tables as tb
    from weeke_pipeline.reading.models import Adjudication, Read
    from weeke_pipeline.scoring import load_form, score_items

    form = load_form("weeke-consensus-2025")
    out = tmp_path / "export"
    rc, _, err = weeke(capsys, _data(), "export", "--out", str(out), "--as-user", "analyst")
    assert rc == 0, err
    names = {"reads_long", "reads_wide", "consensus"}
    for n in names:
        assert (out / f"{n}.tsv").is_file() and (out / f"{n}.json").is_file()
    assert (out / "redcap_import.csv").is_file() and (out / "redcap_data_dictionary.csv").is_file()
    # every column documented, nothing more
    for n in names:
        df = read_tsv(out / f"{n}.tsv")
        side = json.loads((out / f"{n}.json").read_text())
        assert list(side) == list(df.columns), n
    long, wide = read_tsv(out / "reads_long.tsv"), read_tsv(out / "reads_wide.tsv")
    n_reads = Read.objects.count() + Adjudication.objects.count()
    assert len(long) == n_reads * len(form.items) and len(wide) == n_reads
    # round trip: the engine's scores of the stored items
    for obj in [*Read.objects.all(), *Adjudication.objects.all()]:
        res = score_items(form, obj.items)
        kind = "adjudication" if isinstance(obj, Adjudication) else "read"
        who = obj.adjudicator if kind == "adjudication" else obj.reader
        row = wide[(wide.reading_code == obj.case.code) & (wide.kind == kind)
                   & (wide.reader == f"rater{who.pk:03d}")]
        assert len(row) == 1
        row = row.iloc[0]
        assert row["total"] == res.total and bool(row["complete"]) == res.complete
        for sub in form.subscores:
            assert row[sub.id] == res.subscores[sub.id]
        for item_id, s in res.items.items():
            got = long[(long.reading_code == obj.case.code) & (long.kind == kind)
                       & (long.reader == row["reader"]) & (long.item == item_id)].iloc[0]
            if s.assessable:
                assert got["item_score"] == s.score and got["extent"] == s.extent
            else:
                assert got["item_state"] == "not_assessable"
    cons = read_tsv(out / "consensus.tsv").set_index("reading_code")
    shared, other = scored["shared"].code, scored["other"].code
    assert cons.loc[shared, "consensus_source"] == "adjudicated"
    assert cons.loc[shared, "gm_thalamus_score"] == 3  # the adjudicator's extent 1 bilateral
    # the app sends `other` to no adjudication (reasons differ only): consensus agrees
    assert cons.loc[other, "consensus_source"] == "agreed"
    assert not cons.loc[other, "grey_matter_complete"]
    # REDCap import validates against its dictionary, as files
    rec = pd.read_csv(out / "redcap_import.csv", dtype=str, keep_default_na=False)
    dd = pd.read_csv(out / "redcap_data_dictionary.csv", dtype=str, keep_default_na=False)
    assert tb.validate_redcap(rec, dd) == []
    assert set(rec["reading_code"]) == {shared, other}
    # pseudonymised: no subject label, no login name anywhere
    text = all_text(out)
    for secret in ("TESTID", "reader1", "reader2", "adj\t", "analyst"):
        assert secret not in text, secret
    # audited: who, what tables, row counts, without subject ids
    [entry] = audit_entries("export")
    assert entry.actor == "analyst"
    assert entry.new["with_subject_ids"] is False
    assert entry.new["tables"]["reads_long"] == len(long)
    assert entry.new["tables"]["consensus"] == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "export" and set(manifest["sha256"]) == set(manifest["files"])
    assert "redcap_import.csv" in manifest["files"]


def _data() -> Path:
    from django.conf import settings

    return Path(settings.WEEKE_DATA_DIR)


def test_subject_ids_only_for_a_coordinator(scored, tmp_path, capsys):
    data = _data()
    for who in (None, "analyst", "reader1"):
        out = tmp_path / f"refused-{who}"
        extra = ["--as-user", who] if who else []
        rc, _, err = weeke(capsys, data, "export", "--out", str(out), "--with-subject-ids",
                           *extra)
        assert rc == 2 and ("coordinator" in err or "may not" in err), err
        assert not out.exists()
    rc, _, err = weeke(capsys, data, "export", "--out", str(tmp_path / "r"), "--as-user",
                       "reader1")
    assert rc == 2 and "reader" in err  # readers may not export at all
    assert audit_entries("export") == []
    out = tmp_path / "ids"
    rc, _, err = weeke(capsys, data, "export", "--out", str(out), "--with-subject-ids",
                       "--as-user", "coord")
    assert rc == 0, err
    cons = read_tsv(out / "consensus.tsv")
    assert list(cons.columns[:3]) == ["reading_code", "subject", "session"]  # a case's scan
    assert dict(zip(cons.reading_code, cons.subject, strict=True)) == {
        scored["shared"].code: scored["shared"].subject,
        scored["other"].code: scored["other"].subject}
    assert "subject" in json.loads((out / "reads_long.json").read_text())
    dd = pd.read_csv(out / "redcap_data_dictionary.csv", dtype=str, keep_default_na=False)
    subj = dd[dd["Variable / Field Name"] == "subject"].iloc[0]
    assert subj["Identifier?"] == "y"
    [entry] = audit_entries("export")
    assert entry.actor == "coord" and entry.new["with_subject_ids"] is True


def test_export_metrics_and_qc_keyed_by_reading_code(scored, tmp_path, capsys):
    shared, other = scored["shared"], scored["other"]
    pipe = write_pipeline_output(tmp_path / "run", {shared.subject: {}, "NOCASE99": {}})
    out = tmp_path / "export"
    rc, stdout, err = weeke(capsys, _data(), "export", "--out", str(out), "--metrics",
                            str(pipe))
    assert rc == 0, err
    assert "1 pipeline subject(s) have sessions without a case" in stdout
    assert f"1 case(s) have no pipeline outputs: {other.code}" in stdout
    m = read_tsv(out / "metrics.tsv")
    assert list(m.columns) == ["reading_code", "session", "region", "hemisphere", "label",
                               "metric", "value"]
    assert set(m.reading_code) == {shared.code} and set(m.session) == {"1m"}
    src = read_tsv(pipe / "derivatives/weeke" / f"sub-{shared.subject}" / "ses-1m"
                   / f"sub-{shared.subject}_ses-1m_metrics.tsv")
    assert np.allclose(m["value"], src["value"], rtol=1e-5)
    side = json.loads((out / "metrics.json").read_text())
    assert {c for c in m.columns} <= set(side) and "Metrics" in side
    qc = read_tsv(out / "qc.tsv")
    assert qc.loc[0, "reading_code"] == shared.code and qc.loc[0, "qc_status"] == "warn"
    assert qc.loc[0, "registration_to_atlas_similarity_after_nmi"] == pytest.approx(1.3)
    assert shared.code in qc.loc[0, "qc_reasons"]
    qside = json.loads((out / "qc.json").read_text())
    assert list(qside) == list(qc.columns)
    assert qside["brain_volume_ml"]["Units"] == "mL"
    assert "TESTID" not in all_text(out) and "NOCASE" not in all_text(out)
    [entry] = audit_entries("export")
    assert entry.new["tables"]["metrics"] == len(m) and entry.new["tables"]["qc"] == 1


def test_export_folder_rules_and_stale_files(scored, tmp_path, capsys):
    data = _data()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    rc, _, err = weeke(capsys, data, "export", "--out", str(busy))
    assert rc == 2 and "not empty" in err and (busy / "notes.txt").is_file()
    out = tmp_path / "export"
    pipe = write_pipeline_output(tmp_path / "run", {scored["shared"].subject: {}})
    assert weeke(capsys, data, "export", "--out", str(out), "--with-subject-ids", "--as-user",
                 "coord", "--metrics", str(pipe))[0] == 0
    assert "TESTID" in all_text(out)
    # a later pseudonymised export into the same folder leaves no identifying file behind
    assert weeke(capsys, data, "export", "--out", str(out), "--format", "csv")[0] == 0
    assert not list(out.glob("*.tsv")) and not (out / "metrics.csv").exists()
    assert "TESTID" not in all_text(out)
    assert [e.new["format"] for e in audit_entries("export")] == ["tsv", "csv"]


def test_parquet_needs_pyarrow(scored, tmp_path, capsys):
    out = tmp_path / "pq"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        rc, _, err = weeke(capsys, _data(), "export", "--out", str(out), "--format", "parquet")
        assert rc == 2 and "pyarrow" in err and "weeke-pipeline[parquet]" in err
        assert not out.exists() and audit_entries("export") == []
        return
    rc, _, err = weeke(capsys, _data(), "export", "--out", str(out), "--format", "parquet")
    assert rc == 0, err
    long = pd.read_parquet(out / "reads_long.parquet")
    assert str(long["item_score"].dtype) == "Int64" and len(long) > 0
    assert (out / "reads_long.json").is_file()


# ------------------------------------------------------------------------------ agreement
def _constructed_reads(make_user, n_cases: int = 14, seed: int = 3):  # type: ignore[no-untyped-def]
    """Cases with two signed reads each, entered directly in the database; returns the
    per-read item payloads for the independent computation."""
    from django.utils import timezone

    from weeke_pipeline.reading.models import Case, Read
    from weeke_pipeline.scoring import load_form

    form = load_form("weeke-consensus-2025")
    r1, r2 = make_user("ra", "reader"), make_user("rb", "reader")
    rng = np.random.default_rng(seed)
    payloads = []
    for i in range(n_cases):
        case = Case.objects.create(code=f"K{i:03d}", subject=f"S{i:03d}")
        first: dict[str, dict[str, int]] = {}
        for it in form.items:
            e = int(rng.choice(it.max_extent + 1, p=None))
            first[it.id] = {"extent": e, **({"laterality": int(rng.integers(1, 3))}
                                            if it.lateralised and e > 0 else {})}
        second = {k: dict(v) for k, v in first.items()}
        for item_id in rng.choice([it.id for it in form.items], size=4, replace=False):
            it = form.item(item_id)
            e = int(rng.integers(0, it.max_extent + 1))
            second[item_id] = {"extent": e, **({"laterality": int(rng.integers(1, 3))}
                                               if it.lateralised and e > 0 else {})}
        for user, items in ((r1, first), (r2, second)):
            Read.objects.create(case=case, reader=user, form_id=form.id,
                                form_version=form.version, form_sha256=form.sha256,
                                status="signed", items={"items": items},
                                signed_at=timezone.now())
        payloads.append((case.code, first, second))
    return form, payloads


def test_agreement_report_matches_independent_computation(db, make_user, tmp_path, capsys):
    from sklearn.metrics import cohen_kappa_score

    from weeke_pipeline.analysis.agreement import gwet_ac2
    from weeke_pipeline.scoring import score_items

    form, payloads = _constructed_reads(make_user)
    make_user("stat", "analyst")
    out = tmp_path / "agreement"
    rc, _, err = weeke(capsys, _data(), "agreement", "--out", str(out), "--n-boot", "200",
                       "--as-user", "stat")
    assert rc == 0, err
    for f in ("agreement_items.tsv", "agreement_items.json", "agreement_scores.tsv",
              "agreement_report.html", "bland_altman_total.png", "bland_altman_total.svg"):
        assert (out / f).is_file(), f
    items = read_tsv(out / "agreement_items.tsv").set_index("item")
    scores = read_tsv(out / "agreement_scores.tsv").set_index("score")
    res = [(score_items(form, {"items": a}), score_items(form, {"items": b}))
           for _, a, b in payloads]
    for it in form.items:
        a = np.array([x.items[it.id].score for x, _ in res])
        b = np.array([y.items[it.id].score for _, y in res])
        row = items.loc[it.id]
        assert row["n_cases"] == len(payloads)
        assert row["percent_agreement"] == pytest.approx(100 * np.mean(a == b), abs=1e-3)
        labels = list(range(it.max_score + 1))
        if len(set(a) | set(b)) > 1:
            k = cohen_kappa_score(a, b, weights="quadratic", labels=labels)
            assert row["kappa_w"] == pytest.approx(k, abs=5e-4), it.id
        # the report's AC2 comes from confusion tables; this is the raw-ratings form
        ac2 = gwet_ac2(np.column_stack([a, b]), labels)["ac2"]
        assert row["ac2"] == pytest.approx(ac2, abs=5e-4), it.id
    t1 = np.array([x.total for x, _ in res], float)
    t2 = np.array([y.total for _, y in res], float)
    # ICCs from the two-way ANOVA mean squares (Shrout & Fleiss 1979), by hand
    x = np.column_stack([t1, t2])
    n, k = x.shape
    grand = x.mean()
    msr = k * ((x.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    msc = n * ((x.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    sse = ((x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + grand) ** 2
           ).sum()
    mse = sse / ((n - 1) * (k - 1))
    icc2 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    icc3 = (msr - mse) / (msr + (k - 1) * mse)
    assert scores.loc["total", "icc2"] == pytest.approx(icc2, abs=5e-4)
    assert scores.loc["total", "icc3"] == pytest.approx(icc3, abs=5e-4)
    assert scores.loc["total", "bias"] == pytest.approx(np.mean(t1 - t2), abs=5e-4)
    assert scores.loc["total", "sd_diff"] == pytest.approx(np.std(t1 - t2, ddof=1), abs=5e-4)
    [entry] = audit_entries("analysis.agreement")
    assert entry.actor == "stat" and entry.new["cases_with_two_signed_reads"] == len(payloads)
    assert "Injury index" not in (out / "agreement_report.html").read_text()


def test_agreement_needs_two_signed_reads(study, tmp_path, capsys):
    rc, _, err = weeke(capsys, _data(), "agreement", "--out", str(tmp_path / "a"))
    assert rc == 2 and "two signed reads" in err


READER_MARKERS = ("injury_index", "injury index", "injury-index", "abnormality", "z_ref",
                  "driving_metric", "suggested")


def _reader_views(study) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from django.test import Client

    u, shared, other = study["users"], study["shared"].code, study["other"].code
    pages = {}
    for name, urls in (("reader2", ["/", "/worklist/", f"/case/{shared}/",
                                    f"/api/case/{shared}/read"]),
                       ("reader1", ["/worklist/", f"/case/{other}/", f"/api/case/{other}/read",
                                    f"/case/{shared}/", f"/api/case/{shared}/read"]),
                       ("adj", ["/", "/adjudication/"])):
        client = Client()
        client.force_login(u[name])
        for url in urls:
            r = client.get(url, follow=True)
            assert r.status_code == 200, (name, url)
            text = r.content.decode()
            pages[f"{name} {url}"] = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "",
                                            text)
    return pages


def test_injury_index_for_analysts_never_on_reader_pages(study, tmp_path, capsys):
    """The index's agreement with the consensus is in the analyst's report; the reading app's
    pages and API answer byte for byte the same before and after it was computed, and show
    no index figures (a reader with an unsigned read included)."""
    u, shared, other = study["users"], study["shared"], study["other"]
    sign_read(other, u["reader1"], complete_items())
    sign_read(other, u["reader3"], complete_items())
    sign_read(shared, u["reader1"], complete_items(**BGT))
    from weeke_pipeline.reading import services

    draft = services.get_or_create_read(shared, u["reader2"])  # reader2: not signed yet
    services.save_draft(draft, u["reader2"], {"items": {"gm_thalamus": {"extent": 0}}},
                        draft.version)
    before = _reader_views(study)
    injured = {("thalamus", s, m): 1.35 for s in ("left", "right")
               for m in ("t2w_norm", "t2w_p25_norm", "t2w_p75_norm")}
    pipe = write_pipeline_output(tmp_path / "run", {shared.subject: injured, other.subject: {}})
    normals = write_pipeline_output(tmp_path / "normals", {f"N{i}": {} for i in range(5)},
                                    seed=9)
    ref = tmp_path / "normals.tsv"
    pd.concat([read_tsv(p) for p in sorted(normals.rglob("*_metrics.tsv"))]).to_csv(
        ref, sep="\t", index=False)
    out = tmp_path / "agreement"
    rc, _, err = weeke(capsys, _data(), "agreement", "--out", str(out), "--n-boot", "200",
                       "--metrics", str(pipe), "--index-reference", str(ref))
    assert rc == 0, err
    sugg = read_tsv(out / "injury_index_suggested.tsv").set_index("reading_code")
    assert sugg.loc[shared.code, "gm_thalamus_score"] == 4  # extensive, bilateral
    assert sugg.loc[other.code, "total"] == 0
    agree = read_tsv(out / "injury_index_agreement.tsv").set_index("item")
    assert agree.loc["gm_thalamus", "n_cases"] == 1  # `other` only: `shared` is unresolved
    assert "Automated injury index vs consensus" in (out / "agreement_report.html").read_text()
    assert json.loads((out / "injury_index_regions.json").read_text())
    after = _reader_views(study)
    assert after == before
    for key, text in after.items():
        for marker in READER_MARKERS:
            assert marker not in text.lower(), (key, marker)
    # and the reading app has no code path to the index or the analyst tables
    pkg = Path(__file__).resolve().parents[2] / "weeke_pipeline" / "reading"
    pattern = re.compile(r"(import|from)\s+weeke_pipeline\.(injury_index|agreement|"
                         r"derivative_tables)|injury_index")
    for f in [*pkg.rglob("*.py"), *pkg.rglob("*.html"), *(pkg / "static" / "reading").glob("*")]:
        assert not pattern.search(f.read_text(encoding="utf-8")), f
    [entry] = audit_entries("analysis.agreement")
    assert entry.new["injury_index"] is True
    # the default reference: the shipped atlas templates' own region metrics
    rc, _, err = weeke(capsys, _data(), "agreement", "--out", str(tmp_path / "atlas-ref"),
                       "--n-boot", "100", "--metrics", str(pipe))
    assert rc == 0, err
    assert set(read_tsv(tmp_path / "atlas-ref" / "injury_index_suggested.tsv").reading_code) \
        == {shared.code, other.code}
    assert _reader_views(study) == before


# ------------------------------------------------------------------------------ unblinding
def _allocation(path: Path, study, key: str = "subject") -> Path:  # type: ignore[no-untyped-def]
    shared, other = study["shared"], study["other"]
    if key == "subject":
        rows = [f"sub-{shared.subject}\tMSC", f"sub-{other.subject}\tplacebo",
                "sub-NOTSCANNED\tMSC"]
        path.write_text("participant_id\tarm\n" + "\n".join(rows) + "\n")
    else:
        path.write_text(f"reading_code\tarm\n{shared.code}\tMSC\n{other.code}\tplacebo\n")
    return path


def test_unblind_refused_before_lock_changes_nothing(scored, tmp_path, capsys):
    from weeke_pipeline.reading.models import AuditEntry, DatabaseLock

    n_audit, n_lock = AuditEntry.objects.count(), DatabaseLock.objects.count()
    out = tmp_path / "unblind"
    rc, _, err = weeke(capsys, _data(), "unblind", "--allocation",
                       str(_allocation(tmp_path / "alloc.tsv", scored)), "--out", str(out))
    assert rc == 2 and "not locked" in err and "weeke db lock" in err
    assert not out.exists()
    assert AuditEntry.objects.count() == n_audit and DatabaseLock.objects.count() == n_lock


def test_unblind_after_lock_writes_arm_tables_and_records_the_event(scored, tmp_path, capsys):
    from django.apps import apps

    from weeke_pipeline.analysis.export import sha256
    from weeke_pipeline.reading import services

    # nothing about arms in the application's schema, before or after
    def arm_fields() -> list[str]:
        return [f"{m.__name__}.{f.name}" for m in apps.get_app_config("reading").get_models()
                for f in m._meta.get_fields() if "arm" in f.name.split("_")
                or "allocation" in f.name]

    assert arm_fields() == []
    services.set_lock(scored["users"]["coord"], True, "final analysis")
    alloc = _allocation(tmp_path / "alloc.tsv", scored)
    out = tmp_path / "unblind"
    rc, stdout, err = weeke(capsys, _data(), "unblind", "--allocation", str(alloc), "--out",
                            str(out), "--n-boot", "200", "--as-user", "coord")
    assert rc == 0, err
    assert "1 allocation row(s) match no case" in stdout
    joined = read_tsv(out / "consensus_by_arm.tsv").set_index("reading_code")
    assert joined.loc[scored["shared"].code, "arm"] == "MSC"
    assert joined.loc[scored["other"].code, "arm"] == "placebo"
    assert "subject" not in joined.columns and "TESTID" not in all_text(out)
    by_arm = read_tsv(out / "summary_by_arm.tsv")
    tot = by_arm[by_arm.score == "total"].set_index("arm")
    assert tot.loc["MSC", "median"] == joined.loc[scored["shared"].code, "total"]
    assert set(by_arm.score) >= {"total", "grey_matter", "gm_ge3", "total_ge10"}
    for f in ("scores_by_arm.png", "scores_by_arm.svg", "comparison.tsv", "comparison.json",
              "summary_by_arm.json", "consensus_by_arm.json"):
        assert (out / f).is_file(), f
    side = json.loads((out / "summary_by_arm.json").read_text())
    assert list(side) == list(by_arm.columns)
    [entry] = audit_entries("unblind")
    assert entry.actor == "coord"
    assert entry.new["allocation_sha256"] == sha256(alloc)
    assert entry.new["cases_per_arm"] == {"MSC": 1, "placebo": 1}
    assert arm_fields() == []
    # by reading code too; a missing case is an error naming the problem
    rc, _, err = weeke(capsys, _data(), "unblind", "--allocation",
                       str(_allocation(tmp_path / "a2.tsv", scored, key="reading_code")),
                       "--out", str(out), "--n-boot", "200")
    assert rc == 0, err
    (tmp_path / "short.tsv").write_text(f"reading_code\tarm\n{scored['shared'].code}\tMSC\n")
    rc, _, err = weeke(capsys, _data(), "unblind", "--allocation", str(tmp_path / "short.tsv"),
                       "--out", str(tmp_path / "u3"))
    assert rc == 2 and "1 case(s)" in err and "no arm" in err


def test_cli_defaults_match_the_library():
    from weeke_pipeline.analysis import agreement, tables
    from weeke_pipeline.cli.commands import _analyst

    assert _analyst.N_BOOT == agreement.DEFAULT_N_BOOT
    assert _analyst.SEED == agreement.DEFAULT_SEED == tables.DEFAULT_SEED


def test_unblind_warns_when_a_subject_has_cases_of_two_sessions(scored, tmp_path, capsys):
    """A case is one subject and session: a subject read at two sessions is two cases, and
    the summary by arm would count that infant twice. Said, not hidden."""
    from weeke_pipeline.reading import services
    from weeke_pipeline.reading.models import Case

    Case.objects.create(code="WK-AAAAAA", subject=scored["shared"].subject, session="3month")
    services.set_lock(scored["users"]["coord"], True, "final analysis")
    alloc = _allocation(tmp_path / "alloc.tsv", scored)
    rc, stdout, err = weeke(capsys, _data(), "unblind", "--allocation", str(alloc), "--out",
                            str(tmp_path / "u"), "--n-boot", "50", "--as-user", "coord")
    assert rc == 0, err
    assert "1 subject(s) have cases of several sessions" in stdout
