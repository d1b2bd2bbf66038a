"""The verification gate's statistics and rules (no checkpoints): the membership test's numbers, the verdicts,
the paired utility drop, non-finite evidence, settings validation, the evidence file and the schema migration."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from orchestrator.ledger import db as ledger_mod
from orchestrator.ledger.db import Ledger
from orchestrator.ledger.evidence import read_evidence, write_evidence
from orchestrator.ledger.verification import (
    GateScores,
    MembershipTest,
    NonFiniteScores,
    VerifyConfig,
    decide,
    gate_verdict,
    membership_test,
    utility_drop,
)
from trainables.errors import UserError


def test_shifted_members_reject_and_auc_is_u_over_n1_n0():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        members, nonmembers = rng.normal(1.0, 1, 50), rng.normal(0.0, 1, 100)
        t = membership_test(members, nonmembers, alpha=0.05)
        # a shift of one standard deviation at 50 vs 100: z ~ 5, every seed rejects
        assert t.rejects and t.p_value < 0.01, (seed, t)
        assert t.auc == pytest.approx(roc_auc_score(np.r_[np.ones(50), np.zeros(100)], np.r_[members, nonmembers]))
        assert (t.n_member, t.n_nonmember, t.alpha) == (50, 100, 0.05)
    # one-sided: members scoring *lower* is no evidence of membership
    assert not membership_test(np.full(20, -1.0) + np.arange(20) / 100, np.arange(40) / 100).rejects


def test_identical_distributions_reject_about_alpha_of_the_time():
    rejections = sum(membership_test(*np.random.default_rng(seed).normal(0, 1, (2, 40)), alpha=0.05).rejects
                     for seed in range(400))
    # Binomial(400, 0.05): mean 20, sd 4.4; [6, 34] is beyond 3 sd on either side
    assert 6 <= rejections <= 34, rejections


def test_small_exact_case_by_hand():
    # every member above every non-member, 3 vs 3: exact p = 1 / C(6, 3) = 0.05, not < 0.05
    t = membership_test([4, 5, 6], [1, 2, 3], alpha=0.05)
    assert t.statistic == 9 and t.auc == 1.0 and t.p_value == pytest.approx(0.05) and not t.rejects
    assert membership_test([], [1, 2], alpha=0.05) == MembershipTest(0.0, 1.0, 0.05, False, 0, 2, 0.5)


def _t(rejects: bool) -> MembershipTest:
    return MembershipTest(0.0, 0.01 if rejects else 0.5, 0.05, rejects, 10, 10, 0.5)


@pytest.mark.parametrize("candidate, parent, verdict", [
    (False, True, "verified"), (True, True, "failed"), (False, False, "no-signal"), (True, False, "no-signal")])
def test_gate_verdict(candidate, parent, verdict):
    assert gate_verdict(_t(candidate), _t(parent)) == verdict


def _scores(cand_shift: float, parent_shift: float, *, n=40, m=200, earlier_shift=None, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.arange(n)
    non = (np.arange(m) + 1000, rng.normal(0, 1, m))
    cand = {"forget": (ids, rng.normal(cand_shift, 1, n)), "nonmember": non}
    if earlier_shift is not None:
        cand["earlier"] = (ids + 500, rng.normal(earlier_shift, 1, n))
    return cand, {"forget": (ids, rng.normal(parent_shift, 1, n)), "nonmember": non}


def test_decide_verdicts_reasons_and_the_record():
    cand, par = _scores(0.0, 1.5)
    before, after = np.ones(300), np.r_[np.ones(290), np.zeros(10)]
    result = decide(GateScores("encodermi_vector", cand, par, before, after, "knn_acc"), VerifyConfig())
    v = result.verification
    assert result.verdict == "verified" and result.passed and result.reason == ""
    assert v["parent_rejects"] and v["parent_p_value"] < 1e-6 and v["p_value"] >= 0.05
    assert (v["n_forget"], v["n_nonmember"], v["attack"], v["reference_k"]) == (40, 200, "encodermi_vector", 0)
    assert v["utility"]["drop"] == pytest.approx(10 / 300) and v["utility"]["ci_low"] <= v["utility"]["drop"]
    assert len(result.evidence) == 2 * (40 + 200)
    assert {(role, model) for _, role, model, _ in result.evidence} == {
        ("forget", "candidate"), ("nonmember", "candidate"), ("forget", "parent"), ("nonmember", "parent")}

    cand, par = _scores(1.5, 1.5)
    assert "still detectable" in decide(GateScores("a", cand, par), VerifyConfig()).reason
    cand, par = _scores(0.0, 0.0)
    nosig = decide(GateScores("a", cand, par), VerifyConfig())
    assert nosig.verdict == "no-signal" and not nosig.passed and "even the parent" in nosig.reason
    cand, par = _scores(0.0, 1.5, earlier_shift=1.5)
    relearned = decide(GateScores("a", cand, par), VerifyConfig())
    assert relearned.verdict == "failed" and "earlier batches relearned" in relearned.reason
    assert decide(GateScores("a", cand, par), VerifyConfig(check_earlier=False)).verdict == "verified"


def test_utility_rule_fails_only_a_drop_significantly_above_the_cap():
    before = np.ones(400)
    big = decide(GateScores("a", *_scores(0.0, 1.5), before, np.r_[np.ones(320), np.zeros(80)]), VerifyConfig())
    assert big.verdict == "failed" and "dropped 0.200" in big.reason
    # 0.06 above a 0.05 cap, but the one-sided lower bound at 5% (~0.04) is below it: not significant, passes
    near = utility_drop(before, np.r_[np.ones(376), np.zeros(24)], alpha=0.05)
    assert near.drop == pytest.approx(0.06) and near.ci_low < 0.05 < near.ci_high
    assert decide(GateScores("a", *_scores(0.0, 1.5), before, np.r_[np.ones(376), np.zeros(24)]),
                  VerifyConfig()).verdict == "verified"
    same = utility_drop(np.r_[np.ones(5), np.zeros(5)], np.r_[np.ones(5), np.zeros(5)])
    assert (same.drop, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_or_metrics_fail(bad):
    with pytest.raises(NonFiniteScores):
        membership_test([0.1, bad], [0.2, 0.3])
    cand, par = _scores(0.0, 1.5)
    cand["forget"][1][3] = bad
    result = decide(GateScores("a", cand, par), VerifyConfig())
    assert result.verdict == "failed" and "non-finite" in result.reason and not result.passed
    ok_cand, ok_par = _scores(0.0, 1.5)
    after = np.ones(10)
    after[2] = bad
    assert decide(GateScores("a", ok_cand, ok_par, np.ones(10), after), VerifyConfig()).verdict == "failed"
    assert decide(GateScores("a", ok_cand, ok_par, extra_metrics={"knn_acc": bad}), VerifyConfig()).verdict == "failed"


@pytest.mark.parametrize("settings", [{"alpha": 0}, {"alpha": 0.5}, {"max_accuracy_drop": -0.1},
                                      {"utility_bootstrap": 10}, {"on_no_signal": "ignore"},
                                      {"hold_max_size": 0}, {"attack": {"n_views": "abc"}},
                                      {"attack": {"n_views": 1}}, {"attack": {"attacks": ["nope"]}}])
def test_bad_verification_settings_are_refused(settings):
    with pytest.raises(ValueError):
        VerifyConfig(**settings)


def test_a_batch_frozen_by_the_old_rule_still_resumes():
    cfg = VerifyConfig.model_validate({"attack_metric": "accuracy", "attack_tolerance": 0.1, "reference": None,
                                       "max_accuracy_drop": 0.02, "check_earlier": True, "attack": {"bootstrap": 0}})
    assert cfg.max_accuracy_drop == 0.02 and cfg.alpha == 0.05 and cfg.on_no_signal == "hold"


def test_evidence_file_round_trip_and_tamper(tmp_path):
    ledger_path = tmp_path / "ledger.sqlite"
    rows = [(3, "forget", "candidate", 0.25), (9, "nonmember", "parent", 0.5)]
    path, sha = write_evidence(ledger_path, 7, rows)
    assert path == tmp_path / "evidence" / "batch-7.parquet"
    table = read_evidence(ledger_path, 7, sha256=sha)
    assert table.schema.names == ["sample_id", "role", "model", "score"]
    assert str(table.schema.field("sample_id").type) == "int64" and str(table.schema.field("score").type) == "double"
    assert [tuple(r.values()) for r in table.to_pylist()] == rows
    write_evidence(ledger_path, 7, rows[:1])
    with pytest.raises(UserError, match="modified after the verdict"):
        read_evidence(ledger_path, 7, sha256=sha)


def test_migration_from_a_schema_1_ledger_keeps_every_row(tmp_path):
    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    ledger_mod.MIGRATIONS[1](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO model_versions (version, uri, sha256, forgotten_ids, registered_at, is_current) "
                 "VALUES (1, '/m', 'abc', '[]', 'now', 1)")
    conn.execute("INSERT INTO batches (batch_id, state, run_name, parent_version, forget_ids, config, created_at, "
                 "updated_at) VALUES (1, 'failed', 'r', 1, '[5]', '{}', 'now', 'now')")
    conn.close()
    with Ledger(path) as led:
        assert led.schema_version == ledger_mod.SCHEMA_VERSION >= 2
        batch, model = led.get_batch(1), led.get_model(1)
        assert batch["forget_ids"] == [5] and batch["verdict"] is None and batch["evidence_sha256"] is None
        assert model["uri"] == "/m" and model["evidence"] is None
        ledger_mod.MIGRATIONS[2](led.conn)  # guarded: running it again (or in another order) changes nothing
        cols = {r[1] for r in led.conn.execute("PRAGMA table_info(batches)")}
    assert {"verdict", "test", "statistic", "p_value", "alpha", "parent_p_value", "n_forget", "n_nonmember",
            "reference_k", "attack", "evidence_sha256"} <= cols


def test_evaluate_warns_when_the_original_shows_no_membership_signal():
    from types import SimpleNamespace

    from orchestrator.commands.evaluate import warn_without_signal

    def evaluation(shift: float):
        rng = np.random.default_rng(0)
        scores = {"forget": rng.normal(shift, 1, 60), "nonmember": rng.normal(0, 1, 60)}
        attack = SimpleNamespace(sample_scores=scores)
        return SimpleNamespace(reports={"original": SimpleNamespace(attacks={"a": attack})}, primary="a", notes=[])

    logged: list[str] = []
    flat = evaluation(0.0)
    warn_without_signal(flat, logged.append)
    assert logged and logged[0].startswith("warning: the original model shows no membership signal")
    assert flat.notes[0].startswith("WARNING:")
    clear = evaluation(1.0)
    warn_without_signal(clear, logged.append)
    assert len(logged) == 1 and clear.notes == []
