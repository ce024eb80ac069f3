"""End-to-end check on real neonatal T2w, the way a new user meets the pipeline (issue 12).

Reproduces, with the real data available here, the held-back evaluation of issue 12: a real
term neonate's T2w is written as a scanner DICOM series (the project's own writer, but with
real-looking Manufacturer / model / software, i.e. WITHOUT the synthetic markers of
:mod:`weeke_pipeline.atlas.honesty`) plus a participants table with the age at scan, and run
through the real CLI (``weeke run``, ``fast`` preset, one run at a time) with

1. the default phantom atlas (every real subject must be QC ``fail``),
2. a real atlas bundle made with ``weeke atlas import`` from the Serag 40 w template and its
   Draw-EM-style 9-class tissue map (``--mapping`` a table written here: the tissue map has
   no lobes and one deep-grey class, so cortex / white matter / deep GM each go to a single
   vocabulary region; no correct run may be ``fail``),
3. several atlases (``--atlas`` repeated) when the CLI supports it (multiatlas branch).

Subjects: the Serag 40 w template itself (truth: its tissue map), a rotated + smoothly
deformed copy of it (fixed seed; truth warped with the same deformation) and the UNC/BCP
neonatal T2w (no truth here). Printed per run: the status table the user sees, the QC flag and
reasons from the run's outputs, and Dice of the propagated labels (grouped by tissue class)
against the truth.

Reads ``../shared/data`` (or ``WEEKE_SHARED_DATA``); exits 0 with a clear message when absent.
No data is written into the repository. Usage::

    python benchmarks/eval_real_end_to_end.py [--work DIR] [--subjects serag,serag-deformed,uncbcp]
        [--configs phantom,serag,multi] [--keep]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from nibabel.processing import resample_from_to
from scipy import ndimage

from weeke_pipeline.synth.dicom_writer import AxialGrid, PatientInfo, SeriesSpec, write_series

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WEEKE_SHARED_DATA", REPO.parent / "shared" / "data"))
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")
SERAG = SHARED / "atlases" / "serag2012_neonatal"
UNCBCP = SHARED / "atlases" / "uncbcp_infant00"
SEED = 20261202

#: Serag tissue numbering (tissue_labels.csv) -> the tissue groups compared by Dice
SERAG_GROUPS = {"csf": (1, 5), "cortex": (2,), "wm": (3, 8, 9), "cerebellum+brainstem": (6,),
                "deep_gm": (7,)}
#: vocabulary tissue classes (labels TSV ``tissue`` column) making up each group
VOCAB_GROUPS = {"csf": ("csf",), "cortex": ("cortical_gm",), "wm": ("wm",),
                "cerebellum+brainstem": ("cerebellum", "brainstem"), "deep_gm": ("deep_gm",)}

#: mapping of Serag's tissue map onto the vocabulary (no lobes: one region per tissue)
SERAG_MAPPING = """\
# Serag 2012 40 w tissue map (tissue_labels.csv) -> weeke vocabulary. The map has no lobes and
# one deep-grey class: all cortex counts as frontal cortex, all white matter as frontal WM, all
# deep grey matter as thalamus, cerebellum + brainstem as cerebellum (an evaluation-only table).
source_index\tsource_name\tregion\themisphere
1\tCSF\tcsf_extracerebral\tmidline
2\tCortical gray matter\tcortex_frontal\tsplit
3\tWhite matter\twm_frontal\tsplit
4\tBackground\t\t
5\tVentricles\tlateral_ventricle\tsplit
6\tCerebellum + Brainstem\tcerebellum\tsplit
7\tDeep Gray Matter\tthalamus\tsplit
8\tHigh-intensity White matter\twm_frontal\tsplit
9\tLow-intensity White matter\twm_frontal\tsplit
"""

REAL_SCANNER = {"Manufacturer": "SIEMENS", "ManufacturerModelName": "Prisma",
                "SoftwareVersions": "syngo MR XA30"}


def weeke(*args: str, log: Path) -> tuple[int, str, float]:
    """Run the real CLI; returns (exit code, combined output, seconds)."""
    exe = Path(sys.executable).with_name("weeke")
    cmd = [str(exe) if exe.exists() else "weeke", *args]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    out = p.stdout + p.stderr
    log.write_text("$ " + " ".join(cmd) + "\n" + out)
    return p.returncode, out, time.monotonic() - t0


def _deformation(shape: tuple[int, ...], rng: np.random.Generator, amp_mm: float,
                 zoom: float) -> np.ndarray:
    """A smooth displacement field (mm, RAS) on ``shape``: coarse noise, cubic-upsampled."""
    coarse = rng.normal(0, amp_mm, size=(3, 5, 5, 5))
    return np.stack([ndimage.zoom(c, [s / 5 for s in shape], order=3)[tuple(
        slice(0, s) for s in shape)] for c in coarse]) * zoom


def make_subject(name: str, t2w: Path, truth: Path | None, out: Path, *, scale: float,
                 deform: bool, number: int) -> dict[str, str]:
    """Write ``t2w`` (optionally rotated + deformed) as a DICOM T2w series under
    ``out/dicom/<name>``; the truth (if any) resampled on the same grid goes to
    ``out/truth/<name>_dseg.nii.gz``. Returns the participants row."""
    img = nib.load(t2w)
    data = np.asanyarray(img.dataobj, dtype=np.float32)
    zoom = float(min(img.header.get_zooms()[:3]))
    corners = np.array([[i, j, k, 1] for i in (0, data.shape[0] - 1)
                        for j in (0, data.shape[1] - 1) for k in (0, data.shape[2] - 1)])
    ras = (img.affine @ corners.T).T[:, :3]
    lo, hi = ras.min(0), ras.max(0)
    ext = hi - lo
    grid = AxialGrid(rows=int(ext[1] / zoom) + 1, cols=int(ext[0] / zoom) + 1,
                     n_slices=int(ext[2] / zoom) + 1, pixel_mm=(zoom, zoom), slice_mm=zoom,
                     centre_ras=tuple(float(c) for c in (lo + hi) / 2))
    world = grid.world_ras()  # (slices, rows, cols, 3)
    if deform:
        rng = np.random.default_rng(SEED + number)
        ang = np.deg2rad(rng.uniform(-10, 10, 3))
        rx = np.array([[1, 0, 0], [0, np.cos(ang[0]), -np.sin(ang[0])],
                       [0, np.sin(ang[0]), np.cos(ang[0])]])
        rz = np.array([[np.cos(ang[2]), -np.sin(ang[2]), 0], [np.sin(ang[2]), np.cos(ang[2]), 0],
                       [0, 0, 1]])
        c = (lo + hi) / 2
        src = (world - c) @ (rz @ rx).T + c + rng.uniform(-4, 4, 3)
        disp = _deformation(world.shape[:3], rng, amp_mm=2.5, zoom=1.0)
        src = src + np.moveaxis(disp, 0, -1)
    else:
        src = world
    vox = np.linalg.solve(img.affine, np.c_[src.reshape(-1, 3), np.ones(src[..., 0].size)].T)[:3]
    vol = ndimage.map_coordinates(data, vox, order=1, mode="constant").reshape(world.shape[:3])
    patient = PatientInfo(name=f"REAL^{name.upper()}", patient_id=f"RC{number:04d}",
                          birth_date="20260101", study_date="20260129", sex="F", age_days=28,
                          weight_kg=3.4, accession=f"ACC{number:06d}")
    spec = SeriesSpec(3, "T2_TSE_AX", ("ORIGINAL", "PRIMARY", "M", "NORM"), "SE", "SK\\SP",
                      "*tse2d1_16", tr_ms=9000.0, te_ms=150.0, echo_train=16)
    series = out / "dicom" / name / "03_T2_TSE_AX"
    write_series(vol * scale, grid, spec, patient, series, study_uid=pydicom.uid.generate_uid(
        entropy_srcs=[name, "study"]), uid_seed=f"realcheck-{name}", compress=False)
    for f in sorted(series.glob("*.dcm")):  # a real scanner's header, no synthetic markers
        ds = pydicom.dcmread(f)
        for k, v in REAL_SCANNER.items():
            setattr(ds, k, v)
        ds.save_as(f, enforce_file_format=True)
    if truth is not None:
        tim = nib.load(truth)
        tv = np.linalg.solve(tim.affine, np.c_[src.reshape(-1, 3),
                                                np.ones(src[..., 0].size)].T)[:3]
        lab = ndimage.map_coordinates(np.asanyarray(tim.dataobj).astype(np.int16), tv, order=0,
                                      mode="constant").reshape(world.shape[:3])
        (out / "truth").mkdir(parents=True, exist_ok=True)
        # (slices, rows, cols) -> (cols, rows, slices): the grid's voxel order
        nib.save(nib.Nifti1Image(np.transpose(lab, (2, 1, 0)).astype(np.int16),
                                 grid.affine_ras()), out / "truth" / f"{name}_dseg.nii.gz")
    return {"participant_id": f"sub-{name.replace('-', '')}", "patient_id": patient.patient_id,
            "sex": "F", "pma_at_scan_weeks": "40", "pma_at_scan_days": "0",
            "day_of_life_at_scan": "28"}


def import_serag(work: Path) -> Path:
    """``weeke atlas import`` of the Serag 40 w template + its tissue map (see SERAG_MAPPING)."""
    bundle = work / "atlas-serag40"
    if (bundle / "atlas.json").exists():
        return bundle
    mapping = work / "serag_tissues_mapping.tsv"
    mapping.write_text(SERAG_MAPPING)
    code, out, secs = weeke("atlas", "import", "--t2w", str(SERAG / "template-40.nii.gz"),
                            "--dseg", str(SERAG / "tissues-40.nii.gz"), "--mapping", str(mapping),
                            "--brain-mask", str(SERAG / "mask-40.nii.gz"), "--pma-weeks", "40",
                            "--licence", "research-only", "--name", "serag-40w", "--out",
                            str(bundle), log=work / "atlas-import.log")
    print(f"[atlas import serag-40w] exit {code} ({secs:.0f} s)\n{out.strip()}")
    if code != 0:
        raise SystemExit("atlas import failed (see above)")
    return bundle


def _labels_tsv(dseg: Path) -> Path | None:
    name = dseg.name.replace("_dseg.nii.gz", "_dseg.tsv")
    cand = dseg.with_name(name)
    return cand if cand.exists() else None


def dice_table(dseg: Path, truth: Path) -> dict[str, float]:
    """Dice per tissue group: the run's label map (classes from its labels TSV) vs the truth."""
    seg = nib.load(dseg)
    tru = resample_from_to(nib.load(truth), seg, order=0)
    t = np.asanyarray(tru.dataobj).astype(int)
    s = np.asanyarray(seg.dataobj).astype(int)
    tsv = _labels_tsv(dseg)
    rows = list(csv.DictReader(tsv.open(), delimiter="\t")) if tsv else []
    out = {}
    for g, codes in SERAG_GROUPS.items():
        want = [int(r["index"]) for r in rows if r.get("tissue") in VOCAB_GROUPS[g]]
        a, b = np.isin(s, want), np.isin(t, codes)
        denom = a.sum() + b.sum()
        out[g] = float(2 * (a & b).sum() / denom) if denom else float("nan")
    return out


