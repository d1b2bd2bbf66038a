"""`unlearn report`: the paper's tables and the evaluation plots from the results store, as Markdown and HTML.

    unlearn report --results runs/results --out runs/report
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("report", help="write report.md / report.html with the paper's tables from the results store",
                       description="Read every row of a results store (local or s3://...) and write the paper's "
                                   "tables (II-VII), the targets, baselines, Tune-found vs default configurations, "
                                   "per-method gap to retrain, scheduled batches, and the evaluation plots into "
                                   "OUT/report.md and OUT/report.html (figures in OUT/figures). Mean ± sd over "
                                   "seeds. See docs/report.md.")
    from orchestrator.run_rows import RESULTS_DEFAULT_HELP

    p.add_argument("--results", metavar="PATH|URI", help=f"results store path or URI ({RESULTS_DEFAULT_HELP})")
    p.add_argument("--out", required=True, help="report directory (a previous report there is replaced)")
    p.add_argument("--title", default="Unlearning report")
    p.set_defaults(func=run)


def run(args) -> int:
    from orchestrator.report import write_report
    from orchestrator.run_rows import results_path

    results = results_path(args.results)
    out = write_report(results, args.out, title=args.title)
    print(f"report: {out / 'report.md'}  (HTML: {out / 'report.html'})")
    return 0
