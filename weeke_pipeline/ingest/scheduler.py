"""The ingest's process scheduler: de-identify the files of every series in parts and convert
each series as soon as its last part is written, on one pool of worker processes
(:func:`weeke_pipeline.workers.worker_pool`).

Written on :mod:`concurrent.futures` rather than as a Nipype workflow: the parts of one series
feed one conversion, the queue is refilled as tasks end (at most ``workers + 1`` queued), and a
full disk must stop everything at once, which Nipype's per-node crash files do not give.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from pathlib import Path

from weeke_pipeline import atomic
from weeke_pipeline.ingest import deidentify as deid
from weeke_pipeline.ingest.convert import ConvertJob, SeriesResult, convert_deidentified
from weeke_pipeline.workers import pool_size, worker_pool

log = logging.getLogger(__name__)

#: DICOM files per de-identification task (a DWI series of ~700 files makes ~11 tasks)
CHUNK_FILES = 64


def convert_series(jobs: list[ConvertJob], out_dir: Path, work_dir: Path, key: bytes,
                   scrub: Callable[[str], str], workers: int | None = None, *,
                   background: Callable[[], None] | None = None) -> list[SeriesResult]:
    """De-identify and convert every job; results in job order.

    The files of each series are de-identified in parts of :data:`CHUNK_FILES` by a pool of
    ``workers`` processes, and a series is converted (dcm2niix, BIDS names) by the pool as soon
    as its last part is written, while the parts of the next series are being de-identified.
    At most ``workers + 1`` tasks are queued, so a ready conversion never waits behind the
    whole study's de-identification. One failing series never stops the others; a full disk
    stops the ingest. ``background`` (optional) runs in a thread from the first submission (a
    forked pool has started all its processes by then, so no later fork copies a lock the
    thread holds) to the end."""
    results: list[SeriesResult | None] = [None] * len(jobs)
    todo: deque[tuple[int, int]] = deque()
    left = {}
    # largest series first: its conversion then overlaps the de-identification of the others
    for i in sorted(range(len(jobs)), key=lambda i: -len(jobs[i].sources)):
        job = jobs[i]
        for d in (work_dir / "deid" / job.sid, work_dir / "dcm2niix" / job.sid):
            if d.exists():
                shutil.rmtree(d)
        starts = range(0, len(job.sources), CHUNK_FILES)
        todo.extend((i, start) for start in starts)
        left[i] = len(starts)
    ready: deque[int] = deque()
    running: dict[Future, tuple[str, int]] = {}

    def fill(pool: Executor, limit: int) -> None:
        """Queue conversions that are ready, then parts to de-identify, up to ``limit``."""
        while len(running) < limit and (ready or todo):
            if ready:
                i = ready.popleft()
                running[pool.submit(convert_deidentified, jobs[i], out_dir, work_dir)] = (
                    "convert", i)
                continue
            i, start = todo.popleft()
            if results[i] is not None:  # an earlier part of this series failed
                continue
            job = jobs[i]
            running[pool.submit(
                _deidentify_part, job.sources[start:start + CHUNK_FILES],
                work_dir / "deid" / job.sid, pseudonym=job.participant, key=key,
                age_days=job.age_days, start=start + 1)] = ("deid", i)

    thread = None
    try:
        with worker_pool(workers) as pool:
            limit = pool_size(pool) + 1
            fill(pool, limit)
            if background is not None:
                thread = threading.Thread(target=background, name="weeke-ingest-background",
                                          daemon=True)
                thread.start()
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in sorted(done, key=lambda f: running[f][1]):  # job order: stable logs
                    kind, i = running.pop(f)
                    exc = f.exception()
                    if exc is not None:
                        if isinstance(exc, atomic.DiskFullError):
                            raise exc
                        if atomic.is_disk_full(exc):
                            raise atomic.write_error(exc, getattr(exc, "filename", None)
                                                     or work_dir) from exc
                        if results[i] is None:
                            job = jobs[i]
                            what = (str(exc) if isinstance(exc, RuntimeError)
                                    else f"{type(exc).__name__}: {exc}")
                            results[i] = SeriesResult(
                                job.src, job.classification, "failed", scrub(f"{job.src}: {what}"),
                                participant=job.participant, session=job.session)
                            log.error("%s", results[i].message)
                    elif kind == "deid":
                        left[i] -= 1
                        if left[i] == 0 and results[i] is None:
                            ready.append(i)
                    else:
                        res, notes = f.result()
                        res.message = scrub(res.message)
                        results[i] = res
                        for level, message in notes:  # logged here: the worker's records would
                            log.log(level, "%s", scrub(message))  # bypass this process' handlers
                fill(pool, limit)
    finally:  # also when a full disk stops the ingest: a background thread left running
        if thread is not None:  # (importing modules) would hold import locks in the next fork
            thread.join()
    return [r for r in results if r is not None]


def _deidentify_part(sources: list, out_dir: Path, **kwargs: object) -> int:
    """:func:`deid.write_deidentified` in a worker; any error comes back as an ``OSError``
    (disk full, permissions) or a ``RuntimeError`` naming its type (an exception of another
    library may not survive the trip between processes)."""
    try:
        return len(deid.write_deidentified(sources, out_dir, **kwargs))  # type: ignore[arg-type]
    except (OSError, atomic.DiskFullError):
        raise
    except Exception as exc:
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from None
