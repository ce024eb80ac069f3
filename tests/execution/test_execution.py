"""Execution plugins without a cluster: plugin/argument validation before any work, the run
lock (one run per folder, stale locks), crash reports of jobs that left no result (the Nipype
``report_crash`` TypeError), and the progress display reaching its total. The same code on a
real SLURM: tests/execution/test_slurm.py."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from weeke_pipeline import cli
from weeke_pipeline.errors import ConfigError
from weeke_pipeline.execution import (
    PLUGINS,
    LockedError,
    Progress,
    RunLock,
    execute,
    make_plugin,
    validate_plugin,
)
from weeke_pipeline.execution.lock import LOCK_NAME
from weeke_pipeline.resources import data_dir

SAMPLE = data_dir("sample_data")


# ------------------------------------------------------------------ plugin names and arguments
@pytest.mark.parametrize(("plugin", "args", "message"), [
    ("Slurm", {}, "unknown plugin 'Slurm' (did you mean SLURM?)"),
    ("MultiProcess", {}, "did you mean MultiProc?"),
    ("SLURMGraph", {}, "plugin SLURMGraph is not supported"),
    ("MultiProc", {"nprocs": 2}, "'nprocs' is not one of MultiProc's (did you mean n_procs?)"),
    ("MultiProc", {"n_procs": 0}, "n_procs = 0 for MultiProc: must be a whole number >= 1"),
    ("MultiProc", {"n_procs": "4"}, "must be a whole number"),
    ("Linear", {"n_procs": 2}, "Linear takes: none"),
    ("SLURM", {"sbatch_arg": "--mem=4G"}, "did you mean sbatch_args?"),
    ("SLURM", {"poll_interval": 0}, "poll_interval = 0 for SLURM: must be a number > 0"),
    ("SLURM", {"step_sbatch_args": {"atlas": "--mem=8G"}}, "unknown step(s) atlas"),
])
def test_bad_plugin_or_argument_is_named(plugin: str, args: dict, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        validate_plugin(plugin, args)
    assert message in str(exc.value)


def test_valid_plugins_pass() -> None:
    assert validate_plugin("MultiProc", {"n_procs": 2, "memory_gb": 1.5}).name == "MultiProc"
    assert not validate_plugin("Linear", {}).batch


def test_misspelt_plugin_exits_2_before_any_work(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert cli.main(["run", str(SAMPLE), str(out), "--plugin", "Slurm"]) == 2
    err = capsys.readouterr().err
    assert "did you mean SLURM?" in err and "Traceback" not in err
    assert not out.exists()  # nothing ingested, nothing written
    assert cli.main(["run", str(SAMPLE), str(out), "--plugin", "SLURMGraph"]) == 2
    assert "use --plugin SLURM" in capsys.readouterr().err
    assert cli.main(["run", str(SAMPLE), str(out), "--plugin-args", '{"n_proc": 2}']) == 2
    assert "did you mean n_procs?" in capsys.readouterr().err
    assert not out.exists()


def test_batch_plugin_without_its_scheduler_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch/qsub anywhere
    with pytest.raises(ConfigError, match="needs 'sbatch' on PATH"):
        validate_plugin("SLURM", {})
    with pytest.raises(ConfigError, match="needs 'qsub' on PATH"):
        validate_plugin("SGE", {"qsub_args": "-q all.q"})


def test_other_plugin_on_the_command_line_drops_the_configs_arguments(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """default.toml says MultiProc with n_procs; ``--plugin Linear`` must not fail on it."""
    spec = data_dir("workflows") / "default.toml"
    rc = cli.main(["run", "--config", str(spec), str(tmp_path / "nope"), str(tmp_path / "o"),
                   "--plugin", "Linear"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "n_procs" not in err


# ------------------------------------------------------------------------------ the run lock
def test_second_run_on_a_locked_folder_is_refused_naming_the_first(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from weeke_pipeline.execution import RunLock\n"
        f"with RunLock([__import__('pathlib').Path({str(tmp_path)!r})]):\n"
        "    print('held', flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError) as exc:
            RunLock([tmp_path]).acquire()
        msg = str(exc.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in msg
        assert "in use by another weeke run" in msg
    finally:
        holder.kill()
        holder.wait()
    # its process is gone: the lock is stale and taken over
    with RunLock([tmp_path]) as lock:
        assert lock.stale_locks and lock.stale_locks[0].pid == holder.pid
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_NAME).exists()  # released


def test_lock_of_another_host_is_stale_only_without_heartbeat(tmp_path: Path) -> None:
    path = tmp_path / LOCK_NAME
    path.write_text(json.dumps({"host": "login-2", "pid": 1, "user": "tech",
                                "started": "2026-01-01 10:00:00 UTC", "command": "weeke run"}))
    with pytest.raises(LockedError, match="pid 1 on host login-2"):
        RunLock([tmp_path]).acquire()
    old = time.time() - 3600
    os.utime(path, (old, old))  # its driver stopped refreshing the lock an hour ago
    with RunLock([tmp_path]) as lock:
        assert lock.stale_locks[0].host == "login-2"


def test_lock_of_a_reused_pid_is_stale(tmp_path: Path) -> None:
    """The pid in the lock is alive but belongs to a process started after the lock's."""
    (tmp_path / LOCK_NAME).write_text(json.dumps({
        "host": socket.gethostname(), "pid": 1, "pid_start": "999999999999", "user": "tech",
        "started": "2026-01-01 10:00:00 UTC", "command": "weeke run"}))
    assert os.path.exists("/proc/1")  # pid 1 is alive: only its start time tells
    with RunLock([tmp_path]) as lock:  # taken over, not refused
        assert lock.stale_locks[0].pid == 1


