"""A tiny document model rendered twice: Markdown (GitHub tables) and a self-contained HTML page. No dependency:
the report builds headings, paragraphs, tables and images, and each renderer walks the same blocks.

    doc = Document("Unlearning report")
    doc.heading("Table II", level=2)
    doc.table(Table(["model", "acc"], [["simclr", "0.512 ± 0.021"]], caption="before vs after"))
    doc.image("figures/roc.png", "ROC curves")
    Path("report.md").write_text(doc.markdown()); Path("report.html").write_text(doc.html())
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Document:
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", level, text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def table(self, table: Table) -> None:
        self.blocks.append(("table", table))

    def image(self, path: str, caption: str) -> None:
        self.blocks.append(("image", path, caption))

    # ------------------------------------------------------------------------------------------ Markdown
    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                lines += [f"{'#' * block[1]} {block[2]}", ""]
            elif kind == "paragraph":
                lines += [block[1], ""]
            elif kind == "table":
                lines += _markdown_table(block[1])
            elif kind == "image":
                lines += [f"![{block[2]}]({block[1]})", "", f"*{block[2]}*", ""]
        return "\n".join(lines).rstrip() + "\n"

    # ---------------------------------------------------------------------------------------------- HTML
    def html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                body.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
            elif kind == "paragraph":
                body.append(f"<p>{_inline(block[1])}</p>")
            elif kind == "table":
                body.append(_html_table(block[1]))
            elif kind == "image":
                body.append(f'<figure><img src="{html.escape(block[1])}" alt="{html.escape(block[2])}">'
                            f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
        return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(self.title)}</title>"
                f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


_CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}"
        "th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
        "td:first-child,th:first-child{text-align:left}caption{caption-side:top;text-align:left;color:#555;"
        "padding:4px 0}img{max-width:100%;border:1px solid #eee}figure{margin:1em 0}"
        "figcaption{color:#555;font-size:0.9em}code{background:#f3f3f3;padding:0 3px}")


def _escape_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown_table(table: Table) -> list[str]:
    lines = [f"*{table.caption}*", ""] if table.caption else []
    lines.append("| " + " | ".join(_escape_cell(h) for h in table.headers) + " |")
    lines.append("|" + "|".join("---" for _ in table.headers) + "|")
    lines += ["| " + " | ".join(_escape_cell(c) for c in row) + " |" for row in table.rows]
    return lines + [""]


def _inline(text: str) -> str:
    """Markdown's `code` spans in a paragraph -> <code>; everything else escaped."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in table.headers)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in table.rows)
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
