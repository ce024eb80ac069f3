"""The pipeline on a real SLURM (single node on the loopback, started by scripts/services.sh):
what a cluster does to jobs (scancel, a killed driver, a second driver) must not break a batch.

Skipped where no SLURM answers (not root, no Debian packages): run ./scripts/test.sh as root.
The sample study is cut to the T2w series of two subjects (4 jobs per subject) and the sloppy
preset, to keep these runs to a few minutes on a shared 2-core machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from weeke_pipeline.resources import data_dir


def _slurm_up() -> str:
    if not shutil.which("sbatch"):
        return "no sbatch on PATH"
    try:
        res = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                             timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed ({exc})"
    if res.returncode != 0 or not any(s in res.stdout for s in ("idle", "mixed", "alloc")):
        return f"no SLURM node up ({(res.stderr or res.stdout).strip()[:120]})"
    return ""


_WHY = _slurm_up()
pytestmark = pytest.mark.skipif(bool(_WHY), reason=f"{_WHY}: run ./scripts/test.sh as root "
                                                   "(scripts/services.sh starts a SLURM)")

SAMPLE = data_dir("sample_data")
SUBJECTS = ("01", "02")
# ITK threads fixed at the local default so outputs can be compared byte for byte with a
# MultiProc run (registration results depend on the thread count); 1 s polling for the test
SLURM_ARGS = {"poll_interval": 1, "itk_threads": 2}


def _squeue() -> dict[str, tuple[str, str]]:
    """{job id: (name, state)} of every job in the queue."""
    res = subprocess.run(["squeue", "-h", "-o", "%i|%j|%T"], capture_output=True, text=True,
                         check=False)
    rows = [ln.split("|") for ln in res.stdout.splitlines() if ln.count("|") == 2]
    return {r[0]: (r[1], r[2]) for r in rows}


def _wait_for_job(step: str, sub: str, *, running: bool, timeout: float = 240,
                  proc: subprocess.Popen | None = None) -> str:
    """Id of the job of ``step`` of subject ``sub`` (Nipype names a job
    ``step.[sub-workflow.]sub_XX_ses_YY_wf.workflow.user``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for job, (name, state) in _squeue().items():
            if name.startswith(f"{step}.") and f".sub_{sub}_" in name and (
                    state == "RUNNING" or not running):
                return job
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before the {step} job of "
                        f"sub-{sub} appeared")
        time.sleep(0.3)
    pytest.fail(f"no {step} job of sub-{sub} within {timeout} s")


# ------------------------------------------------------------- the plugin on a tiny workflow
def _sleep_then_threads(x, after=None):
    import os
    import time

    time.sleep(x)
    return os.environ.get("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")


