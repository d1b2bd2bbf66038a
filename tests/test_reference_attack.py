"""The reference-calibrated per-example attack (LiRA offline, fixed variance) and its reference sets."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from trainables.attacks.config import AttackConfig
from trainables.attacks.reference import LiRAOffline
from trainables.attacks.reference_set import design_in_sets, open_reference_set
from trainables.errors import UserError


def test_lira_removes_per_sample_difficulty_a_population_threshold_cannot():
    # Samples differ in how well ANY model fits them (spread 3); training on one adds +1. With K=4 references the
    # OUT mean of each sample is known to noise sd 0.3/sqrt(2), so the member shift is ~2.7 sd: AUC ~Phi(1.9) = 0.97.
    # A global threshold on the raw signal sees a shift of 1 in a spread of 3: AUC ~Phi(1/(3*sqrt 2)) = 0.59.
    rng = np.random.default_rng(0)
    n, k = 400, 4
    difficulty = rng.normal(0, 3, n)
    _, mask = design_in_sets(np.arange(n), [], k, n // 2, seed=0)  # (K, N): each sample IN for 2 of 4
    ref = difficulty[:, None] + 1.0 * mask.T + rng.normal(0, 0.3, (n, k))
    member = np.arange(n) < n // 2
    target = difficulty + 1.0 * member + rng.normal(0, 0.3, n)
    scores = LiRAOffline().fit(ref, mask.T).score_samples(target)
    assert roc_auc_score(member, scores) > 0.93
    assert roc_auc_score(member, target) < 0.70
    proba = LiRAOffline().fit(ref, mask.T).predict_proba(target)
    assert proba.shape == (n, 2) and np.allclose(proba.sum(1), 1)


def test_lira_needs_two_models_and_an_out_signal_for_every_sample():
    with pytest.raises(ValueError, match="at least 2 reference models"):
        LiRAOffline().fit(np.zeros((5, 1)), np.zeros((5, 1), bool))
    with pytest.raises(ValueError, match="IN every reference model"):
        LiRAOffline().fit(np.zeros((2, 2)), np.array([[1, 1], [0, 1]], bool))
    with pytest.raises(ValueError, match="does not match"):
        LiRAOffline().fit(np.zeros((3, 2)), np.zeros((3, 2), bool)).score_samples(np.zeros(4))


def test_in_set_design_each_sample_out_for_at_least_half():
    pool, mask = design_in_sets(np.arange(100), np.arange(100, 400), 4, 100, seed=3)
    assert mask.shape == (4, 400) and (mask.sum(1) == 100).all()  # the parent's training-set size
    assert (mask[:, :100].sum(0) == 2).all()  # members: IN for exactly K // 2
    assert mask[:, 100:].sum(0).max() <= 2  # non-members: never IN more often
    with pytest.raises(UserError, match="K >= 2"):
        design_in_sets(np.arange(10), [], 1, 5, seed=0)


def test_lira_attack_config_needs_an_existing_reference_set(tmp_path):
    with pytest.raises(ValidationError, match="needs a reference set"):
        AttackConfig(attacks=["lira"])
    with pytest.raises(ValidationError, match="not a reference set"):
        AttackConfig(attacks=["lira"], reference_set=str(tmp_path))
    assert "lira" not in AttackConfig().attacks  # never a default: it needs trained references


# ----------------------------------------------------------------------------- with trained models (Ray)
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """An overfit tiny classifier (100 digits members), registered, with K=2 reference models (in this process)."""
    import torch

    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.references import build_reference_set
    from orchestrator.ledger.versions import register_checkpoint
    from tests.conftest import tiny_job
    from trainables.checkpoint import save_checkpoint
    from trainables.jobs.common import checkpoint_meta
    from trainables.jobs.pretrain import pretrain_task
    from trainables.loops.context import LoopContext

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("refs")
    job = tiny_job("supervised", data={"num_members": 100, "num_nonmembers": 200},
                   optim={"epochs": 30, "batch_size": 32}, augment={"strength": 0.1}, eval={"knn_every": 0})
    model, history, spec, source, splits = pretrain_task(job, LoopContext(progress=False, log=lambda m: None))
    save_checkpoint(root / "parent", model, spec=spec, meta=checkpoint_meta(job, "pretrain", history),
                    splits=splits)
    ledger = Ledger(root / "ledger.sqlite", create=True)
    register_checkpoint(ledger, root / "parent")
    logs = []
    set_id, ref, new = build_reference_set(ledger, k=2, workers=0, log=logs.append)
    yield {"root": root, "ledger": ledger, "ref": ref, "model": model, "source": source, "splits": splits,
           "new": new, "logs": logs}
    ledger.close()


def test_reference_scores_rank_overfit_members_above_non_members(built):
    from trainables.attacks.reference_scoring import reference_scores

    splits = built["splits"]
    members, non = splits["member"], splits["nonmember_eval"]
    ids = np.concatenate([members, non])
    scores = reference_scores(built["ref"], built["model"], built["source"], ids, config={"n_views": 2})
    assert scores.shape == (len(ids),) and np.isfinite(scores).all()
    auc = roc_auc_score(np.r_[np.ones(len(members)), np.zeros(len(non))], scores)
    assert auc > 0.7, auc  # measured 0.775 (30 epochs on 100 members, K=2): above chance
    assert scores[: len(members)].mean() > scores[len(members):].mean() + 0.5
    assert built["new"] and any("2/2 done" in line for line in built["logs"])


def test_a_second_batch_reuses_the_reference_set_without_training(built, monkeypatch):
    import orchestrator.ledger.references as rs
    from trainables.attacks.reference_scoring import reference_scores

    monkeypatch.setattr(rs, "_train_all", lambda *a, **k: pytest.fail("the reference set was trained again"))
    set_id, ref, new = rs.build_reference_set(built["ledger"], k=2, log=lambda m: None)
    assert not new and ref.sha256 == built["ref"].sha256
    before = sorted(p.name for p in built["root"].iterdir())
    forget = built["splits"]["forget"]
    for batch in (forget[:5], forget[5:15]):  # two deletion batches, scored with the same references
        assert reference_scores(rs.reference_set_for(built["ledger"], 1), built["model"], built["source"],
                                batch, config={"n_views": 2}).shape == (len(batch),)
    assert sorted(p.name for p in built["root"].iterdir()) == before
    assert len(rs.recorded_sets(built["ledger"])) == 1


def test_lira_is_an_attack_of_the_evaluation(built):
    from trainables.audit.forgetting import evaluate_forgetting

    splits = built["splits"]
    cfg = {"attacks": ["lira", "confidence"], "reference_set": str(built["ref"].path), "bootstrap": 0,
           "n_views": 2}
    m = evaluate_forgetting(built["model"], built["source"], splits, splits["forget"],
                            model_config=built["ref"].recipe, config=cfg)
    assert 0 <= m["lira_auc"] <= 1 and m["mia_auc"] == m["lira_auc"]
    assert m["lira_auc"] > 0.6  # measured 0.735 (confidence attack 0.75): the forget set are members


def test_tampered_reference_sets_are_refused(built, tmp_path):
    from orchestrator.ledger.references import reference_set_for

    copy = tmp_path / "copy"
    shutil.copytree(built["ref"].path, copy)
    with open(copy / "ref-00" / "model.pt", "ab") as f:
        f.write(b"x")
    with pytest.raises(UserError, match="failed verification: sha256 of ref-00/model.pt"):
        open_reference_set(copy)
    shutil.rmtree(copy)
    shutil.copytree(built["ref"].path, copy)
    ledger = built["ledger"]
    with ledger.transaction() as c:  # a second set of version 1, recorded with the digest it was built with
        c.execute("INSERT INTO reference_sets (version, uri, sha256, k, seed, created_at) VALUES (1, ?, ?, 2, 9, "
                  "'now')", (str(copy), built["ref"].sha256))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["k"] = 2
    (copy / "manifest.json").write_text(json.dumps(manifest) + " ")  # same content, other bytes
    with pytest.raises(UserError, match="modified after it was built"):
        reference_set_for(ledger, 1)
    with ledger.transaction() as c:
        c.execute("DELETE FROM reference_sets WHERE seed = 9")


def test_cli_k_below_two_is_exit_2_and_models_list_shows_k(built, capsys):
    from orchestrator.cli import main

    ledger = str(built["root"] / "ledger.sqlite")
    assert main(["models", "references", "build", "--k", "1", "--ledger", ledger]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "K >= 2" in err[0]
    assert main(["models", "list", "--ledger", ledger]) == 0
    assert "REFS_K" in capsys.readouterr().out.splitlines()[0]
    assert main(["models", "list", "--json", "--ledger", ledger]) == 0
    assert [r["reference_k"] for r in json.loads(capsys.readouterr().out)] == [2]


def test_reference_models_train_as_parallel_ray_tasks(tmp_path, ray_session):
    from orchestrator.ledger.db import Ledger
    from orchestrator.ledger.references import build_reference_set
    from orchestrator.ledger.versions import register_checkpoint
    from tests.conftest import tiny_job
    from trainables.checkpoint import read_meta, save_checkpoint
    from trainables.jobs.common import checkpoint_meta
    from trainables.jobs.pretrain import pretrain_task
    from trainables.loops.context import LoopContext

    job = tiny_job("supervised", data={"num_members": 60, "num_nonmembers": 60}, optim={"epochs": 1})
    model, history, spec, source, splits = pretrain_task(job, LoopContext(progress=False, log=lambda m: None))
    save_checkpoint(tmp_path / "p", model, spec=spec, meta=checkpoint_meta(job, "pretrain", history), splits=splits)
    logs = []
    with Ledger(tmp_path / "l.sqlite", create=True) as ledger:
        register_checkpoint(ledger, tmp_path / "p")
        _, ref, new = build_reference_set(ledger, k=2, workers=2, log=logs.append)
    assert new and ref.k == 2 and sum("Ray workers" in line for line in logs) == 1
    seeds = {read_meta(ref.path / name)["config"]["runtime"]["seed"] for name in ref.names}
    assert len(seeds) == 2 and all(len(ids) == 60 for ids in ref.in_ids)  # the parent's training-set size
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_evaluate_cli_lira_without_a_reference_set_is_one_error_line(tmp_path, capsys):
    from orchestrator.cli import main

    code = main(["evaluate", "--checkpoint", str(tmp_path / "none"), "--out", str(tmp_path / "out"),
                 "--set", "attack.attacks=[lira]"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "needs a reference set" in err[0]
    assert not (tmp_path / "out").exists()
