"""Multi-atlas segmentation: label fusion on small arrays with known answers, the agreement
between atlases, dhcp-auto atlas choice, the workflow graph with several atlases (no
registration), and one small end-to-end ``weeke run`` with three phantom-variant atlases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from weeke_pipeline import cli
from weeke_pipeline.atlas.bundle import load_atlas
from weeke_pipeline.atlas.selection import (
    AtlasSelectionError,
    choose_dhcp_weeks,
    participant_pma,
    resolve_atlases,
)
from weeke_pipeline.config import ConfigError, RunConfig
from weeke_pipeline.imaging import label_fusion as lf
from weeke_pipeline.resources import data_dir, default_atlas_dir
from weeke_pipeline.workflows.pipeline import SubjectInputs, build_workflow

SAMPLE = data_dir("sample_data")


# --------------------------------------------------------------------------- fusion
def test_majority_vote_takes_the_plurality_and_breaks_ties_by_atlas_order() -> None:
    a = np.array([[1, 1, 2, 3, 0]])
    b = np.array([[1, 2, 2, 4, 5]])
    c = np.array([[1, 2, 3, 5, 5]])
    fused = lf.majority_vote([a, b, c])
    # agree; 2 of 3; 2 of 3; three-way tie -> first atlas; 2 of 3 say 5 over background
    assert fused.tolist() == [[1, 2, 2, 3, 5]]
    assert lf.majority_vote([c, b, a]).tolist() == [[1, 2, 2, 5, 5]]
    with pytest.raises(ValueError, match="shape"):
        lf.majority_vote([a, np.zeros((2, 5), int)])


def _toy_case() -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Target: a bright cube (label 1) on a textured background. Atlas 0 is right; atlases 1
    and 2 are the same wrong atlas (cube shifted by 3 voxels), so majority voting follows
    their shared error while joint label fusion sees that they err together and that atlas 0
    matches the target's intensities."""
    rng = np.random.default_rng(3)
    shape = (24, 24, 24)
    target = rng.normal(20.0, 4.0, shape)
    truth = np.zeros(shape, dtype=np.int32)
    truth[6:16, 6:16, 6:16] = 1
    target[truth == 1] += 100.0
    wrong = np.roll(target, 3, axis=0)
    wrong_lab = np.roll(truth, 3, axis=0)
    images = [target + rng.normal(0, 1, shape), wrong, wrong + rng.normal(0, 1, shape)]
    labels = [truth.copy(), wrong_lab, wrong_lab.copy()]
    return target, images, labels, truth


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * ((a == 1) & (b == 1)).sum() / ((a == 1).sum() + (b == 1).sum()))


def test_joint_label_fusion_outvotes_atlases_that_make_the_same_error() -> None:
    target, images, labels, truth = _toy_case()
    mv = lf.majority_vote(labels)
    assert _dice(mv, truth) < 0.75  # majority follows the two wrong atlases
    jlf = lf.joint_label_fusion(target, images, labels, patch_radius=1, search_radius=0)
    assert np.array_equal(jlf, truth)
    # the voxels where every atlas agrees are never changed
    agree = ~lf.disagreement(lf.stack_labels(labels))
    assert np.array_equal(jlf[agree], labels[0][agree])
    # deterministic
    again = lf.joint_label_fusion(target, images, labels, patch_radius=1, search_radius=0)
    assert np.array_equal(jlf, again)


def test_joint_label_fusion_search_finds_a_shifted_atlas() -> None:
    """With a search radius covering the shift, even the shifted atlases vote right."""
    target, images, labels, truth = _toy_case()
    jlf = lf.joint_label_fusion(target, images[1:], labels[1:], patch_radius=1,
                                search_radius=3)
    # the two copies are identical on the labels, so nothing disagrees: consensus is kept
    assert np.array_equal(jlf, labels[1])
    one_right = [images[1], images[0]]
    fused = lf.joint_label_fusion(target, one_right, [labels[1], labels[0]], patch_radius=1,
                                  search_radius=3)
    assert _dice(fused, truth) > 0.97


