"""Calibration of the QC flag on real neonatal brains: known-good vs known-bad registrations.

Real images only (``../shared/data/atlases``; set ``WEEKE_SHARED_DATA`` elsewhere):
the Serag et al. 2012 T2w templates at 36 and 40 weeks (+ the 40-week brain mask and Draw-EM
tissue map) and the UNC/BCP neonatal T2w template. The 40-week template becomes a real atlas in
the Weeke vocabulary (:func:`serag_atlas`: tissue classes split into hemispheres and coarse
lobes by position; fewer regions than the phantom, as an imported real atlas has).

Known-good runs (the atlas is the right one, registered with the shipped preset):
  serag36 <- serag40, unc <- serag40, deformed copies of serag40 and serag36 (known affine +
  smooth warp of :func:`weeke_pipeline.synth.random_geometry`), and a deformed serag40 put in
  a larger field of view with Rician background noise (a scan with air, not skull-stripped).
Known-bad runs (labels wrong by construction):
  the phantom atlas (atlases/weeke-phantom) on serag40, serag36 and unc; the serag40 atlas
  flipped left-right (image and labels mirrored in the array, header unchanged) on serag36 and
  unc; a wrong-age input (serag36 shrunk to 0.75 x in each axis: ~29 weeks' brain volume,
  declared 44 weeks, the trial's age at scan); a cropped input (serag36 with the top 35 % of
  slices cut off) and a zero-filled one (unc with the top 30 % of slices set to 0).

Each run goes through :func:`weeke_pipeline.registration.atlas_to_subject` (preset ``fast``)
and :func:`weeke_pipeline.qc.qc_numbers` / :func:`weeke_pipeline.qc.qc_flag` exactly as the
pipeline calls them. Prints one row per run and the confusion table (expected good/bad x flag).

    python benchmarks/calibrate_qc_real.py [--mm 2.0] [--preset fast] [--out DIR]

The same cases at 3 mm are checked by tests/imaging/test_qc_real.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WEEKE_SHARED_DATA", ROOT.parent / "shared" / "data"))
SERAG = "atlases/serag2012_neonatal"
UNC = "atlases/uncbcp_infant00/tpl-UNCBCP4DInfant_cohort-00_desc-brain_T2w.nii.gz"
PHANTOM = ROOT / "atlases" / "weeke-phantom"


@dataclass
class Atlas:
    name: str
    t2w: object       # ants.ANTsImage
    mask: object
    dseg: object
    pma_weeks: float
    phantom: bool = False


@dataclass
class Case:
    name: str
    expected: str       # "good" | "bad"
    subject: Callable[[], object]
    atlas: Callable[[], Atlas]
    pma_weeks: float
    why: str = ""


def _down(img, mm: float, labels: bool = False):
    import ants

    if mm <= 0:
        return img
    return ants.resample_image(img, (mm, mm, mm), False, 1 if labels else 0)


def _world_lps(img) -> np.ndarray:
    """LPS physical coordinates (x, y, z) of every voxel, shape (*img.shape, 3)."""
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in img.shape], indexing="ij"), -1)
    a = np.asarray(img.direction) * np.asarray(img.spacing)
    return idx @ a.T + np.asarray(img.origin)


def serag_atlas(t40, mask, tissues):
    """Weeke-vocabulary labels from the Serag 40-week Draw-EM tissue map (1 CSF, 2 cortex,
    3/8/9 white matter, 5 ventricles, 6 cerebellum + brainstem, 7 deep grey): hemisphere by
    the mask's mid-sagittal plane, frontal/occipital by the anterior/posterior half, thalamus
    (posterior) / lentiform (anterior) deep grey, brainstem = the anterior half of class 6."""
    from weeke_pipeline.atlas.regions import label_index as li

    t = np.rint(tissues.numpy()).astype(int)
    m = mask.numpy() > 0
    w = _world_lps(tissues)
    xmid = w[..., 0][m].mean()
    left = w[..., 0] > xmid  # LPS: +x is the subject's left
    hemi = np.where(left, "left", "right")
    ymid = w[..., 1][m].mean()
    anterior = w[..., 1] < ymid  # LPS: +y is posterior
    out = np.zeros(t.shape, np.int32)

    def put(sel, region, lateral=True):
        for h in ("left", "right"):
            s = sel & (hemi == h)
            out[s] = li(region, h) if lateral else li(region)

    put(t == 1, "csf_extracerebral", lateral=False)
    out[t == 1] = li("csf_extracerebral")
    put(t == 5, "lateral_ventricle")
    put((t == 2) & anterior, "cortex_frontal")
    put((t == 2) & ~anterior, "cortex_occipital")
    wm = np.isin(t, (3, 8, 9))
    put(wm & anterior, "wm_frontal")
    put(wm & ~anterior, "wm_occipital")
    deep = t == 7
    ydeep = w[..., 1][deep].mean()
    put(deep & (w[..., 1] >= ydeep), "thalamus")
    put(deep & (w[..., 1] < ydeep), "lentiform")
    cb = t == 6
    ycb = w[..., 1][cb].mean()
    put(cb & (w[..., 1] < ycb), "brainstem")
    put(cb & (w[..., 1] >= ycb), "cerebellum")
    return tissues.new_image_like(out.astype("float32"))


def flip_lr(img):
    """Mirror the array along the axis closest to left-right; the header is unchanged (an
    atlas saved with the wrong orientation)."""
    d = np.abs(np.asarray(img.direction))
    ax = np.argmax(d[0])  # array axis that moves most along physical x
    return img.new_image_like(np.flip(img.numpy(), axis=ax).copy())


def deform(img, seed: int, order: int):
    """``img`` through a known affine + smooth warp (:func:`synth.random_geometry`)."""
    from scipy import ndimage

    from weeke_pipeline.synth.study import random_geometry

    geom = random_geometry(np.random.default_rng(seed))
    geom = dataclasses.replace(geom, warp=geom.warp * 1.5)
    world = _world_lps(img) * np.array([-1, -1, 1])  # RAS
    q = geom.to_template(world.reshape(-1, 3)) * np.array([-1, -1, 1])  # back to LPS
    a = np.asarray(img.direction) * np.asarray(img.spacing)
    vox = np.linalg.solve(a, (q - np.asarray(img.origin)).T)
    out = ndimage.map_coordinates(img.numpy(), vox, order=order, mode="constant")
    return img.new_image_like(out.reshape(img.shape).astype("float32"))


def with_air(img, pad_mm: float = 20.0, seed: int = 3):
    """``img`` padded by ``pad_mm`` on every side, Rician background noise everywhere (SD 2 %
    of the brain median): an unstripped scan's air, so the air SNR is measured."""
    import ants

    pad = round(pad_mm / img.spacing[0])
    arr = np.pad(img.numpy(), pad)
    rng = np.random.default_rng(seed)
    sd = 0.02 * float(np.median(img.numpy()[img.numpy() > 0]))
    noisy = np.hypot(arr + rng.normal(0, sd, arr.shape), rng.normal(0, sd, arr.shape))
    origin = np.asarray(img.origin) - np.asarray(img.direction) @ (np.full(3, pad)
                                                                  * np.asarray(img.spacing))
    return ants.from_numpy(noisy.astype("float32"), origin=tuple(origin),
                           spacing=img.spacing, direction=img.direction)