def qc_of(run_out: Path) -> list[tuple[str, str, str]]:
    """(subject, flag, reasons) from the run's QC outputs (TSV table, else the JSON reports)."""
    res = []
    for f in sorted((run_out / "derivatives").rglob("*_qc.json")):
        try:
            d = json.loads(f.read_text())
        except ValueError:
            continue
        if isinstance(d, dict) and ("flag" in d or "status" in d):
            flag = d.get("flag") or d.get("status")
            reasons = d.get("reasons") or d.get("failed") or ""
            nums = d.get("numbers") or {}
            key = {k: v for k, v in nums.items() if isinstance(v, (int, float))
                   and any(w in k for w in ("coverage", "correlation", "snr", "volume"))}
            res.append((f.relative_to(run_out).as_posix(), str(flag),
                        ("; ".join(map(str, reasons)) if isinstance(reasons, list)
                         else str(reasons)) + "\n      numbers: "
                        + ", ".join(f"{k}={v:.3g}" for k, v in sorted(key.items()))))
    return res


def run_one(label: str, dicom: Path, participants: Path, atlases: list[str], work: Path,
            truths: dict[str, Path], *, fresh: bool) -> None:
    out = work / f"run-{label}"
    if fresh and out.exists():
        shutil.rmtree(out)
    for old in out.glob("derivatives/weeke/sub-*/**/*_qc.json"):
        old.unlink()  # a resumed run (cached work folder) writes its QC again
    args = ["run", str(dicom), str(out), "--participants", str(participants), "--preset",
            "fast", "--no-dti", "--no-progress", "--nprocs", "1"]
    for a in atlases:
        args += ["--atlas", a]
    code, text, secs = weeke(*args, log=work / f"run-{label}.log")
    print(f"\n=== run {label}: atlas(es) {', '.join(atlases) or 'default'}: exit {code}, "
          f"{secs:.0f} s wall ===")
    print(text.strip()[-4000:])
    for name, flag, reasons in qc_of(out):
        print(f"  QC {name}: {flag}  {reasons}")
    for dseg in sorted(out.rglob("*_dseg.nii.gz")):
        sub = next((p for p in dseg.parts if p.startswith("sub-")), "")
        if sub in truths:
            d = dice_table(dseg, truths[sub])
            print(f"  Dice {dseg.relative_to(out)}: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in d.items()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/weeke-realcheck"))
    ap.add_argument("--subjects", default="serag,seragdef,uncbcp")
    ap.add_argument("--configs", default="phantom,serag,multi")
    ap.add_argument("--extra-atlas", action="append", default=[],
                    help="further atlases for the multi-atlas run (names or folders)")
    ap.add_argument("--fresh", action="store_true",
                    help="delete earlier run folders (default: resume from their work cache)")
    args = ap.parse_args()
    if not (SERAG / "template-40.nii.gz").exists():
        print(f"SKIP: real data not found at {SHARED} (set WEEKE_SHARED_DATA)")
        return 0
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    subjects = {
        "serag": (SERAG / "template-40.nii.gz", SERAG / "tissues-40.nii.gz", 2.0, False),
        "seragdef": (SERAG / "template-40.nii.gz", SERAG / "tissues-40.nii.gz", 2.0, True),
        "uncbcp": (UNCBCP / "tpl-UNCBCP4DInfant_cohort-00_desc-brain_T2w.nii.gz", None, 10.0,
                   False),
    }
    wanted = [s for s in args.subjects.split(",") if s]
    data = work / "input"
    rows, truths = [], {}
    for n, s in enumerate(wanted, start=1):
        t2, tr, scale, deform = subjects[s]
        if not t2.exists():
            print(f"SKIP subject {s}: {t2} missing")
            continue
        rows.append(make_subject(s, t2, tr, data, scale=scale, deform=deform, number=n))
        if tr is not None:
            truths[rows[-1]["participant_id"]] = data / "truth" / f"{s}_dseg.nii.gz"
    part = work / "participants.tsv"
    hdr = list(rows[0])
    part.write_text("\n".join(["\t".join(hdr)] + ["\t".join(r[h] for h in hdr) for r in rows])
                    + "\n")
    configs = args.configs.split(",")
    if "phantom" in configs:
        run_one("phantom", data / "dicom", part, [], work, truths,
                fresh=args.fresh)
    if "serag" in configs or "multi" in configs:
        bundle = import_serag(work)
        if "serag" in configs:
            run_one("serag40", data / "dicom", part, [str(bundle)], work, truths,
                    fresh=args.fresh)
        if "multi" in configs:
            _code, text, _ = weeke("run", "--help", log=work / "help.log")
            if "--label-fusion" not in text:
                print("\nSKIP multi-atlas: this `weeke run` has no --label-fusion (multiatlas "
                      "branch not merged)")
            else:
                run_one("multi", data / "dicom", part, [str(bundle), *args.extra_atlas], work,
                        truths, fresh=args.fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