def test_region_agreement_counts_atlases_agreeing_with_the_fused_label() -> None:
    a = np.array([1, 1, 1, 1, 2, 2, 0, 0])
    b = np.array([1, 1, 1, 2, 2, 2, 0, 0])
    c = np.array([1, 1, 0, 2, 2, 2, 2, 0])
    stack = lf.stack_labels([a, b, c])
    fused = lf.majority_vote(stack)
    assert fused.tolist() == [1, 1, 1, 2, 2, 2, 0, 0]
    conf = lf.region_agreement(stack, fused)
    # label 1: voxels 0-2 agreement 1, 1, 2/3 -> 8/9
    assert conf[1]["agreement"] == pytest.approx(8 / 9)
    # label 2: voxels 3-5: 2/3, 1, 1 -> 8/9
    assert conf[2]["agreement"] == pytest.approx(8 / 9)
    # pairwise Dice of label 1: (a,b) 2*3/7, (a,c) 2*2/6, (b,c) 2*2/5
    assert conf[1]["pairwise_dice"] == pytest.approx((6 / 7 + 4 / 6 + 4 / 5) / 3)
    va = lf.voxel_agreement(stack, fused)
    assert va[6] == pytest.approx(2 / 3) and va[0] == 1.0


def test_fuse_files_writes_labels_mask_agreement_and_confidence(tmp_path: Path) -> None:
    target, images, labels, truth = _toy_case()
    aff = np.diag([1.0, 1.0, 1.0, 1.0])
    paths = {}
    for name, arr in (("t2w", target),):
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(arr.astype(np.float32), aff), paths[name])
    labs, imgs, masks = [], [], []
    for k in range(3):
        labs.append(tmp_path / f"lab{k}.nii.gz")
        nib.save(nib.Nifti1Image(labels[k].astype(np.uint8), aff), labs[-1])
        imgs.append(tmp_path / f"img{k}.nii.gz")
        nib.save(nib.Nifti1Image(images[k].astype(np.float32), aff), imgs[-1])
        masks.append(tmp_path / f"mask{k}.nii.gz")
        nib.save(nib.Nifti1Image((labels[k] > 0).astype(np.uint8), aff), masks[-1])
    res = lf.fuse_files(paths["t2w"], labs, tmp_path / "out", atlas_images=imgs,
                        brain_masks=masks, method="jlf", atlas_names=["a", "b", "c"],
                        region_names={1: "cube"}, search_radius=0)
    fused = np.asanyarray(nib.load(res.labels).dataobj)
    assert np.array_equal(fused, truth)
    assert nib.load(res.labels).get_data_dtype() == np.uint8
    mask = np.asanyarray(nib.load(res.brain_mask).dataobj)
    assert np.array_equal(mask > 0, lf.majority_vote(labels) > 0)  # 2 of 3 masks
    doc = json.loads(Path(res.confidence).read_text())
    assert doc["n_atlases"] == 3 and doc["method"] == "jlf" and doc["atlases"] == ["a", "b", "c"]
    assert doc["regions"]["1"]["name"] == "cube"
    assert 1 / 3 <= doc["regions"]["1"]["agreement"] < 1.0
    with pytest.raises(ValueError, match="T2w on the subject grid"):
        lf.fuse_files(paths["t2w"], labs, tmp_path / "o2", method="jlf")
    with pytest.raises(ValueError, match="not one of"):
        lf.fuse_files(paths["t2w"], labs, tmp_path / "o3", method="vote")


def test_confidence_rows_join_the_metrics_table() -> None:
    table = pd.DataFrame({"subject": ["x", "x"], "region": ["thalamus", "thalamus"],
                          "hemisphere": ["left", "left"], "label": ["28", "28"],
                          "metric": ["volume_mm3", "t2w_median"], "value": [1.0, 2.0]})
    doc = {"n_atlases": 3, "method": "jlf",
           "regions": {"28": {"agreement": 0.9, "pairwise_dice": 0.8}}}
    out = lf.append_confidence_rows(table, doc)
    rows = out[out["metric"].str.startswith("label_")].set_index("metric")["value"]
    assert rows["label_agreement"] == 0.9 and rows["label_pairwise_dice"] == 0.8
    d = lf.confidence_dictionary(doc)
    assert "3 atlases" in d["label_agreement"]["Description"]


