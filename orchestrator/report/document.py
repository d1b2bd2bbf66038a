"""A tiny document model rendered twice: Markdown (GitHub tables) and one self-contained HTML page
(:mod:`orchestrator.report.html_page`). No dependency: the report builds a verdict, a table of contents, headings,
paragraphs, tables and images, and each renderer walks the same blocks.

    doc = Document("Unlearning report")
    doc.verdict("1 of 1 batches promoted", [(True, "✓ promoted", "batch 1: ...")])
    doc.toc()
    doc.heading("Table II", level=2)
    doc.table(Table(["model", "acc"], [["simclr", Mark("0.512 ± 0.021", True)]], caption="before vs after"))
    doc.image("figures/roc.png", "ROC curves")
    Path("report.md").write_text(doc.markdown()); Path("report.html").write_text(doc.html(root=Path(".")))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class Mark(str):
    """A table cell judged against a target: reads ``"0.512 met"`` / ``"0.512 MISSED"`` as text (Markdown, tests),
    and carries ``value`` and ``ok`` (None: no value) so HTML can style it with colour and words."""

    value: str
    ok: bool | None

    def __new__(cls, value: str, ok: bool | None):
        word = "" if ok is None else ("met" if ok else "MISSED")
        self = super().__new__(cls, f"{value} {word}".strip())
        self.value, self.ok = value, ok
        return self


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

    def paragraph(self, text: str, css: str = "") -> None:
        self.blocks.append(("paragraph", text, css))

    def table(self, table: Table) -> None:
        self.blocks.append(("table", table))

    def image(self, path: str, caption: str) -> None:
        self.blocks.append(("image", path, caption))

    def verdict(self, headline: str, items: list[tuple[bool | None, str, str]]) -> None:
        """The answer first: a headline and one (ok, badge, sentence) per model / batch."""
        self.blocks.append(("verdict", headline, items))

    def toc(self) -> None:
        """A table of contents of the level-2 and level-3 headings, at this place."""
        self.blocks.append(("toc",))

    # ------------------------------------------------------------------------------------------ Markdown
    def markdown(self) -> str:
        from orchestrator.report.html_page import slug

        seen: dict[str, int] = {}
        headings = [(b[1], b[2], slug(b[2], seen)) for b in self.blocks if b[0] == "heading" and b[1] in (2, 3)]
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
            elif kind == "verdict":
                lines += [f"**{block[1]}**", ""] + [f"- **{badge}**: {text}" for _, badge, text in block[2]] + [""]
            elif kind == "toc":
                lines += ["**Contents**", ""] + [f"{'  ' * (level - 2)}- [{text}](#{anchor})"
                                                 for level, text, anchor in headings] + [""]
        return "\n".join(lines).rstrip() + "\n"

    # ---------------------------------------------------------------------------------------------- HTML
    def html(self, root: Path | None = None) -> str:
        """One self-contained page; image paths are read relative to ``root`` and embedded."""
        from orchestrator.report.html_page import render

        return render(self, root)


def _escape_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown_table(table: Table) -> list[str]:
    lines = [f"*{table.caption}*", ""] if table.caption else []
    lines.append("| " + " | ".join(_escape_cell(h) for h in table.headers) + " |")
    from orchestrator.report.html_page import numeric_columns

    lines.append("|" + "|".join("---:" if n else "---" for n in numeric_columns(table)) + "|")
    lines += ["| " + " | ".join(_escape_cell(c) for c in row) + " |" for row in table.rows]
    return lines + [""]