def shrink(img, factor: float):
    """The same array with voxel sizes x ``factor`` (a brain ``factor``^3 the volume)."""
    out = img.clone()
    out.set_spacing(tuple(s * factor for s in img.spacing))
    return out


def crop_top(img, fraction: float, *, zero_fill: bool):
    """Remove (or set to 0) the top ``fraction`` of slices along the superior axis."""
    import ants

    d = np.asarray(img.direction)
    ax = np.argmax(np.abs(d[2]))
    n = img.shape[ax]
    k = round(n * fraction)
    top_is_high = d[2, ax] > 0  # LPS +z = superior
    arr = img.numpy()
    sl = [slice(None)] * 3
    sl[ax] = slice(n - k, n) if top_is_high else slice(0, k)
    if zero_fill:
        arr = arr.copy()
        arr[tuple(sl)] = 0
        return img.new_image_like(arr)
    keep = [slice(None)] * 3
    keep[ax] = slice(0, n - k) if top_is_high else slice(k, n)
    origin = np.asarray(img.origin)
    if not top_is_high:
        origin = origin + d[:, ax] * img.spacing[ax] * k
    return ants.from_numpy(np.ascontiguousarray(arr[tuple(keep)]), origin=tuple(origin),
                           spacing=img.spacing, direction=img.direction)


