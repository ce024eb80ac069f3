"""Real neonatal atlases the ecosystem's way: the dHCP volumetric atlas through TemplateFlow.

``weeke atlas fetch dhcp --cohort 36..44`` asks the ``templateflow`` client (template
``dhcpVol``: Schuh et al., weeks 36-44, CC BY 4.0) for each week's T2w and T1w templates,
brain mask, 87-structure and 9-tissue label maps, and builds one atlas bundle per week with
the shipped dHCP mapping, the derived Weeke regions (:mod:`weeke_pipeline.atlas.derived`) and
provenance (client version, file hashes, citation, licence) in ``atlas.json``.

The client is used as is, never re-implemented: it honours ``TEMPLATEFLOW_HOME`` and works
offline when the files are already in that home (a file present with content is never
downloaded again; a missing one is fetched from TemplateFlow's S3 store). Hospital machines
without internet: fetch once where there is internet, then copy the TemplateFlow home folder
(``docs/atlases.md``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from weeke_pipeline.atlas.bundle import AtlasBundle, AtlasError, import_atlas, sha256
from weeke_pipeline.atlas.derived import DERIVABLE
from weeke_pipeline.resources import data_dir

TEMPLATE = "dhcpVol"
COHORTS = tuple(range(36, 45))
LICENCE = "CC-BY-4.0"
CITATION = ("Schuh A, Makropoulos A, Robinson EC, Cordero-Grande L, Hughes E, Hutter J, Price AN, "
            "Murgasova M, Teixeira RPA, Tusor N, Steinweg JK, Victor S, Rutherford MA, Hajnal JV, "
            "Edwards AD, Rueckert D. Unbiased construction of a temporally consistent "
            "morphological atlas of neonatal brain development. bioRxiv 2018. "
            "doi:10.1101/251512")
#: role in the bundle -> TemplateFlow query (besides template and cohort)
QUERIES: dict[str, dict[str, str | None]] = {
    "T2w": {"suffix": "T2w", "desc": None},
    "T1w": {"suffix": "T1w", "desc": None},
    "brain_mask": {"suffix": "mask", "desc": "brain"},
    "dseg": {"suffix": "dseg", "desc": "structures"},
    "tissues": {"suffix": "dseg", "desc": "tissues"},
}


def bundle_name(week: int) -> str:
    """Name (and folder name) of the bundle of one week, e.g. ``dhcp-vol-40w``."""
    return f"dhcp-vol-{week}w"


def parse_cohorts(specs: Iterable[str]) -> list[int]:
    """Weeks from ``--cohort`` values: ``40``, ``38,40``, ``36..44`` (inclusive ranges)."""
    weeks: list[int] = []
    for spec in specs:
        for part in str(spec).split(","):
            part = part.strip()
            m = re.fullmatch(r"(\d+)(?:\s*(?:\.\.|-)\s*(\d+))?", part)
            if not m:
                raise AtlasError(f"--cohort {part!r}: give a week (40), a list (38,40) or a "
                                 "range (36..44)")
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            if hi < lo:
                raise AtlasError(f"--cohort {part!r}: the range is empty")
            weeks += [w for w in range(lo, hi + 1) if w not in weeks]
    bad = [w for w in weeks if w not in COHORTS]
    if bad:
        raise AtlasError(f"--cohort {bad}: tpl-dhcpVol has cohorts (postmenstrual weeks) "
                         f"{COHORTS[0]}..{COHORTS[-1]} only")
    return weeks


@dataclass(frozen=True)
class CohortFiles:
    """The files of one week, as the TemplateFlow client returned them."""

    week: int
    paths: dict[str, Path]


def _client() -> object:
    """A TemplateFlow client on the home named by ``TEMPLATEFLOW_HOME`` (read now, not at the
    module's first import)."""
    try:
        from templateflow import TemplateFlowClient
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise AtlasError(f"the templateflow package is not usable ({exc}): "
                         "pip install templateflow") from None
    return TemplateFlowClient()


def _home(client: object) -> Path:
    return Path(client.cache.config.root)  # type: ignore[attr-defined]


def _offline_help(home: Path) -> str:
    return (f"this machine could not download it into the TemplateFlow home {home}. "
            "Offline machines: run `weeke atlas fetch dhcp` (or the templateflow client) where "
            "there is internet, copy that TemplateFlow home folder here and set "
            "TEMPLATEFLOW_HOME to it (docs/atlases.md)")


def get_cohort(client: object, week: int, *, roles: Sequence[str] = tuple(QUERIES)
               ) -> CohortFiles:
    """Ask the client for one week's files (downloading only what the home lacks)."""
    home = _home(client)
    out: dict[str, Path] = {}
    for role in roles:
        query = dict(QUERIES[role], cohort=week, extension=".nii.gz")
        listed = client.ls(TEMPLATE, **query)  # type: ignore[attr-defined]
        if not listed:
            raise AtlasError(
                f"TemplateFlow home {home} has no tpl-{TEMPLATE} cohort {week} {role} file "
                f"(expected tpl-{TEMPLATE}/cohort-{week}/tpl-{TEMPLATE}_cohort-{week}_"
                f"{_entity_name(role)}.nii.gz): is TEMPLATEFLOW_HOME the right folder, and was "
                "the copy complete?")
        if len(listed) > 1:
            raise AtlasError(f"TemplateFlow home {home}: {len(listed)} files match cohort {week} "
                             f"{role}: {', '.join(p.name for p in listed)}")
        try:
            got = client.get(TEMPLATE, **query)  # type: ignore[attr-defined]
        except Exception as exc:  # requests' connection errors, the client's RuntimeError
            raise AtlasError(f"tpl-{TEMPLATE} cohort {week} {role} ({listed[0].name}) is not "
                             f"in the TemplateFlow home yet, and {_offline_help(home)}. "
                             f"Client said: {str(exc).splitlines()[0][:300]}") from None
        path = Path(got if not isinstance(got, list) else got[0])
        if not path.is_file() or path.stat().st_size == 0:
            raise AtlasError(f"{path}: empty after the TemplateFlow client's download; "
                             + _offline_help(home))
        out[role] = path
    return CohortFiles(week, out)


def _entity_name(role: str) -> str:
    q = QUERIES[role]
    return f"desc-{q['desc']}_{q['suffix']}" if q["desc"] else str(q["suffix"])


#: how each role is resampled: labels and masks by nearest neighbour, templates linearly
_ORDER = {"T2w": 1, "T1w": 1, "brain_mask": 0, "dseg": 0, "tissues": 0}


def resample(paths: dict[str, Path], voxel_mm: float, tmp: Path) -> dict[str, Path]:
    """The week's files resampled to ``voxel_mm`` isotropic (nibabel.processing, scipy
    interpolation: linear for the templates, nearest neighbour for labels and mask), RAS."""
    import nibabel as nib
    import numpy as np
    from nibabel.processing import resample_to_output

    out: dict[str, Path] = {}
    for role, path in paths.items():
        img = nib.as_closest_canonical(nib.load(path))
        res = resample_to_output(img, (voxel_mm,) * 3, order=_ORDER[role])
        data = np.asanyarray(res.dataobj)
        data = np.rint(data).astype(np.int16) if _ORDER[role] == 0 else data.astype(np.float32)
        out[role] = tmp / path.name
        nib.save(nib.Nifti1Image(data, res.affine), out[role])
    return out


def fetch_dhcp(weeks: Sequence[int], out_dir: Path, *, derive: Sequence[str] = DERIVABLE,
               with_t1w: bool = True, voxel_mm: float | None = 1.0) -> list[AtlasBundle]:
    """Fetch the dHCP volumetric atlas for ``weeks`` and build one bundle per week.

    All weeks' files are obtained first (a missing week fails before anything is written);
    each bundle goes to ``out_dir/dhcp-vol-<week>w``. The templates (0.5 mm) are resampled to
    ``voxel_mm`` (default 1 mm, the resolution neonatal T2w are registered at; ``None`` keeps
    the native grid): 8 times fewer voxels for every registration to the atlas. ``atlas.json``
    records the TemplateFlow client version and home, each source file's name and SHA-256 (of
    the TemplateFlow files), the resampling, citation and licence.
    """
    import tempfile

    import templateflow

    client = _client()
    roles = tuple(r for r in QUERIES if with_t1w or r != "T1w")
    cohorts = [get_cohort(client, w, roles=roles) for w in weeks]
    mapping = data_dir("atlases") / "mappings" / "dhcp_vol_structures.tsv"
    home = _home(client)
    bundles = []
    for c in cohorts:
        with tempfile.TemporaryDirectory(prefix="weeke-dhcp-") as tmp:
            bundles.append(_build_week(c, out_dir, mapping=mapping, derive=derive,
                                       voxel_mm=voxel_mm, tmp=Path(tmp), home=home,
                                       version=templateflow.__version__))
    return bundles


def _build_week(c: CohortFiles, out_dir: Path, *, mapping: Path, derive: Sequence[str],
                voxel_mm: float | None, tmp: Path, home: Path, version: str) -> AtlasBundle:
    """One week's bundle: provenance of the TemplateFlow files, optional resampling, import."""
    p = c.paths
    source_files: dict[str, object] = {role: {"file": path.name, "sha256": sha256(path)}
                                       for role, path in p.items()}
    source_files["mapping"] = {"file": mapping.name, "sha256": sha256(mapping)}
    extra: dict[str, object] = {"source_files": source_files}
    if voxel_mm:
        p = resample(p, voxel_mm, tmp)
        extra["resampled"] = {"voxel_mm": voxel_mm,
                              "method": "nibabel.processing.resample_to_output: linear "
                                        "(T2w, T1w), nearest neighbour (labels, mask)"}
    tf_meta = {
        "client_version": version, "template": f"tpl-{TEMPLATE}", "cohort": c.week,
        "home": str(home),
        "files": {role: str(path.relative_to(home)) if path.is_relative_to(home) else str(path)
                  for role, path in c.paths.items()},
    }
    return import_atlas(
        t2w=p["T2w"], dseg=p["dseg"], mapping=mapping, out_dir=out_dir / bundle_name(c.week),
        name=bundle_name(c.week), pma_weeks=c.week, licence=LICENCE, t1w=p.get("T1w"),
        brain_mask=p["brain_mask"], tissues=p["tissues"], derive=derive,
        version=f"tpl-{TEMPLATE}-cohort-{c.week}",
        extra_meta={"templateflow": tf_meta, "citation": CITATION, **extra,
                    "description": f"dHCP volumetric atlas (Schuh et al.), week {c.week}, "
                                   "via TemplateFlow",
                    "built_with": f"weeke atlas fetch dhcp (TemplateFlow client {version}, "
                                  f"mapping {mapping.name})"})


def templateflow_home() -> str:
    """The TemplateFlow home the client will use (for messages)."""
    return os.environ.get("TEMPLATEFLOW_HOME", "(templateflow's default: ~/.cache/templateflow)")
