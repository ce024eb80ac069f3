"""Small pieces shared by the workflows: resource hints, dict-collecting nodes, edge functions."""

from __future__ import annotations

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

#: expected peak memory (GB) of the heavy nodes' processes, for MultiProc's scheduling:
#: peak RSS measured on a 1 mm subject (benchmarks/bench_pipeline.py), so a memory-limited run
#: (plugin_args memory_gb) packs nodes safely. n_procs stays 1: a registration uses ITK's
#: threads (ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS), but the atlas registration alone keeps only
#: ~1.2 of 2 cores busy, so the tensor fit runs beside it on the spare core instead of waiting
#: (measured: it then costs no wall time).
MEM_GB = {"atlas_reg": 0.6, "rigid": 0.5, "tensor": 0.5, "metrics": 0.4, "qc": 0.4}


def _collect(**kwargs):
    """Dict of the defined keyword arguments (a Function node's body); a dict-valued argument
    adds its entries (e.g. one report per atlas)."""
    from nipype.interfaces.base import isdefined

    out = {}
    for k, v in kwargs.items():
        if v is None or not isdefined(v):
            continue
        if isinstance(v, dict):
            out.update(v)
        else:
            out[k] = v
    return out


def dict_node(name: str, fields: list[str]) -> pe.Node:
    """A node whose output ``out`` is the dict of its defined inputs ``fields``."""
    # a dict of paths: run in the scheduler's process (no round trip through a worker)
    node = pe.Node(niu.Function(input_names=fields, output_names=["out"], function=_collect),
                   name=name, run_without_submitting=True)
    for f in fields:
        setattr(node.inputs, f, None)
    return node


def seed_kwargs(seed: int | None) -> dict[str, int]:
    """Keyword arguments of a registration interface for ``seed`` (none: the preset's)."""
    return {} if seed is None else {"random_seed": int(seed)}


def as_list(value):
    """Edge function: ``value`` -> ``[value]``."""
    return [value]


def first(values):
    """Edge function: the first item."""
    return values[0]
