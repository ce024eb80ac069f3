"""Shared fixtures: paths to the shipped data and to the real data in ../shared/data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("WEEKE_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_configure(config: pytest.Config) -> None:
    # nipype's Dcm2niix interface finds the binary only on PATH (tooling notes).
    try:
        import dcm2niix

        bindir = str(Path(dcm2niix.bin).parent)
        if bindir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    except ImportError:  # pragma: no cover
        pass
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "2")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real DICOM, neonatal templates); skips the test where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set WEEKE_SHARED_DATA); skipping")
    return SHARED_DATA


@pytest.fixture(scope="session")
def dcm2niix_bin() -> str:
    exe = shutil.which("dcm2niix")
    assert exe, "dcm2niix not on PATH (pip install dcm2niix)"
    return exe


@pytest.fixture(scope="session")
def synth_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two synthetic subjects (sub-01 normal, sub-02 mixed injuries), seed 11, 6 directions."""
    from weeke_pipeline.synth.study import generate_study

    out = tmp_path_factory.mktemp("synth_study")
    generate_study(out, n_subjects=2, seed=11, patterns=["normal", "mixed"], n_directions=6)
    return out


@pytest.fixture(scope="session")
def synth_converted(synth_study: Path, tmp_path_factory: pytest.TempPathFactory,
                    dcm2niix_bin: str) -> dict[str, dict[str, Path]]:
    """Each synthetic subject's series converted with dcm2niix: {subject: {series_dir: nii}}."""
    import subprocess

    out: dict[str, dict[str, Path]] = {}
    for sub in sorted(synth_study.glob("sub-*")):
        conv = tmp_path_factory.mktemp(f"conv_{sub.name}")
        found: dict[str, Path] = {}
        for series in sorted((sub / "dicom").iterdir()):
            dest = conv / series.name
            dest.mkdir()
            subprocess.run([dcm2niix_bin, "-z", "y", "-f", "img", "-o", str(dest), str(series)],
                           check=True, capture_output=True)
            found[series.name] = dest / "img.nii.gz"
        out[sub.name] = found
    return out
