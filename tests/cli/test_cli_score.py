"""``weeke score`` and ``weeke forms``: JSON out, exit 2 with a message naming the problem."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from weeke_pipeline import cli
from weeke_pipeline.resources import data_dir

FORM = "weeke-consensus-2025"


def _items_file(tmp_path: Path, items: Any, name: str = "read.json") -> str:
    path = tmp_path / name
    path.write_text(items if isinstance(items, str) else json.dumps(items), encoding="utf-8")
    return str(path)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_score_prints_the_result_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _items_file(tmp_path, {"items": {"gm_thalamus": {"extent": 2, "laterality": 2},
                                         "gm_basal_ganglia": {"extent": 2, "laterality": 2},
                                         "gm_plic": {"extent": 2, "laterality": 2}}})
    code, out, err = _run(["score", FORM, "--items", f], capsys)
    assert code == 0 and err == ""
    result = json.loads(out)
    assert result["form"] == {"id": FORM, "version": "1.0.0"}
    assert result["subscores"]["grey_matter"] == 12 and result["total"] == 12
    assert result["complete"] is False and "gm_brainstem" in result["missing"]


def test_score_with_explicit_version_and_list(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    f = _items_file(tmp_path, {"items": {"bg_score": {"extent": 2}, "w_score": {"extent": 0}}})
    code, out, _ = _run(["score", "barkovich-1998", "--version", "1.0.0", "--items", f], capsys)
    assert code == 0
    result = json.loads(out)
    assert result["subscores"] == {"basal_ganglia": 2, "watershed": 0} and result["complete"]
    code, out, _ = _run(["score", "--list"], capsys)
    assert code == 0 and f"{FORM} 1.0.0" in out.splitlines()


@pytest.mark.parametrize(("items", "expected"), [
    ({"items": {"gm_thalami": {"extent": 1, "laterality": 1}}}, "unknown item 'gm_thalami'"),
    ({"items": {"gm_thalamus": {"extent": 3, "laterality": 1}}},
     "item 'gm_thalamus': extent 3 out of range"),
    ({"items": {"gm_plic": {"extent": 1.5, "laterality": 1}}},
     "item 'gm_plic': extent must be an integer"),
    ({"items": {"gm_brainstem": {"extent": 2}}}, "item 'gm_brainstem': laterality missing"),
    ({"items": {"wm_pwml": {"extent": 0, "laterality": 2}}},
     "item 'wm_pwml': laterality given (2) but extent is 0"),
    ({"items": {"add_ivh": {"extent": 1, "laterality": 1}}},
     "item 'add_ivh': laterality given (1) but the item is not lateralised"),
    ({"items": {"cb_haemorrhage": {"extent": 1, "laterality": 3}}},
     "item 'cb_haemorrhage': laterality must be 1 or 2"),
    ({"items": {"gm_hippocampus": {"assessable": False}}},
     "item 'gm_hippocampus': marked not assessable without a reason"),
    ({"gm_thalamus": {"extent": 1}}, 'the item set must be an object {"items"'),
    ('{"items": {"gm_thalamus": {"extent": 1,}}}', "is not valid JSON"),
])
def test_score_bad_items_exit_2_naming_the_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], items: Any, expected: str) -> None:
    code, out, err = _run(["score", FORM, "--items", _items_file(tmp_path, items)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("weeke score: error: ") and expected in err


@pytest.mark.parametrize(("argv", "expected"), [
    (["score", "weeke-2018", "--items", "{f}"], "unknown form 'weeke-2018'"),
    (["score", FORM, "--version", "2.0.0", "--items", "{f}"],
     f"form '{FORM}' has no version '2.0.0' (versions: 1.0.0)"),
    (["score", FORM, "--items", "{missing}"], "not found"),
    (["score", FORM], "give the item set with --items"),
    (["score", "--items", "{f}"], "give a FORM id"),
])
def test_score_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    argv: list[str], expected: str) -> None:
    f = _items_file(tmp_path, {"items": {}})
    argv = [a.format(f=f, missing=str(tmp_path / "nope.json")) for a in argv]
    code, out, err = _run(argv, capsys)
    assert code == 2 and out == "" and expected in err


def test_score_console_exit_code_and_stdin(tmp_path: Path) -> None:
    """The real process: exit status 2 and one-line message; '-' reads standard input."""
    bad = _items_file(tmp_path, {"items": {"gm_thalamus": {"extent": 1}}})
    proc = subprocess.run([sys.executable, "-m", "weeke_pipeline.cli", "score", FORM,
                           "--items", bad], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "weeke score: error: item 'gm_thalamus': laterality missing; extent 1 > 0 needs "
        "laterality (1 = unilateral, 2 = bilateral)"]
    proc = subprocess.run([sys.executable, "-m", "weeke_pipeline.cli", "score", FORM,
                           "--items", "-"], input='{"items": {"add_csvt": {"extent": 2}}}',
                          capture_output=True, text=True)
    assert proc.returncode == 0 and json.loads(proc.stdout)["subscores"]["additional"] == 2


def test_forms_list_show_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["forms", "list"], capsys)
    assert code == 0
    assert any(line.startswith(f"{FORM}\t1.0.0\treleased\ttotal 0-56") for line in out.splitlines())
    code, out, _ = _run(["forms", "show", FORM], capsys)
    assert code == 0 and len(json.loads(out)["items"]) == 17
    shipped = data_dir("scoring_forms") / FORM / "1.0.0.yaml"
    doc = yaml.safe_load(shipped.read_text(encoding="utf-8"))
    doc["total_max"] = 57
    broken = tmp_path / FORM / "1.0.0.yaml"
    broken.parent.mkdir()
    broken.write_text(yaml.safe_dump(doc), encoding="utf-8")
    code, out, err = _run(["forms", "validate", str(shipped), str(broken)], capsys)
    assert code == 2
    assert out.startswith(f"ok {shipped}: {FORM} 1.0.0 sha256 ")
    assert str(broken) in err and "total_max 57 != sum of subscore maxima 56" in err