class RealImages:
    """The real templates at ``mm`` (0 = native), loaded once."""

    def __init__(self, shared: Path, mm: float):
        import ants

        d = shared / SERAG
        self.mm = mm
        self.t40 = _down(ants.image_read(str(d / "template-40.nii.gz")), mm)
        self.t36 = _down(ants.image_read(str(d / "template-36.nii.gz")), mm)
        self.mask = _down(ants.image_read(str(d / "mask-40.nii.gz")), mm, labels=True)
        self.tissues = _down(ants.image_read(str(d / "tissues-40.nii.gz")), mm, labels=True)
        self.unc = _down(ants.image_read(str(shared / UNC)), mm)
        self.dseg40 = serag_atlas(self.t40, self.mask, self.tissues)

    def serag40(self) -> Atlas:
        return Atlas("serag40", self.t40, self.mask, self.dseg40, 40.0)

    def serag40_flipped(self) -> Atlas:
        return Atlas("serag40-flipped", flip_lr(self.t40), flip_lr(self.mask),
                     flip_lr(self.dseg40), 40.0)

    def phantom(self) -> Atlas:
        import ants

        def rd(n: str, lab: bool = False):
            return _down(ants.image_read(str(PHANTOM / f"{n}.nii.gz")), self.mm, labels=lab)

        return Atlas("weeke-phantom", rd("T2w"), rd("brain_mask", True), rd("dseg", True),
                     44.0, phantom=True)


def cases(r: RealImages) -> list[Case]:
    """The calibration set (see module docstring)."""
    return [
        Case("serag36<-serag40", "good", lambda: r.t36, r.serag40, 36, "real, 4 weeks apart"),
        Case("unc<-serag40", "good", lambda: r.unc, r.serag40, 41, "another real template"),
        Case("deformed40<-serag40", "good", lambda: deform(r.t40, 11, 1), r.serag40, 40,
             "known affine + warp"),
        Case("deformed36<-serag40", "good", lambda: deform(r.t36, 12, 1), r.serag40, 36,
             "known affine + warp"),
        Case("deformed40+air<-serag40", "good", lambda: with_air(deform(r.t40, 13, 1)),
             r.serag40, 40, "not skull-stripped: Rician air"),
        Case("serag40<-phantom", "bad", lambda: r.t40, r.phantom, 40, "phantom atlas"),
        Case("serag36<-phantom", "bad", lambda: r.t36, r.phantom, 36, "phantom atlas"),
        Case("unc<-phantom", "bad", lambda: r.unc, r.phantom, 41, "phantom atlas"),
        Case("serag36<-flipped40", "bad", lambda: r.t36, r.serag40_flipped, 36,
             "left-right flipped atlas"),
        Case("unc<-flipped40", "bad", lambda: r.unc, r.serag40_flipped, 41,
             "left-right flipped atlas"),
        Case("shrunk36<-serag40", "bad", lambda: shrink(r.t36, 0.75), r.serag40, 44,
             "wrong age: a ~29-week brain declared 44 weeks (the trial's age at scan)"),
        Case("cropped36<-serag40", "bad", lambda: crop_top(r.t36, 0.35, zero_fill=False),
             r.serag40, 36, "top 35 % of slices cut off"),
        Case("zerofilled-unc<-serag40", "bad",
             lambda: crop_top(r.unc, 0.30, zero_fill=True), r.serag40, 41,
             "top 30 % of slices zero-filled"),
    ]


def run_case(case: Case, out: Path, *, preset: str = "fast", reuse: bool = False) -> dict:
    """Register, then QC numbers and flag exactly as the pipeline does. Returns a row.
    ``reuse``: take the registration already in ``out`` (from an earlier run) when there."""
    import json

    import ants

    from weeke_pipeline.atlas.honesty import phantom_notice
    from weeke_pipeline.imaging import qc
    from weeke_pipeline.imaging import registration as R

    out.mkdir(parents=True, exist_ok=True)
    atlas = case.atlas()
    sub_path = out / "T2w.nii.gz"
    dseg_path = out / "atlas_dseg.nii.gz"
    done = out / "registration.json"
    if reuse and done.is_file():
        saved = json.loads(done.read_text())
        labels, brain_mask, report, seconds = (saved["labels"], saved["brain_mask"],
                                               saved["report"], saved["seconds"])
    else:
        ants.image_write(case.subject(), str(sub_path))
        ants.image_write(atlas.dseg, str(dseg_path))
        t0 = time.perf_counter()
        res = R.atlas_to_subject(str(sub_path), atlas.t2w, atlas.mask, out / "reg_",
                                 atlas_labels=str(dseg_path), preset=preset)
        seconds = time.perf_counter() - t0
        labels, brain_mask, report = res.labels, res.brain_mask, res.registration.to_dict()
        done.write_text(json.dumps({"labels": labels, "brain_mask": brain_mask,
                                    "report": report, "seconds": seconds}))
    numbers = qc.qc_numbers(str(sub_path), labels, brain_mask,
                            registration={"to_atlas": report},
                            atlas_labels=str(dseg_path), pma_weeks=case.pma_weeks)
    img_status, img_reasons = qc.qc_flag(numbers)
    # The pipeline adds the atlas notice (the phantom atlas on data without the synthetic-data
    # markers, as every subject here) and run_subject_qc then fails the run.
    notice = phantom_notice({"name": atlas.name, "phantom": atlas.phantom}, sub_path)
    status, reasons = img_status, list(img_reasons)
    if notice:
        status, reasons = "fail", [notice, *reasons]
    return {"case": case.name, "expected": case.expected, "why": case.why,
            "status": status, "reasons": reasons, "image_status": img_status,
            "image_reasons": img_reasons, "numbers": numbers, "seconds": seconds}


