"""The batch's progress display: one line per finished (or failed) step, on every plugin.

Nipype calls a ``status_callback(node, status)`` with ``start``/``end``/``exception``. The total
is the number of nodes in the graph the plugin actually runs (Nipype drops the
IdentityInterface nodes when it flattens the workflow, so counting the workflow's nodes
overstates it and the display ended short of its total). Steps that never run because an
earlier step of their subject failed are counted at the end, so the last line always reaches
the total.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO


def _where(node: Any) -> tuple[str, str]:
    parts = node.fullname.split(".")
    sub = next((p for p in parts if p.startswith("sub_")), "")
    label = sub.removesuffix("_wf").replace("_ses_", " ses-").replace("sub_", "sub-")
    return label, parts[-1]


class Progress:
    """Nipype status callback printing ``[done/total] sub-X ses-Y step state``.

    Cluster plugins also call :meth:`submitted` with the batch job id, since a job may wait in
    the queue for a long time.
    """

    def __init__(self, total: int = 0, stream: TextIO | None = None) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.stream = stream or sys.stderr
        self._started: set[str] = set()

    def set_total(self, total: int) -> None:
        self.total = total

    def _line(self, label: str, step: str, state: str) -> None:
        print(f"[{self.done + self.failed:>3}/{self.total}] {label:<16} {step:<12} {state}",
              file=self.stream, flush=True)

    def __call__(self, node: Any, status: str) -> None:
        label, step = _where(node)
        if status == "start":
            self._started.add(node.fullname)
        elif node.fullname not in self._started:
            return  # Nipype's Linear plugin reports the skipped dependants of a failure as ended
        elif status == "end":
            self.done += 1
            self._line(label, step, "done")
        elif status == "exception":
            self.failed += 1
            self._line(label, step, "FAILED")

    def submitted(self, node: Any, job_id: str) -> None:
        """A step's batch job was submitted (cluster plugins)."""
        self._line(*_where(node), f"queued (job {job_id})")

    def finish(self, *, interrupted: bool = False) -> None:
        """The closing line: steps not run after a failure count towards the total."""
        skipped = max(0, self.total - self.done - self.failed)
        if self.total:
            detail = f"{self.done} done, {self.failed} failed"
            if skipped:
                why = "the run was interrupted" if interrupted else \
                    "after a failed step of the same subject"
                detail += f", {skipped} not run ({why})"
            print(f"[{self.total:>3}/{self.total}] all steps accounted for: {detail}",
                  file=self.stream, flush=True)
