"""Which Nipype plugins ``weeke run`` runs on, their arguments checked before any work.

A misspelt plugin (``Slurm``) or argument (``sbatch_arg``) used to fail after the ingest with an
AttributeError traceback, or be silently ignored. :func:`validate_plugin` names the problem (and
the nearest valid spelling) before anything is written; the CLI exits 2.

Supported: ``Linear``, ``MultiProc``, ``LegacyMultiProc`` (one machine); ``SLURM`` (tested on a
real SLURM); ``SGE``, ``PBS``, ``LSF``, ``OAR``, ``Condor`` (Nipype's plugins with the same
fixes; not tested here, no such scheduler can be installed from Debian).

Refused with a usage error: the *graph* plugins ``SLURMGraph``, ``SGEGraph``, ``PBSGraph`` and
``CondorDAGMan``. They submit every step at once with scheduler dependencies and return before
anything has run, so the driver cannot write the QC reports, the group table or the run summary;
a failed step leaves its dependants waiting forever (``DependencyNeverSatisfied``) instead of
failing its subject; and the run would save at most the scheduler's short polling, which
``poll_interval`` and one ``squeue`` per pass already make cheap. ``Debug``, ``IPython`` and
``SomaFlow`` are development tools, not batch back-ends, and are refused too.
"""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from weeke_pipeline.errors import ConfigError

Check = Callable[[Any], str]  # returns "" when the value is fine, else what is wrong


def _int(minimum: int) -> Check:
    def check(v: Any) -> str:
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= minimum
        return "" if ok else f"must be a whole number >= {minimum}"
    return check


def _num(minimum: float, *, strict: bool = False) -> Check:
    def check(v: Any) -> str:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and (
            v > minimum if strict else v >= minimum)
        return "" if ok else f"must be a number {'>' if strict else '>='} {minimum:g}"
    return check


def _str(v: Any) -> str:
    return "" if isinstance(v, str) else "must be a string"


def _bool(v: Any) -> str:
    return "" if isinstance(v, bool) else "must be true or false"


def _choice(*options: str) -> Check:
    def check(v: Any) -> str:
        return "" if v in options else f"must be one of {', '.join(options)}"
    return check


#: the steps of the per-subject workflow that run as batch jobs (``step_sbatch_args`` keys)
STEPS = ("atlas_reg", "t1w_reg", "b0", "b0_reg", "adc_reg", "tensor", "tensor_t2w", "metrics",
         "qc", "sink")


def _steps(v: Any) -> str:
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        return 'must be a table of step = "sbatch arguments"'
    unknown = sorted(set(v) - set(STEPS))
    return f"unknown step(s) {', '.join(unknown)}; steps: {', '.join(STEPS)}" if unknown else ""


LOCAL_ARGS: dict[str, Check] = {
    "n_procs": _int(1), "memory_gb": _num(0, strict=True), "raise_insufficient": _bool,
    "scheduler": _choice("tsort", "mem_thread"), "poll_interval": _num(0, strict=True)}
BATCH_ARGS: dict[str, Check] = {
    "max_jobs": _int(1), "template": _str, "retry_timeout": _num(0), "max_tries": _int(0),
    "poll_interval": _num(0, strict=True), "job_finished_timeout": _num(0)}


@dataclass(frozen=True)
class PluginSpec:
    """A plugin ``weeke run`` accepts: its Nipype class, arguments and batch commands."""

    name: str
    nipype_class: str  # attribute of nipype.pipeline.plugins
    args: dict[str, Check] = field(default_factory=dict)
    submit: str = ""  # the submit command that must be on PATH (batch systems)
    cancel: tuple[str, ...] = ()
    queue: tuple[str, ...] = ()  # + comma-separated ids: prints the ids still queued

    @property
    def batch(self) -> bool:
        return bool(self.submit)


PLUGINS: dict[str, PluginSpec] = {s.name: s for s in (
    PluginSpec("Linear", "LinearPlugin"),
    PluginSpec("MultiProc", "MultiProcPlugin", {**LOCAL_ARGS, "mp_context": _choice(
        "fork", "spawn", "forkserver")}),
    PluginSpec("LegacyMultiProc", "LegacyMultiProcPlugin", {
        **LOCAL_ARGS, "maxtasksperchild": _int(1), "non_daemon": _bool}),
    PluginSpec("SLURM", "SLURMPlugin", {
        **BATCH_ARGS, "sbatch_args": _str, "jobid_re": _str, "step_sbatch_args": _steps,
        "itk_threads": _int(1)}, submit="sbatch", cancel=("scancel",),
        queue=("squeue", "-h", "-o", "%i", "-j")),
    PluginSpec("SGE", "SGEPlugin", {**BATCH_ARGS, "qsub_args": _str}, submit="qsub",
               cancel=("qdel",)),
    PluginSpec("PBS", "PBSPlugin", {**BATCH_ARGS, "qsub_args": _str,
                                    "max_jobname_len": _int(1)}, submit="qsub",
               cancel=("qdel",)),
    PluginSpec("LSF", "LSFPlugin", {**BATCH_ARGS, "bsub_args": _str}, submit="bsub",
               cancel=("bkill",)),
    PluginSpec("OAR", "OARPlugin", {**BATCH_ARGS, "oarsub_args": _str,
                                    "max_jobname_len": _int(1)}, submit="oarsub",
               cancel=("oardel",)),
    PluginSpec("Condor", "CondorPlugin", {**BATCH_ARGS, "qsub_args": _str},
               submit="condor_qsub", cancel=("condor_rm",)),
)}

