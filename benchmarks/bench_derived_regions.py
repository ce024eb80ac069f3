"""Derived Weeke regions (PLIC, optic radiation, perirolandic cortex, vermis): rule vs phantom
truth, and rule vs "carry over from the phantom after registration" on a REAL neonatal template.

1. Phantom (truth known): Dice of each rule against the phantom's true region, the rules run
   on a Draw-EM-like label map of the phantom (the four regions given to their donors).
2. Real template (``--template serag``: Serag et al. 2012, 40 weeks, with its Draw-EM-style
   tissue map; ``uncbcp``: UNC/BCP neonatal T2w, tissues by 3-class k-means): the phantom atlas
   is registered to the template (the pipeline's ``fast`` preset); a real-like label map is
   built from the template's OWN tissue classes, each voxel taking the lobe / nucleus of the
   nearest registered phantom label of that tissue; then
   - rule: :func:`weeke_pipeline.atlas.derived.derive_regions` on that label map;
   - carry-over: the registered phantom's own PLIC / optic radiation / perirolandic / vermis.
   Measured on the real image: the fraction of each region in the tissue it must be (real
   tissue map), the T2w of PLIC and optic radiation relative to all lobar white matter
   (myelinated tracts are T2-dark at term: lower = more tract-like), and, on Serag, the
   overlap with its "low-intensity white matter" class (myelinated PLIC at 40 weeks).

Writes a figure (``--figure``; default under ``--out``). Serag's files carry no licence: never
commit a figure made from them; the UNC/BCP figure (GPL) may be shown with attribution.
Usage: python benchmarks/bench_derived_regions.py [--template serag|uncbcp] [--figure PNG]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from weeke_pipeline.atlas import phantom as ph
from weeke_pipeline.atlas.derived import DERIVABLE, as_real_atlas, derive_regions, dice
from weeke_pipeline.atlas.regions import REGIONS, indices_for
from weeke_pipeline.resources import default_atlas_dir

SHARED = Path(os.environ.get("WEEKE_SHARED_DATA",
                             Path(__file__).resolve().parents[2] / "shared" / "data"))


def _names(prefix: str) -> list[int]:
    return [r.index for r in REGIONS if r.region.startswith(prefix)]


#: tissue kind -> vocabulary labels a voxel of that kind may take (nearest registered one)
KIND_LABELS = {
    "cortex": _names("cortex_") + indices_for(region="hippocampus"),
    "wm": _names("wm_") + indices_for(region="corpus_callosum"),
    "deep_gm": indices_for(tissue="deep_gm"),
    "ventricle": indices_for(region="lateral_ventricle"),
    "csf": indices_for(region="csf_extracerebral"),
    "cerebellum_brainstem": indices_for(region="cerebellum") + indices_for(region="brainstem"),
    # 3-class k-means on a T2w (UNC/BCP): grey matter of any kind, white matter, CSF
    "gm_any": (_names("cortex_") + indices_for(tissue="deep_gm")
               + indices_for(region="hippocampus") + indices_for(region="cerebellum")
               + indices_for(region="brainstem")),
    "wm_any": (_names("wm_") + indices_for(region="corpus_callosum")
               + indices_for(region="cerebellum") + indices_for(region="brainstem")),
    "csf_any": indices_for(region="csf_extracerebral") + indices_for(region="lateral_ventricle"),
}
SERAG_KINDS = {1: "csf", 2: "cortex", 3: "wm", 5: "ventricle", 6: "cerebellum_brainstem",
               7: "deep_gm", 8: "wm", 9: "wm"}
#: which kinds each derived region must lie in on the real image
EXPECTED = {"plic": ("wm", "wm_any"), "optic_radiation": ("wm", "wm_any"),
            "perirolandic_cortex": ("cortex", "gm_any"),
            "vermis": ("cerebellum_brainstem", "gm_any", "wm_any")}


def phantom_table(figure: Path | None = None) -> list[tuple[str, str, float]]:
    p = ph.build_phantom()
    derived, _ = derive_regions(as_real_atlas(p.dseg), p.affine)
    rows = []
    for region in DERIVABLE:
        for idx in indices_for(region=region):
            rows.append((region, BY_NAME_INV[idx], dice(derived == idx, p.dseg == idx)))
    if figure is not None:
        t2 = np.asanyarray(nib.load(default_atlas_dir() / "T2w.nii.gz").dataobj)
        plot(t2.astype(np.float32), derived, figure, truth=p.dseg,
             title="phantom atlas: derived by rule (colour) vs the phantom's true regions "
                   "(white outline)")
    return rows


BY_NAME_INV = {r.index: r.hemisphere for r in REGIONS}


def load_template(which: str, work: Path) -> tuple[Path, Path, np.ndarray, dict[int, str]]:
    """(T2w path, brain mask path, tissue classes array, class -> kind) on a RAS 1 mm grid."""
    from nibabel.processing import resample_to_output

    if which == "serag":
        d = SHARED / "atlases" / "serag2012_neonatal"
        t2, mask, tis = d / "template-40.nii.gz", d / "mask-40.nii.gz", d / "tissues-40.nii.gz"
        kinds = SERAG_KINDS
    else:
        d = SHARED / "atlases" / "uncbcp_infant00"
        t2 = d / "tpl-UNCBCP4DInfant_cohort-00_desc-brain_T2w.nii.gz"
        mask = tis = None
        kinds = {1: "gm_any", 2: "wm_any", 3: "csf_any"}
    if not t2.is_file():
        sys.exit(f"real template not found at {t2} (set WEEKE_SHARED_DATA)")
    work.mkdir(parents=True, exist_ok=True)
    img = nib.as_closest_canonical(nib.load(t2))
    img = resample_to_output(img, (1.0, 1.0, 1.0), order=1)
    data = np.asanyarray(img.dataobj).astype(np.float32)
    out_t2 = work / f"{which}_T2w.nii.gz"
    nib.save(nib.Nifti1Image(data, img.affine), out_t2)
    if tis is not None:
        tl = resample_to_output(nib.as_closest_canonical(nib.load(tis)), (1.0, 1.0, 1.0),
                                order=0)
        classes = np.rint(np.asanyarray(tl.dataobj)).astype(np.int16)
        ml = resample_to_output(nib.as_closest_canonical(nib.load(mask)), (1.0, 1.0, 1.0),
                                order=0)
        brain = np.asanyarray(ml.dataobj) > 0
    else:
        import ants

        brain = data > 0
        ai = ants.from_nibabel_nifti(nib.Nifti1Image(data, img.affine))
        seg = ants.kmeans_segmentation(ai, 3, kmask=ai.new_image_like(brain.astype("float32")))
        classes = seg["segmentation"].numpy().astype(np.int16)
    out_mask = work / f"{which}_mask.nii.gz"
    nib.save(nib.Nifti1Image(brain.astype(np.uint8), img.affine), out_mask)
    return out_t2, out_mask, classes, kinds


def real_like_labels(warped: np.ndarray, classes: np.ndarray, kinds: dict[int, str]
                     ) -> np.ndarray:
    """Each tissue voxel takes the nearest registered phantom label allowed for its kind."""
    base = as_real_atlas(warped)
    out = np.zeros(base.shape, dtype=np.uint8)
    for cls, kind in kinds.items():
        sel = classes == cls
        allowed = np.isin(base, KIND_LABELS[kind])
        if not sel.any() or not allowed.any():
            continue
        _, ind = ndimage.distance_transform_edt(~allowed, return_indices=True)
        out[sel] = base[tuple(i[sel] for i in ind)]
    return out


def real_like_from_kmeans(warped: np.ndarray, classes: np.ndarray, brain: np.ndarray
                          ) -> np.ndarray:
    """Without a tissue map (UNC/BCP): 3-class k-means of the T2w (1 dark, 2 mid, 3 bright).
    Deep nuclei, hippocampus, cerebellum, brainstem and corpus callosum come from the registered
    phantom; every other brain voxel takes the lobe of the nearest registered lobar label and
    is cortex when dark and within 4 mm of the brain's surface (the cortical ribbon), white
    matter otherwise (deep dark white matter = the myelinated tracts at term); bright = CSF."""
    base = as_real_atlas(warped)
    lobar = _names("cortex_") + _names("wm_")
    csf_like = KIND_LABELS["csf_any"]
    keep = np.isin(base, [i for i in range(1, 256) if i not in lobar and i not in csf_like])
    depth = ndimage.distance_transform_edt(brain)
    _, ind = ndimage.distance_transform_edt(~np.isin(base, lobar), return_indices=True)
    nearest_lobar = base[tuple(ind)]
    to_wm = {r.index: BY_KEY[("wm_" + r.region.split("_", 1)[1], r.hemisphere)]
             for r in REGIONS if r.region.startswith("cortex_")}
    lut_wm = np.arange(256, dtype=np.uint8)
    lut_cx = np.arange(256, dtype=np.uint8)
    for c, w in to_wm.items():
        lut_wm[c], lut_cx[w] = w, c
    out = np.zeros(base.shape, dtype=np.uint8)
    tissue = brain & (classes != 3) & ~keep
    cortex = tissue & (classes == 1) & (depth <= 4.0)
    out[tissue] = lut_wm[nearest_lobar[tissue]]
    out[cortex] = lut_cx[nearest_lobar[cortex]]
    out[keep & brain] = base[keep & brain]
    csf = brain & (classes == 3) & ~keep
    allowed = np.isin(base, csf_like)
    _, ind = ndimage.distance_transform_edt(~allowed, return_indices=True)
    out[csf] = base[tuple(i[csf] for i in ind)]
    return out


BY_KEY = {(r.region, r.hemisphere): r.index for r in REGIONS}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--template", choices=["serag", "uncbcp"], default="serag")
    ap.add_argument("--out", type=Path, default=Path("/tmp/weeke-bench-derived"))
    ap.add_argument("--figure", type=Path, default=None)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--phantom-figure", type=Path, default=None,
                    help="also draw rule vs truth on the phantom (licence-clean: docs/)")
    ap.add_argument("--phantom-only", action="store_true", help="skip the real template")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the registration already in --out (same template)")
    args = ap.parse_args()
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "2")

    print("1. rules vs phantom truth (Dice), 1 mm phantom")
    for region, hemi, d in phantom_table(args.phantom_figure):
        print(f"   {region:<20} {hemi:<8} {d:.3f}")
    if args.phantom_only:
        return 0

    from weeke_pipeline.imaging.registration import atlas_to_subject

    t0 = time.perf_counter()
    t2, _mask, classes, kinds = load_template(args.template, args.out)
    atlas = default_atlas_dir()
    labels_path = args.out / f"{args.template}_desc-atlas_dseg.nii.gz"
    if not (args.reuse and labels_path.is_file()):
        atlas_to_subject(str(t2), str(atlas / "T2w.nii.gz"), str(atlas / "brain_mask.nii.gz"),
                         str(args.out / f"{args.template}_"),
                         atlas_labels=str(atlas / "dseg.nii.gz"), preset=args.preset,
                         n4_correct=False)
        print(f"\n2. real template {args.template}: phantom atlas registered in "
              f"{time.perf_counter() - t0:.0f} s ({args.preset})")
    else:
        print(f"\n2. real template {args.template}: registration reused from {labels_path}")
    img = nib.load(labels_path)
    warped = np.asanyarray(img.dataobj).astype(np.uint8)
    t2d = np.asanyarray(nib.load(t2).dataobj).astype(np.float32)
    if args.template == "serag":
        real = real_like_labels(warped, classes, kinds)
    else:
        brain = np.asanyarray(nib.load(_mask).dataobj) > 0
        real = real_like_from_kmeans(warped, classes, brain)
    rule, report = derive_regions(real, img.affine)
    kind_of = np.full(classes.shape, "", dtype=object)
    for cls, kind in kinds.items():
        kind_of[classes == cls] = kind
    lobar_wm = np.isin(real, _names("wm_"))
    wm_t2 = float(t2d[lobar_wm].mean())
    print(f"   {'region':<20} {'method':<10} {'voxels':>7} {'in right tissue':>16} "
          f"{'T2w / lobar WM':>15} {'Dice rule~carry':>16}")
    for region in DERIVABLE:
        idx = indices_for(region=region)
        masks = {"rule": np.isin(rule, idx), "carry-over": np.isin(warped, idx)}
        for method, m in masks.items():
            inside = np.isin(kind_of[m], EXPECTED[region]).mean() if m.any() else float("nan")
            ratio = float(t2d[m].mean()) / wm_t2 if m.any() else float("nan")
            agree = dice(masks["rule"], masks["carry-over"]) if method == "rule" else ""
            agree_s = f"{agree:.2f}" if agree != "" else ""
            print(f"   {region:<20} {method:<10} {int(m.sum()):>7} {inside:>16.2f} "
                  f"{ratio:>15.2f} {agree_s:>16}")
    if args.template == "serag":
        myelin = classes == 9  # Serag "low-intensity white matter": myelinated PLIC at 40 w
        for method, lab in (("rule", rule), ("carry-over", warped)):
            m = np.isin(lab, indices_for(region="plic"))
            cover = (m & myelin).sum() / myelin.sum()
            print(f"   PLIC {method:<10} Dice with Serag low-intensity WM "
                  f"{dice(m, myelin):.2f}, covers {cover:.0%} of it")
    print("   derived:", {d.region: d.voxels for d in report})
    fig = args.figure or args.out / f"derived_regions_{args.template}.png"
    plot(t2d, rule, fig, title=f"{args.template}: derived regions by rule")
    print(f"\nfigure: {fig}")
    return 0


def plot(t2: np.ndarray, labels: np.ndarray, out: Path, *, title: str,
         truth: np.ndarray | None = None) -> None:
    """Axial (PLIC level), coronal (optic radiation) and sagittal-paramedian (vermis) slices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    colours = {"plic": "#ff2d2d", "optic_radiation": "#2dd4ff", "perirolandic_cortex": "#ffd21f",
               "vermis": "#7dff5a"}
    lut = np.zeros(labels.shape, dtype=np.int8)
    for n, region in enumerate(DERIVABLE, start=1):
        lut[np.isin(labels, indices_for(region=region))] = n
    cmap = ListedColormap(["none", *[colours[r] for r in DERIVABLE]])

    def centre(region: str) -> tuple[int, int, int]:
        m = np.isin(labels, indices_for(region=region))
        return tuple(round(c) for c in ndimage.center_of_mass(m))  # type: ignore[return-value]

    pk, ok, vk = centre("plic"), centre("optic_radiation"), centre("vermis")
    rk = centre("perirolandic_cortex")
    true = np.zeros(labels.shape, dtype=bool)
    if truth is not None:
        true = np.isin(truth, [i for r in DERIVABLE for i in indices_for(region=r)])
    views = [("axial, PLIC level", (slice(None), slice(None), pk[2])),
             ("axial, perirolandic", (slice(None), slice(None), rk[2])),
             ("coronal, optic radiation", (slice(None), ok[1], slice(None))),
             ("sagittal, midline", (vk[0], slice(None), slice(None)))]
    fig, axes = plt.subplots(1, 4, figsize=(14, 4), facecolor="black")
    vmax = np.percentile(t2[t2 > 0], 99.5)
    for ax, (name, sl) in zip(axes, views, strict=True):
        ax.imshow(t2[sl].T, cmap="gray", origin="lower", vmin=0, vmax=vmax)
        ax.imshow(np.ma.masked_equal(lut[sl].T, 0), cmap=cmap, vmin=0, vmax=len(DERIVABLE),
                  origin="lower", alpha=0.75, interpolation="nearest")
        if truth is not None and true[sl].any():
            ax.contour(true[sl].T.astype(float), levels=[0.5], colors="white", linewidths=0.6)
        ax.set_title(name, color="white", fontsize=9)
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[r]) for r in DERIVABLE]
    fig.legend(handles, [r.replace("_", " ") for r in DERIVABLE], loc="lower center", ncol=4,
               frameon=False, labelcolor="white", fontsize=9)
    fig.suptitle(title, color="white", fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, facecolor="black", bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
