"""The run configuration: one TOML document saying what a run did, saved beside every output.

Technicians write run specifications in TOML (``workflows/default.toml`` is the shipped
example), in five sections; the effective configuration, with the package version, atlas and
form versions, registration preset (name, version, seed) and the random seed, is written next
to each subject's derivatives (same sections, plus ``[provenance]``) so every number can be
traced to how it was made::

    [inputs]        input_dir, participants, series_table, sessions, key_file, subjects
    [outputs]       output_dir, work_dir
    [registration]  atlas, preset, seed
    [metrics]       adc_thresholds, reference_tissue, dti, form
    [execution]     plugin, plugin_args

Reading refuses, naming the file, the section and the key: an unknown section, a key outside
its section (``preset`` under ``[execution]``), an unknown key, a value of the wrong type.
Written with the standard library's dataclasses (each field's section in its metadata) rather
than pydantic or attrs, which the package does not otherwise need.
"""

from __future__ import annotations

import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from weeke_pipeline import __version__
from weeke_pipeline.constants import DEFAULT_FORM, DEFAULT_SEED
from weeke_pipeline.errors import ConfigError

__all__ = ["SECTIONS", "ConfigError", "RunConfig"]

#: the sections of a run specification, in the order they are written
SECTIONS = ("inputs", "outputs", "registration", "metrics", "execution")
#: keys holding paths: relative ones are taken from the specification's folder
PATH_KEYS = ("input_dir", "output_dir", "work_dir", "participants", "series_table", "sessions",
             "key_file", "atlas")


def _section(name: str) -> dict[str, str]:
    return {"section": name}


INPUTS, OUTPUTS, REGISTRATION, METRICS, EXECUTION = (_section(s) for s in SECTIONS)


