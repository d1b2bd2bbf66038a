"""The report as ONE self-contained HTML page: figures embedded as base64 data URIs (an e-mailed copy keeps them),
no external reference of any kind, a table of contents whose links resolve to heading ids, numeric columns
right-aligned and text left, met / missed marked by colour *and* words, and print CSS (A4, no split tables or
figures, headers repeated on each page).

    page = render(doc, root=Path("runs/report"))      # image paths in ``doc`` are relative to ``root``
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from trainables.audit.plot_style import DISPLAY_WIDTH_PX

MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_NUMBER = r"[+\-–]?(?:\d[\d,]*(?:\.\d+)?%?|–)"
NUMERIC = re.compile(rf"^{_NUMBER}(?: ± \d+(?:\.\d+)?)?(?: -> {_NUMBER})?$")

CSS = f"""
:root{{--met:#137333;--met-bg:#e6f4ea;--missed:#a50e0e;--missed-bg:#fce8e6;--muted:#555;--rule:#d0d0d0}}
body{{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:{DISPLAY_WIDTH_PX + 60}px;
  margin:1.5em auto;padding:0 1.5em;color:#1f1f1f;line-height:1.45;font-size:15px}}
h1{{font-size:1.7em;margin:0 0 .2em}} h2{{margin-top:2em;border-bottom:2px solid #eee;padding-bottom:.2em}}
h3{{margin-top:1.6em}} .generated{{color:var(--muted);font-size:.9em}}
.verdict{{border:2px solid var(--rule);border-radius:8px;padding:.6em 1.2em;margin:1em 0 1.5em;background:#fafafa}}
.verdict .headline{{font-size:1.15em;font-weight:600;margin:.4em 0}}
.verdict ul{{list-style:none;padding:0;margin:.4em 0}}
.verdict li{{margin:.45em 0;padding:.35em .6em;border-radius:5px;display:grid;grid-template-columns:13em 1fr;gap:.6em}}
.mark{{font-weight:700;white-space:nowrap;margin-right:.4em}}
.met{{background:var(--met-bg)}} .met .mark{{color:var(--met)}}
.missed{{background:var(--missed-bg)}} .missed .mark{{color:var(--missed)}}
.unknown .mark{{color:var(--muted)}}
nav.toc{{border-left:3px solid var(--rule);padding:.2em 1em;margin:1em 0 2em}}
nav.toc ol{{margin:.2em 0;padding-left:1.4em}} nav.toc a{{color:#1a4f8b;text-decoration:none}}
nav.toc a:hover{{text-decoration:underline}}
.table-wrap{{overflow-x:auto;margin:.5em 0 1.5em}}
table{{border-collapse:collapse;font-size:.86em}}
th,td{{border:1px solid var(--rule);padding:3px 8px;text-align:left;vertical-align:top}}
th{{background:#f1f3f4}} td.num,th.num{{text-align:right;font-variant-numeric:tabular-nums}}
td.num{{white-space:nowrap}}
caption{{caption-side:top;text-align:left;color:var(--muted);padding:4px 0}}
figure{{margin:1em 0 2em}} img{{max-width:100%;height:auto;border:1px solid #eee}}
figcaption{{color:var(--muted);font-size:.9em;max-width:{DISPLAY_WIDTH_PX}px}}
code{{background:#f1f3f4;padding:0 3px;border-radius:3px}} .missing{{color:var(--missed)}}
@page{{size:A4;margin:14mm}}
@media print{{
  body{{max-width:none;margin:0;padding:0;font-size:10pt}} h2{{break-before:auto}}
  h2,h3,caption{{break-after:avoid}} figure,tr,.verdict li{{break-inside:avoid}}
  .table-wrap{{overflow:visible}} table{{font-size:7.5pt}} thead{{display:table-header-group}}
  nav.toc a{{color:inherit}} img{{max-width:100%;max-height:150mm;width:auto;border:none}}
  .met,.missed,th{{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
}}
"""


def slug(text: str, seen: dict[str, int]) -> str:
    """GitHub's heading anchor (lower case, punctuation dropped, spaces -> '-'), numbered when repeated."""
    base = re.sub(r"[^\w\- ]", "", text.lower()).strip().replace(" ", "-") or "section"
    n = seen.get(base, 0)
    seen[base] = n + 1
    return base if n == 0 else f"{base}-{n}"


def inline(text: str) -> str:
    """Markdown's `code` and **bold** spans -> HTML; everything else escaped."""
    parts = html.escape(str(text)).split("`")
    out = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)


def status_class(ok) -> str:
    return "unknown" if ok is None else ("met" if ok else "missed")


def _is_numeric_column(cells: list) -> bool:
    values = [getattr(c, "value", str(c)).strip() for c in cells]
    values = [v for v in values if v]
    return bool(values) and any(ch.isdigit() for v in values for ch in v) and all(NUMERIC.match(v) for v in values)


def numeric_columns(t) -> list[bool]:
    """Per column: every filled cell is a number (``0.512``, ``0.512 ± 0.021``, ``40%``, ``0.7 -> 0.52``, ``–``)."""
    return [_is_numeric_column([row[i] for row in t.rows]) for i in range(len(t.headers))]


def _cell(value, numeric: bool) -> str:
    classes = ["num"] if numeric else []
    ok = getattr(value, "ok", "absent")
    if ok == "absent":
        return f"<td{_classes(classes)}>{html.escape(str(value))}</td>"
    classes.append(status_class(ok))
    mark = {"met": "✓ met", "missed": "✗ MISSED", "unknown": "? no value"}[status_class(ok)]
    text = html.escape(value.value)
    return f'<td{_classes(classes)}>{text}{" " if text else ""}<span class="mark">{mark}</span></td>'


def _classes(classes: list[str]) -> str:
    return f' class="{" ".join(classes)}"' if classes else ""


def table(t) -> str:
    numeric = numeric_columns(t)
    head = "".join(f"<th{_classes(['num'] if n else [])}>{html.escape(str(h))}</th>"
                   for h, n in zip(t.headers, numeric, strict=True))
    rows = "".join("<tr>" + "".join(_cell(c, n) for c, n in zip(row, numeric, strict=True)) + "</tr>"
                   for row in t.rows)
    caption = f"<caption>{inline(t.caption)}</caption>" if t.caption else ""
    return (f'<div class="table-wrap"><table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
            f"</table></div>")


def image(path: str, caption: str, root: Path | None) -> str:
    """The figure inlined as a data URI; a missing file is said, never linked."""
    file = (root / path) if root is not None else Path(path)
    mime = MIME.get(file.suffix.lower())
    if mime is None or not file.is_file():
        return f'<p class="missing">figure not available: {html.escape(file.name)}</p>'
    data = base64.b64encode(file.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:{mime};base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{inline(caption)}</figcaption></figure>")


def verdict(headline: str, items) -> str:
    lines = "".join(f'<li class="{status_class(ok)}"><span class="mark">{html.escape(badge)}</span>'
                    f"{inline(text)}</li>" for ok, badge, text in items)
    return f'<section class="verdict"><p class="headline">{inline(headline)}</p><ul>{lines}</ul></section>'


def toc(entries: list[tuple[int, str, str]]) -> str:
    """Nested ordered list of (level, text, id) for levels 2 and 3."""
    out, open_sub = ['<nav class="toc" aria-label="Contents"><strong>Contents</strong><ol>'], False
    for i, (level, text, anchor) in enumerate(entries):
        link = f'<a href="#{anchor}">{html.escape(text)}</a>'
        if level == 2:
            if open_sub:
                out.append("</ol></li>")
                open_sub = False
            nxt = entries[i + 1][0] if i + 1 < len(entries) else 2
            out.append(f"<li>{link}" + ("<ol>" if nxt == 3 else "</li>"))
            open_sub = nxt == 3
        else:
            out.append(f"<li>{link}</li>")
    if open_sub:
        out.append("</ol></li>")
    return "".join(out) + "</ol></nav>"


def render(doc, root: Path | None = None) -> str:
    seen: dict[str, int] = {}
    anchors = {i: slug(b[2], seen) for i, b in enumerate(doc.blocks) if b[0] == "heading"}
    entries = [(doc.blocks[i][1], doc.blocks[i][2], a) for i, a in anchors.items() if doc.blocks[i][1] in (2, 3)]
    body = [f"<h1>{html.escape(doc.title)}</h1>"]
    for i, block in enumerate(doc.blocks):
        kind = block[0]
        if kind == "heading":
            body.append(f'<h{block[1]} id="{anchors[i]}">{html.escape(block[2])}</h{block[1]}>')
        elif kind == "paragraph":
            body.append(f'<p{_classes([block[2]] if block[2] else [])}>{inline(block[1])}</p>')
        elif kind == "table":
            body.append(table(block[1]))
        elif kind == "image":
            body.append(image(block[1], block[2], root))
        elif kind == "verdict":
            body.append(verdict(block[1], block[2]))
        elif kind == "toc":
            body.append(toc(entries))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(doc.title)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
