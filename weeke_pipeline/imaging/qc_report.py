"""QC reporting: the subject's HTML page and the group index, from the templates in
``templates/`` (:class:`string.Template`; every inserted text is HTML-escaped here). The numbers,
flag and figures are computed elsewhere (:mod:`.qc`, :mod:`.qc_figures`); this module only
lays them out."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

#: flag colours of the report
COLOURS = {"pass": "#1b7f3b", "warn": "#b26b00", "fail": "#b00020"}


@cache
def template(name: str) -> Template:
    """A page template of ``templates/`` (read once)."""
    return Template((Path(__file__).parent / "templates" / name).read_text(encoding="utf-8"))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if not np.isfinite(v) else f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(map(str, v)) or "none"
    if isinstance(v, Mapping):  # e.g. tissue medians, Jacobian numbers (qc_anatomy)
        return "; ".join(f"{k} {_fmt(x)}" for k, x in v.items()) or "none"
    return str(v)


def number_rows(numbers: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, formatted value) of every QC number, registration similarities flattened."""
    rows = []
    for k, v in numbers.items():
        if k == "registration":
            for name, r in v.items():
                for when in ("similarity_before", "similarity_after"):
                    for m, x in r.get(when, {}).items():
                        rows.append((f"{name} {m} ({when.split('_')[1]})", _fmt(x)))
        elif k == "label_confidence" and isinstance(v, Mapping):  # multi-atlas agreement
            rows.append((f"label fusion ({v.get('method')}, {v.get('n_atlases')} atlases): "
                         "brain agreement", _fmt(v.get("brain_agreement"))))
            for name, r in v.get("regions", {}).items():
                rows.append((f"atlas agreement {name} (fraction agreeing / pairwise Dice)",
                             f"{_fmt(r.get('agreement'))} / {_fmt(r.get('pairwise_dice'))}"))
        else:
            rows.append((k, _fmt(v)))
    return rows


def write_report(out_html: str | os.PathLike[str], subject: str, *, status: str,
                 reasons: Sequence[str], numbers: Mapping[str, Any],
                 figures: Mapping[str, str], thresholds: Mapping[str, float],
                 error: str | None = None, notices: Sequence[str] = ()) -> Path:
    """One self-contained HTML page (figures linked relative to the page). Text is escaped."""
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    e = html.escape
    figs = "\n".join(
        f'<figure><img src="{e(os.path.relpath(p, out.parent))}" alt="{e(name)}">'
        f"<figcaption>{e(name)}</figcaption></figure>" for name, p in figures.items())
    page = template("qc_report.html").substitute(
        subject=e(subject), colour=COLOURS.get(status, "#555"),
        banner="".join(f'<p class="notice">{e(n)}</p>' for n in notices),
        status=e(status.upper()),
        reasons="".join(f"<li>{e(r)}</li>" for r in reasons) or "<li>all checks passed</li>",
        error=f"<h2>Error</h2><pre>{e(error)}</pre>" if error else "",
        figures=figs or "<p>No figures (see error).</p>",
        numbers="\n".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>"
                          for k, v in number_rows(numbers)),
        thresholds="".join(f"<tr><th>{e(k)}</th><td>{v:g}</td></tr>"
                           for k, v in thresholds.items()))
    out.write_text(page, encoding="utf-8")
    return out


def write_group_index(results: Sequence[Any], out_html: str | os.PathLike[str]) -> Path:
    """A group page: one row per subject with its status, reasons and a link to its report
    (``results``: :class:`~weeke_pipeline.imaging.qc.QCResult` or mappings with ``subject``,
    ``status``, ``reasons``, ``report``)."""
    out = Path(out_html)
    out.parent.mkdir(parents=True, exist_ok=True)
    e = html.escape
    rows = []
    for r in results:
        d = r if isinstance(r, Mapping) else r.__dict__
        link = os.path.relpath(d["report"], out.parent)
        rows.append(f'<tr><td><a href="{e(link)}">{e(d["subject"])}</a></td>'
                    f'<td class="{e(d["status"])}">{e(d["status"])}</td>'
                    f"<td>{e('; '.join(d['reasons']))}</td></tr>")
    out.write_text(template("qc_index.html").substitute(rows="".join(rows)), encoding="utf-8")
    return out
