"""Benchmark (issue 16): how fast a case opens for a reader in headless Chromium (software
WebGL here), with the images stored whole (baseline) and cropped to the brain mask plus 15 mm
(what `weeke cases import` does when the pipeline wrote a brain mask), measured in one run.

The case: T2w, T1w and ADC on an acquisition-sized grid. With ../shared/data present, the real
UNC/BCP neonatal T2w/T1w templates (243 x 291 x 198 at 0.8 mm, brain with a wide zero border,
as a clinical field of view is wider than the brain) and an ADC-like map derived from the T2w;
otherwise the shipped synthetic sample (head and skull, 100 x 118 x 52). The brain mask is the
template's non-zero region (the synthetic truth labels for the sample).

Printed per variant (median of --repeats page loads, alternating whole / cropped): bytes of
the three images on the wire, time from navigation to the first image shown and to all three,
and the ratios cropped / whole.

Run: python benchmarks/bench_reading_view.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "reading"))
SHARED = REPO.parent / "shared" / "data" / "atlases" / "uncbcp_infant00"
PASSWORD = "bench-password-1"


def write_case(root: Path) -> str:
    """One subject in the pipeline's derivatives layout; returns a description."""
    import nibabel as nib

    anat = root / "derivatives" / "weeke" / "sub-VIEW1" / "anat"
    anat.mkdir(parents=True)
    t2_files = sorted(SHARED.glob("*T2w*.nii*")) if SHARED.is_dir() else []
    t1_files = sorted(SHARED.glob("*T1w*.nii*")) if SHARED.is_dir() else []
    if t2_files and t1_files:
        t2 = nib.load(str(t2_files[0]))
        t1 = nib.load(str(t1_files[0]))
        data = np.asarray(t2.dataobj, dtype=np.float32)
        mask = data > 0
        what = f"UNC/BCP neonatal template {t2.shape} at {t2.header.get_zooms()[0]:.1f} mm"
        t1_data = np.asarray(t1.dataobj, dtype=np.float32)
    else:
        t2 = nib.load(str(REPO / "sample_data" / "sub-01" / "truth" / "sub-01_T2w.nii.gz"))
        seg = nib.load(str(REPO / "sample_data" / "sub-01" / "truth" / "sub-01_dseg.nii.gz"))
        data = np.asarray(t2.dataobj, dtype=np.float32)
        mask = np.asarray(seg.dataobj) > 0
        t1_data = np.where(data > 0, data.max() - data, 0)
        what = f"shipped synthetic sample {t2.shape} (../shared/data absent)"
    adc = np.where(mask, 800 + 700 * data / max(float(data.max()), 1.0), 0)
    stem = anat / "sub-VIEW1"
    nib.save(nib.Nifti1Image(data.astype(np.int16), t2.affine), f"{stem}_desc-preproc_T2w.nii.gz")
    nib.save(nib.Nifti1Image(t1_data.astype(np.int16), t2.affine),
             f"{stem}_space-T2w_desc-preproc_T1w.nii.gz")
    nib.save(nib.Nifti1Image(adc.astype(np.int16), t2.affine), f"{stem}_space-T2w_ADC.nii.gz")
    nib.save(nib.Nifti1Image(mask.astype(np.uint8), t2.affine),
             f"{stem}_space-T2w_desc-brain_mask.nii.gz")
    (root / "participants.tsv").write_text("participant_id\tpma_weeks\nsub-VIEW1\t44+2\n")
    return what


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from live import Client, Server, cli_env, weeke
    from playwright.sync_api import sync_playwright

    exe = next(p for p in ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
               if Path(p).exists())
    browser_args = ["--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader",
                    "--use-angle=swiftshader", "--no-first-run", "--disable-background-networking"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        what = write_case(root / "study")
        env = cli_env(WEEKE_PASSWORD=PASSWORD)
        servers, codes, sizes = {}, {}, {}
        for variant, crop in (("whole", ["--no-crop"]), ("cropped", [])):
            d = ["--data", str(root / variant)]
            weeke(["users", "add", "reader1", "--role", "reader", *d],
                  ["users", "add", "reader2", "--role", "reader", *d],
                  ["cases", "import", str(root / "study"), *crop, *d], env=env)
            servers[variant] = Server(d, env)
            files = sorted((root / variant / "images").glob("*/*.nii.gz"))
            codes[variant] = files[0].parent.name
            sizes[variant] = sum(f.stat().st_size for f in files)
        times: dict[str, dict[str, list[float]]] = {v: {"first": [], "all": []} for v in servers}
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=exe, headless=True,
                                             args=browser_args)
                pages = {}
                for variant, srv in servers.items():
                    client = Client(srv.url)
                    client.login("reader1", PASSWORD)
                    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
                    ctx.add_cookies([{"name": k, "value": v, "url": srv.url}
                                     for k, v in client.cookies.items()])
                    pages[variant] = (ctx.new_page(), srv.url)
                for _ in range(args.repeats):
                    for variant, (page, url) in pages.items():
                        page.goto(f"{url}/case/{codes[variant]}/")
                        page.wait_for_selector("body[data-viewers-loaded='3']", timeout=600_000)
                        t = page.evaluate("window.weekeViewerTiming")
                        times[variant]["first"].append(t["firstImage"] / 1000)
                        times[variant]["all"].append(t["allImages"] / 1000)
                browser.close()
        finally:
            for srv in servers.values():
                srv.stop()
    print(f"case: {what}; Chromium with software WebGL (SwiftShader), {args.repeats} loads each")
    med = {v: {k: statistics.median(x) for k, x in t.items()} for v, t in times.items()}
    for variant in servers:
        print(f"  {variant:8s} images {sizes[variant] / 1e6:6.2f} MB gzip | first image "
              f"{med[variant]['first']:.2f} s | all images {med[variant]['all']:.2f} s")
    print(f"  cropped / whole: bytes {sizes['cropped'] / sizes['whole']:.2f}, first image "
          f"{med['cropped']['first'] / med['whole']['first']:.2f}, all images "
          f"{med['cropped']['all'] / med['whole']['all']:.2f}")


if __name__ == "__main__":
    main()
