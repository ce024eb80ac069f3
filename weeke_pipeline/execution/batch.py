"""What every plugin of a ``weeke run`` adds to Nipype's own plugins (subclasses, no scheduler
of our own).

:class:`RunControl` is mixed into Nipype's plugin classes (MultiProc, Linear, SLURM, SGE, ...):

- **crash reports that do not crash**: Nipype's batch plugins hand ``report_crash`` the
  traceback of a job that ended without a result as one string, and ``report_crash`` then adds a
  list to it (``TypeError: can only concatenate str (not "list") to str``, nipy/nipype#3372, open
  since 2021). One killed job then ended the whole run with a raw traceback, no summary and the
  other subjects' steps never submitted. The traceback is passed on as a list of lines.
- **polling interval** per plugin (``poll_interval``): 0.5 s for local plugins, 5 s for batch
  systems so a shared controller is not hammered.
- **progress** reaching its total (the graph Nipype really runs) and a closing line.
- **interruption**: SIGINT, SIGTERM and SIGHUP of the driver cancel the batch jobs it submitted
  (their ids are also written to a jobs file, so a run after a driver killed with SIGKILL finds
  and cancels them), then the run stops with :class:`DriverInterrupted`.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
from typing import Any

log = logging.getLogger("weeke.execution")


class DriverInterrupted(KeyboardInterrupt):
    """The driver got SIGINT/SIGTERM/SIGHUP; the jobs it had submitted were cancelled."""

    def __init__(self, signum: int, cancelled: list[str] | None = None) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.cancelled = cancelled or []


def _as_lines(traceback: Any) -> list[str]:
    if isinstance(traceback, str):
        return traceback.splitlines(keepends=True)
    return list(traceback or [])


class RunControl:
    """Mixin for a Nipype plugin class; see the module docstring.

    ``cancel_command``: the batch system's command that cancels jobs by id (``scancel``,
    ``qdel``, ``bkill``...), or None for local plugins.
    """

    cancel_command: tuple[str, ...] | None = None
    default_poll_interval: float | None = None

    def __init__(self, plugin_args: dict[str, Any] | None = None, *,
                 jobs_file: Any = None, **kwargs: Any) -> None:
        args = dict(plugin_args or {})
        self.poll_interval = args.pop("poll_interval", self.default_poll_interval)
        self.job_finished_timeout = args.pop("job_finished_timeout", None)
        self.jobs_file = jobs_file
        self.submitted_jobs: list[str] = []
        self.job_steps: dict[str, str] = {}  # job id -> node full name
        super().__init__(plugin_args=args, **kwargs)  # type: ignore[call-arg]

    # -- crash reports -------------------------------------------------------------------
    def _report_crash(self, node: Any, result: dict[str, Any] | None = None) -> str:
        if result is not None:
            result = {**result, "traceback": _as_lines(result.get("traceback"))}
        return super()._report_crash(node, result=result)  # type: ignore[misc]

    # -- job bookkeeping -------------------------------------------------------------------
    def _outstanding(self) -> list[str]:
        """Ids of submitted batch jobs whose result has not been collected."""
        return [str(t) for t in getattr(self, "_pending", {})]

    def _record_job(self, node: Any, job_id: str) -> None:
        self.submitted_jobs.append(job_id)
        self.job_steps[job_id] = node.fullname
        if self.jobs_file is not None:
            self.jobs_file.add(job_id, node.fullname)
        callback = getattr(self, "_status_callback", None)
        if callback is not None and hasattr(callback, "submitted"):
            callback.submitted(node, job_id)

    @contextlib.contextmanager
    def submitting(self) -> Any:
        """Hold back SIGINT/SIGTERM/SIGHUP while a job is submitted and recorded: a signal
        between ``sbatch`` starting the job and the plugin learning its id would leave that
        job running. The held signal interrupts the run right after."""
        self._submitting = True
        try:
            yield
        finally:
            self._submitting = False
        held, self._held_signal = getattr(self, "_held_signal", None), None
        if held is not None:
            raise DriverInterrupted(held)

    def cancel_outstanding(self) -> list[str]:
        """Cancel the jobs this run submitted and has not collected; returns their ids."""
        ids = self._outstanding()
        if ids and self.cancel_command:
            try:
                subprocess.run([*self.cancel_command, *ids], capture_output=True, timeout=60,
                               check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.error("could not cancel jobs %s (%s): cancel them by hand",
                          " ".join(ids), exc)
        return ids

    # -- the run -------------------------------------------------------------------------
    def run(self, graph: Any, config: dict[str, Any], updatehash: bool = False) -> Any:
        execution = dict(config["execution"])
        if self.poll_interval is not None:
            execution["poll_sleep_duration"] = str(self.poll_interval)
        if self.job_finished_timeout is not None:
            execution["job_finished_timeout"] = str(self.job_finished_timeout)
        config = {**config, "execution": execution}
        callback = getattr(self, "_status_callback", None)
        if callback is not None and hasattr(callback, "set_total"):
            callback.set_total(graph.number_of_nodes())

        self._submitting, self._held_signal = False, None

        def interrupted(signum: int, frame: Any) -> None:
            if self._submitting:
                self._held_signal = signum
                return
            raise DriverInterrupted(signum)

        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            defaults = {signal.SIGINT: signal.default_int_handler,
                        signal.SIGTERM: signal.SIG_DFL, signal.SIGHUP: signal.SIG_DFL}
            for sig, default in defaults.items():
                if signal.getsignal(sig) is default:  # respect nohup's SIG_IGN and others
                    previous[sig] = signal.signal(sig, interrupted)
        interrupted = False
        try:
            return super().run(graph, config, updatehash=updatehash)  # type: ignore[misc]
        except KeyboardInterrupt as exc:
            interrupted = True
            # block further signals while cancelling: a second Ctrl-C must not leave jobs
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
            with _ignoring(signal.SIGINT):
                cancelled = self.cancel_outstanding()
            signum = getattr(exc, "signum", signal.SIGINT)
            if cancelled:
                log.warning("interrupted (%s): cancelled %d job(s): %s",
                            signal.Signals(signum).name, len(cancelled), " ".join(cancelled))
            raise DriverInterrupted(signum, cancelled) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if callback is not None and hasattr(callback, "finish"):
                callback.finish(interrupted=interrupted)


@contextlib.contextmanager
def _ignoring(sig: int) -> Any:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(sig, old)

