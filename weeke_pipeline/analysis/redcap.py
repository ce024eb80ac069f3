"""REDCap: the instrument's data dictionary, the consensus as import records, and their check."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

# --------------------------------------------------------------------------- REDCap
REDCAP_DD_COLUMNS = (
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note",
    "Text Validation Type OR Show Slider Number", "Text Validation Min", "Text Validation Max",
    "Identifier?", "Branching Logic (Show field only if...)", "Required Field?",
    "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name", "Matrix Ranking?",
    "Field Annotation",
)


def redcap_instrument_name(form: Any) -> str:
    """REDCap instrument name: lower case, letters, digits and underscores."""
    return "".join(ch if ch.isalnum() else "_" for ch in form.id.lower())


def _choices(levels: Mapping[int, str]) -> str:
    return " | ".join(f"{k}, {v.replace('|', '/')}" for k, v in levels.items())


def redcap_data_dictionary(form: Any) -> pd.DataFrame:
    """REDCap data dictionary (import CSV) of the consensus/wide table of ``form``.

    Record id: ``reading_code``. Extents and laterality are radio fields with raw codes;
    assessability is yes/no; scores are integer text fields (validated min/max, @READONLY:
    computed by the weeke score engine, not by REDCap).
    """
    inst = redcap_instrument_name(form)
    rows: list[dict[str, str]] = []

    def add(name: str, ftype: str, label: str, *, choices: str = "", note: str = "",
            valid: str = "", vmin: Any = "", vmax: Any = "", branch: str = "",
            section: str = "", annotation: str = "") -> None:
        rows.append({"Variable / Field Name": name, "Form Name": inst, "Section Header": section,
                     "Field Type": ftype, "Field Label": label,
                     "Choices, Calculations, OR Slider Labels": choices, "Field Note": note,
                     "Text Validation Type OR Show Slider Number": valid,
                     "Text Validation Min": str(vmin), "Text Validation Max": str(vmax),
                     "Branching Logic (Show field only if...)": branch,
                     "Field Annotation": annotation})

    add("reading_code", "text", "Reading code (case pseudonym)")
    add("consensus_source", "radio", "Consensus from",
        choices="1, adjudicated | 2, agreed | 3, unresolved")
    add("form_version", "text", f"{form.id} version")
    sub_of = {s.id: s for s in form.subscores}
    last_sub = None
    for it in form.items:
        section = sub_of[it.subscore].label if it.subscore != last_sub else ""
        last_sub = it.subscore
        add(f"{it.id}_assess", "yesno", f"{it.label}: assessable", section=section)
        add(f"{it.id}_reason", "text", f"{it.label}: reason not assessable",
            branch=f"[{it.id}_assess] = '0'")
        add(f"{it.id}_ext", "radio", f"{it.label}: extent",
            choices=_choices({e.value: e.label for e in it.extents}),
            branch=f"[{it.id}_assess] = '1'")
        if it.lateralised:
            add(f"{it.id}_lat", "radio", f"{it.label}: laterality",
                choices="0, not applicable | 1, unilateral | 2, bilateral",
                branch=f"[{it.id}_assess] = '1'")
        add(f"{it.id}_score", "text", f"{it.label}: item score", valid="integer", vmin=0,
            vmax=it.max_score, annotation="@READONLY", note="extent + laterality (engine)")
    for sub in form.subscores:
        add(sub.id, "text", f"{sub.label} subscore", valid="integer", vmin=0, vmax=sub.max,
            annotation="@READONLY", section="Scores" if sub is form.subscores[0] else "")
        add(f"{sub.id}_complete", "yesno", f"{sub.label} subscore complete")
    add("total", "text", "Total score", valid="integer", vmin=0, vmax=form.total_max,
        annotation="@READONLY")
    add("complete", "yesno", "All items scored")
    return pd.DataFrame(rows).reindex(columns=list(REDCAP_DD_COLUMNS)).astype(object).fillna("")


_SOURCE_CODE = {"adjudicated": "1", "agreed": "2", "unresolved": "3"}


def redcap_records(consensus_df: pd.DataFrame, form: Any) -> pd.DataFrame:
    """Consensus table as REDCap import rows: raw codes, yes/no as 1/0, NA as empty."""
    dd = redcap_data_dictionary(form)
    out = pd.DataFrame(index=consensus_df.index)
    for name, ftype in zip(dd["Variable / Field Name"], dd["Field Type"], strict=True):
        col = consensus_df[name] if name in consensus_df else pd.Series(pd.NA,
                                                                       index=consensus_df.index)
        if name == "consensus_source":
            out[name] = col.map(lambda v: _SOURCE_CODE.get(str(v), ""))
        elif ftype == "yesno":
            out[name] = col.map(lambda v: "" if pd.isna(v) else ("1" if bool(v) else "0"))
        else:
            out[name] = col.map(lambda v: "" if v is None or (not isinstance(v, str)
                                                               and pd.isna(v)) else str(v))
    return out.reset_index(drop=True)


def validate_redcap(records: pd.DataFrame, dictionary: pd.DataFrame) -> list[str]:
    """Problems of a REDCap import against its data dictionary (empty list = valid).

    Checks what REDCap's importer checks for these field types: known fields, radio codes
    among the choices, yes/no in {0, 1}, integer validation and min/max.
    """
    problems: list[str] = []
    dd = dictionary.set_index("Variable / Field Name")
    unknown = [c for c in records.columns if c not in dd.index]
    if unknown:
        problems.append(f"fields not in the dictionary: {unknown}")
    if records.columns[0] != dictionary["Variable / Field Name"].iloc[0]:
        problems.append("the first column must be the record id field")
    for name in records.columns:
        if name not in dd.index:
            continue
        spec = dd.loc[name]
        vals = records[name].astype(str)
        vals = vals[vals != ""]
        if spec["Field Type"] == "radio":
            codes = {c.split(",", 1)[0].strip()
                     for c in spec["Choices, Calculations, OR Slider Labels"].split("|")}
            bad = sorted(set(vals) - codes)
        elif spec["Field Type"] == "yesno":
            bad = sorted(set(vals) - {"0", "1"})
        elif spec["Text Validation Type OR Show Slider Number"] == "integer":
            lo, hi = float(spec["Text Validation Min"]), float(spec["Text Validation Max"])
            bad = sorted(v for v in set(vals)
                         if not v.lstrip("-").isdigit() or not lo <= int(v) <= hi)
        else:
            bad = []
        if bad:
            problems.append(f"{name}: values {bad[:5]} not allowed")
    return problems
