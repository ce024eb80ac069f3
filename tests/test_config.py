"""The run configuration: sections enforced, keys and types checked, the seed and the preset
reaching the registrations, a bad preset refused before any work."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from weeke_pipeline import cli
from weeke_pipeline.config import ConfigError, RunConfig
from weeke_pipeline.constants import DEFAULT_SEED
from weeke_pipeline.errors import UsageError
from weeke_pipeline.resources import data_dir


def _spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message"), [
    ('[execution]\npreset = "fast"\n',
     r"\[execution\] preset: this key belongs in \[registration\]"),
    ('[registration]\npresets = "fast"\n',
     r"\[registration\] unknown key 'presets'; keys of "
     r"\[registration\]: atlas, atlases, label_fusion, preset, seed"),
    ('preset = "fast"\n', r"unknown section or top-level key 'preset'; it belongs in "
                          r"\[registration\]"),
    ('[run]\nx = 1\n', r"unknown section or top-level key 'run'"),
    ('[registration]\nseed = "1"\n', r"\[registration\] seed: expected a whole number"),
    ('[metrics]\ndti = "yes"\n', r"\[metrics\] dti: expected true or false"),
    ('[metrics]\nadc_thresholds = [800, "x"]\n', r"adc_thresholds: expected a list of numbers"),
    ('[execution]\nplugin_args = 2\n', r"\[execution\] plugin_args: expected a table"),
])
def test_a_wrong_key_section_or_type_is_refused_naming_it(tmp_path, text, message):
    path = _spec(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as exc:
        RunConfig.from_toml(path)
    assert str(path) in str(exc.value)
    assert isinstance(exc.value, UsageError)  # the CLI's exit 2


def test_the_shipped_specifications_and_a_saved_configuration_read_back(tmp_path):
    default = RunConfig.from_toml(data_dir("workflows") / "default.toml")
    assert (default.preset, default.seed, default.plugin) == ("fast", DEFAULT_SEED, "MultiProc")
    cfg = RunConfig(input_dir="/in", output_dir="/out", preset="precise", seed=7,
                    adc_thresholds=[700, 900],
                    subjects=["01"], plugin_args={"n_procs": 1})
    assert cfg.adc_thresholds == [700.0, 900.0]
    saved = cfg.to_toml({"atlas": "weeke-phantom"})
    doc = tomllib.loads(saved)
    assert doc["registration"] == {"atlas": "", "atlases": [], "label_fusion": "jlf",
                                   "preset": "precise", "seed": 7}
    assert doc["provenance"]["atlas"] == "weeke-phantom"
    assert RunConfig.from_toml(_spec(tmp_path, saved)) == cfg


def test_an_unknown_preset_is_a_usage_error_before_any_work(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    out = tmp_path / "out"
    key = tmp_path / "key.txt"
    key.write_text("k")
    assert cli.main(["run", str(tmp_path / "in"), str(out), "--key-file", str(key),
                     "--preset", "fastest"]) == 2
    err = capsys.readouterr().err
    assert "[registration] preset: unknown registration preset 'fastest'" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_the_seed_reaches_every_registration(tmp_path):
    from weeke_pipeline.workflows.pipeline import SubjectInputs, _provenance, build_workflow

    files = {}
    for name in ("t2w.nii.gz", "t1w.nii.gz", "dwi.nii.gz", "dwi.bval", "dwi.bvec", "adc.nii.gz"):
        files[name] = tmp_path / name
        files[name].write_bytes(b"")
    s = SubjectInputs("01", "01", t2w=str(files["t2w.nii.gz"]), t1w=str(files["t1w.nii.gz"]),
                      dwi=str(files["dwi.nii.gz"]), bval=str(files["dwi.bval"]),
                      bvec=str(files["dwi.bvec"]), adc=str(files["adc.nii.gz"]))
    cfg = RunConfig(output_dir=str(tmp_path), seed=7)
    wf = build_workflow(cfg, [s], deriv=tmp_path / "d", work=tmp_path / "w")
    sub_wf = wf.get_node("sub_01_ses_01_wf")
    seeds = {name: sub_wf.get_node(name).inputs.random_seed
             for name in ("anat_reg_wf.atlas_reg", "anat_reg_wf.t1w_reg", "dwi_wf.b0_reg")}
    assert seeds == dict.fromkeys(seeds, 7)
    assert _provenance(cfg)["registration_preset"]["random_seed"] == 7
