"""The batch pipeline end to end: DICOM -> de-identified BIDS -> labels, metrics, QC.

One synthetic subject with planted basal ganglia/thalamus injury (the shipped sample's sub-02)
runs through `weeke run`; a second run in a fresh folder must give identical numbers, and a
subject whose inputs break mid-workflow must fail alone with a QC report showing the error.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

from weeke_pipeline import cli
from weeke_pipeline.atlas.regions import REGIONS, indices_for
from weeke_pipeline.config import RunConfig
from weeke_pipeline.resources import data_dir
from weeke_pipeline.workflows.pipeline import build_workflow, find_sessions, process_sessions

SAMPLE = data_dir("sample_data")
SUB = "02"


@pytest.fixture(scope="module")
def one_subject(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export folder with one subject's DICOM, and its participants (linkage) table."""
    root = tmp_path_factory.mktemp("export")
    shutil.copytree(SAMPLE / f"sub-{SUB}" / "dicom", root / "dicom")
    lines = (SAMPLE / "participants.tsv").read_text().splitlines()
    (root / "participants.tsv").write_text("\n".join([lines[0], lines[int(SUB)]]) + "\n")
    return root


@pytest.fixture(scope="module")
def run_out(one_subject: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    (out / "key.txt").write_text("test-project-key")
    rc = cli.main(["run", str(one_subject / "dicom"), str(out),
                   "--participants", str(one_subject / "participants.tsv"),
                   "--key-file", str(out / "key.txt")])
    assert rc == 0
    return out


def _deriv(out: Path) -> Path:
    return out / "derivatives" / "weeke" / f"sub-{SUB}" / "ses-01"


@pytest.mark.slow
def test_outputs_are_bids_derivatives_with_provenance(run_out: Path) -> None:
    d = _deriv(run_out)
    stem = f"sub-{SUB}_ses-01"
    for rel in (f"anat/{stem}_desc-preproc_T2w.nii.gz",
                f"anat/{stem}_space-T2w_desc-atlas_dseg.nii.gz",
                f"anat/{stem}_space-T2w_desc-atlas_dseg.tsv",
                f"anat/{stem}_space-T2w_desc-preproc_T1w.nii.gz",
                f"anat/{stem}_space-T2w_ADC.nii.gz", f"anat/{stem}_space-T2w_desc-atlas_dseg.json",
                f"dwi/{stem}_space-T2w_FA.nii.gz", f"dwi/{stem}_space-T2w_MD.nii.gz",
                f"{stem}_metrics.tsv", f"{stem}_metrics.json", f"qc/{stem}_qc.html",
                f"qc/figures/{stem}_desc-facolour_qc.png", f"xfm/{stem}_to_atlas_step-0.nii.gz",
                f"{stem}_config.toml"):
        assert (d / rel).is_file(), rel
    config = (d / f"{stem}_config.toml").read_text()
    for key in ("weeke_pipeline_version", "atlas_version", "registration_preset", "seed",
                'form = "weeke-consensus-2025"'):
        assert key in config
    assert "registration_preset" in (run_out / "derivatives/weeke/run_config.toml").read_text()
    assert json.loads((run_out / "derivatives/weeke/dataset_description.json").read_text())[
        "DatasetType"] == "derivative"
    parts = (run_out / "rawdata" / "participants.tsv").read_text()
    assert parts.splitlines()[1].startswith(f"sub-{SUB}\t") and "HN" not in parts
    assert "pma_at_scan_weeks" in parts.splitlines()[0]


@pytest.mark.slow
def test_atlas_labels_match_the_truth(run_out: Path) -> None:
    est = nib.load(_deriv(run_out) / "anat" / f"sub-{SUB}_ses-01_space-T2w_desc-atlas_dseg.nii.gz")
    truth = nib.load(SAMPLE / f"sub-{SUB}" / "truth" / f"sub-{SUB}_dseg.nii.gz")
    e, t = np.asanyarray(est.dataobj), np.asanyarray(truth.dataobj)
    assert e.shape == t.shape and np.allclose(est.affine, truth.affine, atol=1e-3)

    def dice(idx: list[int]) -> float:
        a, b = np.isin(e, idx), np.isin(t, idx)
        return 2 * (a & b).sum() / (a.sum() + b.sum())

    assert dice(indices_for(tissue="deep_gm")) > 0.85
    assert dice(indices_for(region="brainstem")) > 0.85
    assert dice(indices_for(tissue="wm")) > 0.85
    per_region = [dice([r.index]) for r in REGIONS]
    assert np.mean(per_region) > 0.8


@pytest.mark.slow
def test_metrics_show_the_planted_injury(run_out: Path) -> None:
    """sub-02 (BGT pattern): injured thalami are brighter on T2w and PLIC loses FA."""
    m = pd.read_csv(_deriv(run_out) / f"sub-{SUB}_ses-01_metrics.tsv", sep="\t")
    truth = json.loads((SAMPLE / f"sub-{SUB}/truth/sub-{SUB}_truth.json").read_text())
    injured = {(i["region"], i["hemisphere"]) for i in truth["injuries"]}
    assert ("thalamus", "left") in injured and ("plic", "left") in injured
    regions = {r.region for r in REGIONS}
    assert set(m["region"]) == regions
    val = m.set_index(["region", "hemisphere", "metric"])["value"]
    atlas_like = 380 / 420  # healthy thalamus T2w over cerebellum T2w in the phantom
    assert val["thalamus", "left", "t2w_norm"] > 1.1 * atlas_like
    assert val["plic", "left", "fa_mean"] < 0.45
    assert np.isfinite(val["thalamus", "left", "adc_median"])


@pytest.mark.slow
def test_no_identifying_value_leaves_the_pipeline(run_out: Path, one_subject: Path) -> None:
    ds = pydicom.dcmread(next((one_subject / "dicom").rglob("*.dcm")))
    secrets = [str(ds.PatientName), str(ds.PatientID), ds.PatientBirthDate, ds.AccessionNumber,
               ds.InstitutionName, ds.DeviceSerialNumber, ds.StudyDate,
               str(ds.PatientName).split("^")[0]]
    hits = []
    for f in run_out.rglob("*"):
        if f.name == "key.txt":
            continue
        if any(s in f.name for s in secrets):
            hits.append(f"name {f}")
        if f.is_file() and f.suffix in (".json", ".tsv", ".toml", ".html", ".txt", ".mat"):
            text = f.read_text(errors="replace")
            hits += [f"{f}: {s}" for s in secrets if s in text]
        if f.name.endswith(".nii.gz"):
            hdr = nib.load(f).header
            blob = bytes(hdr["descrip"]) + bytes(hdr["aux_file"])
            hits += [f"{f} header: {s}" for s in secrets if s.encode() in blob]
        if f.suffix == ".dcm":
            d = pydicom.dcmread(f)
            hits += [f"{f}: {s}" for s in secrets if s in str(d)]
    assert hits == []


@pytest.mark.slow
def test_rerun_resumes_and_a_fresh_run_gives_identical_numbers(run_out: Path, one_subject: Path,
                                                               tmp_path: Path) -> None:
    metrics = _deriv(run_out) / f"sub-{SUB}_ses-01_metrics.tsv"
    first = metrics.read_bytes()
    args = ["--participants",
            str(one_subject / "participants.tsv"), "--key-file", str(run_out / "key.txt")]
    assert cli.main(["run", str(one_subject / "dicom"), str(run_out), *args]) == 0  # resumes
    assert metrics.read_bytes() == first
    fresh = tmp_path / "fresh"
    assert cli.main(["run", str(one_subject / "dicom"), str(fresh), *args]) == 0
    assert (_deriv(fresh) / metrics.name).read_bytes() == first


@pytest.mark.slow
def test_a_failing_subject_fails_alone_with_a_report(run_out: Path, tmp_path: Path) -> None:
    good = find_sessions(run_out / "rawdata")
    assert [s.subject for s in good] == [SUB]
    src = good[0]
    broken_dir = tmp_path / "sub-99"
    broken_dir.mkdir()
    paths = {}
    for key in ("t2w", "t1w", "dwi", "bval", "bvec", "adc"):
        p = Path(getattr(src, key))
        paths[key] = str(shutil.copy(p, broken_dir / p.name.replace(f"sub-{SUB}", "sub-99")))
    Path(paths["bval"]).write_text("0 1000\n")  # does not match the DWI's 7 volumes
    broken = type(src)(subject="99", session="01", **paths)
    cfg = RunConfig(output_dir=str(run_out), dti=False)
    summary = process_sessions(cfg, [src, broken])
    assert summary.subjects[f"sub-{SUB}_ses-01"] in ("pass", "warn")
    assert summary.subjects["sub-99_ses-01"] == "fail"
    assert "b-values" in summary.errors["sub-99_ses-01"]
    report = run_out / "derivatives/weeke/sub-99/ses-01/qc/sub-99_ses-01_qc.html"
    assert "b-values" in report.read_text()
    index = (run_out / "derivatives/weeke/qc_index.html").read_text()
    assert "sub-99_ses-01" in index and f"sub-{SUB}_ses-01" in index


def test_workflow_graph_names_every_node_after_its_role(tmp_path: Path) -> None:
    from weeke_pipeline.workflows.pipeline import SubjectInputs

    sessions = [SubjectInputs("01", "01", t2w="t2.nii.gz", t1w="t1.nii.gz", dwi="dwi.nii.gz",
                              bval="dwi.bval", bvec="dwi.bvec", adc="adc.nii.gz"),
                SubjectInputs("02", "01", t2w="t2.nii.gz")]
    wf = build_workflow(RunConfig(output_dir=str(tmp_path)), sessions,
                        deriv=tmp_path / "d", work=tmp_path / "w")
    full = set(wf.list_node_names())
    for node in ("anat_reg_wf.atlas_reg", "anat_reg_wf.t1w_reg", "dwi_wf.b0", "dwi_wf.b0_reg",
                 "dwi_wf.tensor", "dwi_wf.tensor_t2w", "metrics", "qc", "ds_subject_wf.sink"):
        assert f"sub_01_ses_01_wf.{node}" in full
    assert "sub_02_ses_01_wf.anat_reg_wf.atlas_reg" in full
    assert not any(".t1w_reg" in n or ".dwi_wf." in n for n in full
                   if n.startswith("sub_02_ses_01_wf."))
    assert wf.config["execution"]["hash_method"] == "content"


def test_run_refuses_a_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(tmp_path / "nope"), str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "spec.toml"
    bad.write_text('[inputs]\ninput_dir = "x"\n[execution]\nplugn = "Linear"\n')
    assert cli.main(["run", "--config", str(bad)]) == 2
    assert "[execution] unknown key 'plugn'" in capsys.readouterr().err


def test_shipped_run_specifications_parse() -> None:
    from weeke_pipeline.imaging.registration import list_presets, load_preset

    specs = data_dir("workflows")
    local = RunConfig.from_toml(specs / "default.toml")
    assert local.plugin == "MultiProc" and local.preset == "fast"
    slurm = RunConfig.from_toml(specs / "slurm.toml")
    assert slurm.plugin == "SLURM" and "sbatch_args" in slurm.plugin_args
    assert {"fast", "precise", "sloppy"} <= set(list_presets())
    for name in ("fast", "precise", "sloppy"):
        assert load_preset(name).to_dict()["version"]


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_finishes_with_identical_outputs(one_subject: Path,
                                                                   tmp_path: Path) -> None:
    """SIGKILL the whole run (all worker processes) once the atlas step has finished; the
    re-run completes the rest from the cache and matches an uninterrupted run byte for byte."""
    import os
    import signal
    import subprocess
    import sys
    import time

    key = tmp_path / "key.txt"
    key.write_text("test-project-key")

    def argv(out: Path) -> list[str]:
        return [sys.executable, "-m", "weeke_pipeline.cli", "run", str(one_subject / "dicom"),
                str(out), "--participants", str(one_subject / "participants.tsv"),
                "--key-file", str(key), "--sloppy", "--no-dti", "--no-progress"]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(argv(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    done = killed / "work/weeke_wf" / f"sub_{SUB}_ses_01_wf" / "anat_reg_wf" / "atlas_reg"
    deadline = time.monotonic() + 600
    while not list(done.glob("result_*.pklz")) and proc.poll() is None:
        assert time.monotonic() < deadline, "the atlas step did not finish in 10 minutes"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    metrics = Path("derivatives/weeke") / f"sub-{SUB}/ses-01/sub-{SUB}_ses-01_metrics.tsv"
    assert not (killed / metrics).exists() or proc.returncode == 0
    subprocess.run(argv(killed), check=True, capture_output=True)
    clean = tmp_path / "clean"
    subprocess.run(argv(clean), check=True, capture_output=True)
    assert (killed / metrics).read_bytes() == (clean / metrics).read_bytes()
    dseg = Path("derivatives/weeke") / f"sub-{SUB}/ses-01/anat" / (
        f"sub-{SUB}_ses-01_space-T2w_desc-atlas_dseg.nii.gz")
    assert (killed / dseg).read_bytes() == (clean / dseg).read_bytes()


@pytest.mark.slow
def test_reading_import_of_the_output_or_its_derivatives_gives_the_same_cases(
        run_out: Path, tmp_path: Path) -> None:
    """`weeke cases import OUT` (README) and `weeke cases import OUT/derivatives/weeke` (demo)
    give the same case (subject and session) with the same images: the pipeline's derivatives,
    not the raw data nor Nipype's copies in OUT/work. Child processes: the reading app
    configures Django once per process."""
    import subprocess
    import sys

    def imported(root: Path, data: Path) -> tuple[list[str], dict[str, np.ndarray]]:
        d = ["--data", str(data)]
        code = (f"import sys; from weeke_pipeline.cli import main; "
                f"sys.exit(main({['cases', 'import', str(root), *d]!r}) "
                f"or main({['cases', 'list', *d]!r}))")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr
        rows = [ln.split("\t") for ln in proc.stdout.splitlines() if ln.startswith("WK-")]
        images = {p.name: np.asarray(nib.load(str(p)).dataobj)
                  for p in sorted((data / "images").glob("*/*.nii.gz"))}
        return [r[1:] for r in rows], images

    assert (run_out / "work").is_dir()  # the copies a careless importer would pick up
    whole = imported(run_out, tmp_path / "whole")
    deriv = imported(run_out / "derivatives" / "weeke", tmp_path / "deriv")
    assert whole[0] == deriv[0] and len(whole[0]) == 1
    assert whole[0][0][:2] == [f"sub-{SUB}", "ses-01"]
    assert whole[1].keys() == deriv[1].keys() and len(whole[1]) >= 3
    for name in whole[1]:
        assert np.array_equal(whole[1][name], deriv[1][name]), name
