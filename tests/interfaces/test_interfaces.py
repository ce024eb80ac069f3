"""The nipype interfaces run as nodes and hand files on (phantom atlas at 3 mm)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ants = pytest.importorskip("ants")


@pytest.fixture(scope="module")
def small_atlas(tmp_path_factory):
    from weeke_pipeline.resources import default_atlas_dir

    d = default_atlas_dir()
    out = tmp_path_factory.mktemp("atlas3mm")
    paths = {}
    for name, lab in (("T2w", False), ("T1w", False), ("ADC", False), ("brain_mask", True),
                      ("dseg", True)):
        img = ants.resample_image(ants.image_read(str(d / f"{name}.nii.gz")), (3, 3, 3), False,
                                  1 if lab else 0)
        paths[name] = str(out / f"{name}.nii.gz")
        ants.image_write(img, paths[name])
    return paths


def test_interfaces_chain(small_atlas, tmp_path):
    from nipype import Node

    from weeke_pipeline.interfaces import (
        AtlasToSubject,
        RegionMetrics,
        RegisterWithinSubject,
        SubjectQC,
    )

    a = small_atlas
    # the "subject" is the atlas itself shifted by 4 mm: a quick, real registration
    t2 = ants.image_read(a["T2w"])
    shifted = t2.clone()
    shifted.set_origin(tuple(np.add(t2.origin, (4.0, -4.0, 2.0))))
    subj = str(tmp_path / "sub_T2w.nii.gz")
    ants.image_write(shifted, subj)

    atlas = Node(AtlasToSubject(t2w=subj, atlas_t2w=a["T2w"], atlas_brain_mask=a["brain_mask"],
                                atlas_labels=a["dseg"], preset="fast"),
                 name="atlas", base_dir=str(tmp_path))
    ra = atlas.run().outputs
    within = Node(RegisterWithinSubject(t2w=subj, moving=a["T1w"], name="T1w",
                                        brain_mask=ra.brain_mask),
                  name="within", base_dir=str(tmp_path))
    rw = within.run().outputs
    met = Node(RegionMetrics(subject="sub-01", labels=ra.labels, t2w=subj, t1w=rw.warped,
                             brain_mask=ra.brain_mask), name="metrics", base_dir=str(tmp_path))
    rm = met.run().outputs
    assert "Metrics" in json.loads(Path(rm.json).read_text())
    header = Path(rm.tsv).read_text().splitlines()[0].split("\t")
    assert header[:3] == ["subject", "region", "hemisphere"]

    q = Node(SubjectQC(subject="sub-01", t2w=subj, labels=ra.labels, brain_mask=ra.brain_mask,
                       t1w=rw.warped, report_to_atlas=ra.report, report_t1w=rw.report),
             name="qc", base_dir=str(tmp_path))
    rq = q.run().outputs
    assert rq.status in ("pass", "warn", "fail")
    assert "to_atlas nmi (after)" in Path(rq.report).read_text()