def confusion(rows: list[dict], key: str = "status") -> dict[tuple[str, str], int]:
    table = {(e, s): 0 for e in ("good", "bad") for s in ("pass", "warn", "fail")}
    for r in rows:
        table[(r["expected"], r[key])] += 1
    return table


def format_confusion(rows: list[dict], key: str = "status") -> str:
    t = confusion(rows, key)
    lines = ["| expected \\ flag | pass | warn | fail |", "|---|---|---|---|"]
    for e in ("good", "bad"):
        lines.append(f"| known-{e} | {t[(e, 'pass')]} | {t[(e, 'warn')]} | {t[(e, 'fail')]} |")
    return "\n".join(lines)


def _row_numbers(n: dict) -> str:
    c = n.get("t2w_contrast", {})
    j = n.get("jacobian", {})
    nan = float("nan")
    corr = n["registration"]["to_atlas"]["similarity_after"].get("correlation", nan)
    return (f"vol {n['brain_volume_ml']:.0f} | cov {n.get('label_coverage_atlas', nan):.2f}"
            f" | eta2 {n.get('tissue_eta2', float('nan')):.2f}"
            f" | csf>wm {c.get('csf>wm', float('nan')):+.2f}"
            f" | wm>ctx {c.get('wm>cortical_gm', float('nan')):+.2f}"
            f" | ctx>dgm {c.get('cortical_gm>deep_gm', float('nan')):+.2f}"
            f" | lat {n.get('laterality_correct', float('nan')):.2f}"
            f" | fold {j.get('jacobian_folding', float('nan')):.4f}"
            f" | logJ99 {j.get('jacobian_log_p99', float('nan')):.2f}"
            f" | cut {n.get('brain_cut', float('nan')):.3f}"
            f" | xJ {j.get('jacobian_extreme', float('nan')):.3f}"
            f" | snr_air {n.get('snr_air', float('nan')):.1f}"
            f" | corr {corr:.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mm", type=float, default=2.0, help="isotropic voxel size (0 = native)")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--only", default="", help="substring of case names to run")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the registrations already in --out (recompute QC only)")
    a = ap.parse_args(argv)
    if not (SHARED / SERAG).is_dir():
        print(f"real templates not found under {SHARED} (set WEEKE_SHARED_DATA)")
        return 1
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "2")
    out = a.out or Path(tempfile.mkdtemp(prefix="weeke-qc-cal-"))
    r = RealImages(SHARED, a.mm)
    rows = []
    for c in cases(r):
        if a.only and a.only not in c.name:
            continue
        row = run_case(c, out / c.name.replace("<-", "_from_"), preset=a.preset,
                       reuse=a.reuse)
        rows.append(row)
        print(f"{row['case']:26s} {row['expected']:4s} -> {row['status']:4s}"
              f" (images alone: {row['image_status']}) {row['seconds']:5.1f} s"
              f" | {_row_numbers(row['numbers'])}", flush=True)
        for reason in row["reasons"]:
            print(f"    {reason}")
    print(f"\nQC flag vs truth ({len(rows)} runs, {a.mm:g} mm, preset {a.preset}):")
    print(format_confusion(rows))
    print("\nimages alone (the checks of weeke_pipeline.qc_anatomy, without the phantom"
          " notice):")
    print(format_confusion(rows, "image_status"))
    bad_ok = all(r["status"] == "fail" for r in rows if r["expected"] == "bad")
    good_ok = not any(r["status"] == "fail" for r in rows if r["expected"] == "good")
    print(f"\nevery known-bad run fail: {bad_ok}; no known-good run fail: {good_ok}")
    return 0 if bad_ok and good_ok else 2


if __name__ == "__main__":
    sys.exit(main())
