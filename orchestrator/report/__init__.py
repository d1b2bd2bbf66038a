"""``unlearn report``: the verdict (promoted or not, targets met or missed, and why), the targets, the evaluation
plots, the paper's tables and per-method gaps, from whatever rows the results store holds. Docs: docs/report.md.

    from orchestrator.report import write_report, targets_table, targets_markdown
    write_report("runs/results", "runs/report")          # report.html (self-contained), report.md, figures/
    print(targets_markdown(results.load("runs/results")))  # BENCHMARKS.md's targets table
"""

from orchestrator.report.build import build_report, write_report
from orchestrator.report.targets import TARGETS, targets_markdown, targets_table

__all__ = ["TARGETS", "build_report", "targets_markdown", "targets_table", "write_report"]
