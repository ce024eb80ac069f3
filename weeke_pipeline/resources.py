"""Locate the data folders shipped with the package (atlases, forms, sample data, workflows).

In a wheel they are installed under ``weeke_pipeline/_data/<name>``; in a checkout (or an
editable install) they sit at the top of the repository, beside the package.
"""

from __future__ import annotations

from pathlib import Path

DATA_FOLDERS = ("atlases", "scoring_forms", "sample_data", "workflows")

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the folder holding the shipped data set ``name`` (one of DATA_FOLDERS)."""
    if name not in DATA_FOLDERS:
        raise ValueError(f"unknown data folder {name!r}; expected one of {DATA_FOLDERS}")
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"data folder {name!r} not found next to the package ({_PKG}); reinstall weeke-pipeline"
    )


def default_atlas_dir() -> Path:
    """The default neonatal phantom atlas bundle."""
    return data_dir("atlases") / "weeke-phantom"


def user_atlas_dir() -> Path:
    """Where `weeke atlas fetch` puts atlas bundles: ``$WEEKE_ATLAS_DIR``, else the user's data
    folder (``~/.local/share/weeke/atlases`` on Linux, via platformdirs)."""
    import os

    env = os.environ.get("WEEKE_ATLAS_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("weeke")) / "atlases"


def find_atlas(name_or_path: str) -> Path:
    """An atlas given by ``--atlas``: a shipped bundle name, a fetched bundle name (in
    :func:`user_atlas_dir`), else a folder path (validated later by ``load_atlas``)."""
    for root in (data_dir("atlases"), user_atlas_dir()):
        candidate = root / name_or_path
        if "/" not in name_or_path and (candidate / "atlas.json").is_file():
            return candidate
    return Path(name_or_path)
