"""`weeke atlas fetch dhcp`: the real templateflow client on a TemplateFlow home the test builds
in the real tpl-dhcpVol layout and names (small phantom images), with the network blocked."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from atlas_helpers import build_templateflow_home

from weeke_pipeline import cli
from weeke_pipeline.atlas.bundle import AtlasError, load_atlas
from weeke_pipeline.atlas.fetch import parse_cohorts


def _offline_env(home: Path, tmp_path: Path) -> dict[str, str]:
    """TEMPLATEFLOW_HOME set, every HTTP(S) request sent to a closed local port (no network)."""
    env = dict(os.environ)
    env.update({"TEMPLATEFLOW_HOME": str(home), "HTTP_PROXY": "http://127.0.0.1:9",
                "HTTPS_PROXY": "http://127.0.0.1:9", "ALL_PROXY": "http://127.0.0.1:9",
                "NO_PROXY": "", "no_proxy": "", "WEEKE_ATLAS_DIR": str(tmp_path / "user-atlases")})
    return env


def _fetch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "weeke_pipeline.cli", "atlas", "fetch", "dhcp",
                           *args], env=env, capture_output=True, text=True, timeout=120)


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_fetch_builds_one_bundle_per_week_offline_with_provenance(tmp_path: Path) -> None:
    home = tmp_path / "templateflow"
    written = build_templateflow_home(home, {40: 1.0, 41: 1.03})
    before = _tree(home)
    env = _offline_env(home, tmp_path)
    res = _fetch(env, "--cohort", "40..41", "--resolution", "native")  # --out: $WEEKE_ATLAS_DIR
    assert res.returncode == 0, res.stderr
    out = tmp_path / "user-atlases"
    assert sorted(p.name for p in out.iterdir()) == ["dhcp-vol-40w", "dhcp-vol-41w"]
    assert _tree(home) == before  # offline: the client found everything in the home
    for week in (40, 41):
        bundle = load_atlas(out / f"dhcp-vol-{week}w")
        meta = bundle.meta
        assert bundle.name == f"dhcp-vol-{week}w" and meta["postmenstrual_age_weeks"] == week
        assert meta["licence"] == "CC-BY-4.0" and "10.1101/251512" in meta["citation"]
        tf = meta["templateflow"]
        assert tf["client_version"] == version("templateflow")
        assert tf["template"] == "tpl-dhcpVol" and tf["cohort"] == week
        assert tf["files"]["T2w"] == (f"tpl-dhcpVol/cohort-{week}/"
                                      f"tpl-dhcpVol_cohort-{week}_T2w.nii.gz")
        for role, suffix in (("T2w", "T2w"), ("T1w", "T1w"), ("brain_mask", "desc-brain_mask"),
                             ("dseg", "desc-structures_dseg"), ("tissues", "desc-tissues_dseg")):
            src = written[f"{week}/{suffix}"]
            assert meta["source_files"][role] == {
                "file": src.name, "sha256": hashlib.sha256(src.read_bytes()).hexdigest()}
        src_t2 = nib.load(written[f"{week}/T2w"])
        got_t2 = nib.load(bundle.image("T2w"))
        assert np.array_equal(np.asanyarray(got_t2.dataobj), np.asanyarray(src_t2.dataobj))
        assert np.allclose(got_t2.affine, src_t2.affine)
        assert bundle.has("T1w")
        # the Weeke regions the dHCP labels lack were added by rule and say how
        assert set(meta["derived_regions"]) == {"plic", "optic_radiation",
                                                "perirolandic_cortex", "vermis"}
        assert all(d["voxels"] and not d.get("skipped") for d in meta["derived_regions"].values())
        assert meta["missing_regions"] == []
    # `weeke atlas list` shows the fetched bundles (so `weeke run --atlas dhcp-vol-40w` works)
    listing = subprocess.run([sys.executable, "-m", "weeke_pipeline.cli", "atlas", "list"],
                             env=env, capture_output=True, text=True, timeout=60)
    assert "dhcp-vol-40w" in listing.stdout and "dhcp-vol-41w" in listing.stdout


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """In this process: the environment of :func:`_offline_env` (the client reads
    TEMPLATEFLOW_HOME when it is made; requests reads the proxies at each request)."""
    def apply(home: Path) -> None:
        for key, value in _offline_env(home, tmp_path).items():
            if os.environ.get(key) != value:
                monkeypatch.setenv(key, value)
    return apply


def test_fetch_missing_or_undownloaded_cohort_is_a_clear_error(
        tmp_path: Path, offline, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "templateflow"
    build_templateflow_home(home, {40: 1.0, 41: 1.0}, empty=(41,))  # 41: skeleton placeholders
    offline(home)
    out = tmp_path / "bundles"
    assert cli.main(["atlas", "fetch", "dhcp", "--cohort", "40,42", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cohort 42" in err and "tpl-dhcpVol_cohort-42_T2w.nii.gz" in err
    assert str(home) in err
    assert not out.exists()  # every week is looked up before anything is built
    assert cli.main(["atlas", "fetch", "dhcp", "--cohort", "41", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cohort 41" in err and "copy that TemplateFlow home" in err
    assert not out.exists()


def test_parse_cohorts() -> None:
    assert parse_cohorts(["36..44"]) == list(range(36, 45))
    assert parse_cohorts(["38,40", "40", "41"]) == [38, 40, 41]
    for bad in (["45"], ["40..38"], ["forty"]):
        with pytest.raises(AtlasError, match="--cohort"):
            parse_cohorts(bad)


def test_fetch_resamples_to_1mm_by_default(tmp_path: Path, offline) -> None:
    home = tmp_path / "templateflow"
    written = build_templateflow_home(home, {44: 1.0})  # 2 mm files here (dHCP: 0.5 mm)
    offline(home)
    assert cli.main(["atlas", "fetch", "dhcp", "--cohort", "44", "--out", str(tmp_path / "o"),
                     "--derive", "none", "--no-t1w"]) == 0
    bundle = load_atlas(tmp_path / "o" / "dhcp-vol-44w")
    assert bundle.meta["resolution_mm"] == [1.0, 1.0, 1.0]
    assert bundle.meta["resampled"]["voxel_mm"] == 1.0
    src = written["44/desc-structures_dseg"]  # hashes are of the TemplateFlow files
    assert bundle.meta["source_files"]["dseg"]["sha256"] == hashlib.sha256(
        src.read_bytes()).hexdigest()
    # labels resampled by nearest neighbour: same structures, volume kept within a few %
    got = np.asanyarray(nib.load(bundle.image("dseg")).dataobj)
    before = load_atlas(_native(tmp_path, home))
    ref = np.asanyarray(nib.load(before.image("dseg")).dataobj)
    assert set(np.unique(got)) == set(np.unique(ref))
    for idx in (int(v) for v in np.unique(ref) if v):
        ml_1mm, ml_2mm = (got == idx).sum() * 1.0, (ref == idx).sum() * 8.0
        assert abs(ml_1mm - ml_2mm) <= 0.1 * ml_2mm + 16, idx
    meta = json.loads((tmp_path / "o" / "dhcp-vol-44w" / "atlas.json").read_text())
    assert "derived_regions" not in meta and "T1w" not in meta["source_files"]
    assert sorted(meta["missing_regions"]) == ["optic_radiation", "perirolandic_cortex", "plic",
                                               "vermis"]


def _native(tmp_path: Path, home: Path) -> Path:
    assert cli.main(["atlas", "fetch", "dhcp", "--cohort", "44", "--out", str(tmp_path / "n"),
                     "--derive", "none", "--no-t1w", "--resolution", "native"]) == 0
    return tmp_path / "n" / "dhcp-vol-44w"


def test_run_finds_fetched_bundles_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from weeke_pipeline.resources import default_atlas_dir, find_atlas

    monkeypatch.setenv("WEEKE_ATLAS_DIR", str(tmp_path / "user"))
    (tmp_path / "user" / "dhcp-vol-40w").mkdir(parents=True)
    (tmp_path / "user" / "dhcp-vol-40w" / "atlas.json").write_text("{}")
    assert find_atlas("dhcp-vol-40w") == tmp_path / "user" / "dhcp-vol-40w"
    assert find_atlas("weeke-phantom") == default_atlas_dir()  # shipped names first
    assert find_atlas(str(tmp_path / "elsewhere")) == tmp_path / "elsewhere"