# --------------------------------------------------------------------------- atlas choice
def _bundle_copy(dst: Path, name: str, **meta: object) -> Path:
    shutil.copytree(default_atlas_dir(), dst)
    doc = json.loads((dst / "atlas.json").read_text())
    doc.update(name=name, **meta)
    (dst / "atlas.json").write_text(json.dumps(doc))
    return dst


def test_dhcp_auto_takes_the_three_weeks_nearest_the_age_at_scan(tmp_path: Path) -> None:
    home = tmp_path / "atlases"
    for week in (36, 40, 41, 42, 43, 44):
        _bundle_copy(home / f"dhcp-vol-{week}w", f"dhcp-vol-{week}w",
                     postmenstrual_age_weeks=week)
    bundles = resolve_atlases(["dhcp-auto"], search=[home], subject="01",
                              participants=_participants(tmp_path, "41", "3"))
    assert [b.meta["postmenstrual_age_weeks"] for b in bundles] == [41, 42, 40]
    from weeke_pipeline.atlas.selection import installed_dhcp

    found = installed_dhcp([home])
    assert [b.meta["postmenstrual_age_weeks"] for b in choose_dhcp_weeks(44.0, found)] == \
        [44, 43, 42]
    # an exact tie goes to the younger week
    assert [b.meta["postmenstrual_age_weeks"] for b in choose_dhcp_weeks(38.0, found)] == \
        [36, 40, 41]


def _participants(tmp_path: Path, weeks: str, days: str, cols: str = "") -> str:
    p = tmp_path / "participants.tsv"
    header = cols or "patient_id\tparticipant_id\tpma_at_scan_weeks\tpma_at_scan_days"
    p.write_text(f"{header}\nHOSP1\tsub-01\t{weeks}\t{days}\n")
    return str(p)


def test_dhcp_auto_names_the_missing_column_or_participant(tmp_path: Path) -> None:
    good = _participants(tmp_path, "44", "0")
    with pytest.raises(AtlasSelectionError, match="sub-07 is not in the participants"):
        participant_pma(good, "07")
    bad = _participants(tmp_path, "44", "0",
                        cols="patient_id\tparticipant_id\tage_weeks\tpma_at_scan_days")
    with pytest.raises(AtlasSelectionError, match="no pma_at_scan_weeks column"):
        participant_pma(bad, "01")
    with pytest.raises(AtlasSelectionError, match="participants table"):
        participant_pma(None, "01")
    assert participant_pma(_participants(tmp_path, "40", "6"), "sub-01") == \
        pytest.approx(40 + 6 / 7)
    with pytest.raises(AtlasSelectionError, match="no dHCP atlas installed"):
        resolve_atlases(["dhcp-auto"], search=[tmp_path / "empty"], subject="01",
                        participants=good)


