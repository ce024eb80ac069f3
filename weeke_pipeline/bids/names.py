"""BIDS file names: entities to a relative path and back, the one place that spells them.

A name is ``sub-<p>[_ses-<s>][_<key>-<value>...]_<suffix><extension>`` in the folder
``sub-<p>/[ses-<s>/][<datatype>/]`` (BIDS 1.9, "Entities" and "Filenames" appendices). The
entities are kept as a plain dict with the short keys of the names (``sub``, ``ses``, ``acq``,
``run``, ``space``, ``desc``...) plus ``suffix``, ``extension`` and ``datatype``, the shape of
pybids' ``parse_file_entities`` (whose long keys, ``subject``/``session``, we do not use)::

    >>> parse("sub-01/ses-01/anat/sub-01_ses-01_space-T2w_desc-atlas_dseg.nii.gz")
    {'sub': '01', 'ses': '01', 'space': 'T2w', 'desc': 'atlas', 'suffix': 'dseg',
     'extension': '.nii.gz', 'datatype': 'anat'}
    >>> build(_)
    'sub-01/ses-01/anat/sub-01_ses-01_space-T2w_desc-atlas_dseg.nii.gz'

Written here rather than taken from pybids (``bids.layout.parse_file_entities`` and
``bids.layout.writing.build_path``): pybids indexes whole datasets in SQLAlchemy and brings
formulaic, sqlalchemy and bids-validator along, which the reading server should not need; the
names this package writes are few and fixed (the tables in ``docs/outputs.md``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePath

#: entity keys in the order the specification puts them in a name (its entity table); keys not
#: listed (weeke's own derivative names, e.g. ``step``) follow in the order given
ENTITY_ORDER = ("sub", "ses", "sample", "task", "tracksys", "acq", "nuc", "voi", "ce", "trc",
                "stain", "rec", "dir", "run", "mod", "echo", "flip", "inv", "mt", "part",
                "proc", "hemi", "space", "split", "recording", "chunk", "seg", "res", "den",
                "label", "desc")
#: the keys of an entities dict that are not entities
PARTS = ("suffix", "extension", "datatype")
#: BIDS datatype folders (a parent folder with one of these names gives ``datatype``)
DATATYPES = ("anat", "dwi", "func", "fmap", "perf", "beh", "eeg", "meg", "pet", "micr", "nirs")
_LABEL = re.compile(r"[A-Za-z0-9]+")
_PAIR = re.compile(r"^(?P<key>[a-z]+)-(?P<value>[A-Za-z0-9]+)$")


def label(text: str, prefix: str = "sub") -> str:
    """A BIDS label from ``text``: ``<prefix>-`` dropped, then everything but letters and digits.

    ``label(" sub-P 001 ") == "P001"``. Empty when nothing is left (the caller says what is
    wrong).
    """
    return re.sub(r"[^A-Za-z0-9]", "", re.sub(rf"^{prefix}-", "", text.strip()))


def session_label(text: str) -> str | None:
    """The session label of ``text`` (``ses-`` dropped), or None when it is not a valid label
    (letters and digits only: unlike :func:`label`, nothing is removed)."""
    value = text.strip().removeprefix("ses-")
    return value if _LABEL.fullmatch(value) else None


def _split_name(name: str) -> tuple[str, str]:
    """(stem, extension): the extension is everything from the first dot (``.nii.gz``)."""
    stem, dot, rest = name.partition(".")
    return stem, (dot + rest if dot else "")


def _pairs(text: str) -> Iterator[tuple[str, str]]:
    for chunk in text.split("_"):
        m = _PAIR.match(chunk)
        if m:
            yield m.group("key"), m.group("value")


def parse(path: str | PurePath) -> dict[str, str]:
    """The entities of a BIDS path (file name first; ``sub``/``ses`` missing from the name are
    taken from the nearest parent folders that carry them), with ``suffix`` (the last ``_``
    part, after at least one other, when it is not a ``key-value`` pair), ``extension`` and
    ``datatype`` (the parent folder, when it is a BIDS datatype). Parts that are neither are
    ignored, as pybids does."""
    p = PurePath(path)
    stem, ext = _split_name(p.name)
    out: dict[str, str] = {}
    chunks = stem.split("_")
    for key, value in _pairs(stem):
        out.setdefault(key, value)
    if len(chunks) > 1 and not _PAIR.match(chunks[-1]) and _LABEL.fullmatch(chunks[-1]):
        out["suffix"] = chunks[-1]
    for parent in p.parents:
        if parent.name == "":
            break
        for key, value in _pairs(parent.name):
            if key in ("sub", "ses"):
                out.setdefault(key, value)
    out["extension"] = ext
    if p.parent.name in DATATYPES:
        out["datatype"] = p.parent.name
    return _ordered(out)


def _ordered(entities: Mapping[str, str]) -> dict[str, str]:
    keys = [k for k in ENTITY_ORDER if k in entities]
    keys += [k for k in entities if k not in ENTITY_ORDER and k not in PARTS]
    keys += [k for k in PARTS if k in entities]
    return {k: entities[k] for k in keys}


def name(entities: Mapping[str, str]) -> str:
    """The file name of ``entities``: the entities in specification order, then the suffix
    and the extension (``sub-01_ses-01_desc-preproc_T2w.nii.gz``)."""
    parts = [f"{k}-{v}" for k, v in _ordered(entities).items() if k not in PARTS]
    if entities.get("suffix"):
        parts.append(entities["suffix"])
    return "_".join(parts) + entities.get("extension", "")


def folder(entities: Mapping[str, str]) -> str:
    """The folder of ``entities`` under the dataset root: ``sub-<p>[/ses-<s>][/<datatype>]``."""
    parts = [f"sub-{entities['sub']}"]
    if entities.get("ses"):
        parts.append(f"ses-{entities['ses']}")
    if entities.get("datatype"):
        parts.append(entities["datatype"])
    return "/".join(parts)


def build(entities: Mapping[str, str]) -> str:
    """The path of ``entities`` relative to the dataset root (the inverse of :func:`parse`)."""
    return f"{folder(entities)}/{name(entities)}"


def matches(entities: Mapping[str, str], query: Mapping[str, str | None]) -> bool:
    """True when every key of ``query`` has that value in ``entities`` (None: must be absent)."""
    return all(entities.get(k) == v for k, v in query.items())


def select(paths: Iterable[Path], **query: str | None) -> list[Path]:
    """The paths whose entities match ``query``, sorted by path (``select(files,
    datatype="anat", suffix="T2w", extension=".nii.gz")``)."""
    return sorted(p for p in paths if matches(parse(p), query))


def session_folders(root: Path) -> Iterator[tuple[str, str, Path]]:
    """(subject, session, folder) of every ``sub-<p>/ses-<s>`` folder under ``root``, sorted."""
    for ses_dir in sorted(root.glob("sub-*/ses-*")):
        sub, ses = _PAIR.match(ses_dir.parent.name), _PAIR.match(ses_dir.name)
        if ses_dir.is_dir() and sub and ses and sub["key"] == "sub" and ses["key"] == "ses":
            yield sub["value"], ses["value"], ses_dir
