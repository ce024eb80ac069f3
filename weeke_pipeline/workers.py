"""Worker processes for the CPU-bound steps that run outside the Nipype graph (de-identification
and conversion of a study's series before the per-subject workflows start).

``concurrent.futures`` from the standard library: a process pool (the work is pure-Python
pydicom parsing and writing, which threads cannot overlap because of the GIL), forked on Linux
(no re-import in the workers: starting two takes milliseconds), and an inline stand-in with the
same interface when one worker is asked for, so callers have a single code path.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class InlineExecutor(Executor):
    """Runs each task at submission, in this process; returns a finished future."""

    workers = 1

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        f: Future = Future()
        try:
            f.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through the future, as a pool would
            f.set_exception(exc)
        return f


def pool_size(pool: Executor) -> int:
    """How many tasks ``pool`` (from :func:`worker_pool`) runs at once."""
    return int(getattr(pool, "workers", 1))


@contextlib.contextmanager
def worker_pool(workers: int | None) -> Iterator[Executor]:
    """``workers`` processes (default: the usable CPUs); inline when that is 1.

    A forked pool starts all its processes at its first task and never again: after that,
    threads of this process cannot leave a held lock in a later fork."""
    n = usable_cpus() if workers is None else max(1, int(workers))
    if n == 1:
        yield InlineExecutor()
        return
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
    pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx)
    pool.workers = n  # type: ignore[attr-defined]  # its size (the executor keeps it private)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
