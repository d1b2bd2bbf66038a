"""A certificate's facts as JSON, Markdown or one self-contained HTML page, and the facts read back from a file.

Every format is a pure function of (facts, content sha256): the same facts render to the same bytes, so
``--verify`` re-renders a file from the canonical facts embedded in it and any edit of any byte shows. The
Markdown embeds the canonical JSON as the one line after ``MD_MARKER``; the HTML in a
``<script type="application/json" id="unlearn-certificate">`` block. Verdict first, for a data protection officer.

    text = render(facts, sha, "html")
    fmt, facts = extract(text)
"""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any

from orchestrator.ledger.certificate.facts import canonical_json
from orchestrator.ledger.certificate.figure import scores_svg
from trainables.errors import UserError

FORMATS = ("json", "md", "html")
MD_MARKER = "<!-- unlearn-certificate: canonical facts (hashed; any edit is detected) -->"
_SCRIPT = re.compile(r'<script type="application/json" id="unlearn-certificate">(.*?)</script>', re.S)
_BANNERS = {"verified": ("VERIFIED", "ok"), "no-signal": ("PROMOTED WITHOUT SIGNAL", "warn")}


def _f(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def verdict_line(facts: dict[str, Any]) -> tuple[str, str, str]:
    """(banner, css class, one sentence) for the top of the page."""
    v, req = facts["verification"], facts["request"]
    n, version = len(req["sample_ids"]), facts["models"]["promoted"]["version"]
    banner, cls = _BANNERS.get(v.get("verdict"), (str(v.get("verdict")).upper(), "bad"))
    if v["evidence"] == "legacy point estimate":  # weaker evidence: amber, not green
        banner, cls = banner + " (legacy point estimate)", "warn"
    elif v["evidence"] == "already forgotten":
        banner += " (already forgotten)"
    sentence = (f"The {n} record(s) of deletion request {req['request_id']} (subject {req['subject_id']}) are "
                f"forgotten by model version {version}." if v.get("verdict") == "verified" else
                f"The {n} record(s) of deletion request {req['request_id']} were unlearned into model version "
                f"{version}, but their membership was not detectable even before unlearning.")
    return banner, cls, sentence


def summary(facts: dict[str, Any]) -> list[str]:
    """The evidence in plain sentences."""
    v = facts["verification"]
    out = []
    if v["evidence"] == "statistical test":
        pc = v["power_check"]
        rejects = "detected them" if pc.get("parent_rejects") else "did NOT detect them"
        out.append(f"Before unlearning, the membership test ({_f(v.get('test'))}, attack {_f(v.get('attack'))}) "
                   f"{rejects} in the parent model (p = {_f(pc.get('parent_p_value'), '.3g')}, level alpha = "
                   f"{_f(v.get('alpha'))})" + (": the test had the power to see them." if pc.get("parent_rejects")
                                               else ": the evidence is 'not detectable before or after'."))
        out.append(f"After unlearning, the promoted model's scores on the batch's {_f(v.get('n_forget'))} records "
                   f"vs {_f(v.get('n_nonmember'))} held-out non-members give statistic {_f(v.get('statistic'))}, "
                   f"p = {_f(v.get('p_value'), '.3g')}: not distinguishable from data the model never saw "
                   f"({_f(v.get('reference_k'))} reference models calibrate the scores).")
    elif v["evidence"] == "legacy point estimate":
        out.append(f"Verified by the pre-gate rule {v['test']}: attack score {_f(v.get('statistic'))}, tolerance "
                   f"{_f(v.get('tolerance'))}; the parent scored {_f(v['power_check'].get('parent_attack'))}. "
                   f"There is no p-value and no check that the parent leaked: weaker evidence than a test.")
    else:
        out.append(v["note"] + ".")
    u = v.get("utility") or {}
    if u.get("parent") is not None:
        ci = (f", 95% CI [{_f(u['ci_low'], '.3f')}, {_f(u['ci_high'], '.3f')}]" if u.get("ci_low") is not None
              else "")
        out.append(f"Utility: {_f(u['parent'], '.3f')} before, {_f(u.get('candidate'), '.3f')} after (drop "
                   f"{_f(u.get('drop'), '.3f')}{ci}).")
    pct = [s["candidate_percentile"] for s in facts["scores"]["samples"] if s.get("candidate_percentile") is not None]
    before = [s["parent_percentile"] for s in facts["scores"]["samples"] if s.get("parent_percentile") is not None]
    if pct:
        out.append(f"This request's own records sit at percentile {_f(_median(before), '.1f')} (before) and "
                   f"{_f(_median(pct), '.1f')} (after) of the non-members' scores, median over its records "
                   f"(50 = like unseen data; near 100 = stands out as training data).")
    elif not facts["scores"]["available"]:
        out.append("No per-sample scores were stored for this batch.")
    return out


def _median(values: list[float]) -> float | None:
    import statistics

    return statistics.median(values) if values else None


def sections(facts: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """Titled (label, value) tables shared by the Markdown and HTML forms."""
    r, b, m, v = facts["request"], facts["batch"], facts["models"], facts["verification"]
    pc, u = v.get("power_check") or {}, v.get("utility") or {}
    cur = m.get("current_at_issue") or {}

    def model(row: dict[str, Any]) -> str:
        return f"version {row['version']}, sha256 {row['sha256']}"

    return [
        ("The request", [
            ("request id", r["request_id"]), ("subject", r["subject_id"]),
            ("sample ids", ", ".join(map(str, r["sample_ids"]))),
            ("record keys", "-" if r["record_keys"] is None else ", ".join(map(_f, r["record_keys"]))),
            ("received", _f(r["received_at"])), ("batched", _f(r["batched_at"])),
            ("verified", _f(r["verified_at"])), ("promoted", _f(r["promoted_at"])),
            ("batches it was part of", _f(r["attempts"]))]),
        ("The evidence", [
            ("verdict", _f(v.get("verdict"))), ("kind of evidence", v["evidence"]), ("test", _f(v.get("test"))),
            ("attack", _f(v.get("attack"))), ("statistic", _f(v.get("statistic"))),
            ("p-value", _f(v.get("p_value"), ".3g")), ("alpha", _f(v.get("alpha"))),
            ("power check: parent p-value", _f(pc.get("parent_p_value"), ".3g")),
            ("power check: parent rejects", _f(pc.get("parent_rejects"))),
            ("reference models (K)", _f(v.get("reference_k"))),
            ("forget / non-member samples", f"{_f(v.get('n_forget'))} / {_f(v.get('n_nonmember'))}"),
            ("utility before / after", f"{_f(u.get('parent'), '.4f')} / {_f(u.get('candidate'), '.4f')}"),
            ("utility drop (95% CI)", f"{_f(u.get('drop'), '.4f')} ({_f(u.get('ci_low'), '.4f')}, "
                                      f"{_f(u.get('ci_high'), '.4f')})"),
            ("gate's note", _f(v.get("reason") or v.get("note")))]),
        ("The models", [
            ("parent (before)", model(m["parent"])), ("promoted (after)", model(m["promoted"])),
            ("promoted lineage", " <- ".join(str(x["version"]) for x in m["promoted"]["lineage"])),
            ("promoted checkpoint", m["promoted"]["uri"]),
            ("current at issue", f"version {_f(cur.get('version'))}, forgets this request: "
                                 f"{_f(cur.get('forgets_request'))}"),
            ("batch", f"{b['batch_id']} (run {b['run_name']}, {b['new_sample_ids']} new sample ids)"),
            ("unlearning method", _f(b["method"]))]),
        ("Software", [(k, _f(val)) for k, val in sorted(facts["software"]["issued_with"].items())]
         + [("model trained with", ", ".join(f"{k} {val}" for k, val in
                                             sorted((facts["software"]["model_trained_with"] or {}).items())) or "-")]),
    ]


_SAMPLE_COLUMNS = ("sample id", "parent score", "percentile before", "candidate score", "percentile after")


def _sample_rows(facts: dict[str, Any]) -> list[list[str]]:
    return [[str(s["sample_id"]), _f(s["parent_score"]), _f(s["parent_percentile"], ".1f"),
             _f(s["candidate_score"]), _f(s["candidate_percentile"], ".1f")] for s in facts["scores"]["samples"]]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_md(facts: dict[str, Any], sha: str) -> str:
    banner, _, sentence = verdict_line(facts)
    lines = [f"# Deletion certificate: request {facts['request']['request_id']}", "",
             f"**{banner}**: {sentence}", "", *[f"- {s}" for s in summary(facts)], ""]
    for n, (title, rows) in enumerate(sections(facts)):
        if n == 2 and facts["scores"]["samples"]:  # the request's own scores right after the batch's evidence
            lines += ["## This request's records: membership scores", "",
                      "| " + " | ".join(_SAMPLE_COLUMNS) + " |", "|" + "---|" * len(_SAMPLE_COLUMNS),
                      *["| " + " | ".join(r) + " |" for r in _sample_rows(facts)], ""]
        lines += [f"## {title}", "", "| | |", "|---|---|", *[f"| {k} | {_md_cell(val)} |" for k, val in rows], ""]
    lines += ["## Method and configuration", "", "```json", json.dumps(facts["batch"]["config"], indent=2,
                                                                        sort_keys=True), "```", "",
              "## Integrity", "", f"Content sha256: `{sha}` (issued {facts['certificate']['issued_at']}, ledger "
              f"{facts['certificate']['ledger_id']}). Check this file with "
              f"`unlearn requests certificate --verify FILE`.", "", MD_MARKER, "```json", canonical_json(facts),
              "```", ""]
    return "\n".join(lines)


_CSS = """body{font-family:system-ui,sans-serif;max-width:56rem;margin:2rem auto;padding:0 1rem;color:#222}
.banner{padding:1rem 1.2rem;border-radius:6px;font-size:1.15rem;margin:1rem 0}
.banner b{display:block;font-size:1.6rem;letter-spacing:.04em}
.ok{background:#e3f4e8;border:2px solid #2e8b57}.warn{background:#fff4d6;border:2px solid #d4a017}
.bad{background:#fbe3e3;border:2px solid #c0392b}
table{border-collapse:collapse;margin:.5rem 0 1.2rem;width:100%}td,th{border-bottom:1px solid #ddd;
padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.92rem}th{background:#f4f4f4}
td:first-child{width:16rem;color:#555}code,pre{font-size:.8rem;word-break:break-all;white-space:pre-wrap}
pre{background:#f7f7f7;padding:.6rem}"""


def render_html(facts: dict[str, Any], sha: str) -> str:
    banner, cls, sentence = verdict_line(facts)
    rid = escape(facts["request"]["request_id"])
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>Deletion certificate: request {rid}</title>", f"<style>{_CSS}</style></head><body>",
           f"<h1>Deletion certificate: request {rid}</h1>",
           f'<div class="banner {cls}"><b>{escape(banner)}</b>{escape(sentence)}</div>',
           "<ul>", *[f"<li>{escape(s)}</li>" for s in summary(facts)], "</ul>"]
    svg = scores_svg(facts["scores"])
    if svg:
        out += ["<h2>Membership scores before and after</h2>", "<figure>", svg,
                "<figcaption>Each red line is one of this request's records; grey bars are held-out non-members "
                "scored by the same model. After unlearning the red lines should sit inside the grey "
                "mass.</figcaption></figure>"]
    for n, (title, rows) in enumerate(sections(facts)):
        if n == 2 and facts["scores"]["samples"]:
            out += ["<h2>This request's records: membership scores</h2>", "<table>",
                    "<tr>" + "".join(f"<th>{c}</th>" for c in _SAMPLE_COLUMNS) + "</tr>",
                    *["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in _sample_rows(facts)],
                    "</table>"]
        out += [f"<h2>{escape(title)}</h2>", "<table>",
                *[f"<tr><td>{escape(k)}</td><td>{escape(val)}</td></tr>" for k, val in rows], "</table>"]
    embedded = canonical_json(facts).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    out += ["<h2>Method and configuration</h2>",
            f"<pre>{escape(json.dumps(facts['batch']['config'], indent=2, sort_keys=True))}</pre>",
            "<h2>Integrity</h2>", f"<p>Content sha256: <code>{sha}</code> (issued "
            f"{escape(facts['certificate']['issued_at'])}, ledger {escape(facts['certificate']['ledger_id'])}). "
            f"Check this file with <code>unlearn requests certificate --verify FILE</code>.</p>",
            f'<script type="application/json" id="unlearn-certificate">{embedded}</script>', "</body></html>", ""]
    return "\n".join(out)


def render_json(facts: dict[str, Any], sha: str) -> str:
    return json.dumps({"content_sha256": sha, "facts": facts}, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def render(facts: dict[str, Any], sha: str, fmt: str) -> str:
    if fmt not in FORMATS:
        raise UserError(f"unknown certificate format {fmt!r}; choose from {', '.join(FORMATS)}")
    return {"json": render_json, "md": render_md, "html": render_html}[fmt](facts, sha)


def extract(text: str) -> tuple[str, dict[str, Any]]:
    """(format, facts) of a certificate's text; ValueError if it holds no certificate record."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        doc = json.loads(text)
        if not isinstance(doc, dict) or not isinstance(doc.get("facts"), dict):
            raise ValueError("a JSON file without certificate facts")
        return "json", doc["facts"]
    if stripped.lower().startswith("<!doctype html"):
        match = _SCRIPT.search(text)
        if match is None:
            raise ValueError("an HTML page without an embedded certificate record")
        return "html", json.loads(match.group(1))
    lines = text.split("\n")
    if MD_MARKER not in lines:
        raise ValueError("no embedded certificate record")
    at = lines.index(MD_MARKER)
    if at + 2 >= len(lines) or lines[at + 1] != "```json":
        raise ValueError("a damaged certificate record")
    return "md", json.loads(lines[at + 2])
