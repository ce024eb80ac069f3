"""Benchmark (issue 13): 40 concurrent readers autosaving every 0.6 s for 30 s against a real
`weeke serve`; no acknowledged save may be lost; median and p95 latency of a save.

Set-up as benchmarks/bench_reading.py (temporary data folder, SQLite or --database-url, cases
made from the shipped sample T2w, each case on two worklists): --readers accounts, each a thread
with its own logged-in session and keep-alive connection (a browser tab) that opens its first
case and then autosaves that draft every 0.6 s (+-10 %, readers out of step: the fastest the
form page autosaves) with the version it last got back, for --seconds.

"Acknowledged" = the server answered 200 with the new version. After the run every reader's
draft in the database must hold exactly its last acknowledged items and version, the trail must
have one ``read.update`` entry per acknowledged save, and ``weeke audit verify`` must pass. The
same pattern with 1 reader is the baseline, run before and after the load (interleaved, so the
machine's other load shows in both); the script prints the latency ratio to it.

Run: python benchmarks/bench_reading_load.py [--readers 40] [--seconds 30] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_reading import (  # noqa: E402
    PACE_S,
    PASSWORD,
    cpu_seconds,
    items_payload,
    set_up_study,
)
from live import Client, Server, cli_env  # noqa: E402  (bench_reading put it on the path)


@dataclass
class Tab:
    """One reader's open form page: its draft, the acknowledged saves and their latencies."""

    name: str
    client: Client
    code: str
    version: int
    rng: np.random.Generator
    acked: list[tuple[int, dict]] = field(default_factory=list)  # type: ignore[type-arg]
    latencies: list[float] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def autosave(self, form: object, seconds: float, start: threading.Barrier | None) -> None:
        if start is not None:
            start.wait()
            time.sleep(float(self.rng.uniform(0, PACE_S)))  # out of step
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            payload = items_payload(form, self.rng)
            t0 = time.perf_counter()
            try:
                status, answer = self.client.post_json(f"/api/case/{self.code}/read",
                                                       payload | {"version": self.version})
            except OSError as exc:  # no answer: not acknowledged (nothing may be assumed)
                self.refused.append(f"{type(exc).__name__}: {exc}")
                continue
            dt = time.perf_counter() - t0
            if status == 200:
                self.version = answer["version"]
                self.acked.append((self.version, payload["items"]))
                self.latencies.append(dt * 1000)
            else:
                self.refused.append(f"HTTP {status}: {answer.get('error')}")
            wait = PACE_S * float(self.rng.uniform(0.9, 1.1)) - dt
            if wait > 0:
                time.sleep(wait)


def open_tab(url: str, name: str, seed: int) -> Tab:
    client = Client(url)
    client.login(name, PASSWORD)
    code = re.findall(r'href="/case/([\w-]+)/"', client.get("/worklist/")[1].decode())[0]
    status, page = client.get(f"/case/{code}/")
    version = re.search(rb'"version": (\d+)', page)
    assert status == 200 and version, status
    return Tab(name, client, code, int(version.group(1)), np.random.default_rng(seed))


def run(tabs: list[Tab], form: object, seconds: float, pid: int) -> dict[str, float]:
    for t in tabs:
        t.latencies.clear()
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    start = threading.Barrier(len(tabs)) if len(tabs) > 1 else None
    threads = [threading.Thread(target=t.autosave, args=(form, seconds, start)) for t in tabs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    lat = [x for t in tabs for x in t.latencies]
    return {"n": len(lat), "median": statistics.median(lat),
            "p95": float(np.percentile(lat, 95)), "max": max(lat),
            "rate": len(lat) / (time.perf_counter() - t0),
            "cpu_ms": (cpu_seconds(pid) - cpu0) * 1000 / max(len(lat), 1)}


def check_nothing_lost(tabs: list[Tab]) -> tuple[int, list[str]]:
    """(acknowledged saves, problems): each draft holds its last acknowledged save, one audit
    entry per acknowledged save, the audit trail verifies."""
    from weeke_pipeline.reading import audit
    from weeke_pipeline.reading.models import AuditEntry, Read

    problems = []
    for t in tabs:
        read = Read.objects.get(case__code=t.code, reader__username=t.name)
        last_version, last_items = t.acked[-1]
        if read.version != last_version or read.items.get("items") != last_items:
            problems.append(f"{t.name} {t.code}: database has version {read.version}, last "
                            f"acknowledged {last_version}")
        logged = AuditEntry.objects.filter(action="read.update", object_id=str(read.pk)).count()
        if logged != len(t.acked):
            problems.append(f"{t.name}: {logged} audit entries for {len(t.acked)} saves")
    result = audit.verify()
    if not result.ok:
        problems.append(f"audit trail: {result.problem}")
    return sum(len(t.acked) for t in tabs), problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readers", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--baseline-seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=None, help="waitress threads (serve default)")
    ap.add_argument("--database-url", default=None, help="PostgreSQL instead of SQLite")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        # one reader more than the load: the 1-reader baseline's own account
        form, db = set_up_study(root, args.readers + 1, (args.readers + 2) // 2,
                                args.database_url)
        server = Server(db, cli_env(), threads=args.threads)
        try:
            tabs = [open_tab(server.url, f"reader{i:02d}", i) for i in range(args.readers)]
            solo = [open_tab(server.url, f"reader{args.readers:02d}", 999)]
            pid = server.proc.pid
            print(f"set-up: {args.readers} readers logged in, each on its own draft "
                  f"({time.perf_counter() - t0:.1f} s); server {server.url}")
            base1 = run(solo, form, args.baseline_seconds, pid)
            load = run(tabs, form, args.seconds, pid)
            base2 = run(solo, form, args.baseline_seconds, pid)
            acked, problems = check_nothing_lost(tabs + solo)
            refused = [r for t in tabs + solo for r in t.refused]
        finally:
            server.stop()
        backend = "PostgreSQL" if args.database_url else "SQLite"
        base_med = (base1["median"] + base2["median"]) / 2
        base_p95 = (base1["p95"] + base2["p95"]) / 2
        print(f"{args.readers} readers autosaving every {PACE_S} s for {args.seconds:.0f} s "
              f"({backend}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores):")
        print(f"  saves acknowledged {load['n']} ({load['rate']:.0f}/s), refused or unanswered "
              f"{len(refused)}, lost {len(problems)}")
        print(f"  draft save: median {load['median']:.1f} ms, p95 {load['p95']:.1f} ms, max "
              f"{load['max']:.0f} ms; server CPU {load['cpu_ms']:.1f} ms per save")
        print(f"  1 reader (baseline before/after): median {base1['median']:.1f}/"
              f"{base2['median']:.1f} ms, p95 {base1['p95']:.1f}/{base2['p95']:.1f} ms; "
              f"ratio {args.readers} readers / 1: median x{load['median'] / base_med:.1f}, "
              f"p95 x{load['p95'] / base_p95:.1f}")
        for p in problems + refused[:5]:
            print(f"  PROBLEM: {p}")
        print(f"  all {acked} acknowledged saves are in the database and the audit trail"
              if not problems else "  ACKNOWLEDGED SAVES LOST")
        if problems:
            sys.exit(1)


if __name__ == "__main__":
    main()
