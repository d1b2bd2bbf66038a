"""Verdict rates of the verification gate over random sub-batches of a forget set (used by verification_power.py).

Per-sample scores are computed once per (candidate, attack) on the whole forget set and the held-out non-members;
every sub-batch of n forget ids is then judged (a) by the old rule: the attack's balanced accuracy on the batch vs n
random non-members within 0.1 of 0.5 passes; (b) by the statistical gate: ``membership_test`` of the batch's scores
vs all held-out non-members, on the candidate and on the parent, combined by ``gate_verdict``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OLD_TOLERANCE = 0.1


def gate_functions():
    """``(membership_test, gate_verdict, where)``: the product's own gate, so the benchmark measures what runs."""
    from orchestrator.ledger.verification import gate_verdict, membership_test

    return membership_test, gate_verdict, "orchestrator.ledger.verification"


@dataclass
class Scores:
    """Per-sample scores of one candidate under one attack, and the attack's own member / non-member decision."""

    forget: np.ndarray  # (F,) scores of the forget ids, in forget order
    nonmember: np.ndarray  # (M,) scores of the held-out non-members
    threshold: float  # pred = score >= threshold (0.5 for probabilities, 0 for LiRA z-scores)


def sub_batches(n_forget: int, sizes: list[int], repeats: int, seed: int) -> dict[int, list[np.ndarray]]:
    """The same random positions into the forget set for every candidate and attack."""
    rng = np.random.default_rng([seed, 71])
    return {n: [np.sort(rng.choice(n_forget, size=n, replace=False)) for _ in range(repeats)]
            for n in sizes if n <= n_forget}


def old_rule_passes(s: Scores, batch: np.ndarray, rng: np.random.Generator) -> bool:
    """The old gate: balanced attack accuracy on the batch vs as many random non-members within 0.1 of 0.5."""
    non = s.nonmember[rng.choice(len(s.nonmember), size=min(len(batch), len(s.nonmember)), replace=False)]
    correct = (s.forget[batch] >= s.threshold).sum() + (non < s.threshold).sum()
    return abs(correct / (len(batch) + len(non)) - 0.5) <= OLD_TOLERANCE


def verdict_rates(candidates: dict[str, Scores], parent: Scores, batches: dict[int, list[np.ndarray]], *,
                  alpha: float, seed: int) -> dict[str, dict[int, dict[str, float]]]:
    """``{candidate: {n: {"old_pass", "verified", "failed", "no-signal", "parent_rejects", "median_p"}}}``."""
    membership_test, gate_verdict, _ = gate_functions()
    out: dict[str, dict[int, dict[str, float]]] = {}
    for name, s in candidates.items():
        out[name] = {}
        for n, rows in batches.items():
            rng = np.random.default_rng([seed, n, 3])
            counts = {"old_pass": 0, "verified": 0, "failed": 0, "no-signal": 0, "parent_rejects": 0}
            pvals = []
            for batch in rows:
                p_test = membership_test(parent.forget[batch], parent.nonmember, alpha=alpha)
                c_test = membership_test(s.forget[batch], s.nonmember, alpha=alpha)
                counts[gate_verdict(c_test, p_test)] += 1
                counts["parent_rejects"] += int(p_test.rejects)
                counts["old_pass"] += int(old_rule_passes(s, batch, rng))
                pvals.append(c_test.p_value)
            out[name][n] = {k: v / len(rows) for k, v in counts.items()} | {"median_p": float(np.median(pvals)),
                                                                          "batches": len(rows)}
    return out


def judge_targets(rates: dict[str, dict[int, dict[str, float]]]) -> dict[str, object]:
    """The issue's targets: parent verified <= 5% at every n; retrained verified >= 90% where the parent is
    rejected >= 95%; the decidable n = the smallest n with parent rejected >= 95% and retrained verified >= 90%."""
    parent, retrained = rates["parent"], rates["retrained"]
    parent_ok = all(r["verified"] <= 0.05 for r in parent.values())
    powered = [n for n, r in retrained.items() if r["parent_rejects"] >= 0.95]
    retrained_ok = all(retrained[n]["verified"] >= 0.90 for n in powered) if powered else None
    decidable = [n for n in powered if retrained[n]["verified"] >= 0.90]
    return {"parent_verified_le_5pct": parent_ok, "powered_n": powered,
            "retrained_verified_ge_90pct_where_powered": retrained_ok,
            "decidable_n": min(decidable) if decidable else None}
