"""Assemble the report from the results store and write ``report.md`` + ``report.html`` (+ ``figures/``, which the
Markdown links and the HTML embeds, so ``report.html`` alone is the whole report).

The output directory is written atomically: everything goes to a hidden temporary directory that replaces ``out``
at the end, so an interrupted or failed run leaves the previous report intact. An existing ``out`` is replaced only
if it holds a report (``report.md``); any other non-empty directory is refused.

    write_report("runs/results", "runs/report")                        # -> runs/report/report.md, report.html
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from pathlib import Path

import pandas as pd

from orchestrator.report import paper_tables, run_tables
from orchestrator.report.aggregate import plain
from orchestrator.report.document import Document, Table
from orchestrator.report.figures import evaluation_figures, summary_figures
from orchestrator.report.targets import targets_rows, targets_table
from orchestrator.report.verdict import verdict_items
from trainables.errors import UserError

# (heading, builder, what to run when it is empty): the paper's tables, then the others
PAPER_SECTIONS = (
    ("Table II: before vs after vs retrain", paper_tables.table_ii,
     "`unlearn evaluate --checkpoint UNLEARNED --original ORIGINAL --retrained RETRAINED --results PATH`"),
    ("Table III: per model", paper_tables.table_iii, "(the same rows as Table II)"),
    ("Table IV / V: ablation of the loss terms", paper_tables.table_iv_v,
     "evaluations tagged `--experiment ablation` (gp / memgp with subsets of a, b, c; train_term_source)"),
    ("Table VI: forget-set size", paper_tables.table_vi, "evaluations tagged `--experiment forget_size`"),
    ("Table VII: supervised model vs retrain", paper_tables.table_vii,
     "evaluations of a supervised model (main rows or `--experiment supervised`)"),
)
OTHER_SECTIONS = (
    ("Gap to retrain per method", run_tables.gap_to_retrain, "evaluations with `--retrained`"),
    ("Baselines", run_tables.baselines, "evaluations tagged `--experiment baselines`"),
    ("Tune-found vs paper-default configurations", run_tables.tuned_vs_default,
     "evaluations tagged `--experiment tuned` (the best config of `unlearn tune`)"),
    ("Tune searches", run_tables.tune_searches, "`unlearn tune --results PATH`"),
    ("Every attack", run_tables.all_attacks, "evaluations with more than one attack"),
    ("Scheduled batches", run_tables.scheduled_batches, "`unlearn schedule run --results PATH`"),
)
SECTIONS = PAPER_SECTIONS + OTHER_SECTIONS
HOW_TO_READ = ("Cells are mean ± sample sd over seeds (`n` rows; rows that differ only in seeds or runtime settings "
               "are pooled). Attack = each evaluation's primary membership-inference attack on the forget set vs "
               "held-out non-members: 0.5 is chance, and far below 0.5 leaks too, so the retrained model is the "
               "reference. Utility (ACC in the paper's tables) = kNN accuracy for encoders, test accuracy for "
               "classifiers. See docs/report.md.")


def without_empty_columns(table: Table) -> Table:
    """Drop columns with no value in any line (e.g. ``config`` when every configuration is alone)."""
    keep = [i for i in range(len(table.headers)) if any(str(row[i]).strip() for row in table.rows)]
    return Table([table.headers[i] for i in keep], [[row[i] for i in keep] for row in table.rows], table.caption)


def _sections(doc: Document, frame: pd.DataFrame, sections, missing: list[str]) -> bool:
    """Add each section that has rows as a level-3 heading; returns whether any had."""
    added = False
    for heading, builder, how in sections:
        tables = builder(frame)
        if not tables:
            missing.append(f"{heading}: {how}")
            continue
        doc.heading(heading, level=3)
        for table in tables:
            doc.table(without_empty_columns(table))
        added = True
    return added


def build_report(df: pd.DataFrame, folder: Path, *, title: str = "Unlearning report", source: str = "") -> Document:
    """The report of ``df`` (a :func:`orchestrator.results.store.load` frame); figures are written into ``folder``
    (``folder/figures``) and referenced relative to it. Order: the verdict, contents, targets, figures, then the
    paper's tables and the rest for those who want them."""
    frame = plain(df)
    doc = Document(title)
    kinds = ", ".join(f"{k} {n}" for k, n in frame["kind"].value_counts().sort_index().items())
    doc.paragraph(f"Generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC from `{source}`: {len(frame)} rows "
                  f"({kinds}).", css="generated")
    targets = targets_table(frame)
    doc.heading("Verdict")
    doc.verdict(*verdict_items(frame, targets))
    doc.toc()
    if not targets.empty:
        doc.heading("Targets")
        doc.table(targets_rows(targets))
    doc.heading("Figures")
    figures = summary_figures(frame, folder / "figures")
    groups, notes = evaluation_figures(frame, folder / "figures")
    for path, caption in figures:
        doc.image(path, caption)
    for label, images in groups:
        doc.heading(f"Evaluation of {label}", level=3)
        for path, caption in images:
            doc.image(path, caption)
    if not figures and not groups:
        doc.paragraph("No figures: no evaluated rows (plots come from `unlearn evaluate`).")
    for note in notes:
        doc.paragraph(note)
    missing: list[str] = []
    explained = False  # the how-to-read paragraph once, above the first tables
    for heading, sections in (("The paper's tables", PAPER_SECTIONS), ("Other tables", OTHER_SECTIONS)):
        start = len(doc.blocks)
        doc.heading(heading)
        if not explained:
            doc.paragraph(HOW_TO_READ)
        if _sections(doc, frame, sections, missing):
            explained = True
        else:
            del doc.blocks[start:]
    doc.heading("Runs")
    for table in run_tables.runs_overview(frame):
        doc.table(without_empty_columns(table))
    if missing:
        doc.heading("Not in this report (no rows yet)")
        doc.paragraph("; ".join(missing) + ".")
    return doc


def write_report(results: str, out: str | Path, *, title: str = "Unlearning report") -> Path:
    """Load ``results``, build the report, write ``out/report.md``, ``out/report.html`` and ``out/figures``."""
    from orchestrator.results.store import load

    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "report.md").is_file())):
        raise UserError(f"{out} exists and is not a report directory; choose another --out")
    df = load(results)
    if df.empty:
        raise UserError(f"no rows in the results store {results}; run jobs with --results {results} first")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        doc = build_report(df, tmp, title=title, source=str(results))
        (tmp / "report.md").write_text(doc.markdown())
        (tmp / "report.html").write_text(doc.html(root=tmp))  # one file: the figures are embedded
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
