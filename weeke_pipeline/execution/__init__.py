"""Running the per-subject workflows: Nipype's execution plugins with the fixes a real cluster
needs (:mod:`.batch`, :mod:`.slurm`), plugin validation (:mod:`.plugins`), one run per folder
(:mod:`.lock`) and the progress display (:mod:`.progress`). See docs/pipeline.md, "Running on a
cluster"."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from weeke_pipeline.execution.batch import DriverInterrupted
from weeke_pipeline.execution.lock import LockedError, RunLock
from weeke_pipeline.execution.plugins import PLUGINS, PluginSpec, make_plugin, validate_plugin
from weeke_pipeline.execution.progress import Progress

__all__ = ["JOBS_FILE", "PLUGINS", "DriverInterrupted", "LockedError", "PluginSpec", "Progress",
           "RunLock", "cancel_leftover_jobs", "execute", "make_plugin", "validate_plugin"]

log = logging.getLogger("weeke.execution")

#: submitted batch jobs of the work folder's current (or last) run: id, plugin, step
JOBS_FILE = ".weeke-jobs.tsv"


def cancel_leftover_jobs(work: Path) -> list[str]:
    """Cancel the batch jobs of an earlier driver of ``work`` that was killed without cleaning
    up (their ids are in the jobs file) and that the scheduler still runs; returns their ids.

    Called under the run lock, so no live driver owns them: left running they would write into
    the nodes this run is about to run again (Nipype then fails with ``_unfinished.json``)."""
    import subprocess

    path = work / JOBS_FILE
    try:
        rows = [ln.split("\t") for ln in path.read_text().splitlines() if ln.strip()]
    except FileNotFoundError:
        return []
    cancelled: list[str] = []
    for plugin in sorted({r[1] for r in rows if len(r) > 1}):
        spec = PLUGINS.get(plugin)
        ids = [r[0] for r in rows if len(r) > 1 and r[1] == plugin]
        if spec is None or not spec.cancel:
            continue
        if not spec.queue:
            log.warning("an earlier run of %s submitted %s jobs that may still run: %s", work,
                        plugin, " ".join(ids))
            continue
        try:
            res = subprocess.run([*spec.queue, ",".join(ids)], capture_output=True, text=True,
                                 timeout=60, check=False)
            alive = [i for i in ids if i in res.stdout.split()]
            if alive:
                subprocess.run([*spec.cancel, *alive], capture_output=True, timeout=60,
                               check=False)
                log.warning("cancelled %d job(s) an interrupted earlier run left in the queue: "
                            "%s", len(alive), " ".join(alive))
                cancelled += alive
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("could not check the jobs of an earlier run (%s): %s", exc,
                        " ".join(ids))
    path.unlink(missing_ok=True)
    return cancelled


class _JobsFile:
    """Appends ``id<TAB>plugin<TAB>step`` lines (what :func:`cancel_leftover_jobs` reads)."""

    def __init__(self, path: Path, plugin: str) -> None:
        self.path, self.plugin = path, plugin

    def add(self, job_id: str, step: str) -> None:
        with open(self.path, "a") as f:
            f.write(f"{job_id}\t{self.plugin}\t{step}\n")


def execute(wf: Any, plugin: str, plugin_args: dict[str, Any], *, work: Path,
            progress: bool = False) -> Any:
    """Run ``wf`` on ``plugin`` (validated again here); node crashes are left in the work
    folder's crash files (the caller reports them per subject). Raises
    :class:`DriverInterrupted` after cancelling the submitted jobs on SIGINT/SIGTERM/SIGHUP."""
    spec = validate_plugin(plugin, plugin_args)
    jobs = None
    if spec.batch:
        cancel_leftover_jobs(work)
        jobs = _JobsFile(work / JOBS_FILE, spec.name)
    callback = Progress() if progress else None
    runner = make_plugin(spec, plugin_args, status_callback=callback, jobs_file=jobs)
    try:
        wf.run(plugin=runner)
    except RuntimeError as exc:  # some node crashed: the other subjects have still run
        log.warning("some subjects failed: %s", str(exc).splitlines()[0] if str(exc) else exc)
    else:
        if jobs is not None:
            jobs.path.unlink(missing_ok=True)
    return runner
