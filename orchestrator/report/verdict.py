"""The report's first words: was the unlearned model promoted, and does it meet the targets, with the reason, in
one sentence per scheduled batch and per evaluated model (dataset / model / method / experiment).

- A scheduled batch (``kind=scheduled-batch``) was promoted when its status is ``ok`` (the ledger's
  verify-before-promote rule passed, docs/ledger.md); otherwise the sentence quotes the rule's reason.
- An evaluated model meets the targets when every check of :func:`orchestrator.report.targets.targets_table` holds
  (the one place that decides met / missed); otherwise the sentence names the checks it misses.

    headline, items = verdict_items(plain(results.load("runs/results")))
    # items: [(ok, "✓ promoted", "Batch 1 (8 requests, 40 ids; digits / simclr / memgp): promoted as version 2: ...")]
"""

from __future__ import annotations

import json
import math

import pandas as pd

from orchestrator.report.aggregate import json_column
from orchestrator.report.targets import TARGETS

Item = tuple[bool | None, str, str]


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not math.isnan(float(value)) else None


def _subject(row) -> str:
    return " / ".join(str(row[k]) for k in ("dataset", "model", "method") if row.get(k))


def batch_sentence(row, extra: dict, hp: dict) -> Item:
    """One scheduled batch: promoted (and why it passed) or not (the rule's reason)."""
    metrics = extra.get("verification") or {}
    metric = hp.get("verify.attack_metric", "accuracy")
    requests = f"{extra['requests']} requests, " if extra.get("requests") else ""
    head = f"Batch {row['batch_id']} ({requests}{_num(row['forget_size']) or 0:.0f} ids; {_subject(row)})"
    if row["status"] != "ok":
        reason = extra.get("reason") or f"state {row['status']}"
        return False, "✗ not promoted", f"{head}: the served version stays; {reason}."
    attack, reference = _num(metrics.get("forget_attack")), _num(metrics.get("reference_attack"))
    target = f"the retrained reference's {reference:.3f}" if reference is not None else "chance (0.5)"
    parts = []
    if attack is not None:
        tolerance = hp.get("verify.attack_tolerance")
        parts.append(f"forget-set attack {metric} {attack:.3f}" +
                     (f" within {tolerance:g} of {target}" if tolerance is not None else f" against {target}"))
    before, after = _num(metrics.get("accuracy_parent")), _num(metrics.get("accuracy_candidate"))
    if before is not None and after is not None:
        parts.append(f"accuracy {before:.3f} -> {after:.3f}")
    version = extra.get("version")
    return True, "✓ promoted", (f"{head}: now served" + (f" as version {version}" if version else "")
                                + ("; " + "; ".join(parts) if parts else "") + ".")


def _check(name: str, line, met: bool) -> str:
    if name == "before":
        text = (f"the original model's attack accuracy {line['before_mia_accuracy']:.3f} "
                f"{'>=' if met else '<'} {TARGETS['before']}")
        return text + ("" if met else " (it leaks too little for the audit to show forgetting)")
    if name == "vs_retrain":
        return (f"attack after unlearning {line['after_mia_accuracy']:.3f} is {line['vs_retrain']:.3f} from the "
                f"retrained model's {line['retrain_mia_accuracy']:.3f} ({'<=' if met else '>'} {TARGETS['vs_retrain']})")
    if name == "vs_chance":
        return f"{line['vs_chance']:.3f} from chance ({'<=' if met else '>'} {TARGETS['vs_chance']})"
    return (f"accuracy {line['before_util']:.3f} -> {line['after_util']:.3f} (drop {line['drop']:.3f} "
            f"{'<=' if met else '>'} {TARGETS['drop']})")


CHECKS = ("before", "vs_retrain", "vs_chance", "drop")


def target_sentence(line) -> Item:
    """One evaluated model (a :func:`targets_table` line)."""
    config = f" ({line['config']})" if line.get("config") else ""
    head = f"{_subject(line)}{config}, {line['experiment']}, {line['n']} run{'s' if line['n'] != 1 else ''}"
    missed = [n for n in CHECKS if line[f"met_{n}"] is False]
    unknown = [n for n in CHECKS if line[f"met_{n}"] is None]
    if not missed and not unknown:
        return True, "✓ meets every target", f"{head}: " + "; ".join(_check(n, line, True) for n in CHECKS[1:]) + "."
    if not missed:
        return None, "? no verdict", (f"{head}: not measured: {', '.join(unknown)} (evaluate with --original and "
                                      "--retrained).")
    return False, f"✗ misses {len(missed)} of {len(CHECKS)} targets", (
        f"{head}: " + "; ".join(_check(n, line, False) for n in missed) + ".")


def verdict_items(frame: pd.DataFrame, targets: pd.DataFrame) -> tuple[str, list[Item]]:
    """(headline, items): the scheduled batches first (the decision that changed what is served), then each
    evaluated model of the penalty methods."""
    batches = frame[frame["kind"] == "scheduled-batch"].reset_index(drop=True)
    items = [batch_sentence(row, extra, json.loads(row["hp_json"]) if row.get("hp_json") else {})
             for (_, row), extra in zip(batches.iterrows(), json_column(batches, "extra_json"), strict=True)]
    models = [target_sentence(line) for _, line in targets.iterrows()]
    parts = []
    if len(batches):
        promoted = sum(1 for ok, _, _ in items if ok)
        parts.append(f"{promoted} of {len(batches)} deletion batch{'es' if len(batches) != 1 else ''} promoted")
    if models:
        met = sum(1 for ok, _, _ in models if ok)
        parts.append(f"{met} of {len(models)} evaluated " + ("models meet" if len(models) != 1 else "model meets")
                     + " every target")
    headline = ("; ".join(parts) + ".") if parts else ("No verdict: no scheduled batches and no evaluations of an "
                                                        "unlearned gp / memgp model yet (tables below).")
    return headline[0].upper() + headline[1:], items + models