@dataclass
class RunConfig:
    """Everything a pipeline run depends on (flat attributes; each belongs to one section)."""

    # [inputs]
    input_dir: str = field(default="", metadata=INPUTS)
    #: TSV: PatientID -> participant_id (pseudonym), ages
    participants: str = field(default="", metadata=INPUTS)
    #: an edited `weeke inspect` table overriding the classifier
    series_table: str = field(default="", metadata=INPUTS)
    #: TSV: study (UID, accession number or date) -> ses- label
    sessions: str = field(default="", metadata=INPUTS)
    #: project key for keyed-hash pseudonyms (default: made once, kept)
    key_file: str = field(default="", metadata=INPUTS)
    #: skip DICOM files / zip members larger than this (MiB; 0: WEEKE_DICOM_MAX_MB or 2048)
    max_file_mb: float = field(default=0.0, metadata=INPUTS)
    #: only these participant labels
    subjects: list[str] = field(default_factory=list, metadata=INPUTS)
    # [outputs]
    output_dir: str = field(default="weeke-output", metadata=OUTPUTS)
    work_dir: str = field(default="", metadata=OUTPUTS)  # default: <output_dir>/work
    # [registration]
    atlas: str = field(default="", metadata=REGISTRATION)  # default: the shipped phantom atlas
    #: multi-atlas segmentation instead of `atlas`: bundle names/folders, or dhcp-auto
    atlases: list[str] = field(default_factory=list, metadata=REGISTRATION)
    #: how 2+ atlases' labels are fused: jlf (joint label fusion) | majority
    label_fusion: str = field(default="jlf", metadata=REGISTRATION)
    preset: str = field(default="fast", metadata=REGISTRATION)  # preset name or TOML path
    seed: int = field(default=DEFAULT_SEED, metadata=REGISTRATION)  # the registrations' seed
    # [metrics]
    adc_thresholds: list[float] = field(default_factory=lambda: [800.0, 1000.0], metadata=METRICS)
    reference_tissue: str = field(default="cerebellum", metadata=METRICS)
    dti: bool = field(default=True, metadata=METRICS)  # tensor fit when a DWI has 6+ directions
    form: str = field(default=DEFAULT_FORM, metadata=METRICS)
    # [execution]: a Nipype plugin (Linear, MultiProc, SLURM, SGE, PBS...) and its arguments,
    # checked by execution.plugins.validate_plugin before any work
    plugin: str = field(default="MultiProc", metadata=EXECUTION)
    plugin_args: dict[str, Any] = field(default_factory=lambda: {"n_procs": 2}, metadata=EXECUTION)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    @classmethod
    def section_of(cls) -> dict[str, str]:
        """key -> its section."""
        return {f.name: f.metadata["section"] for f in fields(cls)}

    def validate(self, where: str = "run configuration") -> None:
        """Check every value's type (ints are accepted for floats); raise :class:`ConfigError`
        naming the section and key."""
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            problem = _type_problem(value, hints[f.name])
            if problem:
                raise ConfigError(f"{where}: [{f.metadata['section']}] {f.name}: {problem} "
                                  f"(got {value!r})")
            if hints[f.name] == list[float]:
                setattr(self, f.name, [float(v) for v in value])
        if self.seed < 0:
            raise ConfigError(f"{where}: [registration] seed: must be 0 or more (got {self.seed})")
        self.check(where)

    def check(self, where: str = "run configuration") -> None:
        """ConfigError for contradicting or unknown multi-atlas values (names the key)."""
        if self.label_fusion not in ("jlf", "majority"):
            raise ConfigError(f"{where}: [registration] label_fusion {self.label_fusion!r} is "
                              "not jlf or majority")
        if self.atlas and self.atlases:
            raise ConfigError(f"{where}: [registration] give either atlas (one) or atlases (a "
                              "list), not both")

    @property
    def atlas_list(self) -> list[str]:
        """The atlases of this run: ``atlases``, else ``[atlas]``, else [] (the default)."""
        return list(self.atlases) if self.atlases else [self.atlas] if self.atlas else []

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, doc: dict[str, Any], *, where: str = "run configuration") -> RunConfig:
        """A configuration from a sectioned document (``[provenance]`` is ignored)."""
        section_of = cls.section_of()
        values: dict[str, Any] = {}
        for section, table in doc.items():
            if section == "provenance":
                continue
            if section not in SECTIONS:
                hint = (f"; it belongs in [{section_of[section]}]" if section in section_of
                        else "")
                raise ConfigError(f"{where}: unknown section or top-level key {section!r}"
                                  f"{hint}; sections: {', '.join(SECTIONS)}")
            if not isinstance(table, dict):
                raise ConfigError(f"{where}: [{section}] must be a table of keys")
            for key, value in table.items():
                if key not in section_of:
                    known = sorted(k for k, s in section_of.items() if s == section)
                    raise ConfigError(f"{where}: [{section}] unknown key {key!r}; keys of "
                                      f"[{section}]: {', '.join(known)}")
                if section_of[key] != section:
                    raise ConfigError(f"{where}: [{section}] {key}: this key belongs in "
                                      f"[{section_of[key]}]")
                values[key] = value
        cfg = cls.__new__(cls)
        for f in fields(cls):  # defaults first, then the document's values, then one check
            default = f.default_factory() if callable(f.default_factory) else f.default
            setattr(cfg, f.name, values.get(f.name, default))
        cfg.validate(where)
        return cfg

    @classmethod
    def from_toml(cls, path: Path) -> RunConfig:
        try:
            doc = tomllib.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read run specification ({exc})") from None
        cfg = cls.from_dict(doc, where=str(path))
        base = Path(path).parent
        for key in PATH_KEYS:
            value = getattr(cfg, key)
            if value and not Path(value).is_absolute():
                setattr(cfg, key, str((base / value).resolve()))
        # atlas names (shipped, fetched, dhcp-auto) stay names; folders are taken from here
        cfg.atlases = [str((base / a).resolve()) if not Path(a).is_absolute()
                       and (base / a).is_dir() else a for a in cfg.atlases]
        return cfg

    # ------------------------------------------------------------------ writing
    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The sectioned document of this configuration."""
        doc: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        for f in fields(self):
            value = getattr(self, f.name)
            doc[f.metadata["section"]][f.name] = (list(value) if isinstance(value, list)
                                                  else dict(value) if isinstance(value, dict)
                                                  else value)
        return doc

    def to_toml(self, provenance: dict[str, Any] | None = None) -> str:
        """TOML text of this configuration, plus a ``[provenance]`` table."""
        doc: dict[str, Any] = self.to_dict()
        doc["provenance"] = {"weeke_pipeline_version": __version__, **(provenance or {})}
        return tomli_w.dumps(doc)


def _type_problem(value: Any, hint: Any) -> str | None:
    """Why ``value`` does not fit the type ``hint`` (None when it does)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return None if isinstance(value, bool) else "expected true or false"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else \
            "expected a whole number"
    if hint is str:
        return None if isinstance(value, str) else "expected a string"
    if origin is list:
        if not isinstance(value, list):
            return "expected a list"
        item = args[0]
        ok = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)) \
            if item is float else (lambda v: isinstance(v, item))
        bad = [v for v in value if not ok(v)]
        kind = "numbers" if item is float else "strings"
        return None if not bad else f"expected a list of {kind}"
    if origin is dict:
        return None if isinstance(value, dict) else "expected a table"
    return None
