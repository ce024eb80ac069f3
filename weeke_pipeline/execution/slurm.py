"""Nipype's SLURM plugin, with the fixes a real cluster needs (a subclass, no scheduler of ours).

On top of :class:`~weeke_pipeline.execution.batch.RunControl` (crash reports, poll interval,
progress, cancellation on interruption):

- **one ``squeue`` per polling pass** for all outstanding jobs (Nipype runs ``squeue -j ID`` per
  pending job per pass: ~450 calls in a 4-minute run of 3 subjects);
- **the job's fate** when a job ended without a result (``scancel``, time limit, out of memory,
  node failure): the state, exit code and reason from ``sacct`` (where accounting is on) or
  ``scontrol show job`` (while the controller remembers the job, ``MinJobAge``), and the job
  log, in the step's crash report instead of "results file does not exist";
- **no ``LOGNAME`` needed** (cron, containers, ``env -i``): Nipype builds job names from
  ``os.environ["LOGNAME"]`` and raised ``KeyError``;
- **per-step sbatch arguments** (``step_sbatch_args = {atlas_reg = "--mem=8G --time=02:00:00"}``,
  added to ``sbatch_args``), since the atlas registration needs far more than the light steps;
- **ITK threads from the allocation**: the job script sets ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS``
  on the node from ``itk_threads`` (plugin argument), else ``SLURM_CPUS_PER_TASK``, else
  ``SLURM_CPUS_ON_NODE``, else 1, before Python (and ITK) start.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import subprocess
from dataclasses import dataclass
from glob import glob
from typing import Any

from nipype.pipeline.plugins.slurm import SLURMPlugin

from weeke_pipeline.execution.batch import RunControl

log = logging.getLogger("weeke.execution")

#: job states after which a job will not write a result (squeue/sacct/scontrol spelling)
FAILED_STATES = ("CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "FAILED", "PREEMPTED",
                 "BOOT_FAIL", "DEADLINE", "REVOKED")
#: scontrol's reasons that say why a job waited, not why it ended
PENDING_REASONS = ("", "None", "(null)", "Resources", "Priority", "Dependency", "BeginTime")
#: squeue messages that mean "ask again later", not "the job is gone"
TRANSIENT = ("Socket timed out", "not available at the moment", "Unable to contact",
             "Connection refused", "Zero Bytes were transmitted")


@dataclass
class JobFate:
    """How a batch job ended."""

    state: str
    exit_code: str = ""
    reason: str = ""

    def describe(self) -> str:
        text = self.state
        if self.exit_code:
            text += f" (exit code {self.exit_code})"
        if self.reason not in PENDING_REASONS:  # why it waited, not why it ended
            text += f", reason {self.reason}"
        return text


def _run(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def job_fate(job_id: str) -> JobFate | None:
    """State, exit code and reason of a finished job: ``sacct`` where accounting is enabled,
    else ``scontrol show job`` (which knows a job for ``MinJobAge`` seconds after it ends)."""
    try:
        res = _run(["sacct", "-n", "-P", "-X", "-j", str(job_id), "-o", "State,ExitCode,Reason"])
        line = next((ln for ln in res.stdout.splitlines() if ln.strip()), "")
        if res.returncode == 0 and line:
            state, code, reason = [*line.split("|"), "", ""][:3]
            return JobFate(state.split()[0], code, reason)
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        res = _run(["scontrol", "-o", "show", "job", str(job_id)])
    except (OSError, subprocess.TimeoutExpired):
        return None
    fields = dict(re.findall(r"(\w+)=(\S*)", res.stdout))
    if res.returncode != 0 or "JobState" not in fields:
        return None
    return JobFate(fields["JobState"], fields.get("ExitCode", ""), fields.get("Reason", ""))


def job_script_prelude(itk_threads: int | None) -> str:
    """Lines of the job script run on the node before Python starts."""
    threads = str(itk_threads) if itk_threads else \
        "${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-1}}"
    return (f'export ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS="{threads}"\n'
            'export MPLBACKEND="${MPLBACKEND:-Agg}"\n')


class WeekeSLURMPlugin(RunControl, SLURMPlugin):
    """Nipype's ``SLURMPlugin`` with the fixes above (plugin name ``SLURM`` in ``weeke run``)."""

    cancel_command = ("scancel",)
    queue_command = ("squeue", "-h", "-o", "%i", "-j")
    default_poll_interval = 5.0

    def __init__(self, plugin_args: dict[str, Any] | None = None, **kwargs: Any) -> None:
        args = dict(plugin_args or {})
        self.step_sbatch_args: dict[str, str] = dict(args.pop("step_sbatch_args", {}) or {})
        itk_threads = args.pop("itk_threads", None)
        super().__init__(plugin_args=args, **kwargs)
        self._template = self._template.rstrip("\n") + "\n" + job_script_prelude(itk_threads)
        self.squeue_calls = 0
        self._queued: set[str] = set()  # ids squeue listed at the last look
        self._asked: set[str] = set()  # ids asked about since that look
        self._finished: set[str] = set()  # ids known to have left the queue
        self._logs: dict[str, str] = {}
        self._squeue_failures = 0

    # -- submission ------------------------------------------------------------------------
    def _submit_batchtask(self, scriptfile: str, node: Any) -> int:
        extra = self.step_sbatch_args.get(node.name)
        if extra:
            node.plugin_args = {**(node.plugin_args or {}),
                                "sbatch_args": " ".join(
                                    filter(None, [node.plugin_args.get("sbatch_args"), extra]))}
        missing = "LOGNAME" not in os.environ
        if missing:  # Nipype names jobs after os.environ["LOGNAME"]
            try:
                os.environ["LOGNAME"] = getpass.getuser()
            except (KeyError, OSError):
                os.environ["LOGNAME"] = f"uid{os.getuid()}"
        with self.submitting():  # a signal now is handled once the job id is recorded
            try:
                taskid = super()._submit_batchtask(scriptfile, node)
            finally:
                if missing:
                    os.environ.pop("LOGNAME", None)
            job = str(taskid)
            args = f"{self._sbatch_args or ''} {node.plugin_args.get('sbatch_args', '')}"
            # Nipype adds ``-o <batch folder>/slurm-%j.out`` unless "-o" is in the arguments
            self._logs[job] = ("(the -o of sbatch_args)" if "-o" in args else
                               os.path.join(os.path.dirname(scriptfile), f"slurm-{job}.out"))
            self._record_job(node, job)
        return taskid

    # -- status --------------------------------------------------------------------------
    def _look(self) -> None:
        """One ``squeue`` for every outstanding job."""
        ids = self._outstanding()
        self._asked = set()
        self.squeue_calls += 1
        try:
            res = _run(["squeue", "-h", "-o", "%i", "-j", ",".join(ids)])
        except (OSError, subprocess.TimeoutExpired) as exc:
            res = subprocess.CompletedProcess([], 1, "", str(exc))
        if res.returncode == 0:
            self._queued = {ln.strip() for ln in res.stdout.splitlines() if ln.strip()}
            self._squeue_failures = 0
        elif "Invalid job id" in res.stderr:  # none of them is known any more
            self._queued = set()
            self._squeue_failures = 0
        else:
            self._squeue_failures += 1
            if self._squeue_failures >= 20 or not any(t in res.stderr for t in TRANSIENT):
                raise RuntimeError(f"squeue failed: {res.stderr.strip() or res.returncode}")
            log.warning("squeue failed (%s); treating the jobs as still queued",
                        res.stderr.strip())
            self._queued = set(ids)
            return
        self._finished |= set(ids) - self._queued

    def _is_pending(self, taskid: Any) -> bool:
        job = str(taskid)
        if job in self._finished:
            return False
        if job in self._asked or job not in self._queued:  # a new pass, or a new job
            self._look()
        self._asked.add(job)
        return job in self._queued

    def _get_result(self, taskid: Any) -> dict[str, Any] | None:
        if taskid not in self._pending:
            raise RuntimeError(f"Task {taskid} not found")
        if self._is_pending(taskid):
            return None
        node_dir = self._pending[taskid]
        if not glob(os.path.join(node_dir, "result_*.pklz")):
            fate = job_fate(str(taskid))
            if fate is not None and fate.state.split()[0] in FAILED_STATES:
                log_path = self._logs.get(str(taskid), "")
                msg = (f"SlurmJobError: SLURM job {taskid} ended {fate.describe()} before the "
                       f"step finished; job log: {log_path}\n")
                return {"result": None, "traceback": [msg], "hostname": "unknown"}
        return super()._get_result(taskid)

    def _clear_task(self, taskid: Any) -> None:
        super()._clear_task(taskid)
        self._finished.discard(str(taskid))

    @property
    def job_logs(self) -> dict[str, str]:
        return dict(self._logs)

