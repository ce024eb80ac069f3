"""The run configuration: one TOML document saying what a run did, saved beside every output.

Technicians write run specifications in TOML (``workflows/default.toml`` is the shipped
example); the effective configuration, with the package version, atlas and form versions,
registration preset (name, version, seed) and the random seed, is written next to each subject's
derivatives so every number can be traced to how it was made.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from weeke_pipeline import __version__
from weeke_pipeline.errors import ConfigError

__all__ = ["ConfigError", "RunConfig"]


@dataclass
class RunConfig:
    """Everything a pipeline run depends on."""

    input_dir: str = ""
    output_dir: str = "weeke-output"
    work_dir: str = ""  # default: <output_dir>/work
    participants: str = ""  # TSV: PatientID -> participant_id (pseudonym) and ages
    series_table: str = ""  # edited `weeke inspect` table overriding the classifier
    sessions: str = ""  # TSV: study (UID, accession number or date) -> ses- label
    key_file: str = ""  # project key for keyed-hash pseudonyms (default: generated, kept)
    atlas: str = ""  # atlas bundle folder (default: the shipped phantom atlas)
    atlases: list[str] = field(default_factory=list)  # multi-atlas: names/folders, dhcp-auto
    label_fusion: str = "jlf"  # jlf | majority (multi-atlas only)
    preset: str = "fast"  # registration preset name or TOML path
    adc_thresholds: list[float] = field(default_factory=lambda: [800.0, 1000.0])
    reference_tissue: str = "cerebellum"
    dti: bool = True  # tensor fit when a DWI has 6+ directions
    seed: int = 20240601
    plugin: str = "MultiProc"  # any Nipype plugin: Linear, MultiProc, SLURM, SGE, PBS, ...
    plugin_args: dict[str, Any] = field(default_factory=lambda: {"n_procs": 2})
    subjects: list[str] = field(default_factory=list)  # only these participant labels
    form: str = "weeke-consensus-2025"

    @classmethod
    def from_toml(cls, path: Path) -> RunConfig:
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read run specification ({exc})") from None
        flat: dict[str, Any] = {}
        for key, value in doc.items():
            if isinstance(value, dict) and key in ("run", "registration", "metrics",
                                                    "execution", "inputs", "outputs"):
                flat.update(value)
            else:
                flat[key] = value
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(flat) - known - {"provenance"})
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        flat.pop("provenance", None)
        cfg = cls(**flat)
        base = path.parent
        for key in ("input_dir", "output_dir", "work_dir", "participants", "series_table",
                    "sessions", "key_file", "atlas"):
            value = getattr(cfg, key)
            if value and not Path(value).is_absolute():
                setattr(cfg, key, str((base / value).resolve()))
        # atlas names (shipped, fetched, dhcp-auto) stay names; folders are taken from here
        cfg.atlases = [str((base / a).resolve()) if not Path(a).is_absolute()
                       and (base / a).is_dir() else a for a in cfg.atlases]
        cfg.check(path)
        return cfg

    def check(self, where: Path | str = "run specification") -> None:
        """ConfigError for contradicting or unknown values (the message names the key)."""
        if self.label_fusion not in ("jlf", "majority"):
            raise ConfigError(f"{where}: label_fusion {self.label_fusion!r} is not jlf or "
                              "majority")
        if self.atlas and self.atlases:
            raise ConfigError(f"{where}: give either atlas (one) or atlases (a list), not both")

    @property
    def atlas_list(self) -> list[str]:
        """The atlases of this run: ``atlases``, else ``[atlas]``, else [] (the default)."""
        return list(self.atlases) if self.atlases else [self.atlas] if self.atlas else []

    def to_toml(self, provenance: dict[str, Any] | None = None) -> str:
        """TOML text of this configuration, plus a ``[provenance]`` table."""
        doc: dict[str, Any] = {k: v for k, v in asdict(self).items()}
        doc["provenance"] = {"weeke_pipeline_version": __version__, **(provenance or {})}
        return tomli_w.dumps(doc)
