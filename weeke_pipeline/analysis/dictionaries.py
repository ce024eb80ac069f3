"""Data dictionaries (BIDS-style JSON sidecars) of the analyst tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


# --------------------------------------------------------------------------- dictionaries
def _col(desc: str, fmt: str, *, levels: Mapping[str, str] | None = None,
         units: str | None = None, minimum: float | None = None,
         maximum: float | None = None, long_name: str | None = None) -> dict[str, Any]:
    """One BIDS tabular sidecar entry (Description, Format, Levels, Units, Minimum, Maximum)."""
    d: dict[str, Any] = {}
    if long_name:
        d["LongName"] = long_name
    d["Description"] = desc
    d["Format"] = fmt
    if levels:
        d["Levels"] = dict(levels)
    if units:
        d["Units"] = units
    if minimum is not None:
        d["Minimum"] = minimum
    if maximum is not None:
        d["Maximum"] = maximum
    return d


def _id_dictionary() -> dict[str, Any]:
    return {
        "reading_code": _col("Case pseudonym (random reading code); no subject identifier",
                             "string"),
        "reader": _col("Reader pseudonym", "string"),
        "read_number": _col("Order of the independent read of the case (1, 2, ...); 0 for the "
                            "adjudication", "integer", minimum=0),
        "kind": _col("Kind of read", "string", levels={"read": "independent blinded read",
                                                       "adjudication": "adjudicator's read"}),
        "form_id": _col("Scoring form id (scoring_forms/)", "string"),
        "form_version": _col("Scoring form version the read was made with", "string"),
        "status": _col("Read status", "string", levels={"signed": "signed by the reader",
                                                        "draft": "not yet signed"}),
        "signed_at": _col("Time of signature (ISO 8601, UTC); n/a when not signed", "string"),
        "opened_at": _col("Time the reader first opened the case (ISO 8601, UTC); n/a for "
                          "reads made before reading time was recorded", "string"),
        "reading_seconds": _col("Reading time: signed_at - opened_at (wall time, breaks "
                                "included); n/a until signed", "number", units="s", minimum=0),
        "active_seconds": _col("Active reading time: time between consecutive reader actions, "
                               "gaps longer than the hanging protocol's idle threshold (60 s by "
                               "default) left out", "number", units="s", minimum=0),
    }


def reads_long_dictionary(form: Any) -> dict[str, Any]:
    """JSON data dictionary (BIDS sidecar style) of the reads long table."""
    d = _id_dictionary()
    d.update({
        "item": _col("Form item id", "string",
                     levels={it.id: it.label for it in form.items}),
        "item_state": _col("Whether the item was scored", "string", levels={
            "scored": "scored", "not_assessable": "marked not assessable with a reason",
            "missing": "not yet scored"}),
        "extent": _col("Extent/severity code of the item (see the form's extents)",
                       "integer", minimum=0),
        "laterality": _col("Laterality of a lateralised item", "integer",
                           levels={"0": "not applicable (extent 0)", "1": "unilateral",
                                   "2": "bilateral"}),
        "item_score": _col("Item score = extent + laterality (lateralised) or extent",
                           "integer", units="points", minimum=0),
        "assessable": _col("Item could be assessed (n/a when missing)", "boolean"),
        "reason": _col("Reason the item is not assessable", "string"),
        "item_seconds": _col("Active seconds the reader spent on this item (0: never on it; "
                             "n/a: read made before reading time was recorded)", "number",
                             units="s", minimum=0),
    })
    return d


def reads_wide_dictionary(form: Any, *, consensus_table: bool = False) -> dict[str, Any]:
    """JSON data dictionary of the wide (or consensus) table for ``form``."""
    d = _id_dictionary()
    if consensus_table:
        d = {k: d[k] for k in ("reading_code", "form_id", "form_version")}
        d["consensus_source"] = _col("Where the consensus comes from", "string", levels={
            "adjudicated": "the signed adjudication", "agreed": "the signed independent reads "
            "agreed on every item", "unresolved": "reads disagree and no adjudication yet"})
        d["n_reads"] = _col("Number of signed independent reads", "integer", minimum=0)
    for it in form.items:
        ext = {str(e.value): e.label for e in it.extents}
        d[f"{it.id}_ext"] = _col(f"{it.label}: extent", "integer", levels=ext,
                                 minimum=0, maximum=max(e.value for e in it.extents))
        if it.lateralised:
            d[f"{it.id}_lat"] = _col(f"{it.label}: laterality", "integer", levels={
                "0": "not applicable (extent 0)", "1": "unilateral", "2": "bilateral"})
        else:
            d[f"{it.id}_lat"] = _col(f"{it.label}: laterality (not lateralised: always n/a)",
                                     "integer")
        d[f"{it.id}_score"] = _col(f"{it.label}: item score", "integer", units="points",
                                   minimum=0, maximum=it.max_score)
        d[f"{it.id}_assess"] = _col(f"{it.label}: assessable (n/a = missing)", "boolean")
        d[f"{it.id}_reason"] = _col(f"{it.label}: reason not assessable", "string")
        if not consensus_table:
            d[f"{it.id}_seconds"] = _col(f"{it.label}: active seconds spent on the item",
                                         "number", units="s", minimum=0)
    for sub in form.subscores:
        d[sub.id] = _col(f"{sub.label} subscore: sum of its scored items", "integer",
                         units="points", minimum=0, maximum=sub.max)
        d[f"{sub.id}_complete"] = _col(f"{sub.label} subscore complete (every item scored)",
                                       "boolean")
    d["total"] = _col("Total score: sum of the subscores", "integer", units="points",
                      minimum=0, maximum=form.total_max)
    d["complete"] = _col("Every item scored (no missing or not-assessable item)", "boolean")
    return d


def agreement_items_dictionary() -> dict[str, Any]:
    """Data dictionary of ``agreement_items.tsv``."""
    return {
        "item": _col("Form item id", "string"),
        "subscore": _col("Subscore of the item", "string"),
        "max_score": _col("Highest item score", "integer", units="points"),
        "n_cases": _col("Cases with both reads scoring the item", "integer"),
        "kappa_w": _col("Quadratic-weighted Cohen's kappa (n/a when undefined)", "number",
                        minimum=-1, maximum=1),
        "kappa_ci_low": _col("Bootstrap 95% CI of kappa_w, lower (percentile)", "number"),
        "kappa_ci_high": _col("Bootstrap 95% CI of kappa_w, upper (percentile)", "number"),
        "kappa_na_reason": _col("Why kappa is undefined (empty when defined)", "string"),
        "n_boot_undefined": _col("Bootstrap resamples with kappa undefined (dropped)",
                                 "integer"),
        "percent_agreement": _col("Cases with identical item scores", "number", units="%",
                                  minimum=0, maximum=100),
        "ac2": _col("Gwet's AC2, quadratic weights", "number", maximum=1),
        "ac2_ci_low": _col("Bootstrap 95% CI of AC2, lower", "number"),
        "ac2_ci_high": _col("Bootstrap 95% CI of AC2, upper", "number"),
        "n_excluded": _col("Cases where a read left the item missing or not assessable",
                           "integer"),
    }


def agreement_scores_dictionary() -> dict[str, Any]:
    """Data dictionary of ``agreement_scores.tsv``."""
    d: dict[str, Any] = {
        "score": _col("Subscore id or 'total'", "string"),
        "n_cases": _col("Cases with complete reads 1 and 2", "integer"),
    }
    for k, name in (("icc1", "ICC(1,1) one-way random"),
                    ("icc2", "ICC(2,1) two-way random, absolute agreement"),
                    ("icc3", "ICC(3,1) two-way mixed, consistency")):
        d[k] = _col(name + " (pingouin)", "number", maximum=1)
        d[f"{k}_ci_low"] = _col(f"{name}: 95% CI lower (F distribution)", "number")
        d[f"{k}_ci_high"] = _col(f"{name}: 95% CI upper", "number")
    d["bias"] = _col("Bland-Altman bias: mean of read 1 - read 2", "number", units="points")
    d["sd_diff"] = _col("SD of read 1 - read 2", "number", units="points")
    for k, desc in (("bias_ci_low", "bias 95% CI lower (t)"),
                    ("bias_ci_high", "bias 95% CI upper (t)"),
                    ("loa_low", "lower limit of agreement: bias - 1.96 SD"),
                    ("loa_high", "upper limit of agreement: bias + 1.96 SD"),
                    ("loa_low_ci_low", "lower LoA 95% CI lower (Bland & Altman 1999)"),
                    ("loa_low_ci_high", "lower LoA 95% CI upper"),
                    ("loa_high_ci_low", "upper LoA 95% CI lower"),
                    ("loa_high_ci_high", "upper LoA 95% CI upper")):
        d[k] = _col(desc, "number", units="points")
    return d


SUBJECT_ENTRY = _col("Subject identifier (study pseudonym of the pipeline; coordinator "
                     "exports with --with-subject-ids only)", "string")


SESSION_ENTRY = _col("Imaging session of the case (BIDS ses- label, empty for data without "
                     "sessions; coordinator exports with --with-subject-ids only)", "string")


def with_subject_entry(dictionary: Mapping[str, Any], session: bool = False) -> dict[str, Any]:
    """``dictionary`` with the ``subject`` entry after ``reading_code`` (and ``session``
    after it when ``session`` and the dictionary has none)."""
    out: dict[str, Any] = {}
    add_session = session and "session" not in dictionary
    for k, v in dictionary.items():
        out[k] = v
        if k == "reading_code":
            out["subject"] = SUBJECT_ENTRY
            if add_session:
                out["session"] = SESSION_ENTRY
    return out


def unblinding_summary_dictionary() -> dict[str, Any]:
    """Data dictionary of the by-arm summary of :func:`unblinding_summary`."""
    d = {"arm": _col("Treatment arm (from the allocation file)", "string"),
         "score": _col("Subscore id, 'total', or a proportion row: gm_ge3 (grey-matter "
                       "subscore >= 3), total_ge10 (total >= 10)", "string"),
         "n": _col("Cases with a resolved, complete consensus score", "integer")}
    for k, desc in (("median", "median"), ("q1", "25th percentile"), ("q3", "75th percentile"),
                    ("iqr", "interquartile range q3 - q1"), ("mean", "mean"),
                    ("sd", "standard deviation (n - 1)")):
        d[k] = _col(f"{desc.capitalize()} of the score (n/a on proportion rows)", "number",
                    units="points")
    d["proportion"] = _col("Proportion of cases at or above the cut-off (proportion rows)",
                           "number", minimum=0, maximum=1)
    return d


def unblinding_comparison_dictionary() -> dict[str, Any]:
    """Data dictionary of the two-arm comparison of :func:`unblinding_summary`."""
    return {
        "score": _col("Subscore id or 'total'", "string"),
        "arm_a": _col("First arm (sorted)", "string"),
        "arm_b": _col("Second arm", "string"),
        "n_a": _col("Cases in arm_a", "integer"), "n_b": _col("Cases in arm_b", "integer"),
        "mannwhitney_u": _col("Mann-Whitney U of arm_a (scipy, two-sided)", "number"),
        "p_value": _col("Two-sided p value of the Mann-Whitney test", "number", minimum=0,
                        maximum=1),
        "median_diff": _col("median(arm_b) - median(arm_a)", "number", units="points"),
        "median_diff_ci_low": _col("Percentile bootstrap 95% CI, lower", "number",
                                   units="points"),
        "median_diff_ci_high": _col("Percentile bootstrap 95% CI, upper", "number",
                                    units="points"),
    }