def test_nested_lock_in_the_same_process_is_not_released_early(tmp_path: Path) -> None:
    with RunLock([tmp_path, tmp_path / "work"]):
        with RunLock([tmp_path]):
            pass
        assert (tmp_path / LOCK_NAME).exists() and (tmp_path / "work" / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()


# ------------------------------------------------------------------ crash reports and progress
def _fail(x):  # a Function node's body
    raise ValueError(f"bad input {x}")


def _double(x):
    return 2 * x


def _graph(tmp_path: Path, *, fail: bool) -> pe.Workflow:
    wf = pe.Workflow(name="wf", base_dir=str(tmp_path))
    for sub in ("01", "02"):
        sw = pe.Workflow(name=f"sub_{sub}_ses_01_wf")
        inputnode = pe.Node(niu.IdentityInterface(fields=["x"]), name="inputnode")
        inputnode.inputs.x = 1
        first = pe.Node(niu.Function(input_names=["x"], output_names=["out"],
                                     function=_fail if fail and sub == "01" else _double),
                        name="first")
        second = pe.Node(niu.Function(input_names=["x"], output_names=["out"],
                                      function=_double), name="second")
        sw.connect([(inputnode, first, [("x", "x")]), (first, second, [("out", "x")])])
        wf.add_nodes([sw])
    wf.config["execution"] = {"crashdump_dir": str(tmp_path / "crash"),
                              "crashfile_format": "txt", "poll_sleep_duration": "0.1"}
    return wf


def test_crash_report_of_a_job_without_result_is_written(tmp_path: Path) -> None:
    """Batch plugins pass a job's traceback as one string; Nipype's report_crash then raised
    TypeError (nipy/nipype#3372) and ended the whole run."""
    node = pe.Node(niu.Function(input_names=["x"], output_names=["out"], function=_double),
                   name="atlas_reg", base_dir=str(tmp_path))
    node.config = {"execution": {"crashdump_dir": str(tmp_path / "crash"),
                                 "crashfile_format": "txt"}}
    plugin = make_plugin(PLUGINS["SLURM"], {})  # constructing it needs no SLURM
    crash = plugin._report_crash(node, result={
        "result": None, "hostname": "node1",
        "traceback": "SlurmJobError: SLURM job 7 ended TIMEOUT\nsecond line"})
    text = Path(crash).read_text()
    assert "SlurmJobError: SLURM job 7 ended TIMEOUT" in text
    assert "results file corresponding" in text  # Nipype's own note, appended as lines


@pytest.mark.parametrize("plugin", ["MultiProc", "Linear"])
def test_progress_reaches_its_total(tmp_path: Path, plugin: str) -> None:
    args = {"n_procs": 2} if plugin == "MultiProc" else {}
    for fail in (False, True):
        stream = io.StringIO()
        wf = _graph(tmp_path / f"{plugin}-{fail}", fail=fail)
        callback = Progress(stream=stream)
        runner = make_plugin(validate_plugin(plugin, args), args, status_callback=callback)
        try:
            wf.run(plugin=runner)
        except RuntimeError:
            assert fail
        lines = stream.getvalue().splitlines()
        assert callback.total == 4  # the identity nodes are not run: 2 x (first, second)
        assert lines[-1].startswith("[  4/4] all steps accounted for")
        if fail:
            assert "1 failed, 1 not run" in lines[-1]
            assert any("sub-01 ses-01    first        FAILED" in ln for ln in lines)
        else:
            assert "4 done, 0 failed" in lines[-1]
            assert lines[-2].startswith("[  4/4]")


def test_execute_keeps_going_after_a_failed_subject(tmp_path: Path) -> None:
    wf = _graph(tmp_path, fail=True)
    execute(wf, "MultiProc", {"n_procs": 2}, work=tmp_path)
    assert list((tmp_path / "wf/sub_02_ses_01_wf/second").glob("result_*.pklz"))
    crash = next((tmp_path / "crash").glob("crash-*.txt")).read_text()
    assert "ValueError: bad input 1" in crash
