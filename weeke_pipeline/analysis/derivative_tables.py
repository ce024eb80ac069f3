"""Imaging metrics and QC of the batch pipeline (``weeke run``) keyed by reading code, for the
analyst exports (issue 6). No database: the case -> subject link comes in as a mapping.

Inputs under ``OUTPUT`` (the ``weeke run`` output folder, or its ``derivatives/weeke``):
``sub-<p>/ses-<s>/sub-<p>_ses-<s>_metrics.tsv`` (long table, sidecar ``.json``) and
``sub-<p>/ses-<s>/qc/sub-<p>_ses-<s>_qc.json``.

Outputs (pseudonymised: the subject label is replaced by the reading code, in file names,
columns and QC reason texts alike):

- **metrics**: ``reading_code, session, region, hemisphere, label, metric, value`` (the
  pipeline's long table; dictionary from the pipeline's own sidecar);
- **qc**: one row per case and session: ``reading_code, session, qc_status, qc_reasons`` and
  every QC number, nested keys joined with ``_`` (e.g.
  ``registration_to_atlas_similarity_after_nmi``); lists joined with ``;``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from weeke_pipeline.bids import names

DERIVATIVES = Path("derivatives") / "weeke"


@dataclass
class DerivativeTables:
    metrics: pd.DataFrame
    metrics_dictionary: dict[str, Any]
    qc: pd.DataFrame
    qc_dictionary: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def derivatives_root(output: str | Path) -> Path:
    """``OUTPUT/derivatives/weeke`` when present, else ``OUTPUT`` if it holds ``sub-*``."""
    out = Path(output)
    if not out.is_dir():
        raise ValueError(f"{out}: pipeline output folder not found")
    for root in (out / DERIVATIVES, out):
        if root.is_dir() and any(root.glob("sub-*/ses-*")):
            return root
    raise ValueError(f"{out}: no pipeline outputs (expected derivatives/weeke/sub-*/ses-*/ "
                     "as `weeke run` writes them)")


def _col(desc: str, fmt: str, **extra: Any) -> dict[str, Any]:
    return {"Description": desc, "Format": fmt, **extra}


def _key_columns() -> dict[str, Any]:
    return {"reading_code": _col("Case pseudonym (random reading code); no subject identifier",
                                 "string"),
            "session": _col("Imaging session label of the pipeline (BIDS ses- entity)",
                            "string")}


def _scrub(text: str, label: str, code: str) -> str:
    """Replace the subject entity (``sub-<label>``, nipype's ``sub_<label>``) by the code.
    The bare label is not replaced: a short label could be part of a number."""
    return text.replace(f"sub-{label}", code).replace(f"sub_{label}", code)


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}_{k}" if prefix else str(k), v, out)
    elif isinstance(value, list | tuple):
        out[prefix] = ";".join(map(str, value))
    else:
        out[prefix] = value


#: QC numbers of weeke_pipeline.imaging.qc (see that module's docstring)
_QC_NUMBERS: dict[str, tuple[str, str, str | None]] = {
    "brain_volume_ml": ("Brain mask volume", "number", "mL"),
    "label_coverage": ("Fraction of the vocabulary's regions present in the label map",
                       "number", None),
    "missing_regions": ("Regions absent from the label map (; separated)", "string", None),
    "mask_coverage": ("Fraction of brain-mask voxels labelled", "number", None),
    "snr_background": ("SNR: 0.655 mean(brain) / SD(air corners) (Kaufman 1989)", "number",
                       None),
    "snr_wm": ("Mean / SD of T2w in white matter", "number", None),
    "has_t1w": ("A T1w image was available", "boolean", None),
    "has_adc": ("An ADC map was available", "boolean", None),
    "adc_finite_fraction": ("Fraction of brain voxels with a finite positive ADC", "number",
                            None),
    "adc_brain_median": ("Median ADC over the brain", "number", "10^-6 mm^2/s"),
}


def _qc_entry(name: str, series: pd.Series) -> dict[str, Any]:
    if name in _QC_NUMBERS:
        desc, fmt, units = _QC_NUMBERS[name]
        return _col(desc, fmt, **({"Units": units} if units else {}))
    if name.startswith("registration_"):
        what = name.removeprefix("registration_").replace("_", " ")
        if name.endswith("_seconds"):
            return _col(f"Registration run time ({what})", "number", Units="s")
        return _col(f"Registration similarity ({what}; weeke_pipeline.imaging.registration)",
                    "number")
    fmt = "number" if pd.api.types.is_numeric_dtype(series) else "string"
    return _col(f"QC value {name} (weeke_pipeline.imaging.qc)", fmt)


def _case_files(root: Path, file: Mapping[str, str], code_of: Mapping[tuple[str, str], str],
                unknown: set[str], seen: set[tuple[str, str]]
                ) -> Iterator[tuple[Path, str, str, str]]:
    """(file, subject label, session, reading code) of the session files named by ``file``
    (entities without ``sub``/``ses``) under ``root`` whose subject and session have a case (a
    case without a session label, from data without sessions, takes every session of its
    subject); subjects without one go to ``unknown``, the cases found to ``seen``."""
    for label, ses, _ in names.session_folders(root):
        path = root / names.build({"sub": label, "ses": ses, **file})
        if not path.is_file():
            continue
        key = (label, ses) if (label, ses) in code_of else (label, "")
        if key not in code_of:
            unknown.add(label)
            continue
        seen.add(key)
        yield path, label, ses, code_of[key]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None


def load(output: str | Path, code_of: Mapping[tuple[str, str], str]) -> DerivativeTables:
    """Metrics and QC of every pipeline session that has a case.

    ``code_of``: (subject label without ``sub-``, session label) -> reading code (one case per
    subject and session). Sessions without a case are left out and counted in a warning; cases
    without outputs are listed.
    """
    from weeke_pipeline.imaging.metrics import data_dictionary, read_metrics

    root = derivatives_root(output)
    frames, qc_rows, unknown, seen = [], [], set(), set()
    sidecar: dict[str, Any] | None = None
    for tsv, _label, ses, code in _case_files(root, {"suffix": "metrics", "extension": ".tsv"},
                                              code_of, unknown, seen):
        df = read_metrics(tsv)
        df.insert(0, "reading_code", code)
        df.insert(1, "session", ses)
        frames.append(df.drop(columns=["subject"]))
        side = tsv.with_suffix(".json")
        if sidecar is None and side.is_file():
            sidecar = _read_json(side)
    for js, label, ses, code in _case_files(root, {"datatype": "qc", "suffix": "qc",
                                                   "extension": ".json"}, code_of, unknown,
                                            seen):
        doc = _read_json(js)
        row: dict[str, Any] = {"reading_code": code, "session": ses,
                               "qc_status": doc.get("status"),
                               "qc_reasons": _scrub("; ".join(doc.get("reasons") or []),
                                                    label, code)}
        _flatten("", doc.get("numbers") or {}, row)
        qc_rows.append(row)
    metrics = (pd.concat(frames, ignore_index=True) if frames else
               pd.DataFrame(columns=["reading_code", "session", "region", "hemisphere",
                                     "label", "metric", "value"]))
    mdict = dict(sidecar or data_dictionary())
    mdict.pop("subject", None)
    mdict = {**_key_columns(), **mdict}
    qc = pd.DataFrame(qc_rows, columns=None if qc_rows else ["reading_code", "session",
                                                             "qc_status", "qc_reasons"])
    qdict = {**_key_columns(),
             "qc_status": _col("QC flag of the pipeline", "string", Levels={
                 "pass": "no rule triggered", "warn": "a WARN rule triggered",
                 "fail": "a FAIL rule triggered or the subject failed"}),
             "qc_reasons": _col("The QC rules that triggered (; separated)", "string")}
    for c in qc.columns:
        if c not in qdict:
            qdict[c] = _qc_entry(c, qc[c])
    warnings = []
    if unknown:
        warnings.append(f"{len(unknown)} pipeline subject(s) have sessions without a case "
                        "in the reading database: left out")
    missing = sorted(set(code_of) - seen)
    if missing:
        warnings.append(f"{len(missing)} case(s) have no pipeline outputs: "
                        + ", ".join(code_of[s] for s in missing))
    return DerivativeTables(metrics, mdict, qc, qdict, warnings)
