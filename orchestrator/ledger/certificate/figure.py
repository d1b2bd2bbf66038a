"""The certificate's one figure, as inline SVG: the request's samples' membership scores before and after
unlearning, drawn over the histogram of the non-member scores of the same model.

Hand-written SVG rather than a plotting library on purpose: the figure is rendered from the certificate's facts
alone, byte for byte the same on every machine and library version, so ``--verify`` can re-render a page and
detect any edit of it.

    svg = scores_svg(facts["scores"])   # "" when the batch stored no per-sample scores
"""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH, PANEL_H, MARGIN_L, MARGIN_R, TOP = 640, 90, 150, 20, 28
ROWS = (("parent", "before: parent model"), ("candidate", "after: promoted model"))


def _n(x: float) -> str:
    return f"{x:.1f}"


def scores_svg(scores: dict[str, Any]) -> str:
    """Two panels (parent, candidate): grey bars = non-member score histogram, red ticks = this request's samples."""
    hists = scores.get("nonmember") or {}
    if not scores.get("available") or not hists:
        return ""
    values = [e for h in hists.values() for e in h["bin_edges"]]
    values += [s[f"{m}_score"] for s in scores["samples"] for m, _ in ROWS if s.get(f"{m}_score") is not None]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    plot_w = WIDTH - MARGIN_L - MARGIN_R

    def x(v: float) -> float:
        return MARGIN_L + (v - lo) / span * plot_w

    height = TOP + len(ROWS) * (PANEL_H + 20) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="membership scores before and after">',
           '<text x="8" y="16" font-size="12" fill="#333">grey: scores of held-out non-members '
           '(never trained on); red: this request\'s records</text>']
    for row, (model, label) in enumerate(ROWS):
        base = TOP + row * (PANEL_H + 20) + PANEL_H
        out.append(f'<text x="8" y="{_n(base - PANEL_H / 2)}" font-size="12" fill="#333">{escape(label)}</text>')
        out.append(f'<line x1="{MARGIN_L}" y1="{base}" x2="{WIDTH - MARGIN_R}" y2="{base}" stroke="#888"/>')
        hist = hists.get(model)
        if hist:
            top = max(hist["counts"]) or 1
            edges = hist["bin_edges"]
            for count, left, right in zip(hist["counts"], edges[:-1], edges[1:], strict=True):
                h = count / top * (PANEL_H - 10)
                out.append(f'<rect x="{_n(x(left))}" y="{_n(base - h)}" width="{_n(max(x(right) - x(left) - 1, 1))}"'
                           f' height="{_n(h)}" fill="#c8c8c8"/>')
        for sample in scores["samples"]:
            value = sample.get(f"{model}_score")
            if value is not None:
                out.append(f'<line x1="{_n(x(value))}" y1="{_n(base - PANEL_H + 4)}" x2="{_n(x(value))}" '
                           f'y2="{base}" stroke="#c0392b" stroke-width="2"><title>sample {sample["sample_id"]}: '
                           f'{value:.4g}</title></line>')
    axis_y = TOP + len(ROWS) * (PANEL_H + 20) + 4
    out.append(f'<text x="{MARGIN_L}" y="{axis_y}" font-size="11" fill="#333">{lo:.3g}</text>')
    out.append(f'<text x="{WIDTH - MARGIN_R}" y="{axis_y}" font-size="11" fill="#333" text-anchor="end">'
               f'{hi:.3g}</text>')
    out.append(f'<text x="{_n(MARGIN_L + plot_w / 2)}" y="{axis_y + 14}" font-size="11" fill="#333" '
               f'text-anchor="middle">membership score (higher = more like a training member)</text>')
    out.append("</svg>")
    return "\n".join(out)
