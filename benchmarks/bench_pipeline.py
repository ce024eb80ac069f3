"""Benchmark: the whole pipeline (``weeke run``) for one synthetic subject at 1 mm.

Goals (issue 3, Performance), all measured in this one run:
- wall time under 60 s (DICOM folder -> de-identified BIDS, atlas labels, T1w/b0/ADC rigid,
  tensor fit, region metrics, QC, group tables), fast preset, MultiProc with 2 processes;
- wall time at most 1.5x the time of the bare antspyx registration calls alone (the
  ``antsRegistration`` calls of the run, timed inside
  :func:`weeke_pipeline.imaging.registration.register` and recorded in each registration JSON);
- peak memory under 3 GB: the largest sum of the resident set sizes of this process and all its
  descendants (Nipype's MultiProc workers), sampled every 0.1 s from /proc; also the largest
  single process (``getrusage``).

The subject is ``weeke synth --resolution 1`` (T1w/T2w 1 mm isotropic, DWI 2 mm, 12 directions,
seed 7, basal ganglia/thalamus injury); it is generated once into ``--data`` (not timed).
Also printed: each node's time from Nipype's result files, to show where the rest goes.

    python benchmarks/bench_pipeline.py [--data DIR] [--out DIR] [--nprocs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

GOAL_WALL_S = 60.0
GOAL_RATIO = 1.5
GOAL_MEM_GB = 3.0


class TreeMemory:
    """Peak of the summed RSS of a process and its descendants, sampled from /proc."""

    def __init__(self, pid: int | None = None, interval: float = 0.1) -> None:
        self.pid, self.interval = pid or os.getpid(), interval
        self.peak_bytes, self.peak_procs = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _tree(root: int) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
        out, todo = [], [root]
        while todo:
            p = todo.pop()
            out.append(p)
            todo.extend(children.get(p, []))
        return out

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = self._tree(self.pid)
            total = sum(self._rss(p) for p in pids)
            if total > self.peak_bytes:
                self.peak_bytes, self.peak_procs = total, len(pids)
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_subject(data: Path) -> Path:
    """One synthetic subject at 1 mm (generated once; reused when ``data`` already has it)."""
    from weeke_pipeline.synth import study as synth

    if not (data / "participants.tsv").is_file():
        t = time.perf_counter()
        synth.generate_study(data, n_subjects=1, seed=7, patterns=["bgt"], resolution_mm=1.0)
        print(f"generated the 1 mm subject in {time.perf_counter() - t:.0f} s (not timed)")
    return data


def node_times(work: Path) -> list[tuple[str, float, float]]:
    """(node, start, seconds) of every node that ran, from Nipype's result files."""
    from datetime import datetime

    from nipype.utils.filemanip import loadpkl

    rows = []
    for res in work.rglob("result_*.pklz"):
        try:
            r = loadpkl(res)
            rt = r.runtime
            start = datetime.fromisoformat(rt.startTime).timestamp()
            rows.append((res.parent.name, start, float(rt.duration)))
        except Exception:  # a node without runtime info (e.g. cached) is skipped
            continue
    return sorted(rows, key=lambda r: r[1])


def registration_seconds(deriv: Path) -> dict[str, float]:
    """antsRegistration seconds of each registration, from the registration JSONs."""
    out = {}
    for js in sorted(deriv.rglob("xfm/*_registration.json")):
        name = js.name.split("_")[-2]
        out[name] = float(json.loads(js.read_text())["seconds"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "weeke-bench-1mm",
                    help="synthetic input folder (made once, reused)")
    ap.add_argument("--out", type=Path, help="output folder (default: a temporary folder)")
    ap.add_argument("--nprocs", type=int, default=2)
    ap.add_argument("--preset", default="fast")
    args = ap.parse_args()

    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", str(args.nprocs))
    from weeke_pipeline.config import RunConfig
    from weeke_pipeline.workflows.pipeline import run_pipeline

    data = make_subject(args.data)
    load0 = os.getloadavg()[0]
    out = args.out or Path(tempfile.mkdtemp(prefix="weeke-bench-out-"))
    if out.exists():
        shutil.rmtree(out)
    cfg = RunConfig(input_dir=str(data), output_dir=str(out),
                    participants=str(data / "participants.tsv"), preset=args.preset,
                    plugin="MultiProc", plugin_args={"n_procs": args.nprocs})
    with TreeMemory() as mem:
        t0, epoch0 = time.perf_counter(), time.time()
        summary = run_pipeline(cfg)
        wall = time.perf_counter() - t0
    maxrss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                 resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * 1024
    if not summary.ok:
        print(f"pipeline failed: {summary.errors} {summary.ingest_failures}", file=sys.stderr)
        return 1

    deriv = out / "derivatives" / "weeke"
    regs = registration_seconds(deriv)
    reg_total = sum(regs.values())
    nodes = node_times(out / "work")
    cpu = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = sum(r.ru_utime + r.ru_stime for r in cpu)
    print(f"\n1 mm synthetic subject, preset {args.preset}, MultiProc n_procs={args.nprocs}, "
          f"ITK threads {os.environ['ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS']}, "
          f"load average before the run {load0:.1f}")
    print(f"{'step':<24}{'start s':>8}{'end s':>8}{'seconds':>9}")
    first = min((st for _, st, _ in nodes), default=epoch0 + wall) - epoch0
    last = max((st + sec for _, st, sec in nodes), default=epoch0) - epoch0
    print(f"{'ingest (de-id, dcm2niix)':<24}{0.0:>8.1f}{first:>8.1f}{first:>9.1f}")
    for name, start, sec in nodes:
        print(f"{name:<24}{start - epoch0:>8.1f}{start - epoch0 + sec:>8.1f}{sec:>9.1f}")
    print(f"{'group tables, QC index':<24}{last:>8.1f}{wall:>8.1f}{wall - last:>9.1f}")
    print(f"CPU time of the process tree: {cpu_s:.1f} s ({cpu_s / wall:.2f} cores busy on "
          "average)")
    print("antsRegistration calls: " + ", ".join(f"{k} {v:.1f} s" for k, v in regs.items()))
    ratio = wall / reg_total if reg_total else float("nan")
    rows = [
        ("wall time, whole pipeline", f"{wall:.1f} s", f"< {GOAL_WALL_S:.0f} s",
         wall < GOAL_WALL_S),
        ("bare antspyx registration calls (sum)", f"{reg_total:.1f} s", "", True),
        ("wall / registration", f"{ratio:.2f}x", f"<= {GOAL_RATIO}x", ratio <= GOAL_RATIO),
        ("peak memory, process tree (sum of RSS)", f"{mem.peak_bytes / 2**30:.2f} GB",
         f"< {GOAL_MEM_GB:.0f} GB", mem.peak_bytes / 2**30 < GOAL_MEM_GB),
        ("largest single process (max RSS)", f"{maxrss / 2**30:.2f} GB", "", True),
    ]
    print()
    for what, value, goal, ok in rows:
        print(f"{what:<42}{value:>10}  {goal:<9} {'' if not goal else ('ok' if ok else 'MISSED')}")
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    return 0 if all(ok for *_, ok in rows) else 2


if __name__ == "__main__":
    sys.exit(main())