REFUSED = {
    "SLURMGraph": "it submits every step with dependencies and returns before any has run, so "
                  "no QC report or run summary could be written and a failed step would leave "
                  "its subject's later jobs waiting forever; use --plugin SLURM",
    "SGEGraph": "a submit-and-return graph plugin (see SLURMGraph); use --plugin SGE",
    "PBSGraph": "a submit-and-return graph plugin (see SLURMGraph); use --plugin PBS",
    "CondorDAGMan": "a submit-and-return graph plugin (see SLURMGraph); use --plugin Condor",
    "Debug": "a development tool, not an execution back-end",
    "IPython": "not supported by weeke run (use MultiProc or a batch system)",
    "SomaFlow": "not supported by weeke run (use MultiProc or a batch system)",
}


def validate_plugin(name: str, args: dict[str, Any]) -> PluginSpec:
    """The spec of plugin ``name`` after checking ``args``; raises :class:`ConfigError` with
    the nearest valid spelling, or when its submit command is not on PATH."""
    if name in REFUSED:
        raise ConfigError(f"plugin {name} is not supported: {REFUSED[name]}")
    spec = PLUGINS.get(name)
    if spec is None:
        by_lower = {n.lower(): n for n in PLUGINS}
        near = by_lower.get(name.lower()) or next(
            iter(difflib.get_close_matches(name, list(PLUGINS), n=1)), None)
        hint = f" (did you mean {near}?)" if near else ""
        raise ConfigError(f"unknown plugin {name!r}{hint}; plugins: {', '.join(PLUGINS)}")
    if not isinstance(args, dict):
        raise ConfigError(f"plugin_args must be a table of arguments for {name}")
    for key, value in args.items():
        check = spec.args.get(key)
        if check is None:
            near = next(iter(difflib.get_close_matches(key, list(spec.args), n=1)), None)
            hint = f" (did you mean {near}?)" if near else ""
            known = ", ".join(sorted(spec.args)) or "none"
            raise ConfigError(f"plugin argument {key!r} is not one of {name}'s{hint}; "
                              f"{name} takes: {known}")
        problem = check(value)
        if problem:
            raise ConfigError(f"plugin argument {key} = {value!r} for {name}: {problem}")
    if spec.submit and shutil.which(spec.submit) is None:
        raise ConfigError(f"plugin {name} needs {spec.submit!r} on PATH, which is not found: "
                          f"run weeke on a submit host of the {name} cluster")
    return spec


def make_plugin(spec: PluginSpec, args: dict[str, Any], *, status_callback: Any = None,
                jobs_file: Any = None) -> Any:
    """An instance of the weeke subclass of the Nipype plugin (for ``workflow.run(plugin=)``)."""
    import nipype.pipeline.plugins as nplugins

    from weeke_pipeline.execution.batch import RunControl

    plugin_args = dict(args)
    if status_callback is not None:
        plugin_args["status_callback"] = status_callback
    if spec.name == "SLURM":
        from weeke_pipeline.execution.slurm import WeekeSLURMPlugin

        return WeekeSLURMPlugin(plugin_args=plugin_args, jobs_file=jobs_file)
    base = getattr(nplugins, spec.nipype_class)
    attrs: dict[str, Any] = {"cancel_command": spec.cancel or None,
                             "default_poll_interval": 5.0 if spec.batch else None}
    if spec.batch:
        def record(self: Any, scriptfile: str, node: Any, _base: Any = base) -> Any:
            with self.submitting():
                taskid = _base._submit_batchtask(self, scriptfile, node)
                self._record_job(node, str(taskid))
            return taskid
        attrs["_submit_batchtask"] = record
    cls = type(f"Weeke{spec.nipype_class}", (RunControl, base), attrs)
    kwargs = {"jobs_file": jobs_file} if spec.batch else {}
    return cls(plugin_args=plugin_args, **kwargs)
