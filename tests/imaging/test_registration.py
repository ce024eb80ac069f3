"""Registration on real neonatal templates (../shared/data) and on the phantom atlas, at ~2 mm
so each test runs in seconds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

ants = pytest.importorskip("ants")

from weeke_pipeline.imaging import registration as R  # noqa: E402

SERAG = "atlases/serag2012_neonatal"


def _down(img, mm=2.0, labels=False):
    return ants.resample_image(img, (mm, mm, mm), False, 1 if labels else 0)


@pytest.fixture(scope="module")
def serag(shared_data):
    d = shared_data / SERAG
    return {
        "t40": _down(ants.image_read(str(d / "template-40.nii.gz"))),
        "t36": _down(ants.image_read(str(d / "template-36.nii.gz"))),
        "mask": _down(ants.image_read(str(d / "mask-40.nii.gz")), labels=True),
        "tissues": _down(ants.image_read(str(d / "tissues-40.nii.gz")), labels=True),
    }


def _points(img, mask, step=37):
    idx = np.argwhere(mask.numpy() > 0)[::step]
    return [ants.transform_index_to_physical_point(img, [int(i) for i in p]) for p in idx]


def _deform(geom, moving_img, grid_img, order):
    """Sample ``moving_img`` at geom.to_template(world of grid_img voxels)."""
    from scipy import ndimage

    shape = grid_img.shape
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1)
    aff = _affine(grid_img)
    world = idx @ aff[:3, :3].T + aff[:3, 3]
    q = geom.to_template(world.reshape(-1, 3))
    inv = np.linalg.inv(_affine(moving_img))
    vox = (q @ inv[:3, :3].T + inv[:3, 3]).T
    out = ndimage.map_coordinates(moving_img.numpy(), vox, order=order, mode="constant")
    return grid_img.new_image_like(out.reshape(shape).astype("float32"))


def _affine(img):
    """Voxel -> RAS world affine of an ANTs image (ANTs physical space is LPS)."""
    a = np.eye(4)
    a[:3, :3] = np.asarray(img.direction) * np.asarray(img.spacing)
    a[:3, 3] = img.origin
    return np.diag([-1, -1, 1, 1]) @ a


# --------------------------------------------------------------------------- presets
def test_presets_are_versioned_and_reproducible():
    assert {"fast", "precise"} <= set(R.list_presets())
    for name in ("fast", "precise"):
        p = R.load_preset(name)
        assert p.name == name and p.version.count(".") == 2
        assert [s.transform for s in p.to_atlas.stages] == ["Rigid", "Affine", "SyN"]
        assert [s.transform for s in p.within_subject.stages] == ["Rigid"]
        for s in (*p.to_atlas.stages, *p.within_subject.stages):
            assert s.metric in R.REPRODUCIBLE_METRICS
        assert p.to_dict()["version"] == p.version


def test_bad_preset_names_the_file(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text('name = "x"\nversion = "1"\nrandom_seed = 1\n[within_subject]\n'
                   '[[within_subject.stages]]\ntransform = "Warp"\n')
    with pytest.raises(ValueError, match=r"broken\.toml"):
        R.load_preset(bad)
    with pytest.raises(ValueError, match="unknown registration preset"):
        R.load_preset("no-such-preset")


def test_command_has_seed_and_per_stage_masks():
    p = R.load_preset("fast")
    args = R.build_command("f.nii.gz", "m.nii.gz", p.to_atlas.stages, "/o/x_",
                           initialize="center_of_mass", fixed_mask="fm.nii.gz",
                           moving_mask="mm.nii.gz", random_seed=7)
    assert args[args.index("--random-seed") + 1] == "7"
    assert args.count("--masks") == 3
    assert "[fm.nii.gz,mm.nii.gz]" in args
    assert "[f.nii.gz,m.nii.gz,1]" in args  # centre-of-mass initialisation
    unmasked = [dataclasses.replace(s, use_mask=False) for s in p.to_atlas.stages]
    args = R.build_command("f", "m", unmasked, "/o/x_", fixed_mask="fm")
    assert args.count("[NA,NA]") == 3


def test_inclusion_mask_removes_exclusion(serag):
    excl = serag["mask"].new_image_like(np.zeros(serag["mask"].shape, "float32"))
    arr = excl.numpy()
    arr[20:30, 30:40, 20:30] = 1
    excl = excl.new_image_like(arr)
    inc = R.inclusion_mask(serag["t40"], exclusion=excl, region=serag["mask"])
    got = inc.numpy() > 0
    assert not got[20:30, 30:40, 20:30].any()
    assert got.sum() == ((serag["mask"].numpy() > 0) & (arr == 0)).sum()


# --------------------------------------------------------------------------- accuracy
def test_rigid_recovers_known_transform_with_exclusion_mask(serag, tmp_path):
    f = serag["t40"]
    truth = ants.create_ants_transform(
        transform_type="Euler3DTransform", center=ants.get_center_of_mass(f),
        parameters=(0.10, -0.06, 0.08, 4.0, -3.0, 2.5))
    moving = truth.apply_to_image(f, reference=f, interpolation="linear")
    lesion = f.new_image_like(np.zeros(f.shape, "float32"))
    arr = lesion.numpy()
    arr[22:28, 30:38, 25:31] = 1  # excluded from the metric
    lesion = lesion.new_image_like(arr)
    res = R.register_within_subject(f, moving, tmp_path / "t1_", exclusion_mask=lesion,
                                    brain_mask=serag["mask"])
    est = ants.read_transform(res.forward_transforms[0])
    inv = truth.invert()
    err = [np.linalg.norm(np.subtract(est.apply_to_point(p), inv.apply_to_point(p)))
           for p in _points(f, serag["mask"])]
    assert np.mean(err) < 0.5 and np.max(err) < 1.0  # mm, at 2 mm voxels
    assert res.similarity_after["nmi"] > res.similarity_before["nmi"] + 0.1
    assert Path(res.warped).is_file()


def test_label_resampling_keeps_label_values(serag, tmp_path):
    f = serag["t40"]
    tx = ants.create_ants_transform(transform_type="Euler3DTransform",
                                    center=ants.get_center_of_mass(f),
                                    parameters=(0.05, 0.02, -0.04, 1.3, 0.7, -0.9))
    path = tmp_path / "tx.mat"
    ants.write_transform(tx, str(path))
    out = R.warp_labels(serag["tissues"], f, [str(path)], out=tmp_path / "lab.nii.gz")
    src = set(np.unique(serag["tissues"].numpy()).astype(int))
    got = set(np.unique(out.numpy()).astype(int))
    assert got <= src and len(got) >= len(src) - 1
    import nibabel as nib

    assert np.issubdtype(nib.load(tmp_path / "lab.nii.gz").get_data_dtype(), np.integer)


@pytest.mark.slow
def test_atlas_registration_36_to_40_weeks_improves_overlap(serag, tmp_path):
    """Real contrast: the 36-week template registered to the 40-week one (rigid, affine, SyN);
    the warped-back atlas brain mask overlaps the 36-week brain far better than no
    registration, and similarity rises."""
    res = R.atlas_to_subject(serag["t36"], serag["t40"], serag["mask"], tmp_path / "a_",
                             atlas_labels=serag["tissues"])
    brain36 = (serag["t36"].numpy() > 0).astype(int)
    before = R.dice(brain36, (serag["mask"].numpy() > 0).astype(int))[1]
    after = R.dice(brain36, ants.image_read(res.brain_mask).numpy().astype(int))[1]
    assert after > 0.95 and after - before > 0.05
    s0, s1 = res.registration.similarity_before, res.registration.similarity_after
    assert s1["correlation"] > s0["correlation"] + 0.3 and s1["nmi"] > s0["nmi"]
    labels = set(np.unique(ants.image_read(res.labels).numpy()).astype(int))
    assert labels <= set(range(10))


@pytest.mark.slow
def test_known_deformation_tissue_dice(serag, tmp_path):
    """A 40-week 'subject' made with a known affine + smooth warp; the atlas tissue map
    warped back matches the deformed tissue map much better than without registration."""
    from weeke_pipeline.synth.study import random_geometry

    geom = random_geometry(np.random.default_rng(11))
    geom = dataclasses.replace(geom, warp=geom.warp * 1.5)
    subj = _deform(geom, serag["t40"], serag["t40"], order=1)
    truth = _deform(geom, serag["tissues"], serag["t40"], order=0).numpy().astype(int)
    res = R.atlas_to_subject(subj, serag["t40"], serag["mask"], tmp_path / "k_",
                             atlas_labels=serag["tissues"])
    got = ants.image_read(res.labels).numpy().astype(int)
    classes = [1, 2, 3, 5, 6, 7]  # CSF, cortex, WM, ventricles, cerebellum+brainstem, deep GM
    before = np.mean(list(R.dice(truth, serag["tissues"].numpy().astype(int), classes).values()))
    after = np.mean(list(R.dice(truth, got, classes).values()))
    assert after > 0.75 and after > before + 0.15, (before, after)


def test_deterministic_two_runs_identical(serag, tmp_path):
    t36, t40 = _down(serag["t36"], 3.0), _down(serag["t40"], 3.0)
    mask = _down(serag["mask"], 3.0, labels=True)
    a = R.atlas_to_subject(t36, t40, mask, tmp_path / "r1_")
    b = R.atlas_to_subject(t36, t40, mask, tmp_path / "r2_")
    for fa, fb in zip(a.registration.forward_transforms, b.registration.forward_transforms,
                      strict=True):
        if fa.endswith(".mat"):
            assert np.array_equal(ants.read_transform(fa).parameters,
                                  ants.read_transform(fb).parameters)
        else:
            assert np.array_equal(ants.image_read(fa).numpy(), ants.image_read(fb).numpy())
    assert np.array_equal(ants.image_read(a.brain_mask).numpy(),
                          ants.image_read(b.brain_mask).numpy())


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.nii\.gz: T2w image not found"):
        R.atlas_to_subject(tmp_path / "nope.nii.gz", tmp_path / "a.nii.gz",
                           tmp_path / "m.nii.gz", tmp_path / "x_")


# --------------------------------------------------------------------------- phantom atlas
@pytest.mark.slow
def test_phantom_atlas_end_to_end_dice(tmp_path):
    """Default phantom atlas at 2 mm; subject = phantom under the generator's default
    deformation; labels warped back vs the true labels."""
    from weeke_pipeline.atlas.regions import indices_for
    from weeke_pipeline.resources import default_atlas_dir
    from weeke_pipeline.synth.study import random_geometry

    d = default_atlas_dir()
    t2 = ants.image_read(str(d / "T2w.nii.gz"))
    dseg = ants.image_read(str(d / "dseg.nii.gz"))
    grid = _down(t2)
    atlas_t2, atlas_mask = grid, _down(ants.image_read(str(d / "brain_mask.nii.gz")), labels=True)
    atlas_dseg = _down(dseg, labels=True)
    geom = random_geometry(np.random.default_rng(3))
    subj = _deform(geom, t2, grid, order=1)
    truth = _deform(geom, dseg, grid, order=0).numpy().astype(int)
    res = R.atlas_to_subject(subj, atlas_t2, atlas_mask, tmp_path / "p_", atlas_labels=atlas_dseg)
    got = ants.image_read(res.labels).numpy().astype(int)
    deep = indices_for(tissue="deep_gm") + indices_for(tissue="brainstem") + \
        indices_for(tissue="cerebellum")
    d_deep = np.nanmean(list(R.dice(truth, got, deep).values()))
    d_none = np.nanmean(list(R.dice(truth, atlas_dseg.numpy().astype(int), deep).values()))
    assert d_deep > 0.75 and d_deep > d_none, (d_none, d_deep)


def test_dilate_ball_equals_dilation_with_the_ball():
    """The distance-transform dilation gives the same mask as binary dilation by the ball."""
    from scipy import ndimage

    rng = np.random.default_rng(5)
    for spacing, radius in (((1.0, 1.0, 1.0), 6.0), ((1.2, 1.2, 2.0), 6.0),
                            ((0.8, 1.5, 2.5), 4.3), ((2.5, 2.5, 3.0), 5.0)):
        mask = ndimage.binary_dilation(rng.random((30, 26, 22)) > 0.997, iterations=2)
        # and a compact blob off-centre in a larger grid, touching one face (a brain in its
        # field of view): only its bounding box grown by the radius is transformed
        blob = np.zeros((48, 40, 36), dtype=bool)
        blob[30:44, 0:9, 5:15] = rng.random((14, 9, 10)) > 0.3
        for m in (mask, blob):
            _check_ball_dilation(m, spacing, radius)
    assert not R.dilate_ball(np.zeros((4, 4, 4), bool), (1, 1, 1), 3.0).any()


def _check_ball_dilation(mask: np.ndarray, spacing: tuple[float, ...], radius: float) -> None:
    from scipy import ndimage

    sp = np.asarray(spacing)
    r = np.ceil(radius / sp).astype(int)
    zz, yy, xx = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    ball = (zz * sp[0]) ** 2 + (yy * sp[1]) ** 2 + (xx * sp[2]) ** 2 <= radius ** 2
    want = ndimage.binary_dilation(mask, structure=ball)
    assert np.array_equal(R.dilate_ball(mask, spacing, radius), want), spacing


def test_similarity_is_measured_on_a_2mm_subgrid():
    """1 mm voxels: every 2nd voxel (the numbers equal those of the subsampled images);
    clinical 1.2 x 1.2 x 2 mm voxels: the full grid."""
    assert R.similarity_strides((1.0, 1.0, 1.0)) == (2, 2, 2)
    assert R.similarity_strides((1.2, 1.2, 2.0)) == (1, 1, 1)
    assert R.similarity_strides((0.5, 0.5, 3.0)) == (4, 4, 1)
    rng = np.random.default_rng(2)
    a = rng.normal(100, 20, (40, 36, 30)).astype("float32")
    b = (a * 0.8 + rng.normal(0, 10, a.shape)).astype("float32")
    m = np.zeros(a.shape, "float32")
    m[5:35, 4:30, 3:27] = 1
    img = [ants.from_numpy(x, spacing=(1.0, 1.0, 1.0)) for x in (a, b, m)]
    sub = [ants.from_numpy(np.ascontiguousarray(x[::2, ::2, ::2]), spacing=(2.0, 2.0, 2.0))
           for x in (a, b, m)]
    got, want = R.similarity(*img), R.similarity(*sub)
    assert got == pytest.approx(want, rel=1e-9)
