"""`unlearn report`: the verdict, the targets, the evaluation plots and the paper's tables from the results store,
as Markdown and one self-contained HTML file (optionally a PDF of it).

    unlearn report --results runs/results --out runs/report --pdf
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("report", help="write report.md / report.html (verdict, targets, plots, the paper's tables)",
                       description="Read every row of a results store (local or s3://...) and write the verdict "
                                   "(promoted or not, targets met or missed, and why), the paper's "
                                   "tables (II-VII), the targets, baselines, Tune-found vs default configurations, "
                                   "per-method gap to retrain, scheduled batches, and the evaluation plots into "
                                   "OUT/report.md and OUT/report.html (one self-contained file: figures embedded; "
                                   "also in OUT/figures). Mean ± sd over "
                                   "seeds. See docs/report.md.")
    from orchestrator.results.run_rows import RESULTS_DEFAULT_HELP

    p.add_argument("--results", metavar="PATH|URI", help=f"results store path or URI ({RESULTS_DEFAULT_HELP})")
    p.add_argument("--out", required=True, help="report directory (a previous report there is replaced)")
    p.add_argument("--title", default="Unlearning report")
    p.add_argument("--pdf", action="store_true",
                   help="also OUT/report.pdf, the HTML's print layout (needs a headless Chromium or Chrome)")
    p.set_defaults(func=run)


def run(args) -> int:
    from orchestrator.report import write_report
    from orchestrator.results.run_rows import results_path
    from trainables.errors import UserError

    results = results_path(args.results, write=False)  # only read
    if args.pdf:
        from orchestrator.report.render import find_browser

        if find_browser() is None:  # refuse before writing anything
            raise UserError("--pdf needs a headless Chromium or Chrome (Debian: apt-get install chromium; or set "
                            "UNLEARN_BROWSER); report.html itself prints to PDF from any browser")
    from orchestrator.outputs import check_writable_dir

    check_writable_dir(args.out, "--out")
    out = write_report(results, args.out, title=args.title)
    print(f"report: {out / 'report.html'} (self-contained)  Markdown: {out / 'report.md'}")
    if args.pdf:
        from orchestrator.report.render import print_pdf

        print(f"PDF: {print_pdf(out / 'report.html', out / 'report.pdf')}")
    return 0