@pytest.mark.slow
def test_slurm_plugin_fixes_on_a_tiny_workflow(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """No LOGNAME; one subject's job cancelled while running -> that step fails with the job's
    state (the others run on); per-step sbatch args; ITK threads from --cpus-per-task; one
    squeue per polling pass."""
    from weeke_pipeline.execution import execute

    monkeypatch.delenv("LOGNAME", raising=False)  # cron, containers, env -i
    wf = pe.Workflow(name="tiny", base_dir=str(tmp_path))
    for sub, delay in (("01", 120), ("02", 1)):
        sw = pe.Workflow(name=f"sub_{sub}_ses_01_wf")
        nodes = [pe.Node(niu.Function(input_names=["x", "after"], output_names=["out"],
                                      function=_sleep_then_threads), name=name)
                 for name in ("atlas_reg", "metrics", "qc")]
        nodes[0].inputs.x = delay
        for n in nodes[1:]:
            n.inputs.x = 1
        sw.connect(nodes[0], "out", nodes[1], "after")  # metrics waits for atlas_reg
        sw.add_nodes(nodes[2:])
        wf.add_nodes([sw])
    wf.config["execution"] = {"crashdump_dir": str(tmp_path / "crash"),
                              "crashfile_format": "txt", "poll_sleep_duration": "0.5"}
    cancelled: list[str] = []

    def cancel_sub01() -> None:
        job = _wait_for_job("atlas_reg", "01", running=True)
        subprocess.run(["scancel", job], check=True)
        cancelled.append(job)

    watcher = threading.Thread(target=cancel_sub01, daemon=True)
    watcher.start()
    start = time.monotonic()
    runner = execute(wf, "SLURM", {
        "poll_interval": 1,
        "step_sbatch_args": {"metrics": "--cpus-per-task=2 --time=00:07:00"}}, work=tmp_path)
    wall = time.monotonic() - start
    watcher.join(5)
    assert cancelled
    crash = "".join(p.read_text() for p in (tmp_path / "crash").glob("crash-*.txt"))
    assert f"SLURM job {cancelled[0]} ended CANCELLED" in crash
    assert "slurm-" in crash  # names the job log

    def out(sub: str, step: str) -> str | None:
        from nipype.utils.filemanip import loadpkl

        res = list((tmp_path / "tiny" / f"sub_{sub}_ses_01_wf" / step).glob("result_*.pklz"))
        return loadpkl(res[0]).outputs.out if res else None

    assert out("01", "metrics") is None  # after the cancelled step: never submitted
    assert out("01", "qc") == "1"  # the same subject's independent step ran
    assert out("02", "metrics") == "2"  # --cpus-per-task=2 from step_sbatch_args
    assert out("02", "qc") == "1"  # one CPU allocated by default
    jobs = {step.split(".", 1)[1]: job for job, step in runner.job_steps.items()}
    assert len(jobs) == 5 and "sub_01_ses_01_wf.metrics" not in jobs

    def limit(step: str) -> str:
        res = subprocess.run(["scontrol", "-o", "show", "job", jobs[step]], capture_output=True,
                             text=True, check=True)
        return next(f for f in res.stdout.split() if f.startswith("TimeLimit="))

    assert limit("sub_02_ses_01_wf.metrics") == "TimeLimit=00:07:00"
    assert limit("sub_02_ses_01_wf.qc") != "TimeLimit=00:07:00"
    # one squeue per polling pass (plus one for each newly submitted job), not one per job
    assert runner.squeue_calls <= wall / 1 + len(runner.submitted_jobs) + 2
    assert runner.squeue_calls >= 3


# ------------------------------------------------------------ the sample study, end to end
@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The T2w series of two sample subjects, their participants table and a project key."""
    root = tmp_path_factory.mktemp("slurm_export")
    for sub in SUBJECTS:
        for series in (SAMPLE / f"sub-{sub}" / "dicom").iterdir():
            if "T2" in series.name:
                shutil.copytree(series, root / "dicom" / f"sub-{sub}" / series.name)
    lines = (SAMPLE / "participants.tsv").read_text().splitlines()
    (root / "participants.tsv").write_text(
        "\n".join([lines[0], *(lines[int(s)] for s in SUBJECTS)]) + "\n")
    (root / "key.txt").write_text("test-project-key")
    return root


def _argv(export: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "weeke_pipeline.cli", "run", str(export / "dicom"), str(out),
            "--participants", str(export / "participants.tsv"), "--key-file",
            str(export / "key.txt"), "--sloppy", *extra]


def _slurm(export: Path, out: Path) -> list[str]:
    return _argv(export, out, "--plugin", "SLURM", "--plugin-args", json.dumps(SLURM_ARGS))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("LOGNAME", None)
    return env


# (the QC JSON holds each registration's seconds: not comparable)
OUTPUTS = ("sub-{s}/ses-01/sub-{s}_ses-01_metrics.tsv",
           "sub-{s}/ses-01/anat/sub-{s}_ses-01_space-T2w_desc-atlas_dseg.nii.gz",
           "sub-{s}/ses-01/anat/sub-{s}_ses-01_space-T2w_desc-brain_mask.nii.gz",
           "sub-{s}/ses-01/xfm/sub-{s}_ses-01_to_atlas_step-1.mat")


def _outputs(out: Path, sub: str) -> dict[str, bytes]:
    deriv = out / "derivatives" / "weeke"
    return {p.format(s=sub): (deriv / p.format(s=sub)).read_bytes() for p in OUTPUTS}


@pytest.fixture(scope="module")
def multiproc_out(export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sub-01 run locally (MultiProc), the reference for its SLURM outputs."""
    out = tmp_path_factory.mktemp("multiproc")
    subprocess.run(_argv(export, out, "--no-progress", "--participant-label", "01"),
                   check=True, capture_output=True)
    return out


@pytest.mark.slow
def test_cancelled_job_fails_its_subject_and_a_second_run_is_refused(
        export: Path, tmp_path: Path, multiproc_out: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(_slurm(export, out), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    job = _wait_for_job("atlas_reg", "01", running=False, proc=proc)
    # a second driver on the same output is refused at once, naming the first
    second = subprocess.run(_slurm(export, out), capture_output=True, text=True, env=_env())
    assert second.returncode == 2
    assert f"pid {proc.pid}" in second.stderr and "in use by another weeke run" in second.stderr
    subprocess.run(["scancel", job], check=True)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1, stderr[-2000:]
    summary = json.loads((out / "derivatives/weeke/run_summary.json").read_text())
    assert summary["subjects"]["sub-01_ses-01"] == "fail"
    assert f"SLURM job {job} ended CANCELLED" in summary["errors"]["sub-01_ses-01"]
    assert summary["subjects"]["sub-02_ses-01"] in ("pass", "warn")
    assert "sub-01_ses-01            fail" in stdout  # the status table is printed
    assert (out / "derivatives/weeke/qc_index.html").is_file()
    assert "queued (job" in stderr and "all steps accounted for" in stderr  # progress shown
    sub02 = _outputs(out, "02")
    assert not [j for j, (n, _) in _squeue().items() if "sub_0" in n]  # nothing left behind

    # the driver is killed (SIGTERM) while sub-01's atlas step runs: its jobs are cancelled
    proc = subprocess.Popen(_slurm(export, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=_env())
    job = _wait_for_job("atlas_reg", "01", running=True, proc=proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert f"cancelled job(s) {job}" in stderr
    assert "not run (the run was interrupted)" in stderr
    assert job not in _squeue()
    assert not (out / ".weeke-run.lock").exists()

    # the re-run finishes: sub-01 as an uninterrupted MultiProc run, sub-02 unchanged
    rerun = subprocess.run(_slurm(export, out), capture_output=True, text=True, env=_env())
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert _outputs(out, "01") == _outputs(multiproc_out, "01")
    assert _outputs(out, "02") == sub02


# ------------------------------------------------------- shipped spec, jobs of a killed driver
def test_shipped_slurm_spec_is_accepted_by_a_real_controller() -> None:
    """workflows/slurm.toml runs as shipped: its plugin arguments validate, and sbatch accepts
    the arguments of every job (light steps and the atlas step) on this cluster."""
    from weeke_pipeline.config import RunConfig
    from weeke_pipeline.execution import validate_plugin

    cfg = RunConfig.from_toml(data_dir("workflows") / "slurm.toml")
    assert cfg.plugin == "SLURM" and not cfg.input_dir and not cfg.output_dir  # no placeholders
    validate_plugin(cfg.plugin, cfg.plugin_args)
    base = cfg.plugin_args["sbatch_args"]
    for extra in ["", *cfg.plugin_args["step_sbatch_args"].values()]:
        res = subprocess.run(["sbatch", "--test-only", *f"{base} {extra}".split(),
                              "--wrap", "true"], capture_output=True, text=True, check=False)
        assert res.returncode == 0 and "to start at" in res.stderr, (extra, res.stderr)


def test_jobs_left_by_a_killed_driver_are_cancelled_by_the_next_run(tmp_path: Path) -> None:
    from weeke_pipeline.execution import JOBS_FILE, cancel_leftover_jobs

    job = subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "sleep 300"],
                         capture_output=True, text=True, check=True).stdout.strip()
    done = subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "true"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / JOBS_FILE).write_text(
        f"{job}\tSLURM\tweeke_wf.sub_01_ses_01_wf.atlas_reg\n"
        f"{done}\tSLURM\tweeke_wf.sub_01_ses_01_wf.sink\n")
    deadline = time.monotonic() + 60
    while done in _squeue() and time.monotonic() < deadline:
        time.sleep(0.3)
    try:
        assert cancel_leftover_jobs(tmp_path) == [job]
        queue = _squeue()
        assert job not in queue or queue[job][1] in ("CANCELLED", "COMPLETING")
        assert not (tmp_path / JOBS_FILE).exists()
    finally:
        subprocess.run(["scancel", job], check=False)
