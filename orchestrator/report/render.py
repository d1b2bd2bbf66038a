"""Look at the report as a reader does: render ``report.html`` in a headless Chromium / Chrome (a screenshot, or the
print layout as a PDF). The browser is optional: it is found on PATH (or ``$UNLEARN_BROWSER``), and a missing one is
a clear error, never a traceback.

    python -m orchestrator.report.render runs/report/report.html --screenshot docs/report-screenshot.png
    python -m orchestrator.report.render runs/report/report.html --pdf runs/report/report.pdf

``unlearn report --pdf`` calls :func:`print_pdf`. Debian / Ubuntu: ``apt-get install chromium``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from trainables.errors import UserError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
TIMEOUT_S = 180


def find_browser() -> str | None:
    """``$UNLEARN_BROWSER``, else the first headless-capable Chromium / Chrome on PATH; None when there is none."""
    named = os.environ.get("UNLEARN_BROWSER")
    if named:
        return shutil.which(named) or (named if Path(named).is_file() else None)
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def _browser() -> str:
    browser = find_browser()
    if browser is None:
        raise UserError("no headless browser found: install Chromium (Debian: apt-get install chromium) or set "
                        "UNLEARN_BROWSER; report.html itself prints to PDF from any browser")
    return browser


def _run(html: Path, *flags: str) -> None:
    html = Path(html).resolve()
    if not html.is_file():
        raise UserError(f"{html} does not exist")
    with tempfile.TemporaryDirectory(prefix="unlearn-browser-") as profile:
        cmd = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}", *flags, html.as_uri()]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise UserError(f"the browser did not finish rendering {html} within {TIMEOUT_S} s") from exc
    if done.returncode != 0:
        raise UserError(f"the browser failed to render {html}: {done.stderr.strip().splitlines()[-1:]}")


def screenshot(html, png, *, width: int = 1280, height: int = 2400, max_kb: int | None = 480) -> Path:
    """A ``width`` x ``height`` screenshot of the top of the page; re-saved with a 256-colour palette when larger
    than ``max_kb`` (text and flat plots survive that)."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _run(Path(html), f"--screenshot={png}", f"--window-size={width},{height}")
    if not png.is_file():
        raise UserError(f"the browser wrote no screenshot for {html}")
    if max_kb is not None and png.stat().st_size > max_kb * 1024:
        from PIL import Image

        Image.open(png).convert("RGB").quantize(colors=256).save(png, optimize=True)
    return png


def print_pdf(html, pdf) -> Path:
    """The page's print layout (A4, the report's print CSS) as a PDF."""
    pdf = Path(pdf).resolve()
    pdf.parent.mkdir(parents=True, exist_ok=True)
    _run(Path(html), f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    if not pdf.is_file():
        raise UserError(f"the browser wrote no PDF for {html}")
    return pdf


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m orchestrator.report.render", description=__doc__.split("\n\n")[0])
    p.add_argument("html", help="report.html")
    p.add_argument("--screenshot", metavar="PNG")
    p.add_argument("--pdf", metavar="PDF")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=2400)
    args = p.parse_args(argv)
    if not args.screenshot and not args.pdf:
        p.error("give --screenshot PNG and/or --pdf PDF")
    try:
        if args.screenshot:
            out = screenshot(args.html, args.screenshot, width=args.width, height=args.height)
            print(f"screenshot: {out} ({out.stat().st_size // 1024} KB)")
        if args.pdf:
            print(f"pdf: {print_pdf(args.html, args.pdf)}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
