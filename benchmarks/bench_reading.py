"""Benchmark (issue 5): draft save and form page latency of a real `weeke serve` with 20
concurrent simulated readers (goal: each under 100 ms median), and image loading for a case
(goal: under 1 s).

Set-up: a temporary data folder (SQLite, or --database-url), 40 imported cases whose T1w, T2w
and ADC are made from the shipped synthetic sample T2w (100 x 118 x 52 voxels, as a reader
would load), 20 reader accounts (each case on two worklists: 4 cases per reader), and
`weeke serve` (waitress) in a child process on 127.0.0.1 (loopback only).

Each simulated reader is a thread with its own logged-in session and keep-alive connection (as
a browser tab): it opens a form page, then autosaves that draft 3 times, for --rounds rounds
over its cases. Two load shapes:
  * paced: a request every 0.6 s (+-10 %) per reader, the fastest the form page sends (its
    autosave waits 0.6 s after the last change): 20 readers working flat out, each starting
    at a random moment of the 0.6 s cycle (readers are not in step);
  * closed loop: no pause at all, the next request as soon as the answer arrives (stress).
Each shape runs with 1 reader (baseline) and with 20 concurrent readers; the script prints
median and 95th percentile per request kind, the goal and the ratio to the goal, and the ratio
to the 1-reader baseline. Image loading: the three images of a case fetched over HTTP
(idle server, and during the 20-reader paced run); with --browser, also the time from
navigation until headless Chromium has rendered the three viewers (software WebGL here).
The client threads run on the same 2 cores as the server, so the numbers are pessimistic.

Run: python benchmarks/bench_reading.py [--readers 20] [--cases 40] [--rounds 5] [--browser]
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
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "reading"))
from live import Client, Server, cli_env  # noqa: E402

PASSWORD = "bench-reader-password-1"
SAMPLE_T2W = REPO / "sample_data" / "sub-01" / "truth" / "sub-01_T2w.nii.gz"
GOAL_MS = 100.0
IMAGE_GOAL_S = 1.0
PACE_S = 0.6  # the form page's autosave delay


def write_study(root: Path, n: int) -> Path:
    """n subjects, each with T1w/T2w/ADC derived from the sample T2w (int16, as dcm2niix)."""
    import nibabel as nib

    t2 = nib.load(SAMPLE_T2W)
    data = np.asarray(t2.dataobj, dtype=np.float32)
    head = data > 0.05 * data.max()
    images = {"T2w": data, "T1w": np.where(head, data.max() - data, 0),
              "ADC": np.where(head, 600 + data / data.max() * 1400, 0)}
    rows = ["participant_id\tpma_weeks\tday_of_life"]
    for i in range(n):
        anat = root / f"sub-B{i:03d}" / "anat"
        anat.mkdir(parents=True)
        for seq, arr in images.items():
            nib.save(nib.Nifti1Image(arr.astype(np.int16), t2.affine),
                     str(anat / f"sub-B{i:03d}_{seq}.nii.gz"))
        rows.append(f"sub-B{i:03d}\t{43 + i % 3}+{i % 7}\t{27 + i % 9}")
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    return root


def items_payload(form: object, rng: np.random.Generator) -> dict:  # type: ignore[type-arg]
    items = {}
    for it in form.items:  # type: ignore[attr-defined]
        if rng.random() < 0.8:
            e = int(rng.integers(0, it.max_extent + 1))
            items[it.id] = {"extent": e} | ({"laterality": int(rng.integers(1, 3))}
                                            if it.lateralised and e > 0 else {})
    return {"items": items}


class Reader:
    """A logged-in simulated reader: its cases, a session and the open drafts' versions."""

    def __init__(self, url: str, name: str, seed: int) -> None:
        self.client = Client(url)
        self.client.login(name, PASSWORD)
        page = self.client.get("/worklist/")[1].decode()
        # each case once (the worklist's "next case" link repeats one)
        self.codes = list(dict.fromkeys(re.findall(r'href="/case/([\w-]+)/"', page)))
        self.versions: dict[str, int] = {}
        self.rng = np.random.default_rng(seed)

    def work(self, form: object, rounds: int, pace: float, out: dict[str, list[float]],
             start: threading.Barrier | None = None) -> None:
        if start is not None:
            start.wait()
            if pace:  # readers are not in step: each starts at its own moment of the cycle
                time.sleep(float(self.rng.uniform(0, pace)))
        for r in range(rounds):
            code = self.codes[r % len(self.codes)]
            for kind in ("page", "save", "save", "save"):
                t0 = time.perf_counter()
                if kind == "page":
                    status, body = self.client.get(f"/case/{code}/")
                    version = re.search(rb'"version": (\d+)', body)
                    assert status == 200 and version, status
                    self.versions[code] = int(version.group(1))
                else:
                    status, answer = self.client.post_json(
                        f"/api/case/{code}/read",
                        items_payload(form, self.rng) | {"version": self.versions[code]})
                    assert status == 200, answer
                    self.versions[code] = answer["version"]
                dt = time.perf_counter() - t0
                out[kind].append(dt * 1000)
                wait = pace * float(self.rng.uniform(0.9, 1.1)) - dt  # +-10 %: stay out of step
                if wait > 0:
                    time.sleep(wait)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(readers: list[Reader], form: object, rounds: int, pace: float, pid: int
             ) -> dict[str, list[float]]:
    """Latencies (ms) per request kind; ``out["cpu"]`` = server CPU ms per request."""
    out: dict[str, list[float]] = {"page": [], "save": []}
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    if len(readers) == 1:
        readers[0].work(form, rounds, pace, out)
    else:
        start = threading.Barrier(len(readers))
        threads = [threading.Thread(target=r.work, args=(form, rounds, pace, out, start))
                   for r in readers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    n = len(out["page"]) + len(out["save"])
    out["cpu"] = [(cpu_seconds(pid) - cpu0) * 1000 / n]
    out["rate"] = [n / (time.perf_counter() - t0)]
    return out


def image_times(client: Client, code: str, repeats: int) -> list[float]:
    """Seconds to fetch the three images of a case, one after the other."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for seq in ("T1w", "T2w", "ADC"):
            status, data = client.get(f"/case/{code}/image/{seq}.nii.gz")
            assert status == 200 and len(data) > 1000
        times.append(time.perf_counter() - t0)
    return times


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def report(label: str, base: dict[str, list[float]], load: dict[str, list[float]]) -> None:
    for kind, name in (("page", "form page load"), ("save", "draft save")):
        b, x = statistics.median(base[kind]), statistics.median(load[kind])
        print(f"  {label:<12} {name:<15} n={len(load[kind]):<4} median {x:6.1f} ms  "
              f"p95 {pct(load[kind], 95):6.1f} ms  | goal {GOAL_MS:.0f} ms, ratio "
              f"{x / GOAL_MS:.2f} | 1 reader: median {b:5.1f} ms p95 {pct(base[kind], 95):5.1f}"
              f" ms, x{x / b:.1f}")
    print(f"  {label:<12} {load['rate'][0]:.0f} requests/s, server CPU {load['cpu'][0]:.1f} ms "
          f"per request (1 reader: {base['cpu'][0]:.1f} ms)")


def browser_load(url: str, code: str, cookies: dict[str, str], repeats: int) -> list[float]:
    """Seconds from navigation until Chromium shows the three viewers (weekeViewerTiming)."""
    from playwright.sync_api import sync_playwright

    exe = next(p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
               if Path(p).exists())
    args = ["--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
            "--use-angle=swiftshader", "--no-first-run", "--disable-background-networking"]
    out = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=args)
        ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
        ctx.add_cookies([{"name": k, "value": v, "url": url} for k, v in cookies.items()])
        page = ctx.new_page()
        for _ in range(repeats):
            page.goto(f"{url}/case/{code}/")
            page.wait_for_selector("body[data-viewers-loaded='3']", timeout=60_000)
            out.append(page.evaluate("Math.max(...Object.values(window.weekeViewerTiming"
                                     ".loaded))") / 1000)
        browser.close()
    return out


def set_up_study(root: Path, readers: int, cases: int, database_url: str | None
                 ) -> tuple[object, list[str]]:
    """A reading data folder under ``root`` (SQLite, or ``database_url``) with ``readers``
    reader accounts ``reader00``, ... and ``cases`` imported cases; (form, weeke db arguments)."""
    from weeke_pipeline.reading import setup

    data = root / "data"
    setup(data, database_url, migrate=True)
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from weeke_pipeline.reading.importer import import_cases
    from weeke_pipeline.reading.services import get_form

    group = Group.objects.get(name="reader")
    hashed = get_user_model()(username="x")
    hashed.set_password(PASSWORD)  # hash once (PBKDF2, ~0.5 s), reuse for every reader
    for i in range(readers):
        user = get_user_model().objects.create(username=f"reader{i:02d}",
                                               password=hashed.password)
        user.groups.add(group)
    import_cases(write_study(root / "study", cases))
    db = ["--data", str(data)] + (["--database-url", database_url] if database_url else [])
    return get_form(), db


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readers", type=int, default=20)
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds per reader and load shape (1 page load + 3 saves each)")
    ap.add_argument("--threads", type=int, default=None, help="waitress threads (serve default)")
    ap.add_argument("--database-url", default=None, help="PostgreSQL instead of SQLite")
    ap.add_argument("--browser", action="store_true",
                    help="also time image loading in headless Chromium (Playwright)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        form, db = set_up_study(root, args.readers, args.cases, args.database_url)
        server = Server(db, cli_env(), threads=args.threads)
        try:
            readers = [Reader(server.url, f"reader{i:02d}", i) for i in range(args.readers)]
            assert all(len(r.codes) == 2 * args.cases // args.readers for r in readers)
            print(f"set-up: {args.cases} cases, {args.readers} readers logged in, server "
                  f"{server.url} ({time.perf_counter() - t0:.1f} s)")
            pid = server.proc.pid
            run_load(readers[:2], form, 1, 0, pid)  # warm-up (first requests import modules)

            idle = image_times(readers[0].client, readers[0].codes[0], 5)
            base_paced = run_load(readers[:1], form, args.rounds, PACE_S, pid)
            # image fetches while 20 readers work (paced)
            busy: list[float] = []
            viewer = Client(server.url)  # the reader's browser fetches images on its own
            viewer.cookies = dict(readers[1].client.cookies)  # connection, same session
            probe = threading.Thread(target=lambda: busy.extend(
                image_times(viewer, readers[1].codes[1], 5)))
            probe.start()
            paced = run_load(readers, form, args.rounds, PACE_S, pid)
            probe.join()
            base_loop = run_load(readers[:1], form, args.rounds, 0, pid)
            loop = run_load(readers, form, args.rounds, 0, pid)

            backend = "PostgreSQL" if args.database_url else "SQLite"
            print(f"{args.readers} concurrent readers ({backend}, waitress threads "
                  f"{args.threads or 'default'}; load average {os.getloadavg()[0]:.1f} "
                  f"on {os.cpu_count()} cores):")
            report("paced 0.6 s", base_paced, paced)
            report("closed loop", base_loop, loop)
            img_size = sum(len(readers[0].client.get(f"/case/{readers[0].codes[0]}/image/"
                                                     f"{s}.nii.gz")[1])
                           for s in ("T1w", "T2w", "ADC"))
            print(f"image loading, 3 images ({img_size / 1e6:.1f} MB gzip): idle median "
                  f"{statistics.median(idle) * 1000:.0f} ms, during the paced run median "
                  f"{statistics.median(busy) * 1000:.0f} ms (max {max(busy) * 1000:.0f} ms) | "
                  f"goal {IMAGE_GOAL_S:.0f} s, ratio {statistics.median(busy) / IMAGE_GOAL_S:.2f}")
            if args.browser:
                shown = browser_load(server.url, readers[0].codes[0], readers[0].client.cookies,
                                     3)
                print(f"image loading in headless Chromium (navigation to 3 viewers rendered, "
                      f"software WebGL): median {statistics.median(shown):.2f} s, runs "
                      f"{', '.join(f'{s:.2f}' for s in shown)} | goal {IMAGE_GOAL_S:.0f} s")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
