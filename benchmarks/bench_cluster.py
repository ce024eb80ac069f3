"""Benchmark: the pipeline on SLURM against MultiProc, on the same machine, in one run.

On the single-node SLURM of scripts/services.sh (all CPUs of this machine), 6 synthetic
subjects (``generate_study``, seed 5, clinical grids, 6 directions) run twice, interleaved
to share the machine's load: ``weeke run --plugin SLURM`` and ``weeke run --plugin MultiProc``
(``n_procs`` = the node's CPUs), same preset, fresh output folders. Printed:

- wall time of each and the ratio SLURM / MultiProc (the cost of running every step as a batch
  job on the same CPUs: job start-up, polling, the driver's cached checks);
- per-job overhead, two ways: (a) a chain of ``--chain`` no-op steps, one job each, submitted one
  after the other (submit + schedule + Python/Nipype start + result + polling latency), minus
  the same chain under MultiProc, divided by its length; (b) inside the pipeline's jobs, the
  job's elapsed time (``scontrol``) minus the step's own run time (Nipype's result file).

    . scripts/services.sh; python benchmarks/bench_cluster.py [--subjects 6] [--preset sloppy]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path


def _run(argv: list[str]) -> float:
    t = time.monotonic()
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t
    if res.returncode != 0:
        sys.exit(f"failed ({res.returncode}): {' '.join(argv)}\n{res.stderr[-3000:]}")
    return wall


def _noop(x):
    return x + 1


def chain_wall(plugin: str, length: int, base: Path, args: dict) -> float:
    """Wall time of ``length`` dependent no-op steps (one job each under SLURM)."""
    from nipype.interfaces import utility as niu
    from nipype.pipeline import engine as pe

    from weeke_pipeline.execution import execute

    wf = pe.Workflow(name="chain", base_dir=str(base))
    prev = None
    for i in range(length):
        node = pe.Node(niu.Function(input_names=["x"], output_names=["out"], function=_noop),
                       name=f"step{i:02d}")
        if prev is None:
            node.inputs.x = 0
        else:
            wf.connect(prev, "out", node, "x")
        prev = node
    wf.config["execution"] = {"crashdump_dir": str(base / "crash"),
                              "poll_sleep_duration": "0.5"}
    t = time.monotonic()
    execute(wf, plugin, args, work=base)
    return time.monotonic() - t


def in_job_overhead(out: Path) -> tuple[float, int]:
    """Mean (job elapsed - step run time) over the pipeline's SLURM jobs, and their count: the
    job's start and end from ``scontrol`` (1 s resolution), the step's own run time from its
    Nipype result file (the job is named ``step.sub_X_ses_Y_wf.weeke_wf.user``)."""
    from nipype.utils.filemanip import loadpkl

    wf_dir = out / "work" / "weeke_wf"
    gaps = []
    for log in sorted((wf_dir / "batch").glob("slurm-*.out")):
        job = log.stem.split("-")[1]
        text = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True,
                              text=True, check=False).stdout
        f = dict(re.findall(r"(\w+)=(\S*)", text))
        try:
            step, sub = f["JobName"].split(".")[:2]
            elapsed = (datetime.fromisoformat(f["EndTime"])
                       - datetime.fromisoformat(f["StartTime"])).total_seconds()
        except (KeyError, ValueError):
            continue  # forgotten by the controller (MinJobAge)
        results = list((wf_dir / sub / step).glob("result_*.pklz"))
        duration = getattr(getattr(loadpkl(results[0]), "runtime", None), "duration", None) \
            if results else None
        if duration is not None:
            gaps.append(elapsed - float(duration))
    return (sum(gaps) / len(gaps) if gaps else float("nan")), len(gaps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subjects", type=int, default=6)
    p.add_argument("--preset", default="sloppy")
    p.add_argument("--chain", type=int, default=8)
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    a = p.parse_args()
    if not shutil.which("sbatch"):
        sys.exit("no SLURM here: source scripts/services.sh as root first")
    from weeke_pipeline.synth.study import generate_study
    from weeke_pipeline.workers import usable_cpus

    cpus = usable_cpus()
    tmp = Path(tempfile.mkdtemp(prefix="bench_cluster_"))
    data = tmp / "data"
    generate_study(data, n_subjects=a.subjects, seed=5, n_directions=6)
    key = tmp / "key.txt"
    key.write_text("bench-key")
    participants = data / "participants.tsv"

    def argv(out: Path, plugin: str, args: dict) -> list[str]:
        cmd = [sys.executable, "-m", "weeke_pipeline.cli", "run", str(data), str(out),
               "--key-file", str(key), "--preset", a.preset, "--no-progress",
               "--plugin", plugin, "--plugin-args", json.dumps(args)]
        if participants.is_file():
            cmd += ["--participants", str(participants)]
        return cmd

    slurm_args = {"poll_interval": 5, "itk_threads": 2}  # as workflows/slurm.toml
    walls: dict[str, float] = {}
    # interleaved: MultiProc, SLURM (the machine's other load hits both alike)
    walls["MultiProc"] = _run(argv(tmp / "mp", "MultiProc", {"n_procs": cpus}))
    print(f"(MultiProc done: {walls['MultiProc']:.1f} s)", flush=True)
    walls["SLURM"] = _run(argv(tmp / "slurm", "SLURM", slurm_args))
    print(f"(SLURM done: {walls['SLURM']:.1f} s)", flush=True)
    jobs = len(list((tmp / "slurm" / "work" / "weeke_wf" / "batch").glob("slurm-*.out")))
    inside, counted = in_job_overhead(tmp / "slurm")  # before MinJobAge forgets the jobs

    chain_mp = chain_wall("MultiProc", a.chain, tmp / "chain_mp", {"n_procs": 1})
    chain_sl = chain_wall("SLURM", a.chain, tmp / "chain_slurm", {"poll_interval": 1})
    chain_sl5 = chain_wall("SLURM", a.chain, tmp / "chain_slurm5", slurm_args)

    print(f"{a.subjects} synthetic subjects, preset {a.preset}, {cpus} CPUs, "
          f"single-node SLURM (scripts/services.sh); the machine is shared: noisy")
    print(f"MultiProc (n_procs={cpus}) wall   {walls['MultiProc']:8.1f} s")
    print(f"SLURM ({jobs} jobs, poll 5 s) wall {walls['SLURM']:8.1f} s")
    print(f"ratio SLURM / MultiProc          {walls['SLURM'] / walls['MultiProc']:8.2f}")
    print(f"per-job overhead, chain of {a.chain} no-op jobs: poll 1 s "
          f"{(chain_sl - chain_mp) / a.chain:5.1f} s, poll 5 s "
          f"{(chain_sl5 - chain_mp) / a.chain:5.1f} s per job "
          f"(MultiProc chain {chain_mp:.1f} s)")
    print(f"per-job start-up inside the job (elapsed - step time), mean of {counted} jobs: "
          f"{inside:5.1f} s")
    if a.keep:
        print(f"kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