def test_run_options_and_specification_for_several_atlases(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text('[inputs]\ninput_dir = "x"\n[registration]\natlases = ["a1", "dhcp-auto"]\n'
                    'label_fusion = "majority"\n')
    (tmp_path / "a1").mkdir()
    cfg = RunConfig.from_toml(spec)
    assert cfg.atlases == [str(tmp_path / "a1"), "dhcp-auto"]
    assert cfg.label_fusion == "majority" and cfg.atlas_list == cfg.atlases
    spec.write_text('[registration]\natlas = "a1"\natlases = ["a1"]\n')
    with pytest.raises(ConfigError, match="either atlas"):
        RunConfig.from_toml(spec)
    spec.write_text('[registration]\nlabel_fusion = "staple"\n')
    with pytest.raises(ConfigError, match="label_fusion"):
        RunConfig.from_toml(spec)
    assert RunConfig(atlas="x").atlas_list == ["x"] and RunConfig().atlas_list == []


# --------------------------------------------------------------------------- workflow graph
def test_workflow_graph_has_one_registration_node_per_atlas_and_a_fusion(tmp_path: Path
                                                                          ) -> None:
    atl = [_bundle_copy(tmp_path / f"v{k}", f"phantom-v{k}") for k in range(3)]
    sessions = [SubjectInputs("01", "01", t2w="t2.nii.gz", t1w="t1.nii.gz")]
    cfg = RunConfig(output_dir=str(tmp_path), atlases=[str(a) for a in atl])
    graph = build_workflow(cfg, sessions, deriv=tmp_path / "d",
                           work=tmp_path / "w")._create_flat_graph()
    nodes = {n.fullname.removeprefix("weeke_wf."): n for n in graph.nodes}
    base = "sub_01_ses_01_wf.anat_reg_wf.atlas_reg"
    regs = [nodes[f"{base}.atlas_reg_{k + 1:02d}_phantom_v{k}"] for k in range(3)]
    fusion = nodes[f"{base}.fusion"]
    assert fusion.inputs.method == "jlf"
    # QC judges coverage on the regions of every atlas
    assert nodes["sub_01_ses_01_wf.qc"].inputs.atlas_labels == [str(a / "dseg.nii.gz")
                                                                for a in atl]
    assert fusion.inputs.atlas_names == ["phantom-v0", "phantom-v1", "phantom-v2"]
    # the registrations are independent nodes (none waits for another), all feed the fusion
    for n in regs:
        assert not any(".atlas_reg_0" in p.fullname for p in graph.predecessors(n))
        assert any(".merge_labels" in s.fullname for s in graph.successors(n))
    assert {p.fullname.split(".")[-1] for p in graph.predecessors(fusion)} >= {
        "merge_labels", "merge_atlas_t2w", "merge_brain_mask"}
    # metrics, QC and the sink take the fused labels (through the sub-workflow's outputnode)
    import networkx as nx

    for name in ("metrics", "qc", "ds_subject_wf.sink"):
        assert nx.has_path(graph, fusion, nodes[f"sub_01_ses_01_wf.{name}"])
    # one atlas: the single registration node of before
    cfg1 = RunConfig(output_dir=str(tmp_path), atlas=str(atl[0]))
    g1 = build_workflow(cfg1, sessions, deriv=tmp_path / "d",
                        work=tmp_path / "w1")._create_flat_graph()
    names1 = {n.fullname.removeprefix("weeke_wf.") for n in g1.nodes}
    assert "sub_01_ses_01_wf.anat_reg_wf.atlas_reg" in names1
    assert not any("fusion" in n for n in names1)
    # majority voting
    cfgm = RunConfig(output_dir=str(tmp_path), atlases=[str(a) for a in atl],
                     label_fusion="majority")
    gm = build_workflow(cfgm, sessions, deriv=tmp_path / "d",
                        work=tmp_path / "wm")._create_flat_graph()
    fm = next(n for n in gm.nodes if n.fullname.endswith("atlas_reg.fusion"))
    assert fm.inputs.method == "majority"
    assert not any("merge_atlas_t2w" in p.fullname for p in gm.predecessors(fm))


def test_atlases_with_different_label_numbering_are_refused(tmp_path: Path) -> None:
    a = _bundle_copy(tmp_path / "a", "a")
    b = _bundle_copy(tmp_path / "b", "b")
    lines = (b / "labels.tsv").read_text().splitlines()
    one, two = lines[1].split("\t"), lines[2].split("\t")
    one[1], two[1] = two[1], one[1]  # labels 1 and 2 swapped
    lines[1], lines[2] = "\t".join(one), "\t".join(two)
    (b / "labels.tsv").write_text("\n".join(lines) + "\n")
    from weeke_pipeline.atlas.selection import check_same_labels

    with pytest.raises(AtlasSelectionError, match="share the label numbering"):
        check_same_labels([load_atlas(a), load_atlas(b)])


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_weeke_run_with_three_atlases_fuses_labels_and_records_agreement(tmp_path: Path
                                                                         ) -> None:
    sub = "02"
    export = tmp_path / "export"
    shutil.copytree(SAMPLE / f"sub-{sub}" / "dicom", export / "dicom")
    lines = (SAMPLE / "participants.tsv").read_text().splitlines()
    (export / "participants.tsv").write_text("\n".join([lines[0], lines[int(sub)]]) + "\n")
    from weeke_pipeline.atlas.variants import phantom_variant

    atl = [phantom_variant(tmp_path / f"atlas{k}", f"phantom-variant-{k}", 40 + k).path
           for k in range(3)]
    out = tmp_path / "run"
    out.mkdir()
    (out / "key.txt").write_text("test-project-key")
    args = ["run", str(export / "dicom"), str(out), "--participants",
            str(export / "participants.tsv"), "--key-file", str(out / "key.txt"), "--sloppy",
            "--no-dti", "--no-progress"]
    for a in atl:
        args += ["--atlas", str(a)]
    assert cli.main(args) == 0
    stem = f"sub-{sub}_ses-01"
    d = out / "derivatives" / "weeke" / f"sub-{sub}" / "ses-01"
    fused = np.asanyarray(nib.load(d / "anat" / f"{stem}_space-T2w_desc-atlas_dseg.nii.gz")
                          .dataobj)
    truth = np.asanyarray(nib.load(SAMPLE / f"sub-{sub}" / "truth" / f"sub-{sub}_dseg.nii.gz")
                          .dataobj)
    work = out / "work" / "weeke_wf" / f"sub_{sub}_ses_01_wf" / "anat_reg_wf" / "atlas_reg"
    singles = [np.asanyarray(nib.load(next((work / f"atlas_reg_{k + 1:02d}_phantom_variant_{k}")
                                           .glob("*desc-atlas_dseg.nii.gz"))).dataobj)
               for k in range(3)]
    from weeke_pipeline.imaging.registration import dice

    def mean_dice(x: np.ndarray) -> float:
        return float(np.nanmean(list(dice(x, truth).values())))

    # fusion is at least as good as the average single atlas
    assert mean_dice(fused) >= np.mean([mean_dice(s) for s in singles]) - 0.005
    conf = json.loads((d / "anat" / f"{stem}_space-T2w_desc-atlas_labelconfidence.json")
                      .read_text())
    assert conf["n_atlases"] == 3 and conf["method"] == "jlf"
    assert (d / "anat" / f"{stem}_space-T2w_desc-atlasagreement_probseg.nii.gz").is_file()
    metrics = pd.read_csv(d / f"{stem}_metrics.tsv", sep="\t", na_values="n/a")
    agree = metrics[metrics["metric"] == "label_agreement"]
    assert len(agree) > 30 and agree["value"].between(1 / 3, 1).all()
    side = json.loads((d / f"{stem}_metrics.json").read_text())
    assert "label_pairwise_dice" in side["Metrics"]
    qc = json.loads((d / "qc" / f"{stem}_qc.json").read_text())
    assert qc["numbers"]["label_confidence"]["n_atlases"] == 3
    assert "atlas agreement" in (d / "qc" / f"{stem}_qc.html").read_text()
    for k in range(3):  # every atlas's registration is kept
        assert (d / "xfm" / f"{stem}_to_atlas-{k + 1:02d}_phantom_variant_{k}_registration.json"
                ).is_file()
    config = (d / f"{stem}_config.toml").read_text()
    assert "phantom-variant-2" in config and 'label_fusion = "jlf"' in config


def test_cli_refuses_an_unknown_atlas_among_several(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    rc = cli.main(["run", str(tmp_path / "in"), str(tmp_path / "out"), "--atlas",
                   str(default_atlas_dir()), "--atlas", str(tmp_path / "no-such-atlas")])
    assert rc == 2
    assert "no-such-atlas: no such atlas name or folder" in capsys.readouterr().err


def test_dhcp_auto_without_an_installed_atlas_fails_each_subject_with_a_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from weeke_pipeline.workflows.pipeline import process_sessions

    monkeypatch.setenv("WEEKE_ATLAS_DIR", str(tmp_path / "no-atlases"))
    t2w = SAMPLE / "sub-02" / "truth" / "sub-02_T2w.nii.gz"
    cfg = RunConfig(output_dir=str(tmp_path / "out"), atlases=["dhcp-auto"],
                    participants=_participants(tmp_path, "44", "0"), plugin="Linear")
    summary = process_sessions(cfg, [SubjectInputs("01", "01", t2w=str(t2w))])
    assert summary.subjects == {"sub-01_ses-01": "fail"}
    assert "weeke atlas fetch dhcp" in summary.errors["sub-01_ses-01"]
    report = tmp_path / "out/derivatives/weeke/sub-01/ses-01/qc/sub-01_ses-01_qc.html"
    assert "no dHCP atlas installed" in report.read_text()
    assert 'atlas = "dhcp-auto"' in (tmp_path / "out/derivatives/weeke/run_config.toml"
                                     ).read_text()
