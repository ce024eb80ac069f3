"""Install extras: a reading server (``weeke-pipeline[reading]``) needs no imaging library.

The reading side (the web app, the analysts' tables and statistics, their commands and the
``weeke`` entry point) is imported in a fresh interpreter; none of the pipeline extra's
packages may be loaded by it. The extras themselves are read from pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: import names of the [pipeline] extra's heavy packages
PIPELINE_ONLY = ("ants", "numba", "dipy", "nipype", "pydicom", "skimage", "dcm2niix",
                 "dicomanonymizer", "templateflow")

IMPORT_READING_SIDE = """
import importlib, os, pkgutil, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "weeke_pipeline.reading.settings")
import django
django.setup()
import weeke_pipeline.analysis as a
import weeke_pipeline.reading as r
mods = [m.name for p in (r, a) for m in pkgutil.walk_packages(p.__path__, p.__name__ + ".")
        if ".migrations" not in m.name]
mods += ["weeke_pipeline.cli.main"] + [f"weeke_pipeline.cli.commands.{c}" for c in (
    "serve", "users", "cases", "audit", "db", "study", "export", "agreement", "unblind",
    "score", "forms")]
for m in mods:
    importlib.import_module(m)
from weeke_pipeline.cli.main import build_parser
build_parser()
print(len(mods))
print(" ".join(sorted(h for h in HEAVY if h in sys.modules)))
"""


def test_the_reading_side_imports_no_imaging_library(tmp_path):
    code = IMPORT_READING_SIDE.replace("HEAVY", repr(PIPELINE_ONLY))
    proc = subprocess.run([sys.executable, "-c", code],
                          capture_output=True, text=True, cwd=tmp_path, check=False,
                          env={"PATH": "/usr/bin:/bin", "WEEKE_DATA_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    n_modules, loaded = proc.stdout.splitlines()[-2:]
    assert int(n_modules) > 20
    assert loaded == "", f"the reading side imported {loaded}"


def test_the_extras_split_the_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    def names(reqs: list[str]) -> set[str]:
        return {r.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip()
                .lower() for r in reqs}

    core, extras = names(project["dependencies"]), project["optional-dependencies"]
    pipeline, reading = names(extras["pipeline"]), names(extras["reading"])
    assert {"antspyx", "numba", "dipy", "nipype"} <= pipeline
    assert {"django", "waitress"} <= reading
    assert not (core | reading) & {"antspyx", "numba", "dipy", "nipype", "pydicom"}
    assert extras["all"] == ["weeke-pipeline[pipeline,reading]"]
